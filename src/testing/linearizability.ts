// Linearizability checker for a versioned key-value register (put / get / delete / cas).
//
// Algorithm: the history is split by key (linearizability is compositional, so every key is
// checked on its own), then each key's sub-history is searched with Wing & Gong's algorithm as
// refined by Lowe: the call and return events form a time-ordered linked list; the search
// repeatedly takes a pending call at the front, applies it to the model and "lifts" it (removes
// both of its events), backtracking when it meets the return of an op it has not linearized yet.
// Configurations already explored — (set of linearized ops, model state) — are remembered and
// never explored twice (the memoization Porcupine calls its cache). A per-key state budget and an
// overall deadline turn a pathological search into an `ok: 'unknown'` result instead of a hang.
//
// Operations whose outcome is unknown (timed out / failed ambiguously) have returnTime = +Infinity:
// they may take effect at any point after their invocation, or never. Such a get constrains
// nothing and is dropped; such a write is "optional": the search may linearize it (with its
// effect, its version unknown) or leave it out, and succeeds once every op with a known outcome
// has been linearized.
//
// Versions are tracked as the set of possible versions of the key's last write (an interval
// minus a few exclusions), so writes whose version is not reported (unknown outcome, or a client
// that does not return one) are handled exactly under both version models; a later read or cas
// that reports a version pins it down. test/linearizability/reference.test.ts cross-checks the
// verdicts against a brute-force enumeration with concrete versions.
//
// Soundness of the explanation: when a key fails, the checker looks for the earliest time T such
// that the history "cut" at T (ops invoked after T removed, ops still running at T turned into
// unknown-outcome ops) is already not linearizable. Any linearization of the full history would
// induce one of the cut history, so the cut history is genuine evidence, and usually small.

import { performance } from 'node:perf_hooks';

export type OpKind = 'put' | 'get' | 'delete' | 'cas';
export type ClientId = string | number;

/** What the client asked for. put: `value`. cas: `expectedVersion` (0 = key absent) and `value`.
 *  get / delete: nothing. */
export interface OpInput {
  value?: string | undefined;
  expectedVersion?: number | undefined;
}

/** What the client observed.
 *  - put: `{ ok: true, version? }` — version of the new value if the server reports it.
 *  - get: `{ ok: true, found: true, value, version? }` or `{ ok: true, found: false }`
 *    (`found` defaults to `value !== undefined`).
 *  - delete: `{ ok: true, found?, version? }` — found: whether the key existed; version: the
 *    tombstone's version (only meaningful with `deleteAdvancesVersion`).
 *  - cas: `{ ok: true, version? }` when the swap happened, `{ ok: false, version? }` when the
 *    expected version did not match (version: the current version observed, 0 if absent).
 *  For put / get / delete, `ok: false` means the operation definitely did not take effect and is
 *  ignored. An error that is not a cas mismatch but definitely had no effect should be recorded
 *  with `HistoryRecorder.discard` (or left out of the history). */
export interface OpOutput {
  ok: boolean;
  value?: string | undefined;
  version?: number | undefined;
  found?: boolean | undefined;
}

export interface Operation {
  clientId: ClientId;
  key: string;
  kind: OpKind;
  input: OpInput;
  /** 'unknown' when the call timed out / failed ambiguously: it may or may not have taken effect. */
  output: OpOutput | 'unknown';
  invokeTime: number;
  /** +Infinity for an unknown outcome (normalised to +Infinity whenever output is 'unknown'). */
  returnTime: number;
}

export interface VersionModel {
  /** 'increasing' (default): each write's version is greater than the previous write's.
   *  'plusOne': each write's version is exactly the previous one + 1. */
  step?: 'increasing' | 'plusOne';
  /** Whether deleting a present key is a write that consumes a version (default true). When
   *  false the key's version counter is untouched by deletes. Deleting an absent key never
   *  changes anything. An absent key reads (and cas-matches) as version 0 either way. */
  deleteAdvancesVersion?: boolean;
}

export interface CheckOptions {
  versions?: VersionModel;
  /** The state of a key before the history (default: absent, version 0). */
  initial?: (key: string) => { value: string; version: number } | undefined;
  /** Bound on explored configurations per key (default 1,000,000). */
  maxStates?: number;
  /** Bound on the whole check's wall time in ms (default 60,000). */
  timeoutMs?: number;
  /** Build a minimized explanation on failure (default true). */
  explain?: boolean;
}

