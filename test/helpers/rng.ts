// Seeded randomness for tests: the project's PRNG (src/util/rng.ts) with Buffer output, and the
// seed source every randomized test uses (SEED=<n> replays a run; tests print their seed).
import { Rng as BaseRng } from '../../src/util/rng.js';

export class Rng extends BaseRng {
  override bytes(n: number): Buffer {
    const b = super.bytes(n);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
}

export function seedFromEnv(name = 'SEED'): number {
  const v = process.env[name];
  return v ? Number(v) : Math.floor(Math.random() * 0xffffffff);
}
