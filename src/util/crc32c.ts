// CRC32C (Castagnoli) via a native SIMD implementation, plus LevelDB-style masking.
// Stored checksums are masked: a CRC of data that itself contains CRCs is otherwise weak
// (see leveldb util/crc32c.h). Every on-disk checksum in distcache is masked crc32c.
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

const MASK_DELTA = 0xa282ead8;

export function crc32c(data: Uint8Array, initial = 0): number {
  return nativeCrc32c(data, initial) >>> 0;
}

/** Extends a crc over several pieces without concatenating them. */
export function crc32cOf(...parts: Uint8Array[]): number {
  let crc = 0;
  for (const p of parts) crc = nativeCrc32c(p, crc) >>> 0;
  return crc;
}

export function maskCrc(crc: number): number {
  // Rotate right by 15 bits and add a constant.
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

export function unmaskCrc(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}
