// CacheNode: one distcache node process. Loads nothing itself (takes a NodeConfig), opens the
// multi-Raft store on server.data_directory, creates this node's replicas of every shard the
// ring places on it (static bootstrap from cluster.members), and serves:
//   - the client gRPC API (proto/distcache.proto KeyValue) on listen_address:listen_port,
//     each request through the Pipeline (validation, auth, acl, audit, hot-key slots) to the router;
//     unary calls here, the multiplexed Session stream in session-api.ts (same pipeline, same router);
//   - the node-to-node RaftTransport on peer_port (grpc-transport.ts);
//   - the admin HTTP API on http_port (admin-http.ts);
//   - Prometheus metrics on monitoring.metrics_port unless monitoring.enable_monitoring is false
//     (metrics-http.ts; the registry is src/monitoring/metrics.ts).
// The client port is a net.Server of our own that hands connections to grpc-js
// (client-listener.ts: server.max_connections); each handler is wrapped by call-accounting.ts.
// stop() is the graceful shutdown: stop accepting, let in-flight calls finish (bounded), close
// the host (transport, Raft log, engine).
//
// Node ids: the Raft core uses positive integers; a founding member's raft id is its 1-based
// position in the sorted founding member ids, identical on every founder. Nodes admitted later
// get the next unused id from the cluster metadata.
//
// Members and shard placement come from the cluster-metadata Raft group (src/cluster): until it
// is bootstrapped, the founders route with the placement they all compute from the static
// configuration, which is exactly what the first metadata leader writes.
import { mkdir } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { decodeStoredValue } from '../store/apply.js';
import { type CommandResult, type Op, type OpResult } from '../store/commands.js';
import { MultiRaftHost, StoreError } from '../store/host.js';
import { HashRing, META_SHARD_ID, type ShardMap, SHARD_PREFIX_BYTES, ShardRouter, computeShardMap, decodeKey, encodeKey, initHashing, shardKeyPrefix, shardKeyRange, wholeSlot } from '../ring/index.js';
import { type ReshardResult, Resharder, type ShardCommandResponse, type ShardScanResponse } from './reshard.js';
import { scanFrozen } from '../store/range-move.js';
import { AutoSplitter } from '../cluster/auto-split.js';
import { MetaManager, type MetaView } from '../cluster/meta-manager.js';
import { type ClusterRecord, MAX_META_VOTERS, META_FORMAT_V1, type PlacementRecord, liveMembers, placementFromShardMap, shardMapFromPlacement } from '../cluster/meta-state.js';
import { ClusterController } from '../cluster/controller.js';
import { KvError } from '../util/errors.js';
import type { NodeConfig } from './config.js';
import { AdminHttp } from './admin-http.js';
import { NodeMetrics } from '../monitoring/metrics.js';
import { accountedUnary } from './call-accounting.js';
import { ClientListener, type ConnectionStats } from './client-listener.js';
import { GrpcTransport } from './grpc-transport.js';
import { MetricsHttp } from './metrics-http.js';
import { metricsSources } from './node-metrics.js';
import { ApiError, DEFAULT_ORDER, type Interceptor, type MethodName, Pipeline, type RequestContext, passThrough } from './pipeline.js';
import { type PJoinResponse as JoinResponse, type PKey, loadServices } from './proto.js';
import { clusterAdminCall } from './admin-client.js';
import { type Identity, checkIdentity, readIdentity, writeIdentity } from './identity.js';
import { admit, decommission, markRemoved } from '../cluster/membership.js';
import { MAX_REQUEST_BYTES, validationInterceptor } from './validation.js';
import { SessionApi, type SessionMethod } from './session-api.js';

export interface CacheNodeOptions {
  /** ms per Raft tick (default 100) */
  tickMs?: number;
  /** extra interceptors by slot name (replace the pass-through placeholders) */
  interceptors?: Partial<Record<(typeof DEFAULT_ORDER)[number], Interceptor>>;
  log?: (line: string) => void;
}

export interface MemberInfo {
  nodeId: string;
  raftId: number;
  peerAddress: string;
  clientAddress: string;
}

const DEFAULT_SCAN_LIMIT = 1000;
const FIRST_USER_KEY = Buffer.from([0x00, 0x01]);
const JOIN_TIMEOUT_MS = 60_000;
const ADMIN_CALL_TIMEOUT_MS = 10_000;
const SHUTDOWN_GRACE_MS = 5000;
const RESHARD_RESUME_MS = 1000;
const RESHARD_CALL_TIMEOUT_MS = 10_000;
/** Memtable flushes and Raft-log truncation rounds each start at their size limit less a
 *  random share of up to this fraction. The replicas of every group write the same bytes, so
 *  with exact limits all nodes flush and truncate at the same moment, and those moments (CPU
 *  and disk bursts on every node at once) were where the slow puts clustered. */
const FLUSH_JITTER = 0.25;

