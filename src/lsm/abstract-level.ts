// DistcacheLevel: the LSM engine behind the abstract-level v3 interface (npm `abstract-level`),
// so that code written for LevelDB-style stores (classic-level, memory-level, the Level
// ecosystem) runs on distcache unchanged, and abstract-level's own conformance suite checks us
// (test/abstract-level/suite.ts).
//
// Contract. abstract-level's public methods validate arguments, encode keys/values, manage the
// open/close lifecycle and defer calls made while opening; they then call the private hooks
// here (`_open`, `_get`, `_put`, `_iterator`, ...) with already-encoded data. We declare only
// the 'buffer' encoding, so every key, value and range bound reaching a hook is a Buffer and
// every value or entry we hand back is a Buffer; the base class transcodes utf8, view, json and
// custom encodings to and from it.
//
// Snapshots. Every read is consistent to one engine sequence number taken synchronously when the
// hook is called: `_get`/`_getMany`/`_has` read synchronously at the current visible sequence,
// and an iterator pins its sequence when created (implicit snapshots). `db.snapshot()` returns a
// DistcacheSnapshot wrapping an engine Snapshot (explicit snapshots); reads given it use its
// sequence, and its close() releases it so compaction may drop what it pinned.
//
// Writes. `_put`/`_del`/`_batch` map to LsmEngine.write(), which is atomic per call. A write is
// visible to reads once its promise resolves (abstract-level's "finished write" rule).
// `_clear` is NOT atomic: it walks the range with an iterator (so at one sequence) and deletes
// what it saw in batches of CLEAR_BATCH keys; an entry written into the range while a large
// clear is running may or may not survive, which abstract-level allows.
//
// Ownership. Buffers returned by the engine are fresh copies, so they are handed to the caller
// as they are. Buffers passed in are encoded into the WAL record before the write call
// returns, so the caller may reuse them afterwards.
import { AbstractIterator, AbstractKeyIterator, AbstractLevel, AbstractSnapshot, AbstractValueIterator } from 'abstract-level';
import type { AbstractDatabaseOptions, AbstractIteratorOptions, AbstractKeyIteratorOptions, AbstractValueIteratorOptions } from 'abstract-level';
import { KvError } from '../util/errors.js';
import { LsmEngine, type EngineIterator } from './db.js';
import type { LsmOptions, ScanOptions, Snapshot, WriteOp } from './types.js';

/** Keys deleted per engine write by `_clear`. */
const CLEAR_BATCH = 1000;

/** Options of `new DistcacheLevel(location, options)`: abstract-level's database options
 *  (keyEncoding, valueEncoding, createIfMissing, errorIfExists) plus every engine option,
 *  which `open()` passes through to LsmEngine.open(). */
export type DistcacheLevelOptions<K, V> = AbstractDatabaseOptions<K, V> & LsmOptions;

/** What abstract-level passes to `_open` (constructor options merged with open() options). */
type PrivateOpenOptions = LsmOptions & { createIfMissing: boolean; errorIfExists: boolean; passive?: boolean };

/** What abstract-level passes to the read hooks. */
interface PrivateReadOptions {
  keyEncoding: string;
  valueEncoding?: string;
  snapshot?: unknown;
}

/** What abstract-level passes to `_iterator`, `_keys`, `_values` and `_clear`. */
interface PrivateRangeOptions extends PrivateReadOptions {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  lte?: Buffer;
  reverse: boolean;
  limit: number;
  keys?: boolean;
  values?: boolean;
  signal?: AbortSignal;
}

type PrivateBatchOp =
  | { type: 'put'; key: Buffer; value: Buffer; keyEncoding: string; valueEncoding: string }
  | { type: 'del'; key: Buffer; keyEncoding: string };

// abstract-level's .d.ts declares AbstractSnapshot without its (options) constructor.
const SnapshotBase = AbstractSnapshot as unknown as new (options: object) => AbstractSnapshot;

/** An explicit snapshot: a token holding an engine Snapshot until closed. */
export class DistcacheSnapshot extends SnapshotBase {
  constructor(
    options: object,
    /** The engine's read view. Owned by this object; released by close(). */
    readonly engineSnapshot: Snapshot,
  ) {
    super(options);
  }

  async _close(): Promise<void> {
    this.engineSnapshot.release();
  }
}

export class DistcacheLevel<KDefault = string, VDefault = string> extends AbstractLevel<Buffer | Uint8Array | string, KDefault, VDefault> {
  /** The directory holding the store. */
  readonly location: string;
  #engine: LsmEngine | undefined;

