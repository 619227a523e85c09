// Node configuration: the convict schema of config.yaml, loading (embedded defaults < YAML file <
// DISTCACHE_* environment < command-line flags), validation, and the typed, frozen NodeConfig the
// server starts from. The key reference (docs/CONFIG.md) is generated from this schema by
// `configReference()`; test/server/config.test.ts fails when the two drift apart.
//
// Contract:
// - loadConfig() never starts anything: it reads at most the one YAML file it is given.
// - Any problem — YAML syntax, an unknown key (strict), a wrong type, a value out of range, a bad
//   `cluster.initial_cluster` entry, a replication factor above the known members, two of this
//   node's ports equal — throws a ConfigError listing every problem found, each naming the key,
//   the problem and where the value came from (file, environment variable or flag).
// - With no file and no overrides the result is a working single-node cluster: node1 on
//   127.0.0.1, data in ./data, replication factor 1.
// - Derived values (documented per key): server.http_port = listen_port + 100 and
//   server.peer_port = own initial_cluster port, else listen_port + 1000, when unset;
//   cluster.replication_factor = min(3, known members) when unset; advertise addresses from
//   initial_cluster or the listen address.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import convict from 'convict';
import YAML from 'yaml';
import { KvError } from '../util/errors.js';

// ---------------------------------------------------------------------------------------------
// Output types

export type SyncPolicy = 'always' | 'batch' | 'off';
export type ClusterMode = 'single' | 'bootstrap' | 'join';

/** A parsed `host:port`. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface NodeConfig {
  readonly server: {
    readonly listen_address: string;
    /** Client gRPC port. */
    readonly listen_port: number;
    /** Admin HTTP port (/api/cluster, /api/storage, health). */
    readonly http_port: number;
    /** Node-to-node Raft transport port. */
    readonly peer_port: number;
    readonly data_directory: string;
    readonly max_connections: number;
    readonly request_timeout_ms: number;
  };
  readonly cluster: {
    readonly node_id: string;
    /** Client addresses (host:port) of nodes of an existing cluster to join through. */
    readonly seed_nodes: readonly string[];
    /** As configured ("" when unset). */
    readonly initial_cluster: string;
    /** Where other nodes reach this node's peer port. */
    readonly advertise_peer_address: string;
    /** Where clients reach this node's client port (sent in leader redirects). */
    readonly advertise_client_address: string;
    readonly replication_factor: number;
    /** The replication factor the cluster grows into as members join: replication_factor when
     *  set, else 3 (a single node started with defaults becomes 3-way replicated at 3 nodes). */
    readonly replication_target: number;
    /** A member not heard from for this long is marked down and its replicas are re-created elsewhere. */
    readonly down_after_ms: number;
    /** Replicas one node may be moving in at a time (rebalancing budget). */
    readonly max_concurrent_moves: number;
    /** A shard holding more than this many MiB is split automatically; 0 disables. */
    readonly split_shard_mb: number;
    /** How often a node checks the sizes of the shards it leads, ms. */
    readonly split_check_ms: number;
    readonly shard_count: number;
    readonly vnodes_per_node: number;
    readonly read_mode: 'read_index' | 'lease';
    /** single: a one-node cluster of itself; bootstrap: founding member of `members`;
     *  join: joins an existing cluster through `seed_nodes`. */
    readonly mode: ClusterMode;
    /** Founding members and their peer endpoints: initial_cluster parsed (bootstrap), or just
     *  this node (single, join). A null-prototype frozen record. */
    readonly members: Readonly<Record<string, Endpoint>>;
  };
  readonly storage: {
    readonly engine_type: 'lsm_tree';
    readonly memtable_size_mb: number;
    readonly background_duty_percent: number;
    readonly l0_compaction_trigger: number;
    readonly enable_compression: boolean;
    readonly sync_policy: SyncPolicy;
    readonly block_cache_mb: number;
    readonly log_writes_in_flight: number;
    readonly log_syncs_in_flight: number;
  };
  readonly monitoring: {
    readonly enable_monitoring: boolean;
    readonly metrics_port: number;
    readonly retention_hours: number;
  };
  readonly security: {
    readonly enable_authentication: boolean;
    readonly token_expiry_hours: number;
    /** "" = a key generated on first start under data_directory. */
    readonly token_secret_file: string;
  };
  /** The YAML file loaded, or null for the embedded defaults. */
  readonly source: string | null;
}

/** Command-line overrides, as the server's argv parser hands them over (strings or numbers). */
export interface CliOverrides {
  configPath?: string;
  nodeId?: string;
  listenAddress?: string;
  port?: number | string;
  peerPort?: number | string;
  httpPort?: number | string;
  metricsPort?: number | string;
  dataDir?: string;
  initialCluster?: string;
  /** "host:port,host:port" or a list. */
  seeds?: string | readonly string[];
}

