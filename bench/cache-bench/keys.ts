// Key choosers for cache-bench: which key index (0..n-1) the next operation touches.
//   uniform  every index equally likely
//   zipf     index i (rank i+1) with probability (1/(i+1)^theta) / zeta(n, theta): index 0 is the
//            hottest key. Drawn in O(1) per key with the method of Gray et al., "Quickly
//            generating billion-record synthetic databases" (SIGMOD '94), the same method YCSB's
//            Zipfian generator uses; zeta(n, theta) is summed once at construction (O(n)).
// Both are driven by the project's seeded PRNG (src/util/rng.ts), so a seed replays the same key
// sequence. Ranks are not scrambled: the store hashes keys to shards, so hot keys already land on
// unrelated shards.
import { Rng } from '../../src/util/rng.js';

export interface KeyChooser {
  /** Next key index in [0, n). */
  next(): number;
  readonly n: number;
}

export class UniformChooser implements KeyChooser {
  constructor(readonly n: number, private readonly rng: Rng) {
    assertKeyCount(n);
  }
  next(): number {
    return this.rng.int(this.n);
  }
}

/** sum_{i=1..n} 1/i^theta */
export function zeta(n: number, theta: number): number {
  let s = 0;
  for (let i = 1; i <= n; i++) s += 1 / Math.pow(i, theta);
  return s;
}

export class ZipfChooser implements KeyChooser {
  private readonly alpha: number;
  private readonly zetaN: number;
  private readonly eta: number;
  private readonly half: number; // 1 + 0.5^theta: the cut between rank 2 and the closed form

  /** REQUIRES: 0 < theta < 1 (the closed form divides by 1 - theta). */
  constructor(readonly n: number, readonly theta: number, private readonly rng: Rng) {
    assertKeyCount(n);
    if (!(theta > 0 && theta < 1)) throw new RangeError(`zipf theta must be in (0, 1), got ${theta}`);
    this.zetaN = zeta(n, theta);
    const zeta2 = zeta(Math.min(2, n), theta);
    this.alpha = 1 / (1 - theta);
    // with n = 1 or 2 the closed form is never reached (the two cuts below cover everything)
    this.eta = n <= 2 ? 0 : (1 - Math.pow(2 / n, 1 - theta)) / (1 - zeta2 / this.zetaN);
    this.half = 1 + Math.pow(0.5, theta);
  }

  /** Probability of index 0, the hottest key. */
  get hottestShare(): number {
    return 1 / this.zetaN;
  }

  next(): number {
    const u = this.rng.next();
    const uz = u * this.zetaN;
    if (uz < 1) return 0;
    if (uz < this.half || this.n <= 2) return Math.min(1, this.n - 1);
    const i = Math.floor(this.n * Math.pow(this.eta * u - this.eta + 1, this.alpha));
    return Math.min(Math.max(i, 0), this.n - 1); // guard float rounding at the edges
  }
}

function assertKeyCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`key count must be a positive integer, got ${n}`);
}

/** The name of key index i: fixed width so that keys sort in index order. */
export function keyName(i: number): string {
  return 'bench-' + String(i).padStart(10, '0');
}