  constructor(location: string, options?: DistcacheLevelOptions<KDefault, VDefault>) {
    if (typeof location !== 'string' || location === '') throw new TypeError("The first argument 'location' must be a non-empty string");
    // getSync is a manifest flag abstract-level reads but level-supports' typings lack.
    const manifest = {
      encodings: { buffer: true },
      permanence: true,
      seek: true,
      implicitSnapshots: true,
      explicitSnapshots: true,
      has: true,
      getSync: true,
      createIfMissing: true,
      errorIfExists: true,
      // Our read hooks finish synchronously; with a signal, _next/_nextv/_all wait one
      // microtask and honour an abort that arrived meanwhile.
      signals: { iterators: true },
      additionalMethods: {},
    };
    super(manifest, options);
    this.location = location;
  }

  /** The open engine, for engine-level calls (stats(), compact(), checkpoint(), ...).
   *  Throws when the database is not open. */
  get engine(): LsmEngine {
    if (this.#engine === undefined || this.status !== 'open') throw levelError('LEVEL_DATABASE_NOT_OPEN', 'Database is not open');
    return this.#engine;
  }

  /** The engine, for hooks: abstract-level calls them only while open. */
  private get e(): LsmEngine {
    const e = this.#engine;
    if (e === undefined) throw levelError('LEVEL_DATABASE_NOT_OPEN', 'Database is not open');
    return e;
  }

  async _open(options: PrivateOpenOptions): Promise<void> {
    const { passive: _passive, ...engineOptions } = options;
    try {
      this.#engine = await LsmEngine.open(this.location, engineOptions);
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  async _close(): Promise<void> {
    // If close() fails abstract-level reports the database open again, so keep the engine.
    await this.#engine?.close();
    this.#engine = undefined;
  }

  async _get(key: Buffer, options: PrivateReadOptions): Promise<Buffer | undefined> {
    return this._getSync(key, options);
  }

  _getSync(key: Buffer, options: PrivateReadOptions): Buffer | undefined {
    try {
      return this.e.getSync(key, readOptions(options.snapshot));
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  async _getMany(keys: Buffer[], options: PrivateReadOptions): Promise<(Buffer | undefined)[]> {
    // One synchronous pass, so every key is read at the same sequence.
    const e = this.e;
    const ro = readOptions(options.snapshot);
    try {
      return keys.map((k) => e.getSync(k, ro));
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  async _has(key: Buffer, options: PrivateReadOptions): Promise<boolean> {
    return this._getSync(key, options) !== undefined;
  }

  async _hasMany(keys: Buffer[], options: PrivateReadOptions): Promise<boolean[]> {
    return (await this._getMany(keys, options)).map((v) => v !== undefined);
  }

  async _put(key: Buffer, value: Buffer, _options: unknown): Promise<void> {
    try {
      await this.e.write([{ type: 'put', key, value }]);
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  async _del(key: Buffer, _options: unknown): Promise<void> {
    try {
      await this.e.write([{ type: 'del', key }]);
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  async _batch(operations: PrivateBatchOp[], _options: unknown): Promise<void> {
    const ops: WriteOp[] = new Array<WriteOp>(operations.length);
    for (let i = 0; i < operations.length; i++) {
      const op = operations[i]!;
      ops[i] = op.type === 'put' ? { type: 'put', key: op.key, value: op.value } : { type: 'del', key: op.key };
    }
    try {
      await this.e.write(ops);
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  async _clear(options: PrivateRangeOptions): Promise<void> {
    const e = this.e;
    // The iterator pins its sequence now, before any await: writes made after clear() was
    // called are not in its view.
    const it = e.iterator(scanOptions(options));
    let remaining = options.limit >= 0 ? options.limit : Number.POSITIVE_INFINITY;
    try {
      while (remaining > 0) {
        const ops: WriteOp[] = [];
        while (ops.length < CLEAR_BATCH && remaining > 0) {
          const entry = it.next();
          if (entry === undefined) break;
          ops.push({ type: 'del', key: entry[0] });
          remaining--;
        }
        if (ops.length === 0) break;
        await e.write(ops);
        if (ops.length < CLEAR_BATCH) break;
      }
    } catch (err) {
      throw toLevelError(err, this.location);
    } finally {
      it.close();
    }
  }

  _snapshot(options: object): DistcacheSnapshot {
    return new DistcacheSnapshot(options, this.e.snapshot());
  }

  _iterator(options: PrivateRangeOptions): DistcacheIterator<KDefault, VDefault> {
    return new DistcacheIterator(this, options, this.openCursor(options));
  }

  _keys(options: PrivateRangeOptions): DistcacheKeyIterator<KDefault, VDefault> {
    return new DistcacheKeyIterator(this, options, this.openCursor(options));
  }

  _values(options: PrivateRangeOptions): DistcacheValueIterator<KDefault, VDefault> {
    return new DistcacheValueIterator(this, options, this.openCursor(options));
  }

  private openCursor(options: PrivateRangeOptions): Cursor {
    try {
      return new Cursor(this.e.iterator(scanOptions(options)), options.signal, this.location);
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }
}

/** The shared body of the three iterator kinds: an EngineIterator plus abort handling.
 *  The engine iterator is synchronous; every method here finishes in one turn. */
class Cursor {
  constructor(
    private readonly it: EngineIterator,
    private readonly signal: AbortSignal | undefined,
    private readonly location: string,
  ) {}

  /** With a signal, wait one microtask so an abort issued right after the call is honoured. */
  async checkpoint(): Promise<void> {
    if (this.signal === undefined) return;
    await undefined;
    if (this.signal.aborted) throw abortError();
  }

  next(): [Buffer, Buffer] | undefined {
    try {
      return this.it.next();
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  /** Up to `max` entries, mapped by `pick`. */
  take<T>(max: number, pick: (e: [Buffer, Buffer]) => T): T[] {
    const out: T[] = [];
    try {
      while (out.length < max) {
        const e = this.it.next();
        if (e === undefined) break;
        out.push(pick(e));
      }
    } catch (err) {
      throw toLevelError(err, this.location);
    }
    return out;
  }

  seek(target: Buffer): void {
    try {
      this.it.seek(target);
    } catch (err) {
      throw toLevelError(err, this.location);
    }
  }

  close(): void {
    this.it.close();
  }
}

function remainingOf(it: { limit: number; count: number }): number {
  return it.limit === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : it.limit - it.count;
}

export class DistcacheIterator<K, V> extends AbstractIterator<DistcacheLevel<K, V>, K, V> {
  readonly #c: Cursor;
  readonly #keys: boolean;
  readonly #values: boolean;

  constructor(db: DistcacheLevel<K, V>, options: PrivateRangeOptions, cursor: Cursor) {
    super(db, options as unknown as AbstractIteratorOptions<K, V>);
    this.#c = cursor;
    this.#keys = options.keys !== false;
    this.#values = options.values !== false;
  }

  #pick = (e: [Buffer, Buffer]): [Buffer | undefined, Buffer | undefined] =>
    [this.#keys ? e[0] : undefined, this.#values ? e[1] : undefined];

  async _next(): Promise<[Buffer | undefined, Buffer | undefined] | undefined> {
    await this.#c.checkpoint();
    const e = this.#c.next();
    return e === undefined ? undefined : this.#pick(e);
  }

  async _nextv(size: number, _options: object): Promise<[Buffer | undefined, Buffer | undefined][]> {
    await this.#c.checkpoint();
    return this.#c.take(size, this.#pick);
  }

  async _all(_options: object): Promise<[Buffer | undefined, Buffer | undefined][]> {
    await this.#c.checkpoint();
    return this.#c.take(remainingOf(this), this.#pick);
  }

  _seek(target: Buffer, _options: object): void {
    this.#c.seek(target);
  }

  async _close(): Promise<void> {
    this.#c.close();
  }
}

export class DistcacheKeyIterator<K, V> extends AbstractKeyIterator<DistcacheLevel<K, V>, K> {
  readonly #c: Cursor;

  constructor(db: DistcacheLevel<K, V>, options: PrivateRangeOptions, cursor: Cursor) {
    super(db, options as unknown as AbstractKeyIteratorOptions<K>);
    this.#c = cursor;
  }

  async _next(): Promise<Buffer | undefined> {
    await this.#c.checkpoint();
    return this.#c.next()?.[0];
  }

  async _nextv(size: number, _options: object): Promise<Buffer[]> {
    await this.#c.checkpoint();
    return this.#c.take(size, pickKey);
  }

  async _all(_options: object): Promise<Buffer[]> {
    await this.#c.checkpoint();
    return this.#c.take(remainingOf(this), pickKey);
  }

  _seek(target: Buffer, _options: object): void {
    this.#c.seek(target);
  }

  async _close(): Promise<void> {
    this.#c.close();
  }
}

export class DistcacheValueIterator<K, V> extends AbstractValueIterator<DistcacheLevel<K, V>, K, V> {
  readonly #c: Cursor;

  constructor(db: DistcacheLevel<K, V>, options: PrivateRangeOptions, cursor: Cursor) {
    super(db, options as unknown as AbstractValueIteratorOptions<K, V>);
    this.#c = cursor;
  }

  async _next(): Promise<Buffer | undefined> {
    await this.#c.checkpoint();
    return this.#c.next()?.[1];
  }

  async _nextv(size: number, _options: object): Promise<Buffer[]> {
    await this.#c.checkpoint();
    return this.#c.take(size, pickValue);
  }

  async _all(_options: object): Promise<Buffer[]> {
    await this.#c.checkpoint();
    return this.#c.take(remainingOf(this), pickValue);
  }

  _seek(target: Buffer, _options: object): void {
    this.#c.seek(target);
  }

  async _close(): Promise<void> {
    this.#c.close();
  }
}

const pickKey = (e: [Buffer, Buffer]): Buffer => e[0];
const pickValue = (e: [Buffer, Buffer]): Buffer => e[1];

function engineSnapshotOf(s: unknown): Snapshot | undefined {
  if (s === undefined || s === null) return undefined;
  if (s instanceof DistcacheSnapshot) return s.engineSnapshot;
  throw levelError('LEVEL_NOT_SUPPORTED', 'snapshot was not created by a DistcacheLevel database');
}

function readOptions(snapshot: unknown): { snapshot: Snapshot } | undefined {
  const s = engineSnapshotOf(snapshot);
  return s === undefined ? undefined : { snapshot: s };
}

/** Range options → engine ScanOptions. abstract-level gives gte precedence over gt and lte
 *  over lt (the engine would intersect them), so only one bound per side is passed on.
 *  Limits are counted by abstract-level itself. */
function scanOptions(o: PrivateRangeOptions): ScanOptions {
  const s: ScanOptions = { reverse: o.reverse };
  if (o.gte !== undefined) s.gte = o.gte;
  else if (o.gt !== undefined) s.gt = o.gt;
  if (o.lte !== undefined) s.lte = o.lte;
  else if (o.lt !== undefined) s.lt = o.lt;
  const snap = engineSnapshotOf(o.snapshot);
  if (snap !== undefined) s.snapshot = snap;
  return s;
}

type LevelCode =
  | 'LEVEL_DATABASE_NOT_OPEN'
  | 'LEVEL_NOT_SUPPORTED'
  | 'LEVEL_ABORTED'
  | 'LEVEL_CORRUPTION'
  | 'LEVEL_IO_ERROR'
  | 'LEVEL_LOCKED'
  | 'LEVEL_INVALID_KEY'
  | 'LEVEL_INVALID_VALUE';

function levelError(code: LevelCode, message: string, cause?: unknown): Error & { code: LevelCode } {
  const err = new Error(message, cause === undefined ? undefined : { cause }) as Error & { code: LevelCode };
  err.code = code;
  return err;
}

function abortError(): Error {
  const err = levelError('LEVEL_ABORTED', 'Operation has been aborted');
  err.name = 'AbortError';
  return err;
}

/** Engine KvError codes → abstract-level's documented codes; the engine error is the cause. */
function toLevelError(err: unknown, location: string): unknown {
  if (!(err instanceof KvError)) return err;
  switch (err.code) {
    case 'NOT_FOUND':
      // abstract-level wraps this in LEVEL_DATABASE_NOT_OPEN; its suite (like users of
      // classic-level) looks for "does not exist" in the cause's message.
      return new Error(`Database ${location} does not exist (createIfMissing is false)`, { cause: err });
    case 'CORRUPTION':
      return levelError('LEVEL_CORRUPTION', err.message, err);
    case 'IO_ERROR':
      return levelError('LEVEL_IO_ERROR', err.message, err);
    case 'LOCKED':
      return levelError('LEVEL_LOCKED', err.message, err);
    case 'CLOSED':
      return levelError('LEVEL_DATABASE_NOT_OPEN', err.message, err);
    case 'KEY_TOO_LARGE':
      return levelError('LEVEL_INVALID_KEY', err.message, err);
    case 'VALUE_TOO_LARGE':
      return levelError('LEVEL_INVALID_VALUE', err.message, err);
    default:
      return err;
  }
}
