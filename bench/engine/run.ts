// db_bench-style engine benchmark: distcache (LsmEngine) vs classic-level (LevelDB) vs lmdb,
// same workloads, same keys (seeded PRNG), same process, fresh directories under os.tmpdir().
//
//   npm run bench:engine -- [--num N] [--only distcache,classic-level,lmdb]
//                           [--workloads fillseq,fillrandom,overwrite,readrandom,readmissing,
//                                        seekrandom,deleterandom,fillrandom4k,syncwrite]
//                           [--modes single,batch] [--writers 1,16,64] [--sync-seconds 3]
//                           [--seed 301] [--distcache-options '{"memtableBytes":4194304}']
//   node dist/bench/engine/run.js --num 100000      (quick mode)
//
// Keys are 16 bytes (zero-padded decimal index), values 100 bytes (half random, half repeated,
// so lz4/snappy shrink them to about 50% as db_bench's generator does). Modes:
//   single  one operation per await: `await put(k, v)`, `await get(k)`, `await seek(k)`.
//   batch   1000 operations per await: writes as one atomic batch, reads as one getMany
//           (distcache and lmdb: a synchronous loop of gets), seeks as 1000 concurrent seeks.
// Workloads (N = --num):
//   fillseq       N puts, keys in order, fresh store
//   fillrandom    N puts, a seeded random permutation of the N keys, fresh store
//   overwrite     N puts, uniformly random existing keys (same store)
//   readrandom    N gets of uniformly random existing keys
//   readmissing   N gets of absent keys that sort between existing ones
//   seekrandom    N/10 seeks to random existing keys, each reading 11 entries (seek + 10 nexts)
//   deleterandom  N deletes of uniformly random keys
//   fillrandom4k  N/10 puts of 4 KiB values in random order, fresh store
//   syncwrite     C concurrent writers doing durable puts for --sync-seconds each; ops/s and
//                 device flushes/s (from /proc/diskstats, machine-wide) and distcache's own
//                 WAL fsyncs/s (group commit: fsyncs << ops when C > 1)
// Durability in all but syncwrite: writes survive a process crash, not power loss (see
// stores.ts): distcache walSync 'off', classic-level sync:false, lmdb noSync.
import { performance } from 'node:perf_hooks';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LsmOptions } from '../../src/lsm/types.js';
import { openStore, STORE_NAMES, type BatchOp, type BenchStore, type StoreName } from './stores.js';

// ---------------------------------------------------------------- arguments

const WORKLOADS = ['fillseq', 'fillrandom', 'overwrite', 'readrandom', 'readmissing', 'seekrandom', 'deleterandom', 'fillrandom4k', 'syncwrite'] as const;
type Workload = (typeof WORKLOADS)[number];
type Mode = 'single' | 'batch';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function listArg<T extends string>(name: string, all: readonly T[]): T[] {
  const v = arg(name);
  if (v === undefined) return [...all];
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of items) if (!all.includes(s as T)) throw new Error(`--${name}: unknown ${s}; expected some of ${all.join(',')}`);
  return items as T[];
}

const N = Number(arg('num') ?? 1_000_000);
if (!Number.isSafeInteger(N) || N < 1000) throw new Error('--num must be an integer >= 1000');
const STORES = listArg<StoreName>('only', STORE_NAMES);
const SELECTED = new Set(listArg<Workload>('workloads', WORKLOADS));
const MODES = listArg<Mode>('modes', ['single', 'batch']);
const WRITERS = (arg('writers') ?? '1,16,64').split(',').map(Number);
const SYNC_SECONDS = Number(arg('sync-seconds') ?? 3);
const BATCH = 1000;
const SEEK_NEXTS = 10;
const SEED = Number(arg('seed') ?? 301);
/** Extra engine options for distcache, e.g. --distcache-options '{"memtableBytes":4194304}'. */
const DC_OPTIONS = JSON.parse(arg('distcache-options') ?? '{}') as LsmOptions;

// ---------------------------------------------------------------- data

/** mulberry32: a small seeded PRNG, enough for key choice. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEY_BYTES = 16;

/** Key of index i: 16 ASCII digits. Missing keys: 15 digits of i and a '.', which sorts just
 *  after key(i*10...) and never equals an existing key. */
function key(i: number, missing = false): Buffer {
  const b = Buffer.allocUnsafe(KEY_BYTES);
  let v = i;
  let p = KEY_BYTES - 1;
  if (missing) b[p--] = 0x2e;
  for (; p >= 0; p--) {
    b[p] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  }
  return b;
}