export interface LoadConfigOptions {
  /** YAML file to load; `overrides.configPath` and $DISTCACHE_CONFIG take precedence in that order. */
  file?: string;
  /** YAML text to load instead of a file (tests, embedded configs). */
  text?: string;
  overrides?: CliOverrides;
  /** Environment to read DISTCACHE_* variables from; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Host name advertised by a joining node listening on a wildcard address; default os.hostname(). */
  hostname?: string;
}

export interface ConfigProblem {
  /** Dotted key, e.g. "server.listen_port" ("" for problems of the whole file). */
  readonly key: string;
  readonly message: string;
}

/** An unusable configuration. `key` is the first problem's key; `problems` lists all of them. */
export class ConfigError extends KvError {
  readonly key: string;
  readonly problems: readonly ConfigProblem[];
  readonly source: string | null;
  constructor(problems: readonly ConfigProblem[], source: string | null) {
    const where = source === null ? 'configuration' : `configuration ${source}`;
    const lines = problems.map((p) => `  ${p.key === '' ? '(file)' : p.key}: ${p.message}`);
    super('INVALID_ARGUMENT', `invalid ${where}:\n${lines.join('\n')}`);
    this.name = 'ConfigError';
    this.key = problems[0]?.key ?? '';
    this.problems = problems;
    this.source = source;
  }
}

// ---------------------------------------------------------------------------------------------
// Value parsers shared by the formats and the cross-key checks

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?$/;
const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);

function isHost(h: string): boolean {
  if (h.startsWith('[') && h.endsWith(']')) return /^[0-9A-Fa-f:.]+$/.test(h.slice(1, -1)) && h.includes(':');
  if (h === '::' || (h.includes(':') && /^[0-9A-Fa-f:.]+$/.test(h))) return true; // bare IPv6 (listen_address only)
  return h.length <= 253 && HOSTNAME.test(h);
}

/** Parses "host:port" (IPv6 in brackets); throws Error with the problem. */
export function parseEndpoint(s: string, what = 'address'): Endpoint {
  const t = s.trim();
  let host: string;
  let portText: string;
  if (t.startsWith('[')) {
    const close = t.indexOf(']');
    if (close < 0 || t[close + 1] !== ':') throw new Error(`${what} ${JSON.stringify(s)} must be host:port ([ipv6]:port for IPv6)`);
    host = t.slice(0, close + 1);
    portText = t.slice(close + 2);
  } else {
    const colon = t.lastIndexOf(':');
    if (colon < 0) throw new Error(`${what} ${JSON.stringify(s)} must be host:port`);
    host = t.slice(0, colon);
    portText = t.slice(colon + 1);
    if (host.includes(':')) throw new Error(`${what} ${JSON.stringify(s)}: write an IPv6 host in brackets, [${host}]:${portText}`);
  }
  if (host === '' || !isHost(host)) throw new Error(`${what} ${JSON.stringify(s)} has an invalid host ${JSON.stringify(host)}`);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new Error(`${what} ${JSON.stringify(s)} has an invalid port ${JSON.stringify(portText)} (1..65535)`);
  }
  return { host, port: Number(portText) };
}

/** Parses "id=host:port,id=host:port" into an ordered list; throws Error naming the bad entry. */
export function parseInitialCluster(s: string): Array<{ id: string } & Endpoint> {
  const out: Array<{ id: string } & Endpoint> = [];
  if (s.trim() === '') return out;
  const seenAddr = new Map<string, string>();
  for (const [i, raw] of s.split(',').entries()) {
    const entry = raw.trim();
    const eq = entry.indexOf('=');
    if (eq < 0) throw new Error(`entry ${i + 1} ${JSON.stringify(entry)} must be node_id=host:port`);
    const id = entry.slice(0, eq).trim();
    if (!NODE_ID.test(id)) throw new Error(`entry ${i + 1} ${JSON.stringify(entry)} has an invalid node id ${JSON.stringify(id)} (letters, digits, . _ -; at most 64)`);
    if (out.some((m) => m.id === id)) throw new Error(`node id ${JSON.stringify(id)} is listed twice`);
    const ep = parseEndpoint(entry.slice(eq + 1), `entry ${i + 1} (${id})`);
    const addr = `${ep.host}:${ep.port}`;
    const other = seenAddr.get(addr);
    if (other !== undefined) throw new Error(`${id} and ${other} have the same address ${addr}`);
    seenAddr.set(addr, id);
    out.push({ id, ...ep });
  }
  return out;
}

