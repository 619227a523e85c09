// The merging iterator against a model (one sorted array of every child's entries), under random
// seeks, steps and direction switches. Children hand out their user key in a scratch buffer they
// overwrite on every move, as a table cursor's reused read-ahead chunk does: a merger that kept
// a key of a child that has moved since would compare garbage.
import { expect } from 'chai';
import { MergingIterator } from '../../src/lsm/merging-iterator.js';
import { Kind, compareKeySeq } from '../../src/lsm/keys.js';
import type { InternalIterator } from '../../src/lsm/internal-iterator.js';
import { Rng, seedFromEnv } from '../helpers/rng.js';

interface Entry {
  key: Buffer;
  seq: number;
}

const cmp = (a: Entry, b: Entry): number => compareKeySeq(a.key, a.seq, b.key, b.seq);

class ScratchIterator implements InternalIterator {
  private i = -1;
  private readonly scratch = Buffer.alloc(8);
  constructor(private readonly entries: Entry[]) {}
  private at(i: number): void {
    this.i = i >= 0 && i < this.entries.length ? i : -1;
    this.scratch.fill(0xff); // what a reused chunk does to views into it
    if (this.i >= 0) this.entries[this.i]!.key.copy(this.scratch);
  }
  valid(): boolean {
    return this.i >= 0;
  }
  seekToFirst(): void {
    this.at(0);
  }
  seekToLast(): void {
    this.at(this.entries.length - 1);
  }
  seek(key: Uint8Array, seq: number): void {
    const t = { key: Buffer.from(key), seq };
    this.at(this.entries.findIndex((e) => cmp(e, t) >= 0));
  }
  seekForPrev(key: Uint8Array, seq: number): void {
    const t = { key: Buffer.from(key), seq };
    let j = -1;
    this.entries.forEach((e, n) => {
      if (cmp(e, t) <= 0) j = n;
    });
    this.at(j);
  }
  next(): void {
    this.at(this.i + 1);
  }
  prev(): void {
    this.at(this.i - 1);
  }
  userKey(): Buffer {
    return this.scratch.subarray(0, this.entries[this.i]!.key.length);
  }
  seq(): number {
    return this.entries[this.i]!.seq;
  }
  kind(): Kind {
    return Kind.Value;
  }
  value(): Buffer {
    return Buffer.from(`${this.entries[this.i]!.key.toString('hex')}@${this.entries[this.i]!.seq}`);
  }
  close(): void {
    this.i = -1;
  }
}

describe('lsm: merging iterator', () => {
  it('matches a sorted model under random seeks, steps and direction switches (children reuse their key buffer)', () => {
    const seed = seedFromEnv();
    console.log(`      merging iterator: SEED=${seed}`);
    const rng = new Rng(seed);
    for (let round = 0; round < 40; round++) {
      let seq = 1;
      const children: Entry[][] = Array.from({ length: 1 + rng.int(6) }, () => []);
      for (let n = rng.int(60); n > 0; n--) {
        // a few short keys, so that versions of one key land in several children
        children[rng.int(children.length)]!.push({ key: Buffer.from([rng.int(12), rng.int(3)]).subarray(0, 1 + rng.int(2)), seq: seq++ });
      }
      for (const c of children) c.sort(cmp);
      const all = children.flat().sort(cmp);
      const it = new MergingIterator(children.map((c) => new ScratchIterator(c)));
      let pos = -1; // the model's position in `all`
      const where = (): string => `seed ${seed}, round ${round}`;
      for (let step = 0; step < 200; step++) {
        const op = rng.int(10);
        if (op === 0) (it.seekToFirst(), (pos = all.length > 0 ? 0 : -1));
        else if (op === 1) (it.seekToLast(), (pos = all.length - 1));
        else if (op === 2 || op === 3) {
          const t = { key: Buffer.from([rng.int(13)]), seq: rng.int(seq + 1) };
          if (op === 2) {
            it.seek(t.key, t.seq);
            pos = all.findIndex((e) => cmp(e, t) >= 0);
          } else {
            it.seekForPrev(t.key, t.seq);
            pos = -1;
            all.forEach((e, n) => {
              if (cmp(e, t) <= 0) pos = n;
            });
          }
        } else if (pos >= 0 && op < 7) {
          it.next();
          pos = pos + 1 < all.length ? pos + 1 : -1;
        } else if (pos >= 0) {
          it.prev();
          pos -= 1;
        }
        expect(it.valid(), where()).to.equal(pos >= 0);
        if (pos >= 0) {
          expect(Buffer.from(it.userKey()).toString('hex'), where()).to.equal(all[pos]!.key.toString('hex'));
          expect(it.seq(), where()).to.equal(all[pos]!.seq);
        }
      }
      it.close();
    }
  });
});
