// NodeMetrics: the Prometheus view of one node, on a prom-client Registry of its own (never the
// global default registry, so several nodes in one process — tests — do not collide).
//
// Two kinds of metrics:
//  - request metrics, recorded as calls finish (observeRequest, the in-flight gauge): the server
//    calls them from its gRPC call wrapper;
//  - everything else is READ at scrape time from plain stats objects that the lower layers keep
//    (host, Raft log, transport, engine). The server hands those in as a MetricsSources of
//    callbacks; this module imports none of store/, lsm/, raft/ (imports point down, and the
//    lower layers never import monitoring/ or prom-client).
//
// Names: distcache_<area>_<what>[_total|_seconds|_bytes]; every sample carries node_id (a default
// label of the registry). docs/grafana/distcache.json plots them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets, seconds: 100 µs .. 10 s, roughly 1-2.5-5 per decade. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Structural copies of the stats the lower layers expose (no import of their types). */
export interface EngineStatsView {
  memtableBytes: number;
  immutableMemtables: number;
  levels: ReadonlyArray<{ level: number; files: number; bytes: number }>;
  userBytesWritten: number;
  flushes: number;
  compactions: number;
  walSyncs: number;
  blockCacheHits: number;
  blockCacheMisses: number;
  writeStalls: number;
  writeSlowdowns: number;
}

export interface RaftStatsView {
  groups: number;
  leaders: number;
  /** Raft entries proposed (one per shard per loop turn, many client commands each) */
  entriesProposed: number;
  commandsProposed: number;
  logWrites: number;
  logSyncs: number;
  logBytes: number;
  /** evicted Raft entries read back from the log (sent to a follower that fell behind) */
  logColdReads: number;
  snapshotsCreated: number;
  snapshotsApplied: number;
  messagesSent: number;
  messagesReceived: number;
}

export interface TransportStatsView {
  batchesSent: number;
  batchesReceived: number;
  batchesDropped: number;
  messagesDropped: number;
  reconnects: number;
}

export interface ConnectionStatsView {
  /** connections being served (at most server.max_connections) */
  served: number;
  /** connections over the limit, whose calls are answered RESOURCE_EXHAUSTED */
  waiting: number;
  /** connections accepted since start */
  accepted: number;
  /** connections closed at accept because even the waiting room was full */
  refused: number;
}

/** Read at scrape time; each callback must be cheap and must not throw while the node runs. */
export interface MetricsSources {
  engine(): EngineStatsView;
  raft(): RaftStatsView;
  transport(): TransportStatsView;
  connections(): ConnectionStatsView;
}

type Labels = Record<string, string>;