/** A pool of half-compressible bytes (db_bench's RandomGenerator idea); values are slices. */
class ValueGen {
  private readonly pool: Buffer;
  private pos = 0;
  constructor(private readonly size: number, seed: number) {
    const rnd = prng(seed);
    const poolBytes = Math.max(1 << 20, size * 4);
    this.pool = Buffer.allocUnsafe(poolBytes + size);
    for (let off = 0; off < this.pool.length; off += 100) {
      const end = Math.min(off + 100, this.pool.length);
      const half = off + Math.ceil((end - off) / 2);
      for (let j = off; j < half; j++) this.pool[j] = 0x20 + Math.floor(rnd() * 95);
      for (let j = half; j < end; j++) this.pool[j] = this.pool[off + ((j - half) % 50)]!;
    }
  }
  next(): Buffer {
    if (this.pos + this.size > this.pool.length) this.pos = 0;
    const v = this.pool.subarray(this.pos, this.pos + this.size);
    this.pos += 97; // odd stride: consecutive values differ
    return v;
  }
}

/** A seeded permutation of 0..n-1 (Fisher-Yates). */
function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rnd = prng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

// ---------------------------------------------------------------- timing helpers

interface Result {
  workload: string;
  mode: Mode | '-';
  store: StoreName;
  ops: number;
  seconds: number;
  note?: string;
}
const results: Result[] = [];

async function timed(workload: string, mode: Mode, store: BenchStore, ops: number, body: () => Promise<string | undefined>): Promise<void> {
  const t0 = performance.now();
  const note = await body();
  const seconds = (performance.now() - t0) / 1000;
  const r: Result = { workload, mode, store: store.name, ops, seconds };
  if (note !== undefined) r.note = note;
  results.push(r);
  log(`  ${store.name.padEnd(13)} ${workload.padEnd(13)} ${mode.padEnd(6)} ${fmtRate(ops / seconds).padStart(10)} ops/s  (${ops} ops in ${seconds.toFixed(2)} s${note ? `; ${note}` : ''})`);
}

/** Runs `opsTotal` operations one await at a time, or BATCH per await. */
async function drive(mode: Mode, opsTotal: number, one: (i: number) => Promise<unknown>, many: (from: number, to: number) => Promise<unknown>): Promise<void> {
  if (mode === 'single') {
    for (let i = 0; i < opsTotal; i++) await one(i);
  } else {
    for (let i = 0; i < opsTotal; i += BATCH) await many(i, Math.min(i + BATCH, opsTotal));
  }
}

function log(s: string): void {
  process.stderr.write(s + '\n');
}

function fmtRate(r: number): string {
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(0);
}