export type CheckResult =
  | { ok: true; stats: CheckStats }
  | {
      ok: false;
      key: string;
      /** Human readable: the earliest failing cut of the key's history, the longest partial
       *  linearization found in it and, for each op that could be next, why it cannot be. */
      explanation: string;
      /** The failing sub-history (original op objects, by invocation time): the key's ops
       *  invoked up to the earliest failing cut; ops still running at the cut were treated as
       *  unknown-outcome. With `explain: false`, all of the key's ops. */
      ops: Operation[];
      stats: CheckStats;
    }
  | { ok: 'unknown'; key: string; reason: string; stats: CheckStats };

export interface CheckStats {
  keys: number;
  ops: number;
  /** Configurations explored, summed over keys. */
  states: number;
  ms: number;
}

// ---------------------------------------------------------------------------------------------
// Prepared operations and the model.

const PUT = 0;
const GET = 1;
const DEL = 2;
const CAS = 3;
const KIND_CODE: Record<OpKind, number> = { put: PUT, get: GET, delete: DEL, cas: CAS };

interface POp {
  /** Index of the op in the array given to checkHistory. */
  idx: number;
  src: Operation;
  kind: number;
  inv: number;
  ret: number;
  /** Unknown outcome: may be linearized or left out. */
  optional: boolean;
  /** Interned value: put / cas input value, get output value; -1 for none. */
  val: number;
  /** get / delete: -1 not reported, 0 not found, 1 found. */
  found: number;
  /** Reported version, NaN if not reported. */
  ver: number;
  /** cas: expected version. */
  exp: number;
  /** cas: swap happened. */
  ok: boolean;
}

/** Model state of one key: present?, interned value, and the set of possible versions of the
 *  key's last write (0 before any write): the interval [lo, hi] minus the excluded versions `ex`
 *  (sorted, strictly inside the interval, so lo and hi are always possible). Exclusions come from
 *  failed cas ops that saw "not version e" while the version was not yet pinned down. States are
 *  immutable. */
interface St {
  readonly p: boolean;
  readonly v: number;
  readonly lo: number;
  readonly hi: number;
  readonly ex: readonly number[];
}

const NO_EX: readonly number[] = [];

interface Cfg {
  plusOne: boolean;
  delWrites: boolean;
}

/** A mutable slot for the reason a step is impossible (only filled when asked for). */
interface Why {
  msg: string;
}

function possible(s: St, x: number): boolean {
  return x >= s.lo && x <= s.hi && (s.ex.length === 0 || !s.ex.includes(x));
}

function pin(s: St, x: number): St {
  return s.lo === x && s.hi === x ? s : { p: s.p, v: s.v, lo: x, hi: x, ex: NO_EX };
}

/** s without version x (x possible, and not the only possibility). */
function exclude(s: St, x: number): St {
  let lo = s.lo;
  let hi = s.hi;
  const ex = s.ex.slice();
  if (x === lo) {
    lo++;
    while (ex.length > 0 && ex[0] === lo) {
      ex.shift();
      lo++;
    }
  } else if (x === hi) {
    hi--;
    while (ex.length > 0 && ex[ex.length - 1] === hi) {
      ex.pop();
      hi--;
    }
  } else {
    let i = 0;
    while (i < ex.length && ex[i]! < x) i++;
    ex.splice(i, 0, x);
  }
  return { p: s.p, v: s.v, lo, hi, ex: ex.length === 0 ? NO_EX : ex };
}

/** The version set after a write reporting `w` (NaN: unreported) on top of s, or null if
 *  impossible. Only lo, hi, ex of the result are meaningful. */
function writeVersion(s: St, w: number, cfg: Cfg): { lo: number; hi: number; ex: readonly number[] } | null {
  if (cfg.plusOne) {
    if (Number.isNaN(w)) return { lo: s.lo + 1, hi: s.hi + 1, ex: s.ex.length === 0 ? NO_EX : s.ex.map((x) => x + 1) };
    return possible(s, w - 1) ? { lo: w, hi: w, ex: NO_EX } : null;
  }
  // Some possible previous version is below w iff the smallest one (lo) is.
  if (Number.isNaN(w)) return { lo: s.lo + 1, hi: Infinity, ex: NO_EX };
  return w > s.lo ? { lo: w, hi: w, ex: NO_EX } : null;
}