function splitList(v: string): string[] {
  return v.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? JSON.stringify(v) : String(v));

// ---------------------------------------------------------------------------------------------
// Convict formats (registered once, globally, under distcache- names)

interface Bounds {
  min?: number;
  max?: number;
}

convict.addFormats({
  'distcache-int': {
    validate(v: unknown, schema: convict.SchemaObj & Bounds) {
      const min = schema.min ?? 0;
      const max = schema.max ?? Number.MAX_SAFE_INTEGER;
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`must be an integer ${min}..${max}, got ${show(v)}`);
      if (v < min || v > max) throw new Error(`must be in ${min}..${max}, got ${v}`);
    },
    coerce: (v: string) => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
  },
  'distcache-port': {
    validate(v: unknown) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
        throw new Error(`must be a port number 0..65535 (0 = any free port), got ${show(v)}`);
      }
    },
    coerce: (v: string) => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
  },
  'distcache-bool': {
    validate(v: unknown) {
      if (typeof v !== 'boolean') throw new Error(`must be true or false, got ${show(v)}`);
    },
    coerce: (v: string) => (v.trim().toLowerCase() === 'true' ? true : v.trim().toLowerCase() === 'false' ? false : v),
  },
  'distcache-enum': {
    validate(v: unknown, schema: convict.SchemaObj & { values?: readonly string[] }) {
      const values = schema.values ?? [];
      if (typeof v !== 'string' || !values.includes(v)) throw new Error(`must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${show(v)}`);
    },
  },
  'distcache-node-id': {
    validate(v: unknown) {
      if (typeof v !== 'string' || !NODE_ID.test(v)) throw new Error(`must be a node id (letters, digits, . _ -; starting with a letter or digit; at most 64), got ${show(v)}`);
    },
  },
  'distcache-host': {
    validate(v: unknown) {
      if (typeof v !== 'string' || !isHost(v)) throw new Error(`must be a host name or IP address, got ${show(v)}`);
    },
  },
  'distcache-path': {
    validate(v: unknown, schema: convict.SchemaObj & { allowEmpty?: boolean }) {
      if (typeof v !== 'string' || (v === '' && schema.allowEmpty !== true)) throw new Error(`must be a ${schema.allowEmpty === true ? '' : 'non-empty '}path string, got ${show(v)}`);
    },
  },
  'distcache-endpoint-or-empty': {
    validate(v: unknown) {
      if (typeof v !== 'string') throw new Error(`must be "host:port" or "", got ${show(v)}`);
      if (v !== '') parseEndpoint(v);
    },
  },
  'distcache-endpoint-list': {
    validate(v: unknown) {
      if (!Array.isArray(v)) throw new Error(`must be a list of "host:port" (or one comma-separated string), got ${show(v)}`);
      for (const x of v) {
        if (typeof x !== 'string') throw new Error(`must be a list of "host:port", got the entry ${show(x)}`);
        parseEndpoint(x, 'entry');
      }
    },
    coerce: (v: string) => splitList(v),
  },
  'distcache-initial-cluster': {
    validate(v: unknown) {
      if (typeof v !== 'string') throw new Error(`must be a string "id=host:port,id=host:port", got ${show(v)}`);
      parseInitialCluster(v);
    },
  },
});

// ---------------------------------------------------------------------------------------------
// The schema. Every leaf: format, default, doc; env DISTCACHE_<SECTION>_<KEY>; `flag` is the
// command-line flag that overrides it (documentation and error messages; parsing is the server's).

interface Leaf extends Bounds {
  format: string;
  default: unknown;
  doc: string;
  env: string;
  nullable?: boolean;
  sensitive?: boolean;
  flag?: string;
  values?: readonly string[];
  allowEmpty?: boolean;
  /** How an unset (null) value is derived, for the docs. */
  derived?: string;
}

const ENV_PREFIX = 'DISTCACHE';

function leaf(section: string, key: string, spec: Omit<Leaf, 'env'>): Leaf {
  return { ...spec, env: `${ENV_PREFIX}_${section}_${key}`.toUpperCase() };
}

const int = (min: number, max: number): Pick<Leaf, 'format' | 'min' | 'max'> => ({ format: 'distcache-int', min, max });