function fmtBytes(b: number): string {
  return b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(2)} GiB` : `${(b / (1 << 20)).toFixed(1)} MiB`;
}

/** Allocated bytes (st_blocks) and apparent bytes under dir. */
function diskUsage(dir: string): { allocated: number; apparent: number } {
  let allocated = 0;
  let apparent = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const u = diskUsage(p);
      allocated += u.allocated;
      apparent += u.apparent;
    } else if (e.isFile()) {
      const s = statSync(p);
      allocated += s.blocks * 512;
      apparent += s.size;
    }
  }
  return { allocated, apparent };
}

/** Flush (cache-flush/FUA) requests completed by every block device, from /proc/diskstats. */
function deviceFlushes(): number | undefined {
  try {
    let total = 0;
    for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      // Whole disks only (partitions repeat their disk's counts).
      if (f.length < 20 || !/^((sd|vd|xvd)[a-z]+|nvme\d+n\d+)$/.test(f[2]!)) continue;
      total += Number(f[18]);
    }
    return total;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- workloads

const root = mkdtempSync(path.join(os.tmpdir(), 'distcache-bench-'));
let dirCounter = 0;
const cleanup = (): void => rmSync(root, { recursive: true, force: true });
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

async function withFreshStore<T>(name: StoreName, durable: boolean, body: (s: BenchStore, dir: string) => Promise<T>): Promise<T> {
  const dir = path.join(root, `${name}-${dirCounter++}`);
  const s = await openStore(name, dir, { durable, distcache: DC_OPTIONS });
  try {
    return await body(s, dir);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withFreshStores(names: readonly StoreName[], body: (stores: { s: BenchStore; dir: string }[]) => Promise<void>): Promise<void> {
  const stores: { s: BenchStore; dir: string }[] = [];
  try {
    for (const name of names) {
      const dir = path.join(root, `${name}-${dirCounter++}`);
      stores.push({ s: await openStore(name, dir, { durable: false, distcache: DC_OPTIONS }), dir });
    }
    await body(stores);
  } finally {
    for (const { s, dir } of stores) {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

const v100 = new ValueGen(100, SEED + 1);
const v4k = new ValueGen(4096, SEED + 2);

async function fillSeq(s: BenchStore, mode: Mode): Promise<void> {
  await timed('fillseq', mode, s, N, async () => {
    await drive(mode, N, (i) => s.put(key(i), v100.next()), (a, b) => s.batch(puts(a, b, (i) => i, v100)));
    return undefined;
  });
}

function puts(from: number, to: number, idx: (i: number) => number, values: ValueGen): BatchOp[] {
  const ops: BatchOp[] = new Array<BatchOp>(to - from);
  for (let i = from; i < to; i++) ops[i - from] = { type: 'put', key: key(idx(i)), value: values.next() };
  return ops;
}

interface SizeReport {
  store: StoreName;
  mode: Mode;
  allocated: number;
  apparent: number;
  writeAmp?: number;
  detail?: string;
}
const sizes: SizeReport[] = [];

/** fillrandom, overwrite, readrandom, readmissing, seekrandom, deleterandom: one store per
 *  workload at a time, stores interleaved per workload so machine noise spreads over all. */
async function randomPhase(stores: { s: BenchStore; dir: string }[], mode: Mode): Promise<void> {
  const perm = permutation(N, SEED);
  const wantFill = SELECTED.has('fillrandom');
  const needData = ['overwrite', 'readrandom', 'readmissing', 'seekrandom', 'deleterandom'].some((w) => SELECTED.has(w as Workload));
  for (const { s } of stores) {
    if (wantFill) {
      await timed('fillrandom', mode, s, N, async () => {
        await drive(mode, N, (i) => s.put(key(perm[i]!), v100.next()), (a, b) => s.batch(puts(a, b, (i) => perm[i]!, v100)));
        return undefined;
      });
    } else if (needData) {
      for (let i = 0; i < N; i += BATCH) await s.batch(puts(i, Math.min(i + BATCH, N), (j) => perm[j]!, v100));
    }
  }
  if (SELECTED.has('overwrite')) {
    for (const { s } of stores) {
      const rnd = prng(SEED + 10);
      const pick = (): number => Math.floor(rnd() * N);
      await timed('overwrite', mode, s, N, async () => {
        await drive(mode, N, () => s.put(key(pick()), v100.next()), (a, b) => s.batch(puts(a, b, pick, v100)));
        return undefined;
      });
    }
  }
  if (wantFill || SELECTED.has('overwrite')) {
    for (const { s, dir } of stores) {
      const u = diskUsage(dir);
      const r: SizeReport = { store: s.name, mode, ...u };
      const st = s.stats?.();
      if (st) {
        r.writeAmp = st.writeAmplification;
        r.detail = `levels ${st.levels.filter((l) => l.files > 0).map((l) => `L${l.level}:${l.files}`).join(' ') || 'none'}, flushes ${st.flushes}, compactions ${st.compactions}, stalls ${st.writeStalls}, slowdowns ${st.writeSlowdowns}, memtable ${fmtBytes(st.memtableBytes)} + ${st.immutableMemtables} imm`;
      }
      sizes.push(r);
      log(`  ${s.name} size after fill+overwrite: ${fmtBytes(u.allocated)} allocated, ${fmtBytes(u.apparent)} apparent${r.writeAmp !== undefined ? `; write-amp ${r.writeAmp.toFixed(2)}; ${r.detail}` : ''}`);
    }
  }
  const reads = async (workload: 'readrandom' | 'readmissing', seed: number, missing: boolean): Promise<void> => {
    for (const { s } of stores) {
      const rnd = prng(seed);
      const pick = (): Buffer => key(Math.floor(rnd() * N), missing);
      let found = 0;
      await timed(workload, mode, s, N, async () => {
        await drive(
          mode,
          N,
          async () => {
            if ((await s.get(pick())) !== undefined) found++;
          },
          async (a, b) => {
            const keys = new Array<Buffer>(b - a);
            for (let i = 0; i < keys.length; i++) keys[i] = pick();
            found += await s.getMany(keys);
          },
        );
        return `${found} found`;
      });
      if (found !== (missing ? 0 : N)) log(`  WARNING: ${s.name} ${workload} found ${found} of ${N}`);
    }
  };
  if (SELECTED.has('readrandom')) await reads('readrandom', SEED + 20, false);
  if (SELECTED.has('readmissing')) await reads('readmissing', SEED + 30, true);
  if (SELECTED.has('seekrandom')) {
    for (const { s } of stores) {
      const rnd = prng(SEED + 40);
      const pick = (): Buffer => key(Math.floor(rnd() * N));
      const seeks = Math.max(1, Math.floor(N / 10));
      let read = 0;
      await timed('seekrandom', mode, s, seeks, async () => {
        await drive(
          mode,
          seeks,
          async () => {
            read += await s.seek(pick(), SEEK_NEXTS + 1);
          },
          async (a, b) => {
            const ps: Promise<number>[] = [];
            for (let i = a; i < b; i++) ps.push(s.seek(pick(), SEEK_NEXTS + 1));
            for (const n of await Promise.all(ps)) read += n;
          },
        );
        return `${read} entries read`;
      });
    }
  }
  if (SELECTED.has('deleterandom')) {
    for (const { s } of stores) {
      const rnd = prng(SEED + 50);
      const pick = (): number => Math.floor(rnd() * N);
      await timed('deleterandom', mode, s, N, async () => {
        await drive(
          mode,
          N,
          () => s.del(key(pick())),
          (a, b) => {
            const ops: BatchOp[] = [];
            for (let i = a; i < b; i++) ops.push({ type: 'del', key: key(pick()) });
            return s.batch(ops);
          },
        );
        return undefined;
      });
    }
  }
}

async function fillRandom4k(s: BenchStore, mode: Mode): Promise<void> {
  const n = Math.max(1, Math.floor(N / 10));
  const perm = permutation(n, SEED + 3);
  await timed('fillrandom4k', mode, s, n, async () => {
    await drive(mode, n, (i) => s.put(key(perm[i]!), v4k.next()), (a, b) => s.batch(puts(a, b, (i) => perm[i]!, v4k)));
    return undefined;
  });
}

interface SyncResult {
  store: StoreName;
  writers: number;
  ops: number;
  seconds: number;
  deviceFlushes: number | undefined;
  engineSyncs: number | undefined;
}
const syncResults: SyncResult[] = [];

async function syncWrite(name: StoreName, c: number): Promise<void> {
  {
    await withFreshStore(name, true, async (s) => {
      const rnd = prng(SEED + 60 + c);
      let ops = 0;
      let stop = false;
      const syncs0 = s.stats?.().walSyncs;
      const f0 = deviceFlushes();
      const t0 = performance.now();
      const timer = setTimeout(() => (stop = true), SYNC_SECONDS * 1000);
      const writer = async (): Promise<void> => {
        while (!stop) {
          await s.put(key(Math.floor(rnd() * N)), v100.next());
          ops++;
        }
      };
      await Promise.all(Array.from({ length: c }, writer));
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      const f1 = deviceFlushes();
      const syncs1 = s.stats?.().walSyncs;
      const r: SyncResult = {
        store: name,
        writers: c,
        ops,
        seconds,
        deviceFlushes: f0 !== undefined && f1 !== undefined ? f1 - f0 : undefined,
        engineSyncs: syncs0 !== undefined && syncs1 !== undefined ? syncs1 - syncs0 : undefined,
      };
      syncResults.push(r);
      log(`  ${name.padEnd(13)} syncwrite C=${String(c).padEnd(3)} ${fmtRate(ops / seconds).padStart(8)} ops/s, device flushes ${r.deviceFlushes === undefined ? 'n/a' : fmtRate(r.deviceFlushes / seconds)}/s${r.engineSyncs !== undefined ? `, engine fsyncs ${fmtRate(r.engineSyncs / seconds)}/s (${(ops / Math.max(1, r.engineSyncs)).toFixed(1)} writes per fsync)` : ''}`);
    });
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = performance.now();
  log(`distcache engine bench: N=${N}, stores ${STORES.join(',')}, modes ${MODES.join(',')}, workloads ${[...SELECTED].join(',')}`);
  log(`node ${process.version}, ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? '?'}), tmpdir ${os.tmpdir()}`);
  log('durability (all but syncwrite): process-crash safe, not power-loss safe: distcache walSync off, classic-level sync:false, lmdb noSync');
  for (const mode of MODES) {
    log(`[${mode}]`);
    if (SELECTED.has('fillseq')) for (const name of STORES) await withFreshStore(name, false, (s) => fillSeq(s, mode));
    await withFreshStores(STORES, (stores) => randomPhase(stores, mode));
    if (SELECTED.has('fillrandom4k')) for (const name of STORES) await withFreshStore(name, false, (s) => fillRandom4k(s, mode));
  }
  if (SELECTED.has('syncwrite')) {
    log('[syncwrite, durable]');
    for (const c of WRITERS) for (const name of STORES) await syncWrite(name, c);
  }
  printReport((performance.now() - started) / 1000);
}

function rate(workload: string, mode: Mode | '-', store: StoreName): number | undefined {
  const r = results.find((x) => x.workload === workload && x.mode === mode && x.store === store);
  return r ? r.ops / r.seconds : undefined;
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}x`;
}

