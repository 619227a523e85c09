// Property tests of the order-preserving key encoding (src/ring/keys.ts): order, round trip,
// prefix-range containment, shard-prefixed storage keys; plus worked examples of the format.
import { expect } from 'chai';
import fc from 'fast-check';
import {
  decodeKey,
  decodeShardKey,
  encodeKey,
  encodeShardKey,
  primaryPrefixRange,
  shardKeyPrefix,
  shardKeyRange,
} from '../../src/ring/index.js';
import { KvError } from '../../src/util/errors.js';

// Bytes biased towards the ones the escaping treats specially (0x00, 0x01, 0xFF) and ':'.
const byte = fc.oneof(fc.constantFrom(0x00, 0x01, 0x02, 0xfe, 0xff, 0x3a), fc.integer({ min: 0, max: 255 }));
const bytes = fc.array(byte, { maxLength: 10 }).map((a) => Buffer.from(a));
const key = fc.record({ primary: bytes, secondary: fc.option(bytes, { nil: undefined }) });
type Key = { primary: Buffer; secondary: Buffer | undefined };

const sign = (x: number): number => (x < 0 ? -1 : x > 0 ? 1 : 0);
/** Lexicographic order of (primary, secondary) tuples; no secondary == empty secondary. */
function compareTuples(a: Key, b: Key): number {
  return Buffer.compare(a.primary, b.primary) || Buffer.compare(a.secondary ?? Buffer.alloc(0), b.secondary ?? Buffer.alloc(0));
}
const enc = (k: Key): Buffer => encodeKey(k.primary, k.secondary);
const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');

describe('ring/keys', () => {
  it('worked examples of the format', () => {
    expect(encodeKey(Buffer.from('user:1'), Buffer.from('a\u0000b'))).to.deep.equal(hex('757365723a31 0001 610062'));
    expect(encodeKey(Buffer.from('a\u0000'))).to.deep.equal(hex('6100ff 0001'));
    expect(encodeKey(Buffer.alloc(0))).to.deep.equal(hex('0001'));
    expect(encodeKey(Buffer.from('p'), Buffer.alloc(0))).to.deep.equal(encodeKey(Buffer.from('p')));
  });

  it('preserves order: memcmp of encodings == tuple order', () => {
    fc.assert(
      fc.property(key, key, (a, b) => sign(Buffer.compare(enc(a), enc(b))) === sign(compareTuples(a, b))),
      { numRuns: 5000 },
    );
  });

  it('sorting encodings sorts the tuples', () => {
    fc.assert(
      fc.property(fc.array(key, { maxLength: 40 }), (keys) => {
        const byTuple = [...keys].sort(compareTuples).map(enc);
        const byBytes = keys.map(enc).sort(Buffer.compare);
        return byTuple.every((e, i) => e.equals(byBytes[i]!));
      }),
    );
  });

  it('round-trips (any bytes, ":" and 0x00 included)', () => {
    fc.assert(
      fc.property(key, (k) => {
        const d = decodeKey(enc(k));
        return d.primary.equals(k.primary) && d.secondary.equals(k.secondary ?? Buffer.alloc(0));
      }),
      { numRuns: 3000 },
    );
    const d = decodeKey(encodeKey(Buffer.from('a:b'), Buffer.from(':c:')));
    expect(d.primary.toString()).to.equal('a:b');
    expect(d.secondary.toString()).to.equal(':c:');
  });

  it('decoded buffers are copies, not views of the input', () => {
    const e = encodeKey(Buffer.from('pp'), Buffer.from('ss'));
    const d = decodeKey(e);
    e.fill(0x7a);
    expect(d.primary.toString()).to.equal('pp');
    expect(d.secondary.toString()).to.equal('ss');
  });

  it('primaryPrefixRange holds exactly the keys of that primary', () => {
    fc.assert(
      fc.property(bytes, key, (p, k) => {
        const { gte, lt } = primaryPrefixRange(p);
        const e = enc(k);
        const inside = Buffer.compare(e, gte) >= 0 && Buffer.compare(e, lt) < 0;
        return inside === k.primary.equals(p);
      }),
      { numRuns: 5000 },
    );
  });

  it('primaryPrefixRange contains every secondary of the primary, including none', () => {
    fc.assert(
      fc.property(bytes, fc.option(bytes, { nil: undefined }), (p, s) => {
        const { gte, lt } = primaryPrefixRange(p);
        const e = encodeKey(p, s);
        return Buffer.compare(e, gte) >= 0 && Buffer.compare(e, lt) < 0;
      }),
    );
    // A primary that extends another (incl. with 0x00) is outside the shorter one's range.
    const { gte, lt } = primaryPrefixRange(Buffer.from('user'));
    for (const other of ['user\u0000', 'user\u0001', 'use', 'user:', 'userz']) {
      const e = encodeKey(Buffer.from(other, 'latin1'), Buffer.from('x'));
      expect(Buffer.compare(e, gte) >= 0 && Buffer.compare(e, lt) < 0, other).to.equal(false);
    }
  });

  it('rejects malformed encodings', () => {
    expect(() => decodeKey(Buffer.from('abc'))).to.throw(KvError, /no primary terminator/);
    expect(() => decodeKey(hex('61 00 02'))).to.throw(KvError, /0x00 followed by 0x02 at offset 1/);
    expect(() => decodeKey(hex('61 00'))).to.throw(KvError, /end of key/);
  });

  it('shard storage keys: prefix, order within a shard, ranges, round trip', () => {
    expect(shardKeyPrefix(258)).to.deep.equal(hex('0102'));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65534 }), key, key, (s, a, b) => {
        const ea = encodeShardKey(s, a.primary, a.secondary);
        const eb = encodeShardKey(s, b.primary, b.secondary);
        const { gte, lt } = shardKeyRange(s);
        const d = decodeShardKey(ea);
        return (
          sign(Buffer.compare(ea, eb)) === sign(compareTuples(a, b)) &&
          ea.subarray(0, 2).equals(shardKeyPrefix(s)) &&
          ea.subarray(2).equals(enc(a)) &&
          Buffer.compare(ea, gte) >= 0 &&
          Buffer.compare(ea, lt) < 0 &&
          d.shardId === s &&
          d.primary.equals(a.primary)
        );
      }),
    );
    const last = shardKeyRange(65534);
    expect(last.lt).to.deep.equal(hex('ffff'));
    expect(() => shardKeyPrefix(65535)).to.throw(KvError, /shardId/);
    expect(() => shardKeyPrefix(-1)).to.throw(KvError, /shardId/);
  });
});
