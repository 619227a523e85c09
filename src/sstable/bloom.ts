// The table's bloom filter: the hash (XXH32, implemented here), the filter block builder and
// the probe. The filter block format, the hash, the seed and the probe sequence are part of the
// file format: ./FORMAT.md "Filter block". Changing any of them needs a new metaindex name.
//
// Hash choice: XXH32 (seed 0xbc9f1d34) in plain JS. It is bit-identical to xxhash-wasm's h32Raw
// (checked by a test), and measured faster for short keys because it avoids copying each key
// into WASM memory: on Node 20, 24-byte keys, ~33-50 ns/key in JS vs ~56-68 ns/key via
// xxhash-wasm (test/sstable/hash-bench.ts). It also needs no async initialisation, so the
// synchronous TableReader.open can use it.

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

/** Seed of the bloom hash (frozen: part of the format). */
export const BLOOM_HASH_SEED = 0xbc9f1d34;

/** Largest k a reader accepts; other values are reserved and make the filter match everything. */
export const MAX_BLOOM_K = 30;

function rd32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** XXH32 of b[start, end) (standard algorithm, little-endian lanes). Unsigned 32-bit result. */
export function xxh32(b: Uint8Array, seed = 0, start = 0, end = b.length): number {
  let i = start;
  const len = end - start;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const lim = end - 16;
    while (i <= lim) {
      v1 = Math.imul(rotl((v1 + Math.imul(rd32(b, i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(rd32(b, i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(rd32(b, i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(rd32(b, i + 12), P2)) | 0, 13), P1);
      i += 16;
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  while (i + 4 <= end) {
    h = Math.imul(rotl((h + Math.imul(rd32(b, i), P3)) | 0, 17), P4);
    i += 4;
  }
  while (i < end) {
    h = Math.imul(rotl((h + Math.imul(b[i]!, P5)) | 0, 11), P1);
    i++;
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

export function bloomHash(key: Uint8Array): number {
  return xxh32(key, BLOOM_HASH_SEED);
}

/** k for a bits-per-key setting: round(bitsPerKey * ln 2), clamped to [1, 30]. */
export function bloomK(bitsPerKey: number): number {
  return Math.max(1, Math.min(MAX_BLOOM_K, Math.round(bitsPerKey * Math.LN2)));
}

/** Theoretical false-positive rate of a filter with m bits, n keys and k probes. */
export function bloomTheoreticalFpRate(bits: number, keys: number, k: number): number {
  return Math.pow(1 - Math.exp((-k * keys) / bits), k);
}

/** Collects key hashes while a table is built (4 bytes per key, no key copies). */
export class BloomBuilder {
  private hashes = new Uint32Array(1024);
  private n = 0;
  private last = -1;

  constructor(readonly bitsPerKey: number) {
    if (!(bitsPerKey > 0)) throw new RangeError(`bloom bitsPerKey must be > 0, got ${bitsPerKey}`);
  }

  get numKeys(): number {
    return this.n;
  }

  /** Adds a filter key. Consecutive equal hashes (the versions of one user key in the LSM) are
   *  added once: equal hashes set equal bits, so dropping them loses nothing. */
  addKey(filterKey: Uint8Array): void {
    const h = bloomHash(filterKey);
    if (h === this.last) return;
    this.last = h;
    if (this.n === this.hashes.length) {
      const next = new Uint32Array(this.hashes.length * 2);
      next.set(this.hashes);
      this.hashes = next;
    }
    this.hashes[this.n++] = h;
  }

  /** Filter block contents: bit array (m = 8 * bytes bits, m >= 64), then k as one byte. */
  finish(): Buffer {
    const bits0 = Math.max(64, Math.ceil(this.n * this.bitsPerKey));
    const bytes = (bits0 + 7) >>> 3;
    const bits = bytes * 8;
    const k = bloomK(this.bitsPerKey);
    const out = Buffer.alloc(bytes + 1);
    for (let i = 0; i < this.n; i++) {
      let h = this.hashes[i]!;
      const delta = ((h >>> 17) | (h << 15)) >>> 0;
      for (let j = 0; j < k; j++) {
        const pos = h % bits;
        const byte = pos >>> 3;
        out[byte] = out[byte]! | (1 << (pos & 7));
        h = (h + delta) >>> 0;
      }
    }
    out[bytes] = k;
    return out;
  }
}

/** Probes a filter block's contents. Returns true for reserved k values (unknown encodings). */
export function bloomMayContain(filter: Buffer, key: Uint8Array): boolean {
  const len = filter.length;
  if (len < 2) return true;
  const k = filter[len - 1]!;
  if (k < 1 || k > MAX_BLOOM_K) return true;
  const bits = (len - 1) * 8;
  let h = bloomHash(key);
  const delta = ((h >>> 17) | (h << 15)) >>> 0;
  for (let j = 0; j < k; j++) {
    const pos = h % bits;
    if ((filter[pos >>> 3]! & (1 << (pos & 7))) === 0) return false;
    h = (h + delta) >>> 0;
  }
  return true;
}