function printReport(totalSeconds: number): void {
  const out: string[] = [];
  const cmd = `node dist/bench/engine/run.js ${process.argv.slice(2).join(' ')}`.trim();
  out.push(`Command: \`${cmd}\` (N=${N}; ${totalSeconds.toFixed(0)} s total)`);
  out.push(`Machine: node ${process.version}, ${os.cpus().length} CPU ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, tmpdir ${os.tmpdir()}`);
  out.push('Durability of all rows but the sync run: an acknowledged write survives a process crash, not power loss (distcache walSync \'off\' = classic-level\'s default sync:false; lmdb noSync).');
  out.push('');
  out.push('| workload | mode | ops | distcache ops/s | classic-level ops/s | lmdb ops/s | dc/classic | dc/lmdb |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|');
  const seen = new Set<string>();
  for (const r of results) {
    const id = `${r.workload}/${r.mode}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const mode = r.mode as Mode;
    const dc = rate(r.workload, mode, 'distcache');
    const cl = rate(r.workload, mode, 'classic-level');
    const lm = rate(r.workload, mode, 'lmdb');
    const f = (x: number | undefined): string => (x === undefined ? '-' : fmtRate(x));
    out.push(`| ${r.workload} | ${mode} | ${r.ops} | ${f(dc)} | ${f(cl)} | ${f(lm)} | ${ratio(dc, cl)} | ${ratio(dc, lm)} |`);
  }
  if (sizes.length > 0) {
    out.push('');
    out.push(`On-disk size after fillrandom + overwrite (${N} keys x 100 B values, ${2 * N} puts; allocated / apparent bytes; measured right after the last write, background compaction may still be running):`);
    out.push('');
    out.push('| store | mode | allocated | apparent | distcache write-amp | distcache shape |');
    out.push('|---|---|---:|---:|---:|---|');
    for (const z of sizes) {
      out.push(`| ${z.store} | ${z.mode} | ${fmtBytes(z.allocated)} | ${fmtBytes(z.apparent)} | ${z.writeAmp !== undefined ? z.writeAmp.toFixed(2) : '-'} | ${z.detail ?? ''} |`);
    }
  }
  if (syncResults.length > 0) {
    out.push('');
    out.push(`Sync writes (durable before acknowledged; C concurrent writers, ${SYNC_SECONDS} s each; device flushes/s are machine-wide from /proc/diskstats; distcache walSync 'always', classic-level {sync:true}, lmdb overlappingSync:false):`);
    out.push('');
    out.push('| store | writers | ops/s | device flushes/s | engine fsyncs/s | writes per fsync |');
    out.push('|---|---:|---:|---:|---:|---:|');
    for (const r of syncResults) {
      const fl = r.deviceFlushes === undefined ? 'n/a' : fmtRate(r.deviceFlushes / r.seconds);
      const es = r.engineSyncs === undefined ? 'n/a' : fmtRate(r.engineSyncs / r.seconds);
      const per = r.engineSyncs !== undefined ? (r.ops / Math.max(1, r.engineSyncs)).toFixed(1) : r.deviceFlushes ? `~${(r.ops / Math.max(1, r.deviceFlushes)).toFixed(1)} (device)` : '-';
      out.push(`| ${r.store} | ${r.writers} | ${fmtRate(r.ops / r.seconds)} | ${fl} | ${es} | ${per} |`);
    }
  }
  console.log(out.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