function buildSchema(): Record<string, Record<string, Leaf>> {
  return {
    server: {
      listen_address: leaf('server', 'listen_address', {
        format: 'distcache-host', default: '127.0.0.1', flag: '--listen-address',
        doc: 'Address the client, HTTP, peer and metrics listeners bind to. 0.0.0.0 (or ::) binds every interface.',
      }),
      listen_port: leaf('server', 'listen_port', {
        format: 'distcache-port', default: 8080, flag: '--port',
        doc: 'Client gRPC port.',
      }),
      http_port: leaf('server', 'http_port', {
        format: 'distcache-port', default: null, nullable: true, flag: '--http-port', derived: 'listen_port + 100',
        doc: 'Admin HTTP port (/api/cluster/*, /api/storage/*, /api/stats, health).',
      }),
      peer_port: leaf('server', 'peer_port', {
        format: 'distcache-port', default: null, nullable: true, flag: '--peer-port',
        derived: "this node's port in cluster.initial_cluster, else listen_port + 1000",
        doc: 'Node-to-node Raft transport port.',
      }),
      data_directory: leaf('server', 'data_directory', {
        format: 'distcache-path', default: './data', flag: '--data-dir',
        doc: 'Directory of this node\'s storage engine, Raft log and keys (relative paths: to the working directory).',
      }),
      max_connections: leaf('server', 'max_connections', { ...int(1, 1_000_000), default: 1000, doc: 'Most client gRPC connections served at once; calls on connections over the limit are answered RESOURCE_EXHAUSTED until one closes (see "Connection limit").' }),
      request_timeout_ms: leaf('server', 'request_timeout_ms', { ...int(1, 3_600_000), default: 100, doc: 'Deadline of a client request when the client sets none, in milliseconds (see "Request deadline").' }),
    },
    cluster: {
      node_id: leaf('cluster', 'node_id', {
        format: 'distcache-node-id', default: 'node1', flag: '--node-id',
        doc: 'This node\'s id, unique in the cluster (letters, digits, . _ -).',
      }),
      seed_nodes: leaf('cluster', 'seed_nodes', {
        format: 'distcache-endpoint-list', default: [], flag: '--seeds',
        doc: 'Client addresses (host:port) of nodes of an existing cluster to join through. Env/flag: comma-separated.',
      }),
      initial_cluster: leaf('cluster', 'initial_cluster', {
        format: 'distcache-initial-cluster', default: '', flag: '--initial-cluster',
        doc: 'Founding members and their peer addresses, "node1=127.0.0.1:7101,node2=127.0.0.1:7102". Read when a fresh data directory is bootstrapped; empty with no seeds = single-node cluster.',
      }),
      advertise_peer_address: leaf('cluster', 'advertise_peer_address', {
        format: 'distcache-endpoint-or-empty', default: '', derived: "this node's cluster.initial_cluster entry, else the listen address (127.0.0.1 for a wildcard in single mode, the host name when joining) and peer_port",
        doc: 'host:port other nodes dial to reach this node\'s peer port.',
      }),
      advertise_client_address: leaf('cluster', 'advertise_client_address', {
        format: 'distcache-endpoint-or-empty', default: '', derived: 'the advertised peer host and listen_port',
        doc: 'host:port clients are sent to reach this node (leader redirects).',
      }),
      replication_factor: leaf('cluster', 'replication_factor', {
        ...int(1, 7), default: null, nullable: true, derived: 'min(3, known members)',
        doc: 'Replicas per shard. At most the number of members when they are known (single, bootstrap).',
      }),
      shard_count: leaf('cluster', 'shard_count', {
        ...int(1, 65534), default: 1024,
        doc: 'Number of shards keys are hashed into (xxhash of the primary key). Fixed for the life of a cluster.',
      }),
      read_mode: leaf('cluster', 'read_mode', {
        format: 'distcache-enum', values: ['read_index', 'lease'], default: 'lease',
        doc: 'How a shard leader makes sure it still leads before a linearizable read. lease: it answers at once while a quorum acknowledged it (a heartbeat or an append) within the election timeout less a 25% clock-drift margin; those followers refuse to vote for anyone else for a full election timeout, so no other leader can exist meanwhile. Time is each node\'s monotonic clock, also across event-loop stalls, so this assumes clock rates (not clocks) agree across nodes. read_index: a heartbeat round to a quorum per batch of reads (etcd\'s way; no clock assumption, a round trip more per read).',
      }),
      vnodes_per_node: leaf('cluster', 'vnodes_per_node', { ...int(1, 4096), default: 128, doc: 'Virtual nodes per member on the consistent-hash ring. Must agree across the cluster.' }),
      down_after_ms: leaf('cluster', 'down_after_ms', { ...int(1000, 86_400_000), default: 30_000, doc: 'A member not heard from for this long is marked down and its shard replicas are re-created on other nodes (re-replication). Read by the metadata leader.' }),
      max_concurrent_moves: leaf('cluster', 'max_concurrent_moves', { ...int(1, 1024), default: 4, doc: 'Shard replicas a node, as shard leader, streams to new members at a time while rebalancing; bounds the load rebalancing adds to foreground traffic.' }),
      split_shard_mb: leaf('cluster', 'split_shard_mb', { ...int(0, 1048576), default: 128, doc: 'A shard whose data (keys and stored values) exceeds this many MiB is split in two automatically: its leader checks every cluster.split_check_ms and asks the metadata leader. 0 disables. Merging is by hand (POST /api/cluster/shards/:id/merge).' }),
      split_check_ms: leaf('cluster', 'split_check_ms', { ...int(100, 3_600_000), default: 10_000, doc: 'How often a node checks the sizes of the shards it leads against cluster.split_shard_mb, ms.' }),
    },
    storage: {
      engine_type: leaf('storage', 'engine_type', { format: 'distcache-enum', values: ['lsm_tree'], default: 'lsm_tree', doc: 'Storage engine; only "lsm_tree".' }),
      memtable_size_mb: leaf('storage', 'memtable_size_mb', { ...int(1, 4096), default: 64, doc: 'Memtable size before it is flushed to an SSTable, MiB.' }),
      enable_compression: leaf('storage', 'enable_compression', { format: 'distcache-bool', default: true, doc: 'lz4 compression of SSTable blocks (kept only where it saves space).' }),
      sync_policy: leaf('storage', 'sync_policy', {
        format: 'distcache-enum', values: ['always', 'batch', 'off'], default: 'batch',
        doc: 'When writes reach the disk: always (fsync per group commit), batch (within a few ms), off (OS decides; survives a process crash, not a power loss).',
      }),
      background_duty_percent: leaf('storage', 'background_duty_percent', {
        ...int(1, 100), default: 50,
        doc: 'Share of the node\'s main thread that engine flushes and compactions may take while no write waits for them, percent; they pause between slices of a few ms so that requests are served meanwhile (a compaction of a few hundred MiB otherwise holds the loop for seconds). While writes wait for them they run at full speed. 100 = never pause.',
      }),
      l0_compaction_trigger: leaf('storage', 'l0_compaction_trigger', {
        ...int(2, 12), default: 4,
        doc: 'Level-0 SSTables (one per memtable flush) that start a compaction into level 1. More: fewer compactions, each rewriting level 1 once for more flushed data (less write amplification under overwrites), at the price of more tables for a read to check (their bloom filters skip most). Writes slow down at 12 level-0 tables.',
      }),
      block_cache_mb: leaf('storage', 'block_cache_mb', { ...int(0, 1_048_576), default: 64, doc: 'Cache of uncompressed SSTable blocks, MiB (0 = none).' }),
      log_writes_in_flight: leaf('storage', 'log_writes_in_flight', {
        ...int(1, 64), default: 64,
        doc: 'Raft-log group commits that may wait for the disk at once. Many (default): later writes, heartbeats and acks overlap an earlier fsync. 1: plain group commit, each fsync carrying everything that arrived during the previous one (least CPU per put on a CPU-bound node, but a slow fsync then holds every shard).',
      }),
      log_syncs_in_flight: leaf('storage', 'log_syncs_in_flight', {
        ...int(1, 8), default: 1,
        doc: 'Raft-log fdatasync calls that may be outstanding at once. 1: a write arriving during an fsync waits for it to end, then shares the next. More: its own fsync starts at once (acknowledgements stay in log order).',
      }),
    },
    monitoring: {
      enable_monitoring: leaf('monitoring', 'enable_monitoring', { format: 'distcache-bool', default: true, doc: 'Serve Prometheus metrics on metrics_port and track hot keys.' }),
      metrics_port: leaf('monitoring', 'metrics_port', { format: 'distcache-port', default: 9090, flag: '--metrics-port', doc: 'Prometheus /metrics port.' }),
      retention_hours: leaf('monitoring', 'retention_hours', { ...int(1, 24 * 365), default: 24, doc: 'How long in-process statistics (hot keys, slow requests) are kept, hours.' }),
    },
    security: {
      enable_authentication: leaf('security', 'enable_authentication', { format: 'distcache-bool', default: false, doc: 'Require a bearer token on every client and admin request.' }),
      token_expiry_hours: leaf('security', 'token_expiry_hours', { ...int(1, 24 * 365), default: 24, doc: 'Lifetime of issued tokens, hours.' }),
      token_secret_file: leaf('security', 'token_secret_file', {
        format: 'distcache-path', allowEmpty: true, default: '',
        doc: 'File holding the token signing key. Empty: a key is generated on first start under data_directory.',
      }),
    },
  };
}