function step(s: St, o: POp, cfg: Cfg, values: string[], why?: Why): St | null {
  switch (o.kind) {
    case GET: {
      if (o.found === 1) {
        if (!s.p) {
          if (why) why.msg = `it read ${showVal(values, o.val)} but the key is absent`;
          return null;
        }
        if (s.v !== o.val) {
          if (why) why.msg = `it read ${showVal(values, o.val)} but the key holds ${showState(s, values)}`;
          return null;
        }
        if (!Number.isNaN(o.ver)) {
          if (!possible(s, o.ver)) {
            if (why) why.msg = `it read version ${o.ver} but the key holds ${showState(s, values)}`;
            return null;
          }
          return pin(s, o.ver);
        }
        return s;
      }
      if (s.p) {
        if (why) why.msg = `it found nothing but the key holds ${showState(s, values)}`;
        return null;
      }
      return s;
    }
    case PUT: {
      const wv = writeVersion(s, o.ver, cfg);
      if (wv === null) {
        if (why) why.msg = `it wrote version ${o.ver} after ${showState(s, values)} (${versionRule(cfg)})`;
        return null;
      }
      return { p: true, v: o.val, lo: wv.lo, hi: wv.hi, ex: wv.ex };
    }
    case DEL: {
      if (o.found !== -1 && o.found === 1 !== s.p) {
        if (why) why.msg = `it reported found=${o.found === 1} but the key ${s.p ? 'holds ' : 'is '}${showState(s, values)}`;
        return null;
      }
      if (!s.p) return s;
      if (!cfg.delWrites) return { p: false, v: -1, lo: s.lo, hi: s.hi, ex: s.ex };
      const wv = writeVersion(s, o.ver, cfg);
      if (wv === null) {
        if (why) why.msg = `its tombstone has version ${o.ver} after ${showState(s, values)} (${versionRule(cfg)})`;
        return null;
      }
      return { p: false, v: -1, lo: wv.lo, hi: wv.hi, ex: wv.ex };
    }
    case CAS: {
      const e = o.exp;
      const canMatch = e === 0 ? !s.p : s.p && possible(s, e);
      if (o.optional || o.ok) {
        if (!canMatch) {
          if (why) why.msg = `it expected version ${e} but the key ${s.p ? 'holds ' : 'is '}${showState(s, values)}`;
          return null;
        }
        const wv = writeVersion(e === 0 ? s : pin(s, e), o.ver, cfg);
        if (wv === null) {
          if (why) why.msg = `it wrote version ${o.ver} over version ${e} (${versionRule(cfg)})`;
          return null;
        }
        return { p: true, v: o.val, lo: wv.lo, hi: wv.hi, ex: wv.ex };
      }
      // Mismatch: the observable version (0 when absent) is not e.
      if (!s.p) {
        if (e === 0 || (!Number.isNaN(o.ver) && o.ver !== 0)) {
          if (why) why.msg = e === 0 ? `it failed although the key is absent, as expected` : `it saw version ${o.ver} but the key is absent (version 0)`;
          return null;
        }
        return s;
      }
      if (e !== 0 && s.lo === e && s.hi === e) {
        if (why) why.msg = `it failed although the key holds ${showState(s, values)}, matching expected version ${e}`;
        return null;
      }
      if (!Number.isNaN(o.ver)) {
        if (o.ver === e || !possible(s, o.ver)) {
          if (why) why.msg = `it saw version ${o.ver} (expected ${e}) but the key holds ${showState(s, values)}`;
          return null;
        }
        return pin(s, o.ver);
      }
      return e !== 0 && possible(s, e) ? exclude(s, e) : s;
    }
    default:
      throw new Error(`bad kind ${o.kind}`);
  }
}

function versionRule(cfg: Cfg): string {
  return cfg.plusOne ? 'versions must go up by exactly 1' : 'versions must increase';
}

function showVal(values: string[], v: number): string {
  const s = values[v];
  return s === undefined ? '(none)' : JSON.stringify(s.length > 40 ? s.slice(0, 37) + '...' : s);
}

function showVersion(lo: number, hi: number, ex: readonly number[] = NO_EX): string {
  if (lo === hi) return `v${lo}`;
  const not = ex.length > 0 ? ` except ${ex.join(',')}` : '';
  return (hi === Infinity ? `v>=${lo}` : `v${lo}..${hi}`) + not;
}

