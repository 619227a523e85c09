// CacheNode: one distcache node process. Loads nothing itself (takes a NodeConfig), opens the
// multi-Raft store on server.data_directory, creates this node's replicas of every shard the
// ring places on it (static bootstrap from cluster.members), and serves:
//   - the client gRPC API (proto/distcache.proto KeyValue) on listen_address:listen_port,
//     each request through the Pipeline (validation, auth, acl, audit, hot-key slots) to the router;
//     unary calls here, the multiplexed Session stream in session-api.ts (same pipeline, same router);
//   - the node-to-node RaftTransport on peer_port (grpc-transport.ts);
//   - the admin HTTP API on http_port (admin-http.ts).
// stop() is the graceful shutdown: stop accepting, let in-flight calls finish (bounded), close
// the host (transport, Raft log, engine).
//
// Node ids: the Raft core uses positive integers; a member's raft id is its 1-based position in
// the sorted member ids, identical on every node that has the same member list.
import { mkdir } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { decodeStoredValue } from '../store/apply.js';
import { type CommandResult, type Op, type OpResult } from '../store/commands.js';
import { MultiRaftHost, StoreError } from '../store/host.js';
import { HashRing, type ShardMap, SHARD_PREFIX_BYTES, computeShardMap, decodeKey, encodeKey, initHashing, shardKeyPrefix, shardKeyRange, shardOf } from '../ring/index.js';
import { KvError } from '../util/errors.js';
import type { NodeConfig } from './config.js';
import { AdminHttp } from './admin-http.js';
import { GrpcTransport } from './grpc-transport.js';
import { ApiError, DEFAULT_ORDER, type Interceptor, type MethodName, Pipeline, type RequestContext, passThrough } from './pipeline.js';
import { type PKey, loadServices } from './proto.js';
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
const SHUTDOWN_GRACE_MS = 5000;

