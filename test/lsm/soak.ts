// Long-running soak of the engine (not part of npm test): `npm run soak:engine -- --minutes 120`.
// One store, a random workload of puts (varied sizes), deletes, batches, range deletes by
// overwrite churn, reads and scans against an in-memory model, with periodic reopen. Every
// read is checked against the model, and the store's disk usage must stay bounded relative to
// the live data. Prints its seed and a progress line per round; exits non-zero on a violation.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { LsmEngine } from '../../src/lsm/index.js';
import type { LsmOptions } from '../../src/lsm/index.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng, seedFromEnv } from '../helpers/rng.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

async function main(): Promise<void> {
  const minutes = arg('minutes', 10);
  const keySpace = arg('keys', 20000);
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  const options: LsmOptions = { walSync: 'off', memtableBytes: 1 << 20, targetFileBytes: 512 << 10, l1MaxBytes: 4 << 20 };
  const dir = tempDir('distcache-soak-');
  console.log(`soak: seed ${seed}, ${minutes} min, ${keySpace} keys, dir ${dir}`);
  let db = await LsmEngine.open(dir, options);
  const model = new Map<string, Buffer>();
  const deadline = Date.now() + minutes * 60_000;
  let ops = 0;
  let maxRatio = 0;
  const fail = (msg: string): never => {
    throw new Error(`soak violation (seed ${seed}, op ${ops}): ${msg}`);
  };
  for (let round = 0; Date.now() < deadline; round++) {
    for (let i = 0; i < 20000; i++, ops++) {
      const k = `k${String(rng.int(keySpace)).padStart(7, '0')}`;
      const r = rng.next();
      if (r < 0.45) {
        const v = rng.bytes(rng.pick([10, 100, 1000, 4000]));
        await db.put(Buffer.from(k), v);
        model.set(k, v);
      } else if (r < 0.6) {
        await db.delete(Buffer.from(k));
        model.delete(k);
      } else if (r < 0.65) {
        const batch = Array.from({ length: 10 }, () => `k${String(rng.int(keySpace)).padStart(7, '0')}`);
        const v = rng.bytes(50);
        await db.write(batch.map((key) => ({ type: 'put' as const, key: Buffer.from(key), value: v })));
        for (const key of batch) model.set(key, v);
      } else if (r < 0.98) {
        const got = db.getSync(Buffer.from(k));
        const want = model.get(k);
        if ((got === undefined) !== (want === undefined) || (got && want && !got.equals(want))) fail(`get ${k}`);
      } else {
        const start = `k${String(rng.int(keySpace)).padStart(7, '0')}`;
        const expected = [...model.keys()].filter((x) => x >= start).sort().slice(0, 50);
        const got: string[] = [];
        for await (const [key] of db.scan({ gte: Buffer.from(start), limit: 50 })) got.push(key.toString());
        if (got.join() !== expected.join()) fail(`scan from ${start}`);
      }
    }
    if (round % 10 === 9) {
      await db.close();
      db = await LsmEngine.open(dir, options);
    }
    let live = 0;
    for (const [k, v] of model) live += k.length + v.length;
    const disk = dirBytes(dir);
    // Budget: live data with the space amplification leveled compaction allows (~1.1x plus one
    // level's worth of garbage), plus memtables and WAL, plus slack for small stores.
    const bound = 3 * live + 4 * (options.memtableBytes ?? 0) + (8 << 20);
    maxRatio = Math.max(maxRatio, disk / Math.max(live, 1));
    const st = db.stats();
    console.log(`round ${round}: ops ${ops}, live ${(live / 1e6).toFixed(1)} MB, disk ${(disk / 1e6).toFixed(1)} MB, levels ${st.levels.map((l) => l.files).join('/')}, wamp ${st.writeAmplification.toFixed(2)}`);
    if (disk > bound) fail(`disk ${disk} exceeds bound ${bound} for live ${live}`);
  }
  await db.close();
  cleanupTempDirs();
  console.log(`soak passed: seed ${seed}, ops ${ops}, max disk/live ratio ${maxRatio.toFixed(2)}`);
}

main().catch((err) => {
  console.error(String(err?.stack ?? err));
  cleanupTempDirs();
  process.exit(1);
});
