import { expect } from 'chai';
import { SkipList } from '../../src/lsm/skiplist.js';
import { Memtable } from '../../src/lsm/memtable.js';
import { Kind, compareKeySeq } from '../../src/lsm/keys.js';
import { Rng, seedFromEnv } from '../helpers/rng.js';

describe('lsm: skiplist', () => {
  it('keeps entries in internal-key order: user key ascending, sequence descending', () => {
    const seed = seedFromEnv();
    const rng = new Rng(seed);
    const list = new SkipList();
    const model: { key: Buffer; seq: number }[] = [];
    for (let seq = 1; seq <= 3000; seq++) {
      const key = Buffer.from(`k${rng.int(500)}`);
      list.insert(key, seq, Kind.Value, Buffer.from(String(seq)));
      model.push({ key, seq });
    }
    model.sort((a, b) => compareKeySeq(a.key, a.seq, b.key, b.seq));
    const seen: { key: Buffer; seq: number }[] = [];
    for (let n = list.first(); n; n = n.next[0]!) seen.push({ key: n.key, seq: n.seq });
    expect(seen, `seed ${seed}`).to.deep.equal(model);
    expect(list.size).to.equal(3000);
    // seek lands on the first entry >= (key, seq)
    for (let i = 0; i < 200; i++) {
      const key = Buffer.from(`k${rng.int(600)}`);
      const seq = rng.int(3500);
      const expected = model.find((e) => compareKeySeq(e.key, e.seq, key, seq) >= 0);
      const got = list.seek(key, seq);
      expect(got?.seq, `seek k=${key} seq=${seq} seed ${seed}`).to.equal(expected?.seq);
    }
  });

  it('overwrites linked in front of the newest version (no search) keep the order, the back links, seeks and backward walks right', () => {
    const seed = seedFromEnv();
    const rng = new Rng(seed);
    const mem = new Memtable();
    const model: { key: Buffer; seq: number; value: string }[] = [];
    let seq = 1000;
    for (let i = 0; i < 4000; i++) {
      const key = Buffer.from(`k${rng.int(300)}`);
      // mostly newer sequences (the overwrite fast path); now and then an older one, which
      // takes the searched insert (replay order is not always sequence order)
      const s = rng.int(10) === 0 ? rng.int(1000) * 4 + 1 : (seq += 4);
      if (model.some((e) => e.seq === s)) continue;
      mem.add(s, Kind.Value, key, Buffer.from(`v${s}`));
      model.push({ key, seq: s, value: `v${s}` });
    }
    model.sort((a, b) => compareKeySeq(a.key, a.seq, b.key, b.seq));
    const it = mem.iterator();
    const seen: string[] = [];
    for (it.seekToFirst(); it.valid(); it.next()) seen.push(`${it.userKey()}@${it.seq()}=${it.value()}`);
    expect(seen, `seed ${seed}`).to.deep.equal(model.map((e) => `${e.key}@${e.seq}=${e.value}`));
    const back: string[] = [];
    for (it.seekToLast(); it.valid(); it.prev()) back.push(`${it.userKey()}@${it.seq()}=${it.value()}`);
    expect(back.reverse(), `seed ${seed} backward`).to.deep.equal(seen);
    for (let i = 0; i < 300; i++) {
      const key = Buffer.from(`k${rng.int(320)}`);
      const at = rng.int(seq + 10);
      const want = model.find((e) => compareKeySeq(e.key, e.seq, key, at) >= 0);
      it.seek(key, at);
      expect(it.valid() ? `${it.userKey()}@${it.seq()}` : 'end', `seed ${seed} seek ${key}@${at}`).to.equal(want ? `${want.key}@${want.seq}` : 'end');
      // get: the newest version of the key at or below `at`
      const newest = model.find((e) => e.key.equals(key) && e.seq <= at);
      expect(mem.get(key, at)?.kind === Kind.Value ? String((mem.get(key, at) as { value: Buffer }).value) : undefined, `seed ${seed} get ${key}@${at}`).to.equal(newest?.value);
    }
  });

  it('a reader interleaved with a writer sees a consistent, ordered walk and every older entry', () => {
    const mem = new Memtable();
    for (let i = 0; i < 1000; i += 2) mem.add(i + 1, Kind.Value, Buffer.from(`key${String(i).padStart(5, '0')}`), Buffer.from('v'));
    const it = mem.iterator();
    it.seekToFirst();
    let prev: [Buffer, number] | null = null;
    let count = 0;
    let seq = 2000;
    while (it.valid()) {
      const k = Buffer.from(it.userKey());
      if (prev) expect(compareKeySeq(prev[0], prev[1], k, it.seq())).to.be.lessThan(0);
      prev = [k, it.seq()];
      if (it.seq() < 2000) count++;
      // The writer inserts odd keys (some behind, some ahead of the reader) between steps.
      const j = (seq * 7919) % 1000 | 1;
      mem.add(seq++, Kind.Value, Buffer.from(`key${String(j).padStart(5, '0')}`), Buffer.from('w'));
      it.next();
    }
    expect(count).to.equal(500);
  });

  it('memtable get honours sequence numbers and tombstones', () => {
    const mem = new Memtable();
    const k = Buffer.from('a');
    mem.add(1, Kind.Value, k, Buffer.from('one'));
    mem.add(2, Kind.Delete, k, Buffer.alloc(0));
    mem.add(3, Kind.Value, k, Buffer.from('three'));
    expect(mem.get(k, 1)).to.deep.equal({ kind: Kind.Value, value: Buffer.from('one') });
    expect(mem.get(k, 2)).to.deep.equal({ kind: Kind.Delete });
    expect(mem.get(k, 9)).to.deep.equal({ kind: Kind.Value, value: Buffer.from('three') });
    expect(mem.get(Buffer.from('b'), 9)).to.equal(undefined);
  });

  it('memtable iterator seekForPrev and prev walk backward in internal order', () => {
    const mem = new Memtable();
    let seq = 1;
    for (const key of ['a', 'b', 'b', 'c']) mem.add(seq++, Kind.Value, Buffer.from(key), Buffer.from(String(seq)));
    const it = mem.iterator();
    it.seekForPrev(Buffer.from('b'), 100); // last entry <= (b, 100): a's only entry
    expect([it.userKey().toString(), it.seq()]).to.deep.equal(['a', 1]);
    it.seekForPrev(Buffer.from('b'), 0); // last entry <= (b, 0): the oldest b
    expect([it.userKey().toString(), it.seq()]).to.deep.equal(['b', 2]);
    it.prev();
    expect([it.userKey().toString(), it.seq()]).to.deep.equal(['b', 3]);
    it.seekToLast();
    const back: string[] = [];
    for (; it.valid(); it.prev()) back.push(`${it.userKey()}${it.seq()}`);
    expect(back).to.deep.equal(['c4', 'b2', 'b3', 'a1']);
  });
});