const SCHEMA = buildSchema();

/** Command-line flag -> CliOverrides field and key. */
const CLI_KEYS: ReadonlyArray<[keyof CliOverrides, string]> = [
  ['nodeId', 'cluster.node_id'],
  ['listenAddress', 'server.listen_address'],
  ['port', 'server.listen_port'],
  ['peerPort', 'server.peer_port'],
  ['httpPort', 'server.http_port'],
  ['metricsPort', 'monitoring.metrics_port'],
  ['dataDir', 'server.data_directory'],
  ['initialCluster', 'cluster.initial_cluster'],
  ['seeds', 'cluster.seed_nodes'],
];

function schemaLeaf(key: string): Leaf | undefined {
  const [section, name] = key.split('.');
  return section === undefined || name === undefined ? undefined : SCHEMA[section]?.[name];
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Loads, validates and freezes the node configuration. Throws ConfigError. */
export function loadConfig(options: LoadConfigOptions = {}): NodeConfig {
  const env = options.env ?? process.env;
  const overrides = options.overrides ?? {};
  const file = overrides.configPath ?? env[`${ENV_PREFIX}_CONFIG`] ?? options.file;
  const source = file ?? (options.text !== undefined ? '<inline>' : null);

  // 1. The file, parsed and checked for unknown keys and non-mapping sections (those problems are
  //    reported together with the ones validation finds).
  const problems: ConfigProblem[] = [];
  let fileValues: Record<string, Record<string, unknown>> = {};
  if (file !== undefined || options.text !== undefined) {
    let text: string;
    if (file !== undefined) {
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new ConfigError([{ key: '', message: `cannot read the file: ${(err as Error).message}` }], source);
      }
    } else {
      text = options.text!;
    }
    fileValues = parseYaml(text, source, problems);
  }

  // 2. convict: defaults < file < env (convict re-applies env after load) < flags (set).
  const cfg = convict(SCHEMA as unknown as convict.Schema<Record<string, Record<string, unknown>>>, {
    env: env as NodeJS.ProcessEnv,
    args: [],
  });
  cfg.load(fileValues);
  const fromCli = new Map<string, string>();
  for (const [field, key] of CLI_KEYS) {
    const v = overrides[field];
    if (v === undefined) continue;
    const flag = schemaLeaf(key)?.flag ?? field;
    fromCli.set(key, flag);
    (cfg as unknown as { set(k: string, value: unknown): void }).set(key, typeof v === 'number' ? v : Array.isArray(v) ? [...(v as readonly string[])] : String(v));
  }
  const origin = (key: string): string => {
    const flag = fromCli.get(key);
    if (flag !== undefined) return ` (from ${flag})`;
    const envName = schemaLeaf(key)?.env;
    if (envName !== undefined && env[envName] !== undefined) return ` (from $${envName})`;
    const [s, n] = key.split('.');
    if (s !== undefined && n !== undefined && fileValues[s] !== undefined && n in fileValues[s]!) return '';
    return ' (default)';
  };
  try {
    cfg.validate({ allowed: 'strict' });
  } catch (err) {
    for (const line of String((err as Error).message).split('\n')) {
      const m = /^([A-Za-z0-9_]+\.[A-Za-z0-9_]+): (.*?)(?:: value was .*)?$/.exec(line);
      if (m !== null) problems.push({ key: m[1]!, message: m[2]! + origin(m[1]!) });
      else if (line.trim() !== '') problems.push({ key: '', message: line });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems, source);

  // 3. Derived values and checks across keys.
  const raw = cfg.getProperties() as Record<string, Record<string, unknown>>;
  const s = raw['server']!;
  const c = raw['cluster']!;
  const st = raw['storage']!;
  const mo = raw['monitoring']!;
  const se = raw['security']!;
  const nodeId = c['node_id'] as string;
  const listenAddress = s['listen_address'] as string;
  const listenPort = s['listen_port'] as number;
  const seeds = c['seed_nodes'] as string[];
  const initial = parseInitialCluster(c['initial_cluster'] as string);
  const own = initial.find((m) => m.id === nodeId);
  const mode: ClusterMode = initial.length > 0 ? (own !== undefined ? 'bootstrap' : 'join') : seeds.length > 0 ? 'join' : 'single';
  if (initial.length > 0 && own === undefined && seeds.length === 0) {
    problems.push({
      key: 'cluster.initial_cluster',
      message: `does not list this node, ${JSON.stringify(nodeId)}${origin('cluster.node_id')}; add it, or give cluster.seed_nodes to join an existing cluster`,
    });
  }

  const httpPort = (s['http_port'] as number | null) ?? listenPort + 100;
  const explicitPeerPort = s['peer_port'] as number | null;
  const peerPort = explicitPeerPort ?? own?.port ?? listenPort + 1000;
  if (httpPort > 65535) problems.push({ key: 'server.http_port', message: `derived as listen_port + 100 = ${httpPort}, above 65535; set it` });
  if (peerPort > 65535) problems.push({ key: 'server.peer_port', message: `derived as listen_port + 1000 = ${peerPort}, above 65535; set it` });

  // This node's peer endpoint as other nodes dial it. A derived one may carry port 0 (any free
  // port, tests); the server then advertises the port it bound.
  const explicitPeerAddr = c['advertise_peer_address'] as string;
  let self: Endpoint;
  if (own !== undefined) {
    self = { host: own.host, port: own.port };
    const ownAddr = `${own.host}:${own.port}`;
    if (explicitPeerAddr !== '' && explicitPeerAddr !== ownAddr) {
      problems.push({ key: 'cluster.advertise_peer_address', message: `${JSON.stringify(explicitPeerAddr)} differs from ${ownAddr}, this node's address in cluster.initial_cluster${origin('cluster.advertise_peer_address')}` });
    } else if (explicitPeerAddr === '' && explicitPeerPort !== null && explicitPeerPort !== own.port) {
      problems.push({
        key: 'server.peer_port',
        message: `${explicitPeerPort} differs from the port ${own.port} that cluster.initial_cluster gives ${nodeId}; other nodes would dial ${own.port} (set cluster.advertise_peer_address to listen on another port behind a NAT)${origin('server.peer_port')}`,
      });
    }
  } else if (explicitPeerAddr !== '') {
    self = parseEndpoint(explicitPeerAddr); // the format validated it
  } else {
    const host = WILDCARD.has(listenAddress) ? (mode === 'single' ? '127.0.0.1' : options.hostname ?? os.hostname()) : listenAddress;
    self = { host: host.includes(':') && !host.startsWith('[') ? `[${host}]` : host, port: peerPort };
  }
  const advertisePeer = `${self.host}:${self.port}`;
  const explicitClientAddr = c['advertise_client_address'] as string;
  const advertiseClient = explicitClientAddr !== '' ? explicitClientAddr : `${self.host}:${listenPort}`;

  const members: Record<string, Endpoint> = Object.create(null) as Record<string, Endpoint>;
  if (mode === 'bootstrap') for (const m of initial) members[m.id] = { host: m.host, port: m.port };
  else members[nodeId] = self;

  // Members are known in single and bootstrap mode; a joining node learns them (and the
  // cluster's replication factor) from the cluster.
  const known = mode === 'join' ? undefined : Object.keys(members).length;
  const rfSet = c['replication_factor'] as number | null;
  const rf = rfSet ?? Math.min(3, known ?? 3);
  if (known !== undefined && rf > known) {
    const who = mode === 'bootstrap' ? `cluster.initial_cluster lists ${known}` : 'a single-node cluster (no initial_cluster, no seed_nodes)';
    problems.push({ key: 'cluster.replication_factor', message: `${rf} exceeds the ${known} member${known === 1 ? '' : 's'} known: ${who}${origin('cluster.replication_factor')}` });
  }

  // This node's listeners must not share a port (0 = any free port never clashes).
  const ports: Array<[string, number]> = [
    ['server.listen_port', listenPort],
    ['server.http_port', httpPort],
    ['server.peer_port', peerPort],
  ];
  if (mo['enable_monitoring'] === true) ports.push(['monitoring.metrics_port', mo['metrics_port'] as number]);
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      const [ki, pi] = ports[i]!;
      const [kj, pj] = ports[j]!;
      if (pi !== 0 && pi === pj) problems.push({ key: ki, message: `port ${pi}${origin(ki)} is also ${kj}${origin(kj)}; this node's listeners need distinct ports` });
    }
  }

  if (problems.length > 0) throw new ConfigError(problems, source);

  return deepFreeze({
    server: {
      listen_address: listenAddress,
      listen_port: listenPort,
      http_port: httpPort,
      peer_port: peerPort,
      data_directory: s['data_directory'] as string,
      max_connections: s['max_connections'] as number,
      request_timeout_ms: s['request_timeout_ms'] as number,
    },
    cluster: {
      node_id: nodeId,
      seed_nodes: [...seeds],
      initial_cluster: c['initial_cluster'] as string,
      advertise_peer_address: advertisePeer,
      advertise_client_address: advertiseClient,
      replication_factor: rf,
      replication_target: rfSet ?? 3,
      down_after_ms: c['down_after_ms'] as number,
      max_concurrent_moves: c['max_concurrent_moves'] as number,
      split_shard_mb: c['split_shard_mb'] as number,
      split_check_ms: c['split_check_ms'] as number,
      shard_count: c['shard_count'] as number,
      vnodes_per_node: c['vnodes_per_node'] as number,
      read_mode: c['read_mode'] as 'read_index' | 'lease',
      mode,
      members,
    },
    storage: {
      engine_type: 'lsm_tree',
      memtable_size_mb: st['memtable_size_mb'] as number,
      background_duty_percent: st['background_duty_percent'] as number,
      l0_compaction_trigger: st['l0_compaction_trigger'] as number,
      enable_compression: st['enable_compression'] as boolean,
      sync_policy: st['sync_policy'] as SyncPolicy,
      block_cache_mb: st['block_cache_mb'] as number,
      log_writes_in_flight: st['log_writes_in_flight'] as number,
      log_syncs_in_flight: st['log_syncs_in_flight'] as number,
    },
    monitoring: {
      enable_monitoring: mo['enable_monitoring'] as boolean,
      metrics_port: mo['metrics_port'] as number,
      retention_hours: mo['retention_hours'] as number,
    },
    security: {
      enable_authentication: se['enable_authentication'] as boolean,
      token_expiry_hours: se['token_expiry_hours'] as number,
      token_secret_file: se['token_secret_file'] as string,
    },
    source,
  });
}