/** A counter whose value is copied from a cumulative stat at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => ReadonlyArray<[Labels, number]>): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.inc(labels, v); // 0 too: the series exists from the start
    },
  });
}

function mirroredGauge(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => ReadonlyArray<[Labels, number]>): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.set(labels, v);
    },
  });
}

export interface NodeMetricsOptions {
  nodeId: string;
  sources: MetricsSources;
  /** process_* and nodejs_* metrics of prom-client (default true) */
  defaultMetrics?: boolean;
}

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'code'>;
  private readonly latency: Histogram<'method'>;
  private readonly inFlight: Gauge;

  constructor(o: NodeMetricsOptions) {
    const r = this.registry;
    r.setDefaultLabels({ node_id: o.nodeId });
    if (o.defaultMetrics !== false) collectDefaultMetrics({ register: r });
    this.requests = new Counter({ name: 'distcache_requests_total', help: 'Client gRPC requests finished, by method and gRPC status code name.', labelNames: ['method', 'code'], registers: [r] });
    this.latency = new Histogram({ name: 'distcache_request_duration_seconds', help: 'Client gRPC request latency (receipt to response), seconds.', labelNames: ['method'], buckets: LATENCY_BUCKETS, registers: [r] });
    this.inFlight = new Gauge({ name: 'distcache_requests_in_flight', help: 'Client gRPC requests being served.', registers: [r] });

    const s = o.sources;
    const one = (v: number): ReadonlyArray<[Labels, number]> => [[{}, v]];
    // connections
    mirroredGauge(r, 'distcache_client_connections', 'Open client connections: served (<= server.max_connections) and waiting (over the limit).', ['state'], () => {
      const c = s.connections();
      return [[{ state: 'served' }, c.served], [{ state: 'waiting' }, c.waiting]];
    });
    mirroredCounter(r, 'distcache_client_connections_accepted_total', 'Client connections accepted.', [], () => one(s.connections().accepted));
    mirroredCounter(r, 'distcache_client_connections_refused_total', 'Client connections closed at accept (limit and waiting room full).', [], () => one(s.connections().refused));
    // raft
    mirroredGauge(r, 'distcache_raft_groups', 'Raft groups (shard replicas) hosted on this node.', [], () => one(s.raft().groups));
    mirroredGauge(r, 'distcache_raft_leaders', 'Raft groups this node leads.', [], () => one(s.raft().leaders));
    mirroredCounter(r, 'distcache_raft_proposals_total', 'Raft entries proposed by this node (a batch of client commands to one shard is one entry).', [], () => one(s.raft().entriesProposed));
    mirroredCounter(r, 'distcache_raft_commands_proposed_total', 'Client commands proposed by this node.', [], () => one(s.raft().commandsProposed));
    mirroredCounter(r, 'distcache_raft_log_writes_total', 'Writes to the node-wide Raft log (one per host loop turn with something to persist).', [], () => one(s.raft().logWrites));
    mirroredCounter(r, 'distcache_raft_log_fsyncs_total', 'fsyncs of the node-wide Raft log.', [], () => one(s.raft().logSyncs));
    mirroredCounter(r, 'distcache_raft_log_bytes_total', 'Record bytes written to the node-wide Raft log.', [], () => one(s.raft().logBytes));
    mirroredCounter(r, 'distcache_raft_log_cold_reads_total', 'Raft entries read back from the log because they had left memory (applied here; a follower that fell behind needed them).', [], () => one(s.raft().logColdReads));
    mirroredCounter(r, 'distcache_raft_snapshots_total', 'Raft snapshots: created (log compaction) and applied (received from a leader).', ['kind'], () => {
      const x = s.raft();
      return [[{ kind: 'created' }, x.snapshotsCreated], [{ kind: 'applied' }, x.snapshotsApplied]];
    });
    mirroredCounter(r, 'distcache_raft_messages_total', 'Raft messages handed to / received from the transport.', ['direction'], () => {
      const x = s.raft();
      const t = s.transport();
      return [[{ direction: 'sent' }, x.messagesSent], [{ direction: 'received' }, x.messagesReceived], [{ direction: 'dropped' }, t.messagesDropped]];
    });
    mirroredCounter(r, 'distcache_transport_batches_total', 'Raft transport batches (all messages of one loop turn to one peer node).', ['direction'], () => {
      const t = s.transport();
      return [[{ direction: 'sent' }, t.batchesSent], [{ direction: 'received' }, t.batchesReceived], [{ direction: 'dropped' }, t.batchesDropped]];
    });
    mirroredCounter(r, 'distcache_transport_reconnects_total', 'Raft transport streams (re)opened to peers.', [], () => one(s.transport().reconnects));
    // engine
    mirroredGauge(r, 'distcache_engine_memtable_bytes', 'Approximate bytes in the active memtable.', [], () => one(s.engine().memtableBytes));
    mirroredGauge(r, 'distcache_engine_immutable_memtables', 'Frozen memtables waiting for flush.', [], () => one(s.engine().immutableMemtables));
    mirroredGauge(r, 'distcache_engine_level_files', 'SSTable files per LSM level (level 0 = L0).', ['level'], () => s.engine().levels.map((l) => [{ level: String(l.level) }, l.files]));
    mirroredGauge(r, 'distcache_engine_level_bytes', 'SSTable bytes per LSM level.', ['level'], () => s.engine().levels.map((l) => [{ level: String(l.level) }, l.bytes]));
    mirroredCounter(r, 'distcache_engine_flushes_total', 'Memtable flushes.', [], () => one(s.engine().flushes));
    mirroredCounter(r, 'distcache_engine_compactions_total', 'Compactions (including trivial moves).', [], () => one(s.engine().compactions));
    mirroredCounter(r, 'distcache_engine_write_stalls_total', 'Writes stopped until flush/compaction caught up (L0 stop trigger or memtables full).', [], () => one(s.engine().writeStalls));
    mirroredCounter(r, 'distcache_engine_write_slowdowns_total', 'Writes delayed by the L0 slowdown trigger.', [], () => one(s.engine().writeSlowdowns));
    mirroredCounter(r, 'distcache_engine_block_cache_requests_total', 'Block cache lookups by result.', ['result'], () => {
      const e = s.engine();
      return [[{ result: 'hit' }, e.blockCacheHits], [{ result: 'miss' }, e.blockCacheMisses]];
    });
    mirroredCounter(r, 'distcache_engine_user_bytes_written_total', 'Bytes of write batches written to the engine.', [], () => one(s.engine().userBytesWritten));
    mirroredCounter(r, 'distcache_engine_wal_syncs_total', 'fsyncs of the engine WAL.', [], () => one(s.engine().walSyncs));
  }

  /** A client request finished with gRPC status `code` (its name, e.g. "OK") after `seconds`. */
  observeRequest(method: string, code: string, seconds: number): void {
    this.requests.inc({ method, code });
    this.latency.observe({ method }, seconds);
  }

  requestStarted(): void {
    this.inFlight.inc();
  }

  requestFinished(): void {
    this.inFlight.dec();
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