function showState(s: St, values: string[]): string {
  if (!s.p) return s.lo === 0 && s.hi === 0 ? 'absent' : `absent (last write ${showVersion(s.lo, s.hi, s.ex)})`;
  return `${showVal(values, s.v)} @${showVersion(s.lo, s.hi, s.ex)}`;
}

// ---------------------------------------------------------------------------------------------
// The search.

interface SearchResult {
  verdict: 'ok' | 'fail' | 'unknown';
  states: number;
  /** With `track`: the partial linearization seen that covers the most known-outcome ops. */
  best?: { order: number[]; state: St };
}

interface Budget {
  maxStates: number;
  deadline: number;
}

/** 32-bit mixer (murmur3 finalizer). */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function sameEx(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function stateHash(s: St, seed: number): number {
  let h = mix(seed ^ (s.p ? 0x9e3779b9 : 0x7f4a7c15));
  h = mix(h ^ (s.v + 1));
  h = mix(h ^ (s.lo | 0) ^ Math.floor(s.lo / 4294967296));
  h = mix(h ^ (s.hi === Infinity ? 0x5bd1e995 : (s.hi | 0) ^ Math.floor(s.hi / 4294967296)));
  for (const x of s.ex) h = mix(h ^ (x | 0));
  return h;
}

interface CacheEntry {
  /** Linearized set, compressed: [k, i1, i2, ...] = ops 0..k-1 plus the listed ones (> k). */
  snap: Int32Array;
  st: St;
  next: CacheEntry | undefined;
}

/** Wing & Gong / Lowe search over `ops` (sorted by invocation time). */
function search(ops: POp[], init: St, cfg: Cfg, values: string[], budget: Budget, track: boolean): SearchResult {
  const n = ops.length;
  if (n === 0) return { verdict: 'ok', states: 0 };
  // Events: call of op i = 2i, return = 2i+1; doubly-linked list with head sentinel 2n.
  const HEAD = 2 * n;
  const events: number[] = [];
  for (let i = 0; i < 2 * n; i++) events.push(i);
  const time = (e: number): number => (e & 1 ? ops[e >> 1]!.ret : ops[e >> 1]!.inv);
  events.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b);
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  let last = HEAD;
  for (const e of events) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = -1;
  prev[HEAD] = -1;
  const unlink = (x: number): void => {
    const p = prev[x]!;
    const q = next[x]!;
    next[p] = q;
    if (q !== -1) prev[q] = p;
  };
  const relink = (x: number): void => {
    const p = prev[x]!;
    const q = next[x]!;
    next[p] = x;
    if (q !== -1) prev[q] = x;
  };

  // Zobrist hashes of the linearized set (two independent 32-bit halves).
  const z1 = new Uint32Array(n);
  const z2 = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    z1[i] = mix(i * 2 + 0x1234567);
    z2[i] = mix(i * 2 + 0x7654321 + 1);
  }
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  let h1 = 0;
  let h2 = 0;
  const cache = new Map<number, CacheEntry>();
  let states = 0;

  const snapshot = (): Int32Array => {
    let w = 0;
    while (w < words && bits[w] === 0xffffffff) w++;
    let k = w * 32;
    if (w < words) {
      const x = bits[w]!;
      while (k < n && x & (1 << (k & 31))) k++;
    }
    const extra: number[] = [k];
    for (let i = k + 1; i < n; i++) {
      const word = bits[i >>> 5]!;
      if (word === 0) {
        i = (i | 31);
        continue;
      }
      if (word & (1 << (i & 31))) extra.push(i);
    }
    return Int32Array.from(extra);
  };
  /** Whether the current linearized set equals a snapshot's, without allocating. */
  const sameSet = (snap: Int32Array): boolean => {
    const k = snap[0]!;
    const fw = k >>> 5;
    for (let w = 0; w < fw; w++) if (bits[w] !== 0xffffffff) return false;
    let j = 1;
    for (let w = fw; w < words; w++) {
      let expected = w === fw && (k & 31) !== 0 ? 0xffffffff >>> (32 - (k & 31)) : 0;
      while (j < snap.length && snap[j]! >>> 5 === w) expected |= 1 << (snap[j++]! & 31);
      if (bits[w] !== expected >>> 0) return false;
    }
    return true;
  };
  /** Adds the current configuration (with `st`) to the cache; false if it was already there. */
  const remember = (st: St): boolean => {
    const key = ((h1 ^ stateHash(st, 1)) >>> 0) + ((h2 ^ stateHash(st, 2)) & 0x1fffff) * 4294967296;
    const head = cache.get(key);
    for (let e = head; e !== undefined; e = e.next) {
      if (e.st.p === st.p && e.st.v === st.v && e.st.lo === st.lo && e.st.hi === st.hi && sameEx(e.st.ex, st.ex) && sameSet(e.snap)) {
        return false;
      }
    }
    cache.set(key, { snap: snapshot(), st, next: head });
    return true;
  };

  let required = 0;
  for (const o of ops) if (!o.optional) required++;
  const stackOp: number[] = [];
  const stackSt: St[] = [];
  let state = init;
  let best: { order: number[]; state: St } | undefined = track ? { order: [], state } : undefined;
  let bestRequired = required;
  let iter = 0;
  let e = next[HEAD]!;
  for (;;) {
    if (required === 0) return best ? { verdict: 'ok', states, best } : { verdict: 'ok', states };
    if ((++iter & 0x3ff) === 0 && performance.now() > budget.deadline) return best ? { verdict: 'unknown', states, best } : { verdict: 'unknown', states };
    if (e !== -1 && (e & 1) === 0) {
      const i = e >> 1;
      const o = ops[i]!;
      const ns = step(state, o, cfg, values);
      if (ns !== null) {
        bits[i >>> 5]! |= 1 << (i & 31);
        h1 ^= z1[i]!;
        h2 ^= z2[i]!;
        if (remember(ns)) {
          if (++states > budget.maxStates) return best ? { verdict: 'unknown', states, best } : { verdict: 'unknown', states };
          stackOp.push(i);
          stackSt.push(state);
          state = ns;
          unlink(2 * i);
          unlink(2 * i + 1);
          if (!o.optional) required--;
          if (track && required < bestRequired) {
            best = { order: stackOp.slice(), state };
            bestRequired = required;
          }
          e = next[HEAD]!;
          continue;
        }
        bits[i >>> 5]! &= ~(1 << (i & 31));
        h1 ^= z1[i]!;
        h2 ^= z2[i]!;
      }
      e = next[e]!;
      continue;
    }
    // A return of an op not yet linearized (or, defensively, the end of the list): backtrack.
    const i = stackOp.pop();
    if (i === undefined) return best ? { verdict: 'fail', states, best } : { verdict: 'fail', states };
    state = stackSt.pop()!;
    relink(2 * i + 1);
    relink(2 * i);
    bits[i >>> 5]! &= ~(1 << (i & 31));
    h1 ^= z1[i]!;
    h2 ^= z2[i]!;
    if (!ops[i]!.optional) required++;
    e = next[2 * i]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Preparation, cutting, explanation.

function validate(op: Operation, idx: number): void {
  const bad = (msg: string): never => {
    throw new TypeError(`history op #${idx} (${op.kind} on ${JSON.stringify(op.key)}): ${msg}`);
  };
  if (!(op.kind in KIND_CODE)) bad(`unknown kind ${String(op.kind)}`);
  if (typeof op.key !== 'string') bad('key must be a string');
  if (typeof op.invokeTime !== 'number' || Number.isNaN(op.invokeTime) || !Number.isFinite(op.invokeTime)) {
    bad('invokeTime must be a finite number');
  }
  if ((op.kind === 'put' || op.kind === 'cas') && typeof op.input.value !== 'string') bad('input.value must be a string');
  if (op.kind === 'cas' && typeof op.input.expectedVersion !== 'number') bad('input.expectedVersion must be a number');
  if (op.output === 'unknown') return;
  if (typeof op.returnTime !== 'number' || !Number.isFinite(op.returnTime)) {
    bad('returnTime must be finite when the output is known (use output "unknown")');
  }
  if (op.returnTime < op.invokeTime) bad('returnTime < invokeTime');
  if (op.kind === 'get' && op.output.ok && (op.output.found ?? op.output.value !== undefined) && typeof op.output.value !== 'string') {
    bad('a get that found the key must report its value');
  }
}

/** Turns a key's ops into POps (sorted by invocation), dropping ops that constrain nothing. */
function prepare(list: { op: Operation; idx: number }[], intern: (s: string) => number): POp[] {
  const out: POp[] = [];
  for (const { op, idx } of list) {
    const kind = KIND_CODE[op.kind];
    const unknown = op.output === 'unknown';
    const output = op.output === 'unknown' ? undefined : op.output;
    if (unknown && kind === GET) continue; // a read with no result constrains nothing
    if (output && !output.ok && kind !== CAS) continue; // definitely did not happen
    let val = -1;
    if (kind === PUT || kind === CAS) val = intern(op.input.value ?? '');
    let found = -1;
    if (kind === GET && output) {
      const f = output.found ?? output.value !== undefined;
      found = f ? 1 : 0;
      if (f) val = intern(output.value ?? '');
    }
    if (kind === DEL && output && output.found !== undefined) found = output.found ? 1 : 0;
    out.push({
      idx,
      src: op,
      kind,
      inv: op.invokeTime,
      ret: unknown ? Infinity : op.returnTime,
      optional: unknown,
      val,
      found,
      ver: output?.version ?? NaN,
      exp: op.input.expectedVersion ?? 0,
      ok: output?.ok ?? false,
    });
  }
  out.sort((a, b) => a.inv - b.inv || a.ret - b.ret || a.idx - b.idx);
  return out;
}

/** The history as it stood at time t: ops invoked later are gone, ops still running become
 *  unknown-outcome ops (reads among them are dropped). Linearizable whenever the full one is. */
function cut(ops: POp[], t: number): POp[] {
  const out: POp[] = [];
  for (const o of ops) {
    if (o.inv > t) continue;
    if (o.ret <= t) out.push(o);
    else if (o.kind !== GET) out.push({ ...o, optional: true, ret: Infinity, found: -1, ver: NaN, ok: false });
  }
  return out;
}

function showOp(o: POp, values: string[], t0: number): string {
  const src = o.src;
  const input = src.input;
  let call: string;
  switch (src.kind) {
    case 'put':
      call = `put(${JSON.stringify(input.value)})`;
      break;
    case 'cas':
      call = `cas(expect v${input.expectedVersion}, ${JSON.stringify(input.value)})`;
      break;
    default:
      call = `${src.kind}()`;
  }
  let res: string;
  const out = src.output;
  if (out === 'unknown') res = '? (unknown outcome)';
  else if (src.kind === 'get') {
    res = o.found === 1 ? `${showVal(values, o.val)}${out.version !== undefined ? ` @v${out.version}` : ''}` : 'not found';
  } else if (src.kind === 'cas') {
    res = out.ok ? `ok${out.version !== undefined ? ` v${out.version}` : ''}` : `mismatch${out.version !== undefined ? ` (current v${out.version})` : ''}`;
  } else {
    const parts = ['ok'];
    if (out.found !== undefined) parts.push(out.found ? 'found' : 'not found');
    if (out.version !== undefined) parts.push(`v${out.version}`);
    res = parts.join(' ');
  }
  const ret = Number.isFinite(src.returnTime) && src.output !== 'unknown' ? String(src.returnTime - t0) : '∞';
  const cutNote = o.optional && src.output !== 'unknown' ? ' [still running at the cut: treated as unknown]' : '';
  return `#${o.idx} client ${String(src.clientId)}: ${call} -> ${res}   [${src.invokeTime - t0} .. ${ret}]${cutNote}`;
}

function explain(
  key: string,
  ops: POp[],
  init: St,
  cfg: Cfg,
  values: string[],
  budget: Budget,
): { explanation: string; ops: Operation[] } {
  // Earliest failing cut (failure is monotone in the cut time, so binary search).
  const times = [...new Set(ops.filter((o) => !o.optional).map((o) => o.ret))].sort((a, b) => a - b);
  let sub = ops;
  let cutAt: number | undefined;
  let lo = 0;
  let hi = times.length - 1; // the last cut equals the full history, known to fail
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const r = search(cut(ops, times[mid]!), init, cfg, values, budget, false);
    if (r.verdict === 'fail') hi = mid;
    else lo = mid + 1;
  }
  if (times.length > 0 && lo < times.length - 1) {
    cutAt = times[lo]!;
    sub = cut(ops, cutAt);
  }
  const r = search(sub, init, cfg, values, budget, true);
  const t0 = ops.length > 0 ? ops[0]!.inv : 0;
  const lines: string[] = [];
  lines.push(`key ${JSON.stringify(key)}: the history of this key is not linearizable.`);
  if (cutAt !== undefined) {
    lines.push(
      `It already fails when cut at t=${cutAt - t0} (${sub.length} of ${ops.length} ops: those invoked by then; ` +
        `ops still running are treated as unknown-outcome). Times are relative to the key's first invocation.`,
    );
  } else {
    lines.push(`No earlier cut of its ${ops.length} ops fails. Times are relative to the key's first invocation.`);
  }
  const best = r.best;
  const order = best?.order ?? [];
  const state = best?.state ?? init;
  const linearized = new Set(order);
  const SHOW = 8;
  lines.push(
    `Longest partial linearization found: ${order.length} of ${sub.length} ops` +
      (order.length > SHOW ? ` (last ${SHOW} shown):` : order.length > 0 ? ':' : '.'),
  );
  if (order.length === 0) lines.push(`  (none) — initial state: ${showState(init, values)}`);
  for (const i of order.slice(-SHOW)) lines.push(`  ${showOp(sub[i]!, values, t0)}`);
  lines.push(`  => state: ${showState(state, values)}`);
  // The op that blocks: the earliest-returning required op not linearized.
  let blocker: POp | undefined;
  sub.forEach((o, i) => {
    if (!linearized.has(i) && !o.optional && (blocker === undefined || o.ret < blocker.ret)) blocker = o;
  });
  const culprits: POp[] = [];
  if (blocker !== undefined) {
    lines.push(
      `None of the pending ops can come next, yet ${showOpShort(blocker)} returned at t=${blocker.ret - t0} and must take effect by then:`,
    );
    const MAX_LINES = 20;
    sub.forEach((o, i) => {
      if (linearized.has(i) || o.inv > blocker!.ret) return;
      culprits.push(o);
      if (culprits.length > MAX_LINES && o !== blocker) return;
      const why: Why = { msg: '' };
      const ns = step(state, o, cfg, values, why);
      const reason = ns === null ? why.msg : 'it could apply here, but every continuation was a dead end';
      lines.push(`  ${showOp(o, values, t0)}\n      -> ${reason}`);
    });
    if (culprits.length > MAX_LINES) lines.push(`  ... and ${culprits.length - MAX_LINES} more pending ops`);
  }
  if (culprits.length > 0) {
    const names = culprits.slice(0, 20).map(showOpShort).join(', ');
    lines.push(`Ops that could not be linearized: ${names}${culprits.length > 20 ? `, ... (${culprits.length})` : ''}.`);
  }
  if (r.verdict === 'unknown') lines.push('(The search for this explanation ran out of budget; the partial linearization may not be the longest.)');
  return { explanation: lines.join('\n'), ops: sub.map((o) => o.src) };
}

