// distcache/client: a TypeScript client for the KeyValue gRPC service (proto/distcache.proto).
// Learns the shard map and the shard leaders through ClusterInfo, sends each op to its shard's
// leader (follower reads: to any replica, the least loaded), follows NOT_LEADER hints, splits
// multi-ops by shard (in parallel) and retries idempotent ops on UNAVAILABLE with backoff within
// a per-op deadline. One grpc channel per node, reused; by default every op travels on that
// node's multiplexed Session stream (./session.ts: ops of one event-loop turn share one
// RequestBatch), ClusterInfo as a unary call. `transport: 'unary'` sends one unary call per op.
import * as grpc from '@grpc/grpc-js';
import { ShardRouter, encodeKey } from '../ring/index.js';
import { loadServices } from '../server/proto.js';
import { ClientError, toClientError } from './errors.js';
import { SessionConn } from './session.js';

export { ClientError, type ClientErrorCode, toClientError } from './errors.js';

export type Bytes = Buffer | string;
export type Key = string | { primary: Bytes; secondary?: Bytes };
export type Consistency = 'linearizable' | 'follower';

export interface ClientOptions {
  /** Deadline of one client operation, retries included (default 5000 ms). */
  timeoutMs?: number;
  /** Maximum attempts after the first one (default 10). */
  retries?: number;
  /** 'session' (default): ops multiplexed on one stream per node; 'unary': one call per op. */
  transport?: 'session' | 'unary';
}

export interface GetResult {
  found: boolean;
  value?: Buffer;
  version?: number;
}
export type PutIfVersionMatchResult = { ok: true; version: number } | { ok: false; currentVersion: number };
export interface ScanItem {
  key: { primary: Buffer; secondary: Buffer };
  value: Buffer;
  version: number;
}
export interface RangeScanOptions {
  start?: Key;
  end?: Key;
  /** Maximum items (default 1000). */
  limit?: number;
  consistency?: Consistency;
}

interface PKey {
  primary: Buffer;
  secondary: Buffer;
}
type Resp = Record<string, unknown>;
type Unary = (req: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Resp) => void) => grpc.ClientUnaryCall;

function bytes(b: Bytes): Buffer {
  return typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
}