export class CacheNode {
  readonly raftId: number;
  private members_: MemberInfo[];
  private shardMap_: ShardMap;
  private router: ShardRouter;
  private resharder!: Resharder;
  private reshardTimer: NodeJS.Timeout | undefined;
  private autoSplit!: AutoSplitter;
  private autoSplitTimer: NodeJS.Timeout | undefined;
  /** founders: the static bootstrap records (every founder computes identical ones) */
  private readonly founding: { cluster: ClusterRecord; placement: PlacementRecord } | undefined;
  /** whether the data directory was used before (IDENTITY present) */
  private readonly fresh: boolean;
  private readonly joinedClusterId: string | undefined;
  /** client addresses learned from peers' Raft batches, by raft id */
  private readonly learnedClientAddress = new Map<number, string>();
  private meta!: MetaManager;
  private controller: ClusterController | undefined;
  private host!: MultiRaftHost;
  private transport!: GrpcTransport;
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES, 'grpc.max_send_message_length': MAX_REQUEST_BYTES });
  private admin!: AdminHttp;
  private clientListener!: ClientListener;
  private metrics: NodeMetrics | undefined;
  private metricsHttp: MetricsHttp | undefined;
  private sessions!: SessionApi;
  private readonly pipeline: Pipeline;
  private readonly byRaftId = new Map<number, MemberInfo>();
  private stopping: Promise<void> | undefined;
  private inFlight = 0;
  readonly startedAt = Date.now();
  /** Bound ports; metrics is 0 when monitoring is disabled. */
  readonly ports = { client: 0, peer: 0, http: 0, metrics: 0 };
  readonly requests = { total: 0, errors: 0 };

  private constructor(
    readonly config: NodeConfig,
    private readonly opts: CacheNodeOptions,
    start: { identity: Identity | undefined; joined: JoinResponse | undefined },
  ) {
    this.fresh = start.identity === undefined;
    this.joinedClusterId = start.joined?.cluster_id;
    this.members_ = [];
    if (start.joined) {
      // a joining node: the cluster told us who we are and who is there
      const j = start.joined;
      this.raftId = j.raft_id;
      this.founding = undefined;
      this.shardMap_ = { epoch: 0, shardCount: j.shard_count, replicationFactor: j.replication_factor, vnodesPerNode: config.cluster.vnodes_per_node, members: [], shards: Array.from({ length: j.shard_count }, (_, shardId) => ({ shardId, replicas: [], leaderHint: '' })) };
      this.adoptMembers({
        format: META_FORMAT_V1, clusterId: j.cluster_id, shardCount: j.shard_count, replicationFactor: j.replication_factor, vnodesPerNode: config.cluster.vnodes_per_node, nextRaftId: 0,
        members: j.members.map((m) => ({ nodeId: m.node_id, raftId: m.raft_id, peerAddress: m.peer_address, clientAddress: m.client_address, state: 'up' as const })),
      });
    } else {
      const ids = Object.keys(config.cluster.members).sort();
      const me = ids.indexOf(config.cluster.node_id);
      if (me < 0) throw new KvError('INVALID_ARGUMENT', `cluster.node_id ${config.cluster.node_id} is not a member of ${ids.join(', ')}`);
      this.raftId = start.identity?.raftId ?? me + 1;
      const ring = HashRing.create(ids, { replicationFactor: config.cluster.replication_target, vnodesPerNode: config.cluster.vnodes_per_node });
      // the slot count is the cluster's, fixed at creation: a restart keeps it whatever the config says
      const slots = start.identity?.shardCount ?? config.cluster.shard_count;
      if (slots !== config.cluster.shard_count) this.log(`cluster.shard_count ${config.cluster.shard_count} ignored: this cluster was created with ${slots} shards`);
      this.shardMap_ = computeShardMap(ring, slots, 1);
      const cluster: ClusterRecord = {
        format: META_FORMAT_V1,
        clusterId: ids[0]!,
        shardCount: slots,
        replicationFactor: config.cluster.replication_target,
        vnodesPerNode: config.cluster.vnodes_per_node,
        nextRaftId: ids.length + 1,
        members: ids.map((id, i) => {
          const ep = config.cluster.members[id]!;
          return { nodeId: id, raftId: i + 1, peerAddress: `${ep.host}:${ep.port}`, clientAddress: id === config.cluster.node_id ? config.cluster.advertise_client_address : '', state: 'up' as const };
        }),
      };
      this.founding = { cluster, placement: placementFromShardMap(this.shardMap_) };
      this.adoptMembers(cluster);
    }
    this.router = ShardRouter.unsplit(this.shardMap_.shardCount);
    const slots = opts.interceptors ?? {};
    this.pipeline = new Pipeline(
      DEFAULT_ORDER.map((name) => (name === 'validation' ? validationInterceptor(() => this.shardMap.shards.length) : (slots[name] ?? passThrough(name)))),
    );
  }

  /** Members of the cluster (this node's applied view of the metadata group). */
  get members(): readonly MemberInfo[] {
    return this.members_;
  }

  /** Shard placement (this node's applied view of the metadata group). */
  get shardMap(): ShardMap {
    return this.shardMap_;
  }

  /** The metadata view, once the metadata group has been bootstrapped. */
  get metadata(): MetaView | undefined {
    return this.meta?.current;
  }

  /** Rebuilds the member table from a cluster record. A peer address from this node's own
   *  cluster.initial_cluster wins over the recorded one: it is how THIS node reaches that peer
   *  (proxies, NAT), which may differ from what the peer advertised to others. */
  private adoptMembers(c: ClusterRecord): void {
    const local = this.config.cluster.members;
    this.members_ = liveMembers(c).map((m) => {
      const ep = local[m.nodeId];
      const clientAddress = m.raftId === this.raftId ? this.config.cluster.advertise_client_address.replace(/:0$/, `:${this.ports.client}`) : (this.learnedClientAddress.get(m.raftId) ?? m.clientAddress);
      return { nodeId: m.nodeId, raftId: m.raftId, peerAddress: ep ? `${ep.host}:${ep.port}` : m.peerAddress, clientAddress };
    });
    this.byRaftId.clear();
    for (const m of this.members_) this.byRaftId.set(m.raftId, m);
    for (const m of this.members_) if (m.raftId !== this.raftId) this.transport?.addPeer({ nodeId: m.nodeId, raftId: m.raftId, peerAddress: m.peerAddress });
  }

  private onMetadata(v: MetaView): void {
    this.adoptMembers(v.cluster);
    this.shardMap_ = shardMapFromPlacement(v.placement, v.cluster);
    try {
      this.router = new ShardRouter(this.shardMap_.shardCount, this.shardMap_.shards.map((s) => ({ shardId: s.shardId, range: s.range ?? wholeSlot(s.shardId) })));
    } catch (err) {
      this.log(`placement epoch ${v.placement.epoch}: routing not updated: ${(err as Error).message}`);
    }
    if (this.host) void this.reconcileShards(v.placement);
  }

  /**
   * Replicas the placement creates or retires directly (split and merge): a new shard's
   * starting members create it with the recorded configuration; replicas of a merged-away shard
   * are destroyed. (Other replica changes are the rebalancer's, through Raft.)
   */
  private async reconcileShards(p: PlacementRecord): Promise<void> {
    if (this.reconciling) return;
    this.reconciling = true;
    try {
      const create: Array<{ shardId: number; replicas: number[] }> = [];
      const campaign: number[] = [];
      p.shards.forEach((s, shardId) => {
        if (s.bootstrap?.includes(this.raftId) && !s.retired && !this.host.hasReplica(shardId)) {
          create.push({ shardId, replicas: s.bootstrap });
          if (s.leaderHint === this.config.cluster.node_id) campaign.push(shardId);
        }
      });
      if (create.length > 0) {
        await this.host.addShards(create);
        this.log(`created replicas of new shards ${create.map((c) => c.shardId).join(', ')}`);
        for (const s of campaign) this.host.campaign(s);
      }
      for (const shardId of this.host.shardIds()) {
        if (p.shards[shardId]?.retired) {
          await this.host.destroyRetiredReplica(shardId);
          this.log(`destroyed the replica of shard ${shardId} (merged into another shard)`);
        }
      }
    } catch (err) {
      if (!this.stopping) this.log(`shard reconcile failed: ${(err as Error).message}`);
    } finally {
      this.reconciling = false;
    }
  }
  private reconciling = false;

  /** A leader contacts this node for a group it has no replica of: accept only where the
   *  metadata says this node belongs (the metadata group: any live member). */
  private mayCreateReplica(shardId: number): boolean {
    if (shardId === META_SHARD_ID) return !this.founding || this.meta?.current !== undefined || !this.fresh;
    const s = this.shardMap_.shards[shardId];
    return s !== undefined && !s.retired && s.replicas.includes(this.config.cluster.node_id);
  }

  /** Opens the store, creates the shard replicas and starts every listener. */
  static async start(config: NodeConfig, opts: CacheNodeOptions = {}): Promise<CacheNode> {
    await initHashing();
    const c = config.cluster;
    await mkdir(config.server.data_directory, { recursive: true });
    const identity = await readIdentity(config.server.data_directory);
    if (identity) checkIdentity(identity, c.node_id, config.server.data_directory);
    let joined: JoinResponse | undefined;
    if (c.mode === 'join' && identity) {
      // a node that joined earlier comes back as itself from its local copy of the metadata
      joined = { raft_id: identity.raftId, members: [], shard_count: identity.shardCount ?? c.shard_count, replication_factor: c.replication_target, cluster_id: identity.clusterId };
    } else if (c.mode === 'join') {
      if (config.server.listen_port === 0 || config.server.peer_port === 0) {
        throw new KvError('INVALID_ARGUMENT', 'joining a cluster needs fixed ports (server.listen_port and server.peer_port): other nodes dial the advertised addresses');
      }
      const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
      log(`joining the cluster through ${c.seed_nodes.join(', ')} as ${c.node_id} (peer ${c.advertise_peer_address}, client ${c.advertise_client_address})`);
      joined = await clusterAdminCall<JoinResponse>(c.seed_nodes, 'Join', { node_id: c.node_id, peer_address: c.advertise_peer_address, client_address: c.advertise_client_address }, JOIN_TIMEOUT_MS);
      log(`admitted as raft id ${joined.raft_id} of cluster ${joined.cluster_id} (${joined.members.length} members)`);
    }
    const node = new CacheNode(config, opts, { identity, joined });
    await node.open();
    return node;
  }

  private async open(): Promise<void> {
    const c = this.config;
    this.transport = new GrpcTransport({
      self: { nodeId: c.cluster.node_id, raftId: this.raftId, clientAddress: c.cluster.advertise_client_address, peerAddress: c.cluster.advertise_peer_address },
      peers: this.members.map((m) => ({ nodeId: m.nodeId, raftId: m.raftId, peerAddress: m.peerAddress })),
      bind: hostPort(c.server.listen_address, c.server.peer_port),
      onPeerClientAddress: (raftId, _nodeId, addr) => {
        this.learnedClientAddress.set(raftId, addr);
        const m = this.byRaftId.get(raftId);
        if (m) m.clientAddress = addr;
      },
    });
    this.ports.peer = await this.transport.start();
    this.host = await MultiRaftHost.open({
      nodeId: this.raftId,
      dataDir: c.server.data_directory,
      transport: this.transport,
      tickMs: this.opts.tickMs ?? 100,
      readOnlyOption: c.cluster.read_mode === 'lease' ? 'lease' : 'safe',
      lsm: { memtableBytes: c.storage.memtable_size_mb * 1024 * 1024, memtableJitter: FLUSH_JITTER, compression: c.storage.enable_compression, blockCacheBytes: c.storage.block_cache_mb * 1024 * 1024, backgroundDutyCycle: c.storage.background_duty_percent / 100, l0CompactionTrigger: c.storage.l0_compaction_trigger },
      raftLog: { sync: c.storage.sync_policy, maxSyncsInFlight: c.storage.log_syncs_in_flight },
      logGcJitter: FLUSH_JITTER,
      maxTurnsInFlight: c.storage.log_writes_in_flight,
      slotCount: this.shardMap.shardCount,
      mayCreateReplica: (shardId) => this.mayCreateReplica(shardId),
    });
    const founding = this.founding;
    const campaign: number[] = [];
    if (founding && this.fresh) {
      // A founder's first start: create its replicas of the static placement and of the
      // metadata group (up to MAX_META_VOTERS founders, lowest raft ids; founder 1 leads).
      const metaVoters = founding.cluster.members.map((m) => m.raftId).slice(0, MAX_META_VOTERS);
      const shards = this.shardMap.shards.filter((s) => s.replicas.includes(c.cluster.node_id)).map((s) => ({ shardId: s.shardId, replicas: s.replicas.map((r) => this.raftIdOf(r)), leader: s.leaderHint === c.cluster.node_id }));
      if (metaVoters.includes(this.raftId)) shards.push({ shardId: META_SHARD_ID, replicas: metaVoters, leader: this.raftId === metaVoters[0] });
      await this.host.addShards(shards.map(({ shardId, replicas }) => ({ shardId, replicas })));
      for (const s of shards) if (s.leader) campaign.push(s.shardId);
    }
    this.meta = new MetaManager(this.host);
    if (this.meta.current) {
      this.onMetadata(this.meta.current);
      // a restart: the preferred leaders campaign again (no election timeout to sit out)
      for (const s of this.host.shardIds()) if (s !== META_SHARD_ID && this.shardMap.shards[s]?.leaderHint === c.cluster.node_id) campaign.push(s);
      if (this.host.hasReplica(META_SHARD_ID) && this.host.replicaStatus(META_SHARD_ID).confState.voters[0] === this.raftId) campaign.push(META_SHARD_ID);
    }
    this.meta.onChange((v) => this.onMetadata(v));
    if (this.meta.current) void this.reconcileShards(this.meta.current.placement);
    this.resharder = new Resharder({
      meta: this.meta,
      atLeader: (shardId, method, req) => this.atShardLeader(shardId, method, req),
      groupOf: (shardId) => this.groupOf(shardId),
      nodeIdOf: (raftId) => this.byRaftId.get(raftId)?.nodeId,
      log: (l) => this.log(l),
    });
    // a split or merge recorded in the placement is finished by whoever leads the metadata
    this.reshardTimer = setInterval(() => {
      if (!this.isMetaLeader() || this.stopping) return;
      this.resharder.resume()?.catch((err: unknown) => this.log(`resuming a split/merge failed (will retry): ${(err as Error).message}`));
    }, RESHARD_RESUME_MS);
    this.reshardTimer.unref();
    this.autoSplit = new AutoSplitter({
      host: this.host,
      meta: this.meta,
      thresholdBytes: c.cluster.split_shard_mb * 1024 * 1024,
      split: (shardId) => this.reshardCall({ op: 'split', shard_id: shardId }),
      log: (l) => this.log(l),
    });
    if (c.cluster.split_shard_mb > 0) {
      this.autoSplitTimer = setInterval(() => {
        if (!this.stopping) void this.autoSplit.check();
      }, c.cluster.split_check_ms);
      this.autoSplitTimer.unref();
    }
    // Preferred leaders campaign right away (no election timeout to wait for at start-up).
    for (const s of campaign) if (!this.host.isLeader(s)) this.host.campaign(s);
    if (founding && !this.meta.current) {
      this.meta.bootstrap(founding, 24 * 3600_000).catch((err: unknown) => {
        if (!this.stopping) this.log(`cluster metadata bootstrap failed: ${(err as Error).message}`);
      });
    }
    if (this.fresh) await writeIdentity(c.server.data_directory, { nodeId: c.cluster.node_id, raftId: this.raftId, clusterId: founding ? founding.cluster.clusterId : (this.joinedClusterId ?? ''), shardCount: this.shardMap.shardCount });
    this.controller = new ClusterController({
      host: this.host,
      meta: this.meta,
      raftId: this.raftId,
      nodeId: c.cluster.node_id,
      clientAddressOf: (raftId) => this.byRaftId.get(raftId)?.clientAddress ?? '',
      requestLeave: () => this.adminCall('SetNodeState', { node_id: c.cluster.node_id, state: 'removed' }).then(() => this.log(`drained: ${c.cluster.node_id} left the cluster`)),
      replicaInfo: (nodeId, shardId) => this.askReplicaInfo(nodeId, shardId),
      downAfterMs: c.cluster.down_after_ms,
      maxConcurrentMoves: c.cluster.max_concurrent_moves,
      log: (l) => this.log(l),
    });

    if (c.monitoring.enable_monitoring) this.metrics = new NodeMetrics({ nodeId: c.cluster.node_id, sources: metricsSources(this) });
    this.clientListener = new ClientListener(this.server, c.server.max_connections);
    this.sessions = new SessionApi({
      pipeline: this.pipeline,
      dispatch: (method, req) => this.dispatch(method, req),
      toStatus: (err) => this.toStatus(err),
      requestTimeoutMs: () => this.config.server.request_timeout_ms,
      onStart: () => {
        this.inFlight++;
        this.requests.total++;
      },
      onDone: (failed) => {
        this.inFlight--;
        if (failed) this.requests.errors++;
      },
    });
    this.server.addService(this.keyValueService(), { ...this.handlers(), Session: this.sessions.handler });
    this.server.addService(loadServices().clusterAdmin.service, this.adminHandlers());
    this.ports.client = await this.clientListener.listen(c.server.listen_address, c.server.listen_port);
    const me = this.byRaftId.get(this.raftId)!;
    if (c.server.listen_port === 0) me.clientAddress = replacePort(me.clientAddress, this.ports.client);
    this.controller?.start();
    this.admin = new AdminHttp(this);
    this.ports.http = await this.admin.listen(c.server.listen_address, c.server.http_port);
    if (this.metrics) {
      this.metricsHttp = new MetricsHttp(this.metrics);
      this.ports.metrics = await this.metricsHttp.listen(c.server.listen_address, c.monitoring.metrics_port);
    }
  }

  private raftIdOf(nodeId: string): number {
    const m = this.members.find((x) => x.nodeId === nodeId);
    if (!m) throw new Error(`unknown member ${nodeId}`);
    return m.raftId;
  }

  get store(): MultiRaftHost {
    return this.host;
  }

  get peerTransport(): GrpcTransport {
    return this.transport;
  }

  get inFlightRequests(): number {
    return this.inFlight;
  }

  get connectionStats(): ConnectionStats {
    return this.clientListener.stats;
  }

  // ------------------------------------------------------------------ gRPC plumbing

  /** The KeyValue service definition with deserializers that never throw: bytes that are not a
   *  valid message become a Malformed marker the validation interceptor answers INVALID_ARGUMENT
   *  (grpc-js itself would answer INTERNAL). */
  private keyValueService(): grpc.ServiceDefinition {
    const def = loadServices().keyValue.service;
    const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const [name, m] of Object.entries(def)) {
      const md = m as grpc.MethodDefinition<unknown, unknown>;
      out[name] = {
        ...md,
        requestDeserialize: (b: Buffer) => {
          try {
            return md.requestDeserialize(b);
          } catch (err) {
            return { __malformed: (err as Error).message };
          }
        },
      };
    }
    return out as grpc.ServiceDefinition;
  }

  /** The router function of a unary method (what the pipeline's terminal step runs). */
  private dispatch(method: SessionMethod, req: unknown): Promise<unknown> {
    return this.routes()[method](req as never);
  }

  private routes(): Record<MethodName, (req: never) => Promise<unknown>> {
    return (this.routeTable ??= {
      Get: (r) => this.get(r),
      Put: (r) => this.put(r),
      Delete: (r) => this.delete(r),
      PutIfVersionMatch: (r) => this.putIfVersionMatch(r),
      MultiGet: (r) => this.multiGet(r),
      MultiPut: (r) => this.multiPut(r),
      RangeScan: (r) => this.rangeScan(r),
      ClusterInfo: () => Promise.resolve(this.clusterInfo()),
    });
  }
  private routeTable: Record<MethodName, (req: never) => Promise<unknown>> | undefined;

  private handlers(): grpc.UntypedServiceImplementation {
    const h: grpc.UntypedServiceImplementation = {};
    for (const [name, fn] of Object.entries(this.routes()) as Array<[MethodName, (req: never) => Promise<unknown>]>) {
      const acc = { listener: this.clientListener, metrics: this.metrics };
      h[name] = accountedUnary(name, acc, (call, cb) => void this.serve(name, call, cb, fn));
    }
    return h;
  }

  private async serve(method: MethodName, call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>, fn: (req: never) => Promise<unknown>): Promise<void> {
    this.inFlight++;
    this.requests.total++;
    const d = call.getDeadline();
    const clientDeadline = d instanceof Date ? d.getTime() : d;
    const deadline = Number.isFinite(clientDeadline) ? clientDeadline : Date.now() + this.config.server.request_timeout_ms;
    const ctx: RequestContext = { method, request: call.request, metadata: call.metadata, peer: call.getPeer(), deadline, attrs: new Map() };
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = this.pipeline.run(ctx, (c) => fn(c.request as never));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ApiError(grpc.status.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED', `${method} did not complete within its deadline (${deadline - Date.now() + (Date.now() - ctx.deadline)} ms)`)), Math.max(0, deadline - Date.now()));
      });
      work.catch(() => {});
      const res = await Promise.race([work, timeout]);
      cb(null, res);
    } catch (err) {
      this.requests.errors++;
      cb(this.toStatus(err));
    } finally {
      clearTimeout(timer);
      this.inFlight--;
    }
  }

  // ------------------------------------------------------------------ cluster administration

  private isMetaLeader(): boolean {
    return this.host.hasReplica(META_SHARD_ID) && this.host.isLeader(META_SHARD_ID);
  }

  /** Where the metadata leader serves clients, as this node knows it ('' = unknown). */
  private metaLeaderAddress(): string {
    if (!this.host.hasReplica(META_SHARD_ID)) return '';
    return this.byRaftId.get(this.host.leaderOf(META_SHARD_ID))?.clientAddress ?? '';
  }

  private metaNotLeader(): StoreError {
    const lead = this.host.hasReplica(META_SHARD_ID) ? this.host.leaderOf(META_SHARD_ID) : 0;
    return new StoreError('NOT_LEADER', `node ${this.config.cluster.node_id} does not lead the cluster metadata group`, lead);
  }

  /** Runs a membership operation on the metadata leader: here, or forwarded there. */
  async adminCall(method: 'Join' | 'SetNodeState', req: Record<string, unknown>): Promise<unknown> {
    if (this.isMetaLeader()) return method === 'Join' ? this.join(req as never) : this.setNodeState(req as never);
    const addrs = [this.metaLeaderAddress(), ...this.members.map((m) => m.clientAddress)].filter((a) => a !== '' && a !== this.byRaftId.get(this.raftId)?.clientAddress);
    return clusterAdminCall(addrs, method, req, ADMIN_CALL_TIMEOUT_MS);
  }

  private async join(r: { node_id: string; peer_address: string; client_address: string }): Promise<JoinResponse> {
    if (!this.isMetaLeader()) throw this.metaNotLeader();
    const live = { sinceHeardMs: (id: number) => (id === this.raftId ? 0 : this.host.sinceHeardMs(id)), liveWithinMs: this.config.cluster.down_after_ms };
    const m = await admit(this.meta, { nodeId: r.node_id, peerAddress: r.peer_address, clientAddress: r.client_address }, live);
    this.log(`admitted ${m.nodeId} as raft id ${m.raftId} (peer ${m.peerAddress}, client ${m.clientAddress})`);
    const v = this.meta.current!;
    return {
      raft_id: m.raftId,
      members: liveMembers(v.cluster).map((x) => ({ node_id: x.nodeId, raft_id: x.raftId, peer_address: x.peerAddress, client_address: this.byRaftId.get(x.raftId)?.clientAddress ?? x.clientAddress })),
      shard_count: v.cluster.shardCount,
      replication_factor: v.cluster.replicationFactor,
      cluster_id: v.cluster.clusterId,
    };
  }

  private async setNodeState(r: { node_id: string; state: string }): Promise<unknown> {
    if (!this.isMetaLeader()) throw this.metaNotLeader();
    if (r.state === 'draining') {
      const m = await decommission(this.meta, r.node_id);
      this.log(`decommissioning ${m.nodeId}: its replicas move to other nodes`);
      return { node_id: m.nodeId, state: 'draining' };
    }
    if (r.state === 'removed') {
      const m = this.meta.current?.cluster.members.find((x) => x.nodeId === r.node_id);
      if (!m) throw new KvError('NOT_FOUND', `no member ${r.node_id}`);
      await markRemoved(this.meta, m.raftId);
      return { node_id: m.nodeId, state: 'removed' };
    }
    throw new KvError('INVALID_ARGUMENT', `state must be "draining" or "removed", got ${JSON.stringify(r.state)}`);
  }

  private adminHandlers(): grpc.UntypedServiceImplementation {
    const unary = (fn: (req: never) => Promise<unknown>) => (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      fn(call.request as never).then((res) => cb(null, res), (err: unknown) => cb(this.toStatus(err)));
    };
    return {
      Join: unary((r) => this.join(r)),
      SetNodeState: unary((r) => this.setNodeState(r)),
      ReplicaInfo: unary((r) => Promise.resolve(this.replicaInfo(r))),
      Reshard: unary((r) => this.reshard(r)),
      ShardCommand: unary((r) => this.shardCommand(r)),
      ShardScan: unary((r) => this.shardScan(r)),
    };
  }

  // ------------------------------------------------------------------ split and merge

  /** POST /api/cluster/shards/:id/split|merge: runs on the metadata leader (forwarded there). */
  async reshardCall(req: { op: 'split' | 'merge'; shard_id: number; other_shard_id?: number }): Promise<ReshardResult> {
    if (this.isMetaLeader()) return this.reshard(req);
    const addrs = [this.metaLeaderAddress(), ...this.members.map((m) => m.clientAddress)].filter((a) => a !== '' && a !== this.byRaftId.get(this.raftId)?.clientAddress);
    return clusterAdminCall<ReshardResult>(addrs, 'Reshard', req, 120_000);
  }

  private reshard(r: { op: string; shard_id: number; other_shard_id?: number }): Promise<ReshardResult> {
    if (!this.isMetaLeader()) return Promise.reject(this.metaNotLeader());
    if (r.op === 'split') return this.resharder.split(r.shard_id);
    if (r.op === 'merge') return this.resharder.merge(r.shard_id, r.other_shard_id ?? -1);
    return Promise.reject(new KvError('INVALID_ARGUMENT', `op must be "split" or "merge", got ${JSON.stringify(r.op)}`));
  }

  private shardLeaderCheck(shardId: number): void {
    if (shardId === META_SHARD_ID) throw new KvError('INVALID_ARGUMENT', 'the cluster metadata shard takes no range moves');
    if (!this.host.hasReplica(shardId)) throw this.notHere(shardId);
    if (!this.host.isLeader(shardId)) throw new StoreError('NOT_LEADER', `node ${this.config.cluster.node_id} does not lead shard ${shardId}`, this.host.leaderOf(shardId));
  }

  private async shardCommand(r: { shard_id: number; ops: Array<{ type: string; key: Buffer; value: Buffer }> }): Promise<ShardCommandResponse> {
    this.shardLeaderCheck(r.shard_id);
    const ops: Op[] = r.ops.map((o) => {
      if (o.type !== 'range' && o.type !== 'ingest') throw new KvError('INVALID_ARGUMENT', `ShardCommand carries range and ingest ops only, not ${JSON.stringify(o.type)}`);
      return { type: o.type, key: o.key, value: o.value };
    });
    const res = await this.host.propose(r.shard_id, { ops });
    const first = res.results[0];
    if (first?.type === 'range') return { applied: res.applied, ok: first.ok, message: first.message, floor: first.floor };
    return { applied: res.applied, ok: res.applied, message: '', floor: 0 };
  }

  private async shardScan(r: { shard_id: number; move_id: string; lo: number; hi: number; after: Buffer; max_bytes: number }): Promise<ShardScanResponse> {
    this.shardLeaderCheck(r.shard_id);
    await this.host.barrier(r.shard_id);
    const chunk = scanFrozen(this.host.engine, this.host.ranges, r.shard_id, r.move_id, r.lo, r.hi, r.after.length > 0 ? r.after : undefined, Math.min(Math.max(r.max_bytes, 1), 4 << 20));
    return { items: chunk.items.map((it) => ({ type: 'ingest', key: it.key, value: it.value })), done: chunk.done };
  }

  /** A ClusterAdmin shard call at the shard's leader: here when this node leads it. */
  private atShardLeader<T>(shardId: number, method: 'ShardCommand' | 'ShardScan', req: object): Promise<T> {
    if (this.host.hasReplica(shardId) && this.host.isLeader(shardId)) {
      return (method === 'ShardCommand' ? this.shardCommand(req as never) : this.shardScan(req as never)) as Promise<T>;
    }
    const placed = this.shardMap.shards[shardId]?.replicas ?? [];
    const addrs = [...placed, ...this.members.map((m) => m.nodeId)].map((id) => this.members.find((m) => m.nodeId === id)?.clientAddress ?? '').filter((a) => a !== '');
    return clusterAdminCall<T>([...new Set(addrs)], method, req, RESHARD_CALL_TIMEOUT_MS);
  }

  /** Leader (node id) and voters of a shard, asked of its replicas. */
  private async groupOf(shardId: number): Promise<{ leader: string; voters: number[] } | undefined> {
    if (this.host.hasReplica(shardId) && this.host.isLeader(shardId)) return { leader: this.config.cluster.node_id, voters: this.host.replicaStatus(shardId).confState.voters };
    const placed = this.shardMap.shards[shardId]?.replicas ?? [];
    for (const nodeId of new Set([...placed, ...this.members.map((m) => m.nodeId)])) {
      if (nodeId === this.config.cluster.node_id) continue;
      const info = await this.askReplicaInfo(nodeId, shardId);
      if (info?.leader) return { leader: nodeId, voters: info.voters };
    }
    return undefined;
  }

  private replicaInfo(r: { shard_id: number }): unknown {
    if (!this.host.hasReplica(r.shard_id)) return { has_replica: false, leader: false, term: 0, voters: [], learners: [] };
    const st = this.host.replicaStatus(r.shard_id);
    return { has_replica: true, leader: this.host.isLeader(r.shard_id), term: st.term, voters: st.confState.voters, learners: st.confState.learners };
  }

  private async askReplicaInfo(nodeId: string, shardId: number): Promise<{ hasReplica: boolean; leader: boolean; term: number; voters: number[]; learners: number[] } | undefined> {
    const addr = this.members.find((m) => m.nodeId === nodeId)?.clientAddress ?? '';
    if (addr === '') return undefined;
    const client = new (loadServices().clusterAdmin)(addr, grpc.credentials.createInsecure());
    try {
      const res = await new Promise<{ has_replica: boolean; leader: boolean; term: number; voters: number[]; learners: number[] } | undefined>((resolve) =>
        (client as unknown as { ReplicaInfo(r: object, o: grpc.CallOptions, cb: (e: unknown, r: never) => void): void }).ReplicaInfo({ shard_id: shardId }, { deadline: Date.now() + 1000 }, (err, r) => resolve(err ? undefined : r)),
      );
      return res && { hasReplica: res.has_replica, leader: res.leader, term: res.term, voters: res.voters, learners: res.learners };
    } finally {
      client.close();
    }
  }

  /** POST /api/cluster/rebalance: one controller round now. */
  async rebalanceNow(): Promise<{ started: number }> {
    await this.controller?.trigger();
    return { started: this.controller?.rebalancer.round() ?? 0 };
  }

  /** Split/merge counters for /api/stats. */
  get reshardStats(): { auto_split: { checks: number; requested: number; failed: number }; running: boolean } {
    return { auto_split: { ...this.autoSplit.stats }, running: this.resharder.busy };
  }

  get clusterController(): ClusterController | undefined {
    return this.controller;
  }

  private toStatus(err: unknown): Partial<grpc.StatusObject> {
    const md = new grpc.Metadata();
    let status: grpc.status;
    let code: string;
    let message: string;
    if (err instanceof ApiError) {
      status = err.status;
      code = err.code;
      message = err.message;
      for (const [k, v] of Object.entries(err.details)) md.set(k, v);
    } else if (err instanceof StoreError) {
      code = err.code;
      message = err.message;
      if (err.code === 'NOT_LEADER') {
        status = grpc.status.FAILED_PRECONDITION;
        this.leaderMetadata(md, err.leaderHint);
      } else if (err.code === 'WRONG_SHARD') {
        // the routing moved (split/merge): the client refreshes ClusterInfo and re-routes
        status = grpc.status.FAILED_PRECONDITION;
        md.set('shard-epoch', String(this.shardMap.epoch));
      } else {
        status = grpc.status.UNAVAILABLE;
        if (err.leaderHint) this.leaderMetadata(md, err.leaderHint);
      }
    } else if (err instanceof KvError && (err.code === 'INVALID_ARGUMENT' || err.code === 'KEY_TOO_LARGE' || err.code === 'VALUE_TOO_LARGE')) {
      status = grpc.status.INVALID_ARGUMENT;
      code = err.code;
      message = err.message;
    } else if (err instanceof KvError && KV_STATUS[err.code] !== undefined) {
      status = KV_STATUS[err.code]!;
      code = err.code;
      message = err.message;
    } else {
      status = grpc.status.INTERNAL;
      code = 'INTERNAL';
      message = err instanceof Error ? err.message : String(err);
      this.log(`internal error: ${err instanceof Error ? err.stack : String(err)}`);
    }
    md.set('error-code', code);
    return { code: status, details: message, metadata: md };
  }

  private leaderMetadata(md: grpc.Metadata, raftId: number): void {
    const m = this.byRaftId.get(raftId);
    if (!m) return;
    md.set('leader-id', m.nodeId);
    if (m.clientAddress !== '') md.set('leader-hint', m.clientAddress);
  }

  private log(line: string): void {
    (this.opts.log ?? ((l: string) => process.stderr.write(l + '\n')))(line);
  }

  // ------------------------------------------------------------------ the router

  private locate(k: PKey): { shardId: number; key: Buffer } {
    return { shardId: this.router.locate(k.primary), key: encodeKey(k.primary, k.secondary) };
  }

  private notHere(shardId: number): StoreError {
    const hint = this.shardMap.shards[shardId]?.leaderHint ?? '';
    return new StoreError('NOT_LEADER', `node ${this.config.cluster.node_id} has no replica of shard ${shardId}`, this.members.find((m) => m.nodeId === hint)?.raftId ?? 0);
  }

  private hasReplica(shardId: number): boolean {
    return this.host.hasReplica(shardId);
  }

  private async read(k: PKey): Promise<{ found: boolean; value: Buffer; version: number }> {
    const { shardId, key } = this.locate(k);
    if (!this.hasReplica(shardId)) throw this.notHere(shardId);
    const r = await this.host.read(shardId, key);
    return r.found ? { found: true, value: r.value!, version: r.version! } : { found: false, value: Buffer.alloc(0), version: 0 };
  }

  private async propose(shardId: number, ops: Op[]): Promise<CommandResult> {
    if (!this.hasReplica(shardId)) throw this.notHere(shardId);
    return this.host.propose(shardId, { ops });
  }

  private get(r: { key: PKey }): Promise<unknown> {
    return this.read(r.key);
  }

  private async put(r: { key: PKey; value: Buffer }): Promise<unknown> {
    const { shardId, key } = this.locate(r.key);
    const res = await this.propose(shardId, [{ type: 'put', key, value: r.value }]);
    return { version: (res.results[0] as { version: number }).version };
  }

  private async delete(r: { key: PKey }): Promise<unknown> {
    const { shardId, key } = this.locate(r.key);
    const res = await this.propose(shardId, [{ type: 'delete', key }]);
    return { found: (res.results[0] as { found: boolean }).found };
  }

  private async putIfVersionMatch(r: { key: PKey; value: Buffer; expected_version: number }): Promise<unknown> {
    const { shardId, key } = this.locate(r.key);
    const res = await this.propose(shardId, [{ type: 'putIfVersionMatch', key, value: r.value, expectedVersion: r.expected_version }]);
    const o = res.results[0] as OpResult;
    if (o.type !== 'putIfVersionMatch') throw new Error(`unexpected result ${o.type}`);
    if (!o.ok) throw new ApiError(grpc.status.ABORTED, 'VERSION_MISMATCH', `expected version ${r.expected_version}, current version ${o.currentVersion}`, { 'current-version': String(o.currentVersion) });
    return { version: o.version };
  }

  private async multiGet(r: { keys: PKey[] }): Promise<unknown> {
    return { results: await Promise.all(r.keys.map((k) => this.read(k))) };
  }

  private async multiPut(r: { entries: Array<{ key: PKey; value: Buffer }>; atomic: boolean }): Promise<unknown> {
    const located = r.entries.map((e) => ({ ...this.locate(e.key), value: e.value }));
    const byShard = new Map<number, number[]>();
    located.forEach((l, i) => {
      const list = byShard.get(l.shardId);
      if (list) list.push(i);
      else byShard.set(l.shardId, [i]);
    });
    if (r.atomic && byShard.size > 1) {
      throw new ApiError(grpc.status.FAILED_PRECONDITION, 'NOT_SUPPORTED', `atomic multiPut across shards (${byShard.size} shards) is not supported yet`);
    }
    const versions: number[] = new Array(located.length).fill(0);
    await Promise.all(
      [...byShard].map(async ([shardId, idx]) => {
        const res = await this.propose(shardId, idx.map((i) => ({ type: 'put' as const, key: located[i]!.key, value: located[i]!.value })));
        idx.forEach((i, j) => (versions[i] = (res.results[j] as { version: number }).version));
      }),
    );
    return { versions };
  }

  private async rangeScan(r: { start: PKey | null; end: PKey | null; limit: number; shard_ids: number[] }): Promise<unknown> {
    const limit = r.limit === 0 ? DEFAULT_SCAN_LIMIT : r.limit;
    const wanted = r.shard_ids.length > 0 ? [...new Set(r.shard_ids)] : this.shardMap.shards.filter((s) => !s.retired).map((s) => s.shardId);
    const local = wanted.filter((s) => this.hasReplica(s));
    const missing = wanted.filter((s) => !this.hasReplica(s));
    const start = r.start && r.start.primary.length > 0 ? encodeKey(r.start.primary, r.start.secondary) : undefined;
    const end = r.end && r.end.primary.length > 0 ? encodeKey(r.end.primary, r.end.secondary) : undefined;
    // A ReadIndex barrier per shard makes the scan linearizable; then read the engine directly.
    await Promise.all(local.map((s) => this.host.barrier(s)));
    const rows: Array<{ ek: Buffer; key: PKey; value: Buffer; version: number }> = [];
    let more = false;
    const ranges = this.host.ranges;
    for (const s of local) {
      const checked = ranges.checked(s);
      if (checked) {
        // a shard in the middle of a split or merge has keys in flight: scan it once it is done
        const st = ranges.state(s);
        if (st.frozen || st.incoming) throw new StoreError('RANGE_MOVING', `shard ${s} is in the middle of a split or merge; retry the scan`);
      }
      const range = shardKeyRange(s);
      const prefix = shardKeyPrefix(s);
      // user keys start at prefix 00 01 (prefix 00 00 is the shard's range record)
      const first = Buffer.concat([prefix, FIRST_USER_KEY]);
      const gte = start && Buffer.compare(start, FIRST_USER_KEY) > 0 ? Buffer.concat([prefix, start]) : first;
      const it = this.host.engine.iterator({ gte, lt: end ? Buffer.concat([prefix, end]) : range.lt });
      try {
        let n = 0;
        for (let kv = it.next(); kv; kv = it.next()) {
          if (n === limit) {
            more = true;
            break;
          }
          const ek = kv[0].subarray(SHARD_PREFIX_BYTES);
          if (checked && ranges.checkRead(s, ek) !== 'ok') continue;
          const dk = decodeKey(ek);
          const sv = decodeStoredValue(kv[1]);
          rows.push({ ek: Buffer.from(ek), key: { primary: dk.primary, secondary: dk.secondary }, value: Buffer.from(sv.value), version: sv.version });
          n++;
        }
      } finally {
        it.close();
      }
    }
    rows.sort((a, b) => Buffer.compare(a.ek, b.ek));
    if (rows.length > limit) more = true;
    return { items: rows.slice(0, limit).map((x) => ({ key: x.key, value: x.value, version: x.version })), more, missing_shards: missing };
  }

  clusterInfo(): unknown {
    const mine = new Set(this.host.shardIds());
    let leaders = 0;
    let voting = 0;
    for (const s of mine) {
      if (s === META_SHARD_ID) continue;
      if (this.host.isLeader(s)) leaders++;
      // a learner still catching up does not count as a replica yet
      if (this.host.replicaStatus(s).confState.voters.includes(this.raftId)) voting++;
    }
    mine.delete(META_SHARD_ID);
    return {
      replicas_hosted: voting,
      leaders_held: leaders,
      node_id: this.config.cluster.node_id,
      members: this.members.map((m) => ({ node_id: m.nodeId, raft_id: m.raftId, peer_address: m.peerAddress, client_address: m.clientAddress })),
      shard_count: this.shardMap.shardCount,
      replication_factor: this.shardMap.replicationFactor,
      epoch: this.shardMap.epoch,
      shards: this.shardMap.shards
        .filter((s) => !s.retired)
        .map((s) => {
          const lead = mine.has(s.shardId) ? this.byRaftId.get(this.host.leaderOf(s.shardId)) : undefined;
          const range = s.range ?? wholeSlot(s.shardId);
          return { shard_id: s.shardId, replicas: [...s.replicas], leader: lead?.nodeId ?? '', leader_address: lead?.clientAddress ?? '', slot: range.slot, hash_lo: range.lo, hash_hi: range.hi };
        }),
    };
  }

  /**
   * Every member with its state and its replica and leader counts, as the members themselves
   * report them (ClusterInfo fan-out, 1 s per member): GET /api/cluster/nodes. State is the
   * stored one (up, down, draining), shown as suspect when the member does not answer, and as
   * joining while it holds fewer replicas than the placement gives it.
   */
  async clusterNodes(): Promise<unknown> {
    const v = this.meta.current;
    const members = v ? liveMembers(v.cluster) : this.members.map((m) => ({ nodeId: m.nodeId, raftId: m.raftId, peerAddress: m.peerAddress, clientAddress: m.clientAddress, state: 'up' as const }));
    const assigned = new Map<string, number>();
    for (const sh of this.shardMap.shards) for (const r of sh.replicas) assigned.set(r, (assigned.get(r) ?? 0) + 1);
    const { keyValue } = loadServices();
    const nodes = await Promise.all(
      members.map(async (m) => {
        const address = m.raftId === this.raftId ? (this.byRaftId.get(this.raftId)?.clientAddress ?? '') : (this.byRaftId.get(m.raftId)?.clientAddress ?? m.clientAddress);
        let info: { replicas_hosted: number; leaders_held: number } | undefined;
        if (m.raftId === this.raftId) info = this.clusterInfo() as typeof info;
        else if (address !== '') {
          const client = new keyValue(address, grpc.credentials.createInsecure());
          info = await new Promise<typeof info>((resolve) =>
            (client as unknown as { ClusterInfo(r: object, o: grpc.CallOptions, cb: (e: unknown, r: typeof info) => void): void }).ClusterInfo({}, { deadline: Date.now() + 1000 }, (err, r) => resolve(err ? undefined : r)),
          );
          client.close();
        }
        const placed = assigned.get(m.nodeId) ?? 0;
        let state: string = m.state;
        if (state === 'up' && !info) state = 'suspect';
        else if (state === 'up' && info && info.replicas_hosted < placed) state = 'joining';
        return {
          id: m.nodeId,
          node_id: m.nodeId,
          raft_id: m.raftId,
          address,
          peer_address: m.peerAddress,
          state,
          replicas: info?.replicas_hosted ?? null,
          leaders: info?.leaders_held ?? null,
          placement_replicas: placed,
          self: m.raftId === this.raftId,
        };
      }),
    );
    return { node_id: this.config.cluster.node_id, shard_count: this.shardMap.shardCount, replication_factor: this.shardMap.replicationFactor, epoch: this.shardMap.epoch, nodes };
  }

  /** DELETE /api/cluster/nodes/:id: start draining the node (done on the metadata leader). */
  decommissionNode(nodeId: string): Promise<unknown> {
    return this.adminCall('SetNodeState', { node_id: nodeId, state: 'draining' });
  }

  /** Leaders known per member (this node's view), for the admin API. */
  leaderCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of this.members) out[m.nodeId] = 0;
    for (const s of this.host.shardIds()) {
      if (s === META_SHARD_ID) continue;
      const m = this.byRaftId.get(this.host.leaderOf(s));
      if (m) out[m.nodeId] = (out[m.nodeId] ?? 0) + 1;
    }
    return out;
  }

  // ------------------------------------------------------------------ shutdown

  /** Graceful: stop accepting, let in-flight requests finish (bounded), close everything. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.controller?.stop();
      clearInterval(this.reshardTimer);
      clearInterval(this.autoSplitTimer);
      this.meta?.close();
      await this.admin?.close();
      await this.metricsHttp?.close();
      this.clientListener?.stopAccepting();
      this.sessions?.drain();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.server.forceShutdown();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        this.server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      await this.host?.close();
    })();
    return this.stopping;
  }
}

const KV_STATUS: Partial<Record<string, grpc.status>> = {
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  NOT_FOUND: grpc.status.NOT_FOUND,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
};

function hostPort(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${h}:${port}`;
}

function replacePort(addr: string, port: number): string {
  const i = addr.lastIndexOf(':');
  return i < 0 ? addr : `${addr.slice(0, i)}:${port}`;
}