function showOpShort(o: POp): string {
  return `#${o.idx} (client ${String(o.src.clientId)} ${o.src.kind})`;
}

// ---------------------------------------------------------------------------------------------
// Entry point.

export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const started = performance.now();
  const cfg: Cfg = {
    plusOne: options.versions?.step === 'plusOne',
    delWrites: options.versions?.deleteAdvancesVersion ?? true,
  };
  const budget: Budget = {
    maxStates: options.maxStates ?? 1_000_000,
    deadline: started + (options.timeoutMs ?? 60_000),
  };
  const byKey = new Map<string, { op: Operation; idx: number }[]>();
  history.forEach((op, idx) => {
    validate(op, idx);
    let l = byKey.get(op.key);
    if (l === undefined) byKey.set(op.key, (l = []));
    l.push({ op, idx });
  });
  const stats: CheckStats = { keys: byKey.size, ops: history.length, states: 0, ms: 0 };
  const done = (): CheckStats => ({ ...stats, ms: performance.now() - started });
  let undecided: { key: string; reason: string } | undefined;
  for (const [key, list] of byKey) {
    const values: string[] = [];
    const ids = new Map<string, number>();
    const intern = (s: string): number => {
      let id = ids.get(s);
      if (id === undefined) {
        id = values.length;
        values.push(s);
        ids.set(s, id);
      }
      return id;
    };
    const ops = prepare(list, intern);
    const start = options.initial?.(key);
    const init: St = start
      ? { p: true, v: intern(start.value), lo: start.version, hi: start.version, ex: NO_EX }
      : { p: false, v: -1, lo: 0, hi: 0, ex: NO_EX };
    const r = search(ops, init, cfg, values, budget, false);
    stats.states += r.states;
    if (r.verdict === 'fail') {
      if (options.explain === false) {
        return { ok: false, key, explanation: `key ${JSON.stringify(key)}: not linearizable`, ops: ops.map((o) => o.src), stats: done() };
      }
      const ex = explain(key, ops, init, cfg, values, { ...budget, deadline: Math.max(budget.deadline, performance.now() + 10_000) });
      return { ok: false, key, explanation: ex.explanation, ops: ex.ops, stats: done() };
    }
    if (r.verdict === 'unknown' && undecided === undefined) {
      const timedOut = performance.now() > budget.deadline;
      undecided = {
        key,
        reason: timedOut
          ? `key ${JSON.stringify(key)}: no verdict within the ${options.timeoutMs ?? 60_000} ms deadline (${r.states} states explored)`
          : `key ${JSON.stringify(key)}: no verdict after exploring ${r.states} states (maxStates ${budget.maxStates})`,
      };
      // Keep checking the other keys: a definite failure elsewhere is the more useful answer,
      // but once the deadline has passed every further key would be unknown too.
      if (timedOut) break;
    }
  }
  if (undecided !== undefined) return { ok: 'unknown', key: undecided.key, reason: undecided.reason, stats: done() };
  return { ok: true, stats: done() };
}

