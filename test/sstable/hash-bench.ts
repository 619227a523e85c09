// Micro-benchmarks behind two sstable choices (not a test; run after a build):
//   node dist/test/sstable/hash-bench.js
// 1. Bloom hash: JS xxh32 (src/sstable/bloom.ts) vs xxhash-wasm h32Raw on short keys.
// 2. Read path: sequential scan, random seek and bloom-gated lookups over a 200k-entry table.
import xxhash from 'xxhash-wasm';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { xxh32, BLOOM_HASH_SEED } from '../../src/sstable/bloom.js';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';

function nsPer(ops: number, fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / ops;
}

async function hashBench(): Promise<void> {
  const api = await xxhash();
  for (const len of [8, 16, 24, 64]) {
    const keys = Array.from({ length: 100_000 }, (_, i) => Buffer.from(String(i).padStart(len, 'k')));
    let sink = 0;
    const rounds = 20;
    const best = { js: Infinity, wasm: Infinity };
    for (let r = 0; r < 5; r++) {
      best.js = Math.min(best.js, nsPer(rounds * keys.length, () => {
        for (let j = 0; j < rounds; j++) for (const k of keys) sink ^= xxh32(k, BLOOM_HASH_SEED);
      }));
      best.wasm = Math.min(best.wasm, nsPer(rounds * keys.length, () => {
        for (let j = 0; j < rounds; j++) for (const k of keys) sink ^= api.h32Raw(k, BLOOM_HASH_SEED);
      }));
    }
    console.log(`xxh32 ${len}-byte keys: js ${best.js.toFixed(1)} ns/key, xxhash-wasm ${best.wasm.toFixed(1)} ns/key (${sink & 1})`);
  }
}

async function readBench(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sst-bench-'));
  try {
    const file = path.join(dir, '000001.sst');
    const n = 200_000;
    const key = (i: number): Buffer => Buffer.from(`user${String(i * 2).padStart(12, '0')}`);
    const value = Buffer.alloc(100, 'v');
    for (const compression of [false, true]) {
      let t = process.hrtime.bigint();
      const b = await TableBuilder.create(file, { compression });
      for (let i = 0; i < n; i++) {
        b.add(key(i), value);
        if (b.pendingBytes > 1 << 20) await b.flushPending();
      }
      const { fileSize } = await b.finish();
      const buildNs = Number(process.hrtime.bigint() - t) / n;
      const cache = new BlockCache(64 << 20);
      const r = TableReader.open(file, 1, { blockCache: cache });
      const it = r.iterator();
      let count = 0;
      nsPer(n, () => {
        for (it.seekToFirst(); it.valid(); it.next()) count++;
      }); // warm the cache
      const scan = nsPer(n, () => {
        for (it.seekToFirst(); it.valid(); it.next()) count += it.key().length;
      });
      const targets = Array.from({ length: 100_000 }, () => key(Math.floor(Math.random() * n)));
      const seek = nsPer(targets.length, () => {
        for (const k of targets) {
          it.seek(k);
          count += it.value().length;
        }
      });
      const absent = Array.from({ length: 100_000 }, (_, i) => Buffer.from(`user${String(i * 2 + 1).padStart(12, '0')}`));
      const miss = nsPer(absent.length, () => {
        for (const k of absent) if (r.mayContain(k)) it.seek(k);
      });
      t = process.hrtime.bigint();
      void t;
      console.log(
        `table lz4=${compression}: ${n} entries, ${(fileSize / 1e6).toFixed(1)} MB; build ${buildNs.toFixed(0)} ns/entry; ` +
          `cached scan ${scan.toFixed(0)} ns/entry; random seek ${seek.toFixed(0)} ns/op; absent lookup ${miss.toFixed(0)} ns/op (${count & 1})`,
      );
      it.close();
      r.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await hashBench();
await readBench();