export class CacheNode {
  readonly members: MemberInfo[];
  readonly raftId: number;
  readonly shardMap: ShardMap;
  private host!: MultiRaftHost;
  private transport!: GrpcTransport;
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES, 'grpc.max_send_message_length': MAX_REQUEST_BYTES });
  private admin!: AdminHttp;
  private sessions!: SessionApi;
  private readonly pipeline: Pipeline;
  private readonly byRaftId = new Map<number, MemberInfo>();
  private stopping: Promise<void> | undefined;
  private inFlight = 0;
  readonly startedAt = Date.now();
  readonly ports = { client: 0, peer: 0, http: 0 };
  readonly requests = { total: 0, errors: 0 };

  private constructor(
    readonly config: NodeConfig,
    private readonly opts: CacheNodeOptions,
  ) {
    const ids = Object.keys(config.cluster.members).sort();
    this.members = ids.map((id, i) => {
      const ep = config.cluster.members[id]!;
      const m: MemberInfo = { nodeId: id, raftId: i + 1, peerAddress: `${ep.host}:${ep.port}`, clientAddress: '' };
      this.byRaftId.set(m.raftId, m);
      return m;
    });
    const me = this.members.find((m) => m.nodeId === config.cluster.node_id);
    if (!me) throw new KvError('INVALID_ARGUMENT', `cluster.node_id ${config.cluster.node_id} is not a member of ${ids.join(', ')}`);
    me.clientAddress = config.cluster.advertise_client_address;
    this.raftId = me.raftId;
    const ring = HashRing.create(ids, { replicationFactor: config.cluster.replication_factor, vnodesPerNode: config.cluster.vnodes_per_node });
    this.shardMap = computeShardMap(ring, config.cluster.shard_count, 1);
    const slots = opts.interceptors ?? {};
    this.pipeline = new Pipeline(
      DEFAULT_ORDER.map((name) => (name === 'validation' ? validationInterceptor(() => this.shardMap.shardCount) : (slots[name] ?? passThrough(name)))),
    );
  }

  /** Opens the store, creates the shard replicas and starts every listener. */
  static async start(config: NodeConfig, opts: CacheNodeOptions = {}): Promise<CacheNode> {
    if (config.cluster.mode === 'join') {
      throw new KvError('INVALID_ARGUMENT', 'cluster.seed_nodes: joining a running cluster is not supported yet; start the founding members with cluster.initial_cluster');
    }
    await initHashing();
    const node = new CacheNode(config, opts);
    await node.open();
    return node;
  }

  private async open(): Promise<void> {
    const c = this.config;
    await mkdir(c.server.data_directory, { recursive: true });
    this.transport = new GrpcTransport({
      self: { nodeId: c.cluster.node_id, raftId: this.raftId, clientAddress: c.cluster.advertise_client_address },
      peers: this.members.map((m) => ({ nodeId: m.nodeId, raftId: m.raftId, peerAddress: m.peerAddress })),
      bind: hostPort(c.server.listen_address, c.server.peer_port),
      onPeerClientAddress: (raftId, _nodeId, addr) => {
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
      lsm: { memtableBytes: c.storage.memtable_size_mb * 1024 * 1024, compression: c.storage.enable_compression, blockCacheBytes: c.storage.block_cache_mb * 1024 * 1024 },
      raftLog: { sync: c.storage.sync_policy },
    });
    const mine = this.shardMap.shards.filter((s) => s.replicas.includes(c.cluster.node_id));
    await this.host.addShards(mine.map((s) => ({ shardId: s.shardId, replicas: s.replicas.map((r) => this.raftIdOf(r)) })));
    // Preferred leaders campaign right away (no election timeout to wait for at start-up).
    for (const s of mine) if (s.leaderHint === c.cluster.node_id && !this.host.isLeader(s.shardId)) this.host.campaign(s.shardId);

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
    this.ports.client = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(hostPort(c.server.listen_address, c.server.listen_port), grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    const me = this.byRaftId.get(this.raftId)!;
    if (c.server.listen_port === 0) me.clientAddress = replacePort(me.clientAddress, this.ports.client);
    this.admin = new AdminHttp(this);
    this.ports.http = await this.admin.listen(c.server.listen_address, c.server.http_port);
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
      h[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => void this.serve(name, call, cb, fn);
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
      } else {
        status = grpc.status.UNAVAILABLE;
        if (err.leaderHint) this.leaderMetadata(md, err.leaderHint);
      }
    } else if (err instanceof KvError && (err.code === 'INVALID_ARGUMENT' || err.code === 'KEY_TOO_LARGE' || err.code === 'VALUE_TOO_LARGE')) {
      status = grpc.status.INVALID_ARGUMENT;
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
    return { shardId: shardOf(k.primary, this.shardMap.shardCount), key: encodeKey(k.primary, k.secondary) };
  }

  private notHere(shardId: number): StoreError {
    const hint = this.shardMap.shards[shardId]!.leaderHint;
    return new StoreError('NOT_LEADER', `node ${this.config.cluster.node_id} has no replica of shard ${shardId}`, this.raftIdOf(hint));
  }

  private hasReplica(shardId: number): boolean {
    return this.shardMap.shards[shardId]!.replicas.includes(this.config.cluster.node_id);
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
    const wanted = r.shard_ids.length > 0 ? [...new Set(r.shard_ids)] : this.shardMap.shards.map((s) => s.shardId);
    const local = wanted.filter((s) => this.hasReplica(s));
    const missing = wanted.filter((s) => !this.hasReplica(s));
    const start = r.start && r.start.primary.length > 0 ? encodeKey(r.start.primary, r.start.secondary) : undefined;
    const end = r.end && r.end.primary.length > 0 ? encodeKey(r.end.primary, r.end.secondary) : undefined;
    // A ReadIndex barrier per shard makes the scan linearizable; then read the engine directly.
    const probe = start ?? Buffer.from([0]);
    await Promise.all(local.map((s) => this.host.read(s, probe)));
    const rows: Array<{ ek: Buffer; key: PKey; value: Buffer; version: number }> = [];
    let more = false;
    for (const s of local) {
      const range = shardKeyRange(s);
      const prefix = shardKeyPrefix(s);
      const it = this.host.engine.iterator({ gte: start ? Buffer.concat([prefix, start]) : range.gte, lt: end ? Buffer.concat([prefix, end]) : range.lt });
      try {
        let n = 0;
        for (let kv = it.next(); kv; kv = it.next()) {
          if (n === limit) {
            more = true;
            break;
          }
          const ek = kv[0].subarray(SHARD_PREFIX_BYTES);
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
    return {
      node_id: this.config.cluster.node_id,
      members: this.members.map((m) => ({ node_id: m.nodeId, raft_id: m.raftId, peer_address: m.peerAddress, client_address: m.clientAddress })),
      shard_count: this.shardMap.shardCount,
      replication_factor: this.shardMap.replicationFactor,
      epoch: this.shardMap.epoch,
      shards: this.shardMap.shards.map((s) => {
        const lead = mine.has(s.shardId) ? this.byRaftId.get(this.host.leaderOf(s.shardId)) : undefined;
        return { shard_id: s.shardId, replicas: [...s.replicas], leader: lead?.nodeId ?? '', leader_address: lead?.clientAddress ?? '' };
      }),
    };
  }

  /** Leaders known per member (this node's view), for the admin API. */
  leaderCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of this.members) out[m.nodeId] = 0;
    for (const s of this.host.shardIds()) {
      const m = this.byRaftId.get(this.host.leaderOf(s));
      if (m) out[m.nodeId] = (out[m.nodeId] ?? 0) + 1;
    }
    return out;
  }

  // ------------------------------------------------------------------ shutdown

  /** Graceful: stop accepting, let in-flight requests finish (bounded), close everything. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.admin?.close();
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

function hostPort(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${h}:${port}`;
}

function replacePort(addr: string, port: number): string {
  const i = addr.lastIndexOf(':');
  return i < 0 ? addr : `${addr.slice(0, i)}:${port}`;
}