// ---------------------------------------------------------------------------------------------
// Recording histories.

export interface OpHandle {
  readonly id: number;
}

/** Records a history around real client calls:
 *    const h = rec.invoke(clientId, key, 'put', { value });
 *    try { const r = await client.put(key, value); rec.complete(h, { ok: true, version: r.version }); }
 *    catch { rec.fail(h); }   // ambiguous: may or may not have happened
 *  Times come from a monotonic ns clock (process.hrtime, relative to the recorder's creation). */
export class HistoryRecorder {
  private readonly ops: Operation[] = [];
  private readonly open: (boolean | undefined)[] = [];
  private readonly clock: () => number;

  constructor(clock?: () => number) {
    if (clock) this.clock = clock;
    else {
      const base = process.hrtime.bigint();
      this.clock = () => Number(process.hrtime.bigint() - base);
    }
  }

  invoke(clientId: ClientId, key: string, kind: OpKind, input: OpInput = {}): OpHandle {
    const id = this.ops.length;
    this.ops.push({ clientId, key, kind, input: { ...input }, output: 'unknown', invokeTime: this.clock(), returnTime: Infinity });
    this.open.push(true);
    return { id };
  }

  /** The call returned `output`. */
  complete(h: OpHandle, output: OpOutput): void {
    const op = this.take(h);
    op.returnTime = this.clock();
    op.output = { ...output };
  }