export function toPKey(k: Key): PKey {
  if (typeof k === 'string') return { primary: Buffer.from(k, 'utf8'), secondary: Buffer.alloc(0) };
  return { primary: bytes(k.primary), secondary: k.secondary === undefined ? Buffer.alloc(0) : bytes(k.secondary) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when the error proves the server did not apply the operation. */
function provablyNotApplied(e: ClientError): boolean {
  if (e.code === 'NOT_LEADER' || e.code === 'INVALID_ARGUMENT' || e.code === 'KEY_TOO_LARGE' || e.code === 'VALUE_TOO_LARGE') return true;
  // refused by the shard's owner check at apply time (split/merge), never applied
  if (e.code === 'WRONG_SHARD' || e.code === 'RANGE_MOVING') return true;
  // the connection was never established: the request never left this process. Match only the
  // grpc-js picker's wording: a bare /connect/i also matched "Connection dropped" (the channel
  // closed while the call was in flight, after the server may have applied it).
  if (e.code === 'UNAVAILABLE' && e.grpcCode === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED/.test(e.message)) return true;
  return false;
}

interface ShardRoute {
  leader: string; // client address; '' when unknown
  replicas: string[]; // node ids
}

export class CacheClient {
  private readonly channels = new Map<string, grpc.Client>();
  private readonly sessions = new Map<string, SessionConn>();
  /** unary calls in flight per address (sessions count their own) */
  private readonly unaryInFlight = new Map<string, number>();
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly useSessions: boolean;
  private shardCount = 0;
  private shards: ShardRoute[] = [];
  private router: ShardRouter | undefined;
  private readonly memberAddr = new Map<string, string>(); // node id -> client address
  private closed = false;
  private refreshing: Promise<void> | undefined;
  private rr = 0;

  private constructor(private readonly endpoints: string[], options: ClientOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries = options.retries ?? 10;
    this.useSessions = (options.transport ?? 'session') === 'session';
  }

  /** Connects to a cluster through any of `endpoints` (host:port of nodes' client gRPC ports). */
  static async connect(endpoints: string[], options: ClientOptions = {}): Promise<CacheClient> {
    if (endpoints.length === 0) throw new ClientError('INVALID_ARGUMENT', 'connect needs at least one endpoint');
    const c = new CacheClient([...endpoints], options);
    try {
      await c.refresh();
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  // ------------------------------------------------------------------ plumbing

  private channel(addr: string): grpc.Client {
    let ch = this.channels.get(addr);
    if (!ch) {
      const { keyValue } = loadServices();
      ch = new keyValue(addr, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20, 'grpc.max_receive_message_length': 64 << 20 });
      this.channels.set(addr, ch);
    }
    return ch;
  }

  private session(addr: string): SessionConn {
    let s = this.sessions.get(addr);
    if (!s) {
      const ch = this.channel(addr);
      s = new SessionConn(() => (ch as unknown as { Session: () => grpc.ClientDuplexStream<unknown, unknown> }).Session());
      this.sessions.set(addr, s);
    }
    return s;
  }

  private rawCall(addr: string, method: string, req: object, deadline: number): Promise<Resp> {
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'client is closed'));
    if (this.useSessions && method !== 'ClusterInfo') return this.session(addr).call(method, req, deadline);
    const ch = this.channel(addr);
    const fn = (ch as unknown as Record<string, Unary>)[method]!;
    this.unaryInFlight.set(addr, (this.unaryInFlight.get(addr) ?? 0) + 1);
    return new Promise((resolve, reject) => {
      fn.call(ch, req, new grpc.Metadata(), { deadline }, (e, r) => {
        this.unaryInFlight.set(addr, (this.unaryInFlight.get(addr) ?? 1) - 1);
        if (e) reject(toClientError(e));
        else resolve(r);
      });
    });
  }

  /** Ops in flight to `addr`, on its session and as unary calls. */
  private load(addr: string): number {
    return (this.sessions.get(addr)?.inFlight ?? 0) + (this.unaryInFlight.get(addr) ?? 0);
  }

  private allAddresses(): string[] {
    const s = new Set<string>(this.endpoints);
    for (const a of this.memberAddr.values()) if (a !== '') s.add(a);
    return [...s];
  }

  private nextAddress(): string {
    const all = this.allAddresses();
    return all[this.rr++ % all.length]!;
  }

  /** (Re)learns members, shard map and leaders from the first node that answers ClusterInfo. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const deadline = Date.now() + this.timeoutMs;
      let last: unknown;
      try {
        for (let attempt = 0; Date.now() < deadline; attempt++) {
          for (const addr of this.allAddresses()) {
            try {
              const info = await this.rawCall(addr, 'ClusterInfo', {}, Math.min(deadline, Date.now() + 2000));
              this.learn(info);
              return;
            } catch (e) {
              last = e;
              if (this.closed) throw e;
            }
          }
          await sleep(Math.min(500, 20 << attempt));
        }
        throw last instanceof ClientError ? last : new ClientError('UNAVAILABLE', `no endpoint answered ClusterInfo: ${String(last)}`);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private learn(info: Resp): void {
    for (const m of (info['members'] as Array<{ node_id: string; client_address: string }>) ?? []) {
      if (m.client_address !== '') this.memberAddr.set(m.node_id, m.client_address);
    }
    this.shardCount = info['shard_count'] as number;
    const shards = (info['shards'] as Array<{ shard_id: number; replicas: string[]; leader_address: string; slot: number; hash_lo: number; hash_hi: number }>) ?? [];
    // the routing table: which shard owns which piece of which slot (split/merge move them)
    const split = shards.some((s) => s.hash_hi !== 0 && (s.hash_lo !== 0 || s.hash_hi !== 0x10000 || s.slot !== s.shard_id));
    try {
      this.router = split ? new ShardRouter(this.shardCount, shards.map((s) => ({ shardId: s.shard_id, range: { slot: s.slot, lo: s.hash_lo, hi: s.hash_hi } }))) : ShardRouter.unsplit(this.shardCount);
    } catch {
      // a node answering mid-update: keep the old table (requests re-route on WRONG_SHARD)
      this.router ??= ShardRouter.unsplit(this.shardCount);
    }
    const length = Math.max(this.shardCount, ...shards.map((s) => s.shard_id + 1));
    const next: ShardRoute[] = Array.from({ length }, (_, i) => ({ leader: this.shards[i]?.leader ?? '', replicas: this.shards[i]?.replicas ?? [] }));
    for (const s of shards) {
      const r = next[s.shard_id];
      if (!r) continue;
      r.replicas = [...s.replicas];
      if (s.leader_address !== '') r.leader = s.leader_address;
    }
    this.shards = next;
  }

  shardOfKey(k: PKey): number {
    return (this.router ??= ShardRouter.unsplit(this.shardCount)).locate(k.primary);
  }

  /** Where to send an op on `shard`: its known leader, else any node. With anyReplica (follower
   *  reads), the replica with the fewest ops in flight, ties broken round-robin. */
  private target(shard: number, anyReplica: boolean): string {
    const r = this.shards[shard];
    if (anyReplica && r && r.replicas.length > 0) {
      const n = r.replicas.length;
      const start = this.rr++;
      let best: string | undefined;
      let bestLoad = Infinity;
      for (let i = 0; i < n; i++) {
        const a = this.memberAddr.get(r.replicas[(start + i) % n]!);
        if (a === undefined) continue;
        const l = this.load(a);
        if (l < bestLoad) {
          best = a;
          bestLoad = l;
        }
      }
      if (best !== undefined) return best;
    }
    if (r && r.leader !== '') return r.leader;
    return this.nextAddress();
  }

  /** One op on one shard, with routing, NOT_LEADER hints, retries and the op deadline. `key`:
   *  the (first) key of the op, to re-route it when a split or merge moved it (WRONG_SHARD). */
  private async shardCall(shard: number, method: string, req: object, idempotent: boolean, anyReplica = false, key?: PKey): Promise<Resp> {
    const deadline = Date.now() + this.timeoutMs;
    let addr = this.target(shard, anyReplica);
    let last: ClientError | undefined;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (Date.now() >= deadline) break;
      try {
        return await this.rawCall(addr, method, req, deadline);
      } catch (e) {
        const err = toClientError(e);
        last = err;
        const route = this.shards[shard];
        if (err.code === 'WRONG_SHARD' || err.code === 'RANGE_MOVING') {
          // not applied: re-learn the routing (a split or merge moved the key) and go again
          if (this.closed) throw err;
          if (attempt > 0 || err.code === 'RANGE_MOVING') await sleep(Math.min(200, 10 << attempt));
          // a move lasts as long as its copy: keep retrying it until the op's deadline
          if (err.code === 'RANGE_MOVING') attempt = Math.min(attempt, 3);
          await this.refresh().catch(() => undefined);
          if (key) shard = this.shardOfKey(key);
          addr = this.target(shard, anyReplica);
          continue;
        }
        if (err.code === 'NOT_LEADER') {
          if (err.leaderHint && err.leaderHint !== addr) {
            if (route) route.leader = err.leaderHint;
            addr = err.leaderHint;
            continue; // a hint: follow it at once
          }
          if (route && route.leader === addr) route.leader = '';
          await sleep(Math.min(500, 20 << attempt));
          void this.refresh().catch(() => undefined);
          addr = this.nextAddress();
          continue;
        }
        const retriable = (err.code === 'UNAVAILABLE' || err.code === 'PROPOSAL_DROPPED' || err.code === 'TIMEOUT') && (idempotent || provablyNotApplied(err));
        if (!retriable || this.closed) throw err;
        if (route && route.leader === addr) route.leader = '';
        await sleep(Math.min(1000, 20 << attempt));
        await this.refresh().catch(() => undefined);
        addr = this.shards[shard]?.leader || this.nextAddress();
      }
    }
    if (last && last.code !== 'NOT_LEADER' && last.code !== 'UNAVAILABLE') throw last;
    throw new ClientError(last?.code === 'NOT_LEADER' ? 'NOT_LEADER' : Date.now() >= deadline ? 'TIMEOUT' : 'UNAVAILABLE', `${method} on shard ${shard} failed after retries: ${last?.message ?? 'deadline exceeded'}`, last ? { cause: last } : {});
  }

  private groupByShard(keys: PKey[]): Map<number, number[]> {
    const by = new Map<number, number[]>();
    keys.forEach((k, i) => {
      const s = this.shardOfKey(k);
      const l = by.get(s);
      if (l) l.push(i);
      else by.set(s, [i]);
    });
    return by;
  }

  // ------------------------------------------------------------------ the API

  async put(key: Key, value: Bytes, _opts?: Record<string, never>): Promise<{ version: number }> {
    const k = toPKey(key);
    const r = await this.shardCall(this.shardOfKey(k), 'Put', { key: k, value: bytes(value) }, false, false, k);
    return { version: r['version'] as number };
  }

  async get(key: Key, opts: { consistency?: Consistency } = {}): Promise<GetResult> {
    const k = toPKey(key);
    const follower = opts.consistency === 'follower';
    const r = await this.shardCall(this.shardOfKey(k), 'Get', { key: k, consistency: follower ? 'FOLLOWER' : 'LINEARIZABLE' }, true, follower, k);
    return toGetResult(r);
  }

  async remove(key: Key): Promise<{ found: boolean }> {
    const k = toPKey(key);
    const r = await this.shardCall(this.shardOfKey(k), 'Delete', { key: k }, false, false, k);
    return { found: r['found'] as boolean };
  }

  async putIfVersionMatch(key: Key, value: Bytes, expected: number): Promise<PutIfVersionMatchResult> {
    const k = toPKey(key);
    try {
      const r = await this.shardCall(this.shardOfKey(k), 'PutIfVersionMatch', { key: k, value: bytes(value), expected_version: expected }, false, false, k);
      return { ok: true, version: r['version'] as number };
    } catch (e) {
      if (e instanceof ClientError && e.code === 'VERSION_MISMATCH') return { ok: false, currentVersion: e.currentVersion ?? 0 };
      throw e;
    }
  }

  async multiGet(keys: Key[], opts: { consistency?: Consistency } = {}): Promise<GetResult[]> {
    if (keys.length === 0) return [];
    const pkeys = keys.map(toPKey);
    const out: GetResult[] = new Array<GetResult>(pkeys.length);
    const follower = opts.consistency === 'follower';
    await Promise.all(
      [...this.groupByShard(pkeys)].map(async ([shard, idx]) => {
        const r = await this.shardCall(shard, 'MultiGet', { keys: idx.map((i) => pkeys[i]!), consistency: follower ? 'FOLLOWER' : 'LINEARIZABLE' }, true, follower, pkeys[idx[0]!]);
        const results = r['results'] as Resp[];
        idx.forEach((i, j) => (out[i] = toGetResult(results[j] ?? { found: false })));
      }),
    );
    return out;
  }

  async multiPut(entries: Array<{ key: Key; value: Bytes }>, opts: { atomic?: boolean } = {}): Promise<number[]> {
    if (entries.length === 0) return [];
    const pkeys = entries.map((e) => toPKey(e.key));
    const values = entries.map((e) => bytes(e.value));
    const groups = this.groupByShard(pkeys);
    const atomic = opts.atomic === true;
    if (atomic && groups.size > 1) {
      throw new ClientError('NOT_SUPPORTED', `cross-shard atomic multiPut is not supported yet (the entries span ${groups.size} shards)`);
    }
    const versions: number[] = new Array<number>(entries.length).fill(0);
    await Promise.all(
      [...groups].map(async ([shard, idx]) => {
        const r = await this.shardCall(shard, 'MultiPut', { entries: idx.map((i) => ({ key: pkeys[i]!, value: values[i]! })), atomic }, false, false, pkeys[idx[0]!]);
        const vs = r['versions'] as number[];
        idx.forEach((i, j) => (versions[i] = vs[j] ?? 0));
      }),
    );
    return versions;
  }

  /** Keys in [start, end) in (primary, secondary) byte order, at most `limit` (default 1000).
   *  A scan that meets a shard in the middle of a split or merge is run again (until the op
   *  deadline): keys in flight between two shards are in neither for a moment. */
  async rangeScan(opts: RangeScanOptions = {}): Promise<ScanItem[]> {
    const deadline = Date.now() + this.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.rangeScanOnce(opts);
      } catch (e) {
        const err = toClientError(e);
        if ((err.code !== 'RANGE_MOVING' && err.code !== 'WRONG_SHARD') || Date.now() >= deadline || this.closed) throw err;
        await sleep(Math.min(200, 10 << attempt));
        await this.refresh().catch(() => undefined);
      }
    }
  }

  private async rangeScanOnce(opts: RangeScanOptions): Promise<ScanItem[]> {
    const limit = opts.limit ?? 1000;
    if (limit <= 0) return [];
    const req: Record<string, unknown> = { limit, consistency: opts.consistency === 'follower' ? 'FOLLOWER' : 'LINEARIZABLE' };
    if (opts.start !== undefined) req['start'] = toPKey(opts.start);
    if (opts.end !== undefined) req['end'] = toPKey(opts.end);
    const rows: Array<{ ek: Buffer; item: ScanItem }> = [];
    const collect = (r: Resp): number[] => {
      for (const it of (r['items'] as Array<{ key: PKey; value: Buffer; version: number }>) ?? []) {
        const key = { primary: it.key.primary, secondary: it.key.secondary ?? Buffer.alloc(0) };
        rows.push({ ek: encodeKey(key.primary, key.secondary), item: { key, value: it.value, version: it.version } });
      }
      return (r['missing_shards'] as number[]) ?? [];
    };
    // first node: every shard it holds; then the missing shards from nodes holding them
    const first = await this.anyNodeCall('RangeScan', req);
    let missing = collect(first);
    for (let round = 0; missing.length > 0 && round < 4; round++) {
      const byNode = new Map<string, number[]>();
      for (const s of missing) {
        const a = this.target(s, true);
        const l = byNode.get(a);
        if (l) l.push(s);
        else byNode.set(a, [s]);
      }
      const next: number[] = [];
      await Promise.all(
        [...byNode].map(async ([addr, shardIds]) => {
          try {
            next.push(...collect(await this.rawCall(addr, 'RangeScan', { ...req, shard_ids: shardIds }, Date.now() + this.timeoutMs)));
          } catch (e) {
            const err = toClientError(e);
            if (err.code !== 'UNAVAILABLE') throw err;
            next.push(...shardIds);
          }
        }),
      );
      missing = next;
    }
    if (missing.length > 0) throw new ClientError('UNAVAILABLE', `rangeScan: no reachable replica for shards ${missing.slice(0, 10).join(',')}`);
    rows.sort((a, b) => Buffer.compare(a.ek, b.ek) || b.item.version - a.item.version);
    // a key that moved between two shards while they were scanned can come from both: keep the newer
    const unique = rows.filter((r, i) => i === 0 || !rows[i - 1]!.ek.equals(r.ek));
    return unique.slice(0, limit).map((r) => r.item);
  }

  /** An op that any node can serve (ClusterInfo, RangeScan), retried on UNAVAILABLE on other nodes. */
  private async anyNodeCall(method: string, req: object): Promise<Resp> {
    const deadline = Date.now() + this.timeoutMs;
    let last: ClientError | undefined;
    for (let attempt = 0; attempt <= this.retries && Date.now() < deadline; attempt++) {
      const addr = this.nextAddress();
      try {
        return await this.rawCall(addr, method, req, deadline);
      } catch (e) {
        last = toClientError(e);
        if (last.code !== 'UNAVAILABLE' && last.code !== 'TIMEOUT') throw last;
        await sleep(Math.min(500, 20 << attempt));
      }
    }
    throw last ?? new ClientError('TIMEOUT', `${method}: deadline exceeded`);
  }

  /** The raw ClusterInfo of some node (members, shard leaders), for tools. */
  async clusterInfo(): Promise<Record<string, unknown>> {
    const info = await this.anyNodeCall('ClusterInfo', {});
    this.learn(info);
    return info;
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
    for (const ch of this.channels.values()) ch.close();
    this.channels.clear();
  }
}

function toGetResult(r: Resp): GetResult {
  if (!r['found']) return { found: false };
  return { found: true, value: (r['value'] as Buffer | undefined) ?? Buffer.alloc(0), version: r['version'] as number };
}
