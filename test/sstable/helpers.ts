// Test helpers for the sstable tests: building a table from a sorted entry list.
import path from 'node:path';
import { TableBuilder, type TableBuilderOptions } from '../../src/sstable/table-builder.js';
import type { TableProperties } from '../../src/sstable/properties.js';
import { seedFromEnv, type Rng } from '../helpers/rng.js';

export type Entry = [key: Buffer, value: Buffer];

export async function buildTable(
  file: string,
  entries: readonly Entry[],
  opts: TableBuilderOptions = {},
  userProps: Record<string, number> = {},
  flushEvery = 64 * 1024,
): Promise<{ fileSize: number; properties: TableProperties }> {
  const b = await TableBuilder.create(file, opts);
  for (const [k, v] of entries) {
    b.add(k, v);
    if (b.pendingBytes >= flushEvery) await b.flushPending();
  }
  return b.finish(userProps);
}

/** n distinct random keys (sorted bytewise) with random values. */
export function randomEntries(rng: Rng, n: number, maxKey = 24, maxValue = 100): Entry[] {
  const seen = new Map<string, Entry>();
  // Keys share prefixes often (as real keys do) so prefix compression is exercised.
  const prefixes = Array.from({ length: 8 }, () => rng.bytes(1 + rng.int(6)));
  while (seen.size < n) {
    const k = Buffer.concat([rng.pick(prefixes), rng.bytes(rng.int(maxKey))]);
    const h = k.toString('hex');
    if (seen.has(h)) continue;
    const v = rng.int(4) === 0 ? Buffer.alloc(rng.int(maxValue), rng.int(3)) : rng.bytes(rng.int(maxValue));
    seen.set(h, [k, v]);
  }
  return [...seen.values()].sort((a, b) => Buffer.compare(a[0], b[0]));
}

export function tablePath(dir: string, n = 1): string {
  return path.join(dir, `${String(n).padStart(6, '0')}.sst`);
}

/** A seed from $SEED or random, printed so a failing run can be replayed (SEED=n npm test). */
export function testSeed(): number {
  const seed = seedFromEnv();
  console.log(`      seed ${seed}`);
  return seed;
}