  /** The call failed ambiguously (timeout, connection lost): it may or may not take effect. */
  fail(h: OpHandle): void {
    const op = this.take(h);
    op.output = 'unknown';
    op.returnTime = Infinity;
  }

  /** The call definitely had no effect and observed nothing (e.g. rejected before sending). */
  discard(h: OpHandle): void {
    this.take(h);
    this.open[h.id] = undefined;
  }

  /** Runs `call` as one recorded op. `toOutput` maps its result; `onError` classifies a thrown
   *  error (default: unknown outcome). The error is rethrown. */
  async track<T>(
    clientId: ClientId,
    key: string,
    kind: OpKind,
    input: OpInput,
    call: () => Promise<T>,
    toOutput: (result: T) => OpOutput,
    onError: (err: unknown) => OpOutput | 'unknown' | 'discard' = () => 'unknown',
  ): Promise<T> {
    const h = this.invoke(clientId, key, kind, input);
    let result: T;
    try {
      result = await call();
    } catch (err) {
      const c = onError(err);
      if (c === 'unknown') this.fail(h);
      else if (c === 'discard') this.discard(h);
      else this.complete(h, c);
      throw err;
    }
    this.complete(h, toOutput(result));
    return result;
  }

  /** The recorded history (copies). Ops never completed count as unknown outcome. */
  history(): Operation[] {
    const out: Operation[] = [];
    this.ops.forEach((op, i) => {
      if (this.open[i] === undefined) return;
      out.push({ ...op, input: { ...op.input }, output: op.output === 'unknown' ? 'unknown' : { ...op.output } });
    });
    return out;
  }

  get size(): number {
    return this.ops.length;
  }

  private take(h: OpHandle): Operation {
    const op = this.ops[h.id];
    if (op === undefined || this.open[h.id] !== true) throw new Error(`op handle ${h.id} is not pending`);
    this.open[h.id] = false;
    return op;
  }
}
