// Model-based randomized test: random operations against the engine and an in-memory sorted
// model; every read and scan must match. Steps include flush, compaction, snapshots, iterators
// held across compactions and close/reopen. Each run prints its seed; SEED=<n> replays one.
import { expect } from 'chai';
import { LsmEngine } from '../../src/lsm/index.js';
import type { LsmOptions, Snapshot } from '../../src/lsm/index.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng, seedFromEnv } from '../helpers/rng.js';

type Model = Map<string, string>;

function modelScan(m: Model, o: { gte?: string; gt?: string; lte?: string; lt?: string; reverse?: boolean; limit?: number }): string[] {
  let keys = [...m.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
  const cmp = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
  keys = keys.filter((k) => (o.gte === undefined || cmp(k, o.gte) >= 0) && (o.gt === undefined || cmp(k, o.gt) > 0) && (o.lte === undefined || cmp(k, o.lte) <= 0) && (o.lt === undefined || cmp(k, o.lt) < 0));
  if (o.reverse) keys.reverse();
  if (o.limit !== undefined) keys = keys.slice(0, o.limit);
  return keys.map((k) => `${k}=${m.get(k)}`);
}

const OPTION_SETS: LsmOptions[] = [
  { walSync: 'off', memtableBytes: 8 * 1024, targetFileBytes: 4 * 1024, l1MaxBytes: 16 * 1024, blockBytes: 256, l0CompactionTrigger: 2, sizeRatio: 3 },
  { walSync: 'batch', memtableBytes: 64 * 1024, blockBytes: 4096, compression: false, bloomBitsPerKey: 0 },
  { walSync: 'off', memtableBytes: 4 * 1024, targetFileBytes: 2 * 1024, l1MaxBytes: 8 * 1024, blockBytes: 128, blockCacheBytes: 0, maxOpenTables: 3, l0CompactionTrigger: 3 },
];

async function runModel(seed: number, options: LsmOptions, steps: number): Promise<void> {
  const rng = new Rng(seed);
  const dir = tempDir('distcache-model-');
  let db = await LsmEngine.open(dir, options);
  const model: Model = new Map();
  const key = (): string => {
    // A small key space with shared prefixes, binary bytes and ':' inside keys.
    const n = rng.int(rng.next() < 0.8 ? 60 : 400);
    return rng.next() < 0.1 ? `p:${n}:\u0000\u00ff` : `key${String(n).padStart(3, '0')}`;
  };
  const held: { snap: Snapshot; model: Model }[] = [];
  const openScans: { rows: Promise<string[]>; expected: string[] }[] = [];
  const ctx = (step: number, what: string): string => `seed ${seed} step ${step}: ${what}`;
  try {
    for (let step = 0; step < steps; step++) {
      const r = rng.next();
      if (r < 0.35) {
        const k = key();
        const v = `v${step}`.padEnd(rng.int(120), '.');
        await db.put(Buffer.from(k, 'latin1'), Buffer.from(v, 'latin1'));
        model.set(k, v);
      } else if (r < 0.45) {
        const k = key();
        await db.delete(Buffer.from(k, 'latin1'));
        model.delete(k);
      } else if (r < 0.55) {
        const ops = Array.from({ length: 1 + rng.int(6) }, (_, i) =>
          rng.next() < 0.75 ? { type: 'put' as const, k: key(), v: `b${step}.${i}` } : { type: 'del' as const, k: key(), v: '' },
        );
        await db.write(ops.map((o) => (o.type === 'put' ? { type: 'put', key: Buffer.from(o.k, 'latin1'), value: Buffer.from(o.v, 'latin1') } : { type: 'del', key: Buffer.from(o.k, 'latin1') })));
        for (const o of ops) (o.type === 'put' ? model.set(o.k, o.v) : model.delete(o.k));
      } else if (r < 0.72) {
        const k = key();
        const got = (await db.get(Buffer.from(k, 'latin1')))?.toString('latin1');
        expect(got, ctx(step, `get ${k}`)).to.equal(model.get(k));
      } else if (r < 0.82) {
        const o: { gte?: string; gt?: string; lte?: string; lt?: string; reverse?: boolean; limit?: number } = {};
        if (rng.next() < 0.5) o[rng.next() < 0.5 ? 'gte' : 'gt'] = key();
        if (rng.next() < 0.5) o[rng.next() < 0.5 ? 'lte' : 'lt'] = key();
        if (rng.next() < 0.4) o.reverse = true;
        if (rng.next() < 0.3) o.limit = rng.int(10);
        const enc = (s?: string): Buffer | undefined => (s === undefined ? undefined : Buffer.from(s, 'latin1'));
        const scanOpts = { gte: enc(o.gte), gt: enc(o.gt), lte: enc(o.lte), lt: enc(o.lt), reverse: o.reverse ?? false, limit: o.limit ?? -1 };
        const expected = modelScan(model, o);
        const rows = (async () => {
          const out: string[] = [];
          for await (const [k, v] of db.scan(scanOpts as never)) out.push(`${k.toString('latin1')}=${v.toString('latin1')}`);
          return out;
        })();
        if (rng.next() < 0.2) openScans.push({ rows, expected }); // consumed later, after more writes
        else expect(await rows, ctx(step, `scan ${JSON.stringify(o)}`)).to.deep.equal(expected);
      } else if (r < 0.86) {
        held.push({ snap: db.snapshot(), model: new Map(model) });
      } else if (r < 0.9 && held.length > 0) {
        const h = held.splice(rng.int(held.length), 1)[0]!;
        for (let i = 0; i < 5; i++) {
          const k = key();
          const got = (await db.get(Buffer.from(k, 'latin1'), { snapshot: h.snap }))?.toString('latin1');
          expect(got, ctx(step, `snapshot get ${k}`)).to.equal(h.model.get(k));
        }
        h.snap.release();
      } else if (r < 0.93) {
        await db.flush();
      } else if (r < 0.95) {
        await db.compact();
      } else if (r < 0.97) {
        for (const s of openScans.splice(0)) expect(await s.rows, ctx(step, 'held scan')).to.deep.equal(s.expected);
        for (const h of held.splice(0)) h.snap.release();
        await db.close();
        db = await LsmEngine.open(dir, options);
      }
    }
    for (const s of openScans.splice(0)) expect(await s.rows, `seed ${seed}: held scan at end`).to.deep.equal(s.expected);
    expect(modelScan(model, {}), `seed ${seed}: final full scan`).to.deep.equal(await (async () => {
      const out: string[] = [];
      for await (const [k, v] of db.scan({})) out.push(`${k.toString('latin1')}=${v.toString('latin1')}`);
      return out;
    })());
  } finally {
    for (const h of held) h.snap.release();
    await db.close();
  }
}

describe('lsm: model-based randomized test', function () {
  this.timeout(120_000);
  afterEach(cleanupTempDirs);
  const base = seedFromEnv();
  OPTION_SETS.forEach((options, i) => {
    it(`matches a sorted-map model under option set ${i} (seed ${base + i})`, async () => {
      await runModel(base + i, options, Number(process.env.MODEL_STEPS ?? 1500));
    });
  });
});