/** Parses the YAML text and checks its shape against the schema: sections are mappings and every
 *  key is declared (with a "did you mean" for near misses). */
function parseYaml(text: string, source: string | null, problems: ConfigProblem[]): Record<string, Record<string, unknown>> {
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ key: '', message: `YAML: ${e.message.split('\n')[0]!.replace(/:$/, '')}` })), source);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError([{ key: '', message: `must be a YAML mapping of sections (${Object.keys(SCHEMA).join(', ')}), got ${Array.isArray(value) ? 'a list' : typeof value}` }], source);
  }
  const out: Record<string, Record<string, unknown>> = {};
  for (const [section, body] of Object.entries(value as Record<string, unknown>)) {
    const known = SCHEMA[section];
    if (known === undefined) {
      problems.push({ key: section, message: `unknown section${suggest(section, Object.keys(SCHEMA), '')}; sections are ${Object.keys(SCHEMA).join(', ')}` });
      continue;
    }
    if (body === null || body === undefined) continue;
    if (typeof body !== 'object' || Array.isArray(body)) {
      problems.push({ key: section, message: `must be a mapping of settings, got ${show(body)}` });
      continue;
    }
    const kept: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(body as Record<string, unknown>)) {
      if (!(name in known)) {
        problems.push({ key: `${section}.${name}`, message: `unknown key${suggestKey(section, name)}` });
        continue;
      }
      // A YAML null leaves the default (null is how a derived value is asked for explicitly).
      if (v === null) continue;
      kept[name] = v;
    }
    out[section] = kept;
  }
  return out;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function suggest(name: string, candidates: readonly string[], prefix: string): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(name, c);
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 4)) ? ` (did you mean ${prefix}${best}?)` : '';
}

