// A small facade over one MultiRaftHost: user keys (primary + optional secondary) -> shard
// (ring/shardOf) -> encoded key (ring/encodeKey) -> one command. It serves requests only for
// shards this node leads (NOT_LEADER with the hint otherwise); routing to other nodes is the
// server's job (later issue).
import { encodeKey, initHashing, shardOf } from '../ring/index.js';
import { KvError } from '../util/errors.js';
import type { ReadResult } from './apply.js';
import type { Op, OpResult } from './commands.js';
import type { MultiRaftHost } from './host.js';

export type KeyLike = string | Uint8Array | { primary: string | Uint8Array; secondary?: string | Uint8Array };

function bytes(v: string | Uint8Array): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v) : v;
}

export class KvStore {
  private constructor(
    readonly host: MultiRaftHost,
    readonly shardCount: number,
  ) {}

  static async create(host: MultiRaftHost, shardCount: number): Promise<KvStore> {
    await initHashing();
    return new KvStore(host, shardCount);
  }

  /** Shard and encoded key of a user key. */
  locate(key: KeyLike): { shardId: number; key: Buffer } {
    const k = typeof key === 'string' || key instanceof Uint8Array ? { primary: key } : key;
    const primary = bytes(k.primary);
    return { shardId: shardOf(primary, this.shardCount), key: k.secondary === undefined ? encodeKey(primary) : encodeKey(primary, bytes(k.secondary)) };
  }

  async put(key: KeyLike, value: string | Uint8Array): Promise<{ version: number }> {
    const r = await this.one(key, (k) => ({ type: 'put', key: k, value: bytes(value) }));
    return { version: (r as { version: number }).version };
  }

  async remove(key: KeyLike): Promise<{ found: boolean }> {
    const r = await this.one(key, (k) => ({ type: 'delete', key: k }));
    return { found: (r as { found: boolean }).found };
  }

  async putIfVersionMatch(key: KeyLike, value: string | Uint8Array, expected: number): Promise<{ ok: true; version: number } | { ok: false; currentVersion: number }> {
    const r = await this.one(key, (k) => ({ type: 'putIfVersionMatch', key: k, value: bytes(value), expectedVersion: expected }));
    if (r.type !== 'putIfVersionMatch') throw new KvError('INVALID_ARGUMENT', 'unexpected result');
    return r.ok ? { ok: true, version: r.version } : { ok: false, currentVersion: r.currentVersion };
  }

  /** Linearizable read (ReadIndex; works on any replica of the shard). */
  get(key: KeyLike): Promise<ReadResult> {
    const { shardId, key: k } = this.locate(key);
    return this.host.read(shardId, k);
  }

  /** Atomic multi-put: all entries must map to one shard (cross-shard needs the commit protocol). */
  async multiPutAtomic(entries: Array<{ key: KeyLike; value: string | Uint8Array }>): Promise<number[]> {
    if (entries.length === 0) return [];
    const located = entries.map((e) => ({ ...this.locate(e.key), value: bytes(e.value) }));
    const shardId = located[0]!.shardId;
    if (located.some((l) => l.shardId !== shardId)) throw new KvError('INVALID_ARGUMENT', 'atomic multiPut across shards is not supported yet');
    const res = await this.host.propose(shardId, { ops: located.map((l) => ({ type: 'put', key: l.key, value: l.value })) });
    return res.results.map((r) => (r as { version: number }).version);
  }

  private async one(key: KeyLike, mk: (k: Buffer) => Op): Promise<OpResult> {
    const { shardId, key: k } = this.locate(key);
    const res = await this.host.propose(shardId, { ops: [mk(k)] });
    return res.results[0]!;
  }
}