function suggestKey(section: string, name: string): string {
  for (const [other, keys] of Object.entries(SCHEMA)) {
    if (other !== section && name in keys) return ` (it belongs in the ${other} section: ${other}.${name})`;
  }
  return suggest(name, Object.keys(SCHEMA[section]!), `${section}.`);
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    for (const v of Object.values(o as object)) deepFreeze(v as unknown);
    Object.freeze(o);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Reference documentation

/** Markdown table of every key: env variable, flag, default, description. docs/CONFIG.md embeds
 *  it between `<!-- BEGIN GENERATED -->` / `<!-- END GENERATED -->`. */
export function configReference(): string {
  const rows: string[] = [];
  for (const [section, keys] of Object.entries(SCHEMA)) {
    rows.push('', `### ${section}`, '', '| key | default | env / flag | description |', '|---|---|---|---|');
    for (const [name, l] of Object.entries(keys)) {
      const def = l.default === null ? `*${l.derived ?? 'unset'}*` : `\`${JSON.stringify(l.default)}\``;
      const range = l.min !== undefined ? ` Range ${l.min}..${l.max}.` : l.values !== undefined ? ` One of ${l.values.map((v) => `\`${v}\``).join(', ')}.` : '';
      const derived = l.default !== null && l.derived !== undefined ? ` Unset: ${l.derived}.` : '';
      rows.push(`| \`${section}.${name}\` | ${def} | \`${l.env}\`${l.flag !== undefined ? `<br>\`${l.flag}\`` : ''} | ${l.doc}${range}${derived} |`);
    }
  }
  return rows.join('\n').trimStart() + '\n';
}
