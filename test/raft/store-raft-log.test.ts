// The node-wide Raft log over real files: many groups in one WAL, reopen/recovery, conflicting
// suffix truncation, snapshots + compaction, segment GC, and RawNodes restarting from it.
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { type Entry, EntryType, RawNode, MemoryStorage } from '../../src/raft/index.js';
import { RaftLogStore } from '../../src/store/raft-log.js';
import { Rng } from '../../src/util/rng.js';
import { cleanupTempDirs, tempDir } from '../helpers/tmp.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function ents(from: number, terms: number[], tag = 'x'): Entry[] {
  return terms.map((term, i) => ({ term, index: from + i, type: EntryType.Normal, data: enc.encode(`${tag}${from + i}`) }));
}

function dump(store: RaftLogStore, g: number): string[] {
  const gl = store.group(g);
  if (gl.lastIndex() < gl.firstIndex()) return [];
  return gl.entries(gl.firstIndex(), gl.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => `${e.index}@${e.term}:${dec.decode(e.data)}`);
}

describe('store: node-wide raft log (RaftLogStore)', () => {
  afterEach(cleanupTempDirs);

  it('fsyncs a batch with entries, or one the caller marks sync (new term or vote); a batch of commit indexes only is written without an fsync', async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir, { sync: 'always' });
    await store.write(store.batch().append(1, ents(1, [1, 1])).setHardState(1, { term: 1, vote: 1, commit: 0 }));
    const synced = store.syncs;
    await store.write(store.batch().setHardState(1, { term: 1, vote: 1, commit: 2 }));
    expect(store.syncs, 'commit index only').to.equal(synced);
    const vote = store.batch().setHardState(1, { term: 2, vote: 3, commit: 2 });
    vote.sync = true;
    await store.write(vote);
    expect(store.syncs, 'a vote').to.equal(synced + 1);
    await store.close();
    store = await RaftLogStore.open(dir);
    expect(store.group(1).initialState().hardState).to.deep.equal({ term: 2, vote: 3, commit: 2 });
    await store.close();
  });

  it("sync policy 'off' (storage.sync_policy): entries and votes reach the OS but are not fsynced, and read back", async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir, { sync: 'off' });
    const synced = store.syncs;
    const b = store.batch().append(1, ents(1, [1, 1])).setHardState(1, { term: 1, vote: 1, commit: 1 });
    b.sync = true;
    await store.write(b);
    expect(store.syncs).to.equal(synced);
    await store.close();
    store = await RaftLogStore.open(dir, { sync: 'off' });
    expect(store.group(1).initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 1 });
    expect(store.group(1).lastIndex()).to.equal(2);
    await store.close();
  });

  it('persists entries and hard states of many groups in one log, with one append per ready cycle, and recovers them', async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir);
    for (let cycle = 0; cycle < 5; cycle++) {
      const b = store.batch();
      for (let g = 1; g <= 20; g++) {
        b.append(g, ents(cycle * 2 + 1, [1, 1], `g${g}-`));
        b.setHardState(g, { term: 1, vote: g % 3, commit: cycle * 2 });
      }
      await store.write(b);
    }
    expect(store.stats.writes).to.equal(5);
    const before = store.groupIds().map((g) => [dump(store, g), store.group(g).initialState().hardState]);
    await store.close();
    store = await RaftLogStore.open(dir);
    expect(store.groupIds()).to.have.length(20);
    const after = store.groupIds().map((g) => [dump(store, g), store.group(g).initialState().hardState]);
    expect(after).to.deep.equal(before);
    expect(dump(store, 7)).to.have.length(10);
    expect(store.group(7).initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 8 });
    await store.close();
  });

  it('concurrent writes whose encode buffers are reused afterwards all read back after reopen', async () => {
    // A batch's entries records are encoded into a buffer the store reuses once that write is
    // done; reused too early, a later batch would overwrite records still waiting for the disk.
    const seed = Date.now() % 100000;
    const rng = new Rng(seed);
    const dir = tempDir();
    let store = await RaftLogStore.open(dir, { sync: 'always' });
    const model = new Map<number, string[]>();
    const next = new Map<number, number>();
    const inFlight = new Set<Promise<void>>();
    for (let round = 0; round < 200; round++) {
      const b = store.batch();
      for (let g = 1 + rng.int(8); g <= 24; g += 1 + rng.int(8)) {
        const from = next.get(g) ?? 1;
        const n = 1 + rng.int(3);
        const es: Entry[] = [];
        for (let i = 0; i < n; i++) {
          const data = Buffer.alloc(rng.int(40_000), `${g}/${from + i}/${seed}`);
          es.push({ term: 1, index: from + i, type: EntryType.Normal, data });
          const m = model.get(g) ?? [];
          m.push(`${from + i}@1:${data.toString('latin1')}`);
          model.set(g, m);
        }
        next.set(g, from + n);
        b.append(g, es);
      }
      // up to 4 writes overlap (the WAL frames and acknowledges them in call order)
      const p = store.write(b);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= 4) await Promise.race(inFlight);
      if (round % 10 === 9) await Promise.all(inFlight);
    }
    await Promise.all(inFlight);
    await store.close();
    store = await RaftLogStore.open(dir);
    for (const [g, want] of model) {
      const got = store.group(g).entries(1, store.group(g).lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => `${e.index}@${e.term}:${Buffer.from(e.data).toString('latin1')}`);
      expect(got.length, `group ${g} (seed ${seed})`).to.equal(want.length);
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) expect.fail(`group ${g} entry ${i + 1} differs (seed ${seed})`);
    }
    await store.close();
  });

  it('appending at an index truncates the conflicting suffix, durably', async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir);
    await store.write(store.batch().append(1, ents(1, [1, 1, 1, 1, 1])).append(2, ents(1, [1, 1])));
    await store.write(store.batch().append(1, ents(3, [2, 2], 'y')));
    expect(dump(store, 1)).to.deep.equal(['1@1:x1', '2@1:x2', '3@2:y3', '4@2:y4']);
    await store.close();
    store = await RaftLogStore.open(dir);
    expect(dump(store, 1)).to.deep.equal(['1@1:x1', '2@1:x2', '3@2:y3', '4@2:y4']);
    expect(dump(store, 2)).to.deep.equal(['1@1:x1', '2@1:x2']);
    await store.close();
  });

  it('createSnapshot compacts the group log behind the snapshot; installSnapshot replaces it; both survive reopen', async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir);
    await store.write(store.batch().append(1, ents(1, [1, 1, 2, 2, 2])).append(2, ents(1, [1, 1, 1])));
    const cs = { voters: [1, 2, 3], learners: [4], votersOutgoing: [], learnersNext: [], autoLeave: false };
    await store.createSnapshot(1, 3, cs, enc.encode('state@3'));
    expect(store.group(1).firstIndex()).to.equal(4);
    expect(store.group(1).term(3)).to.equal(2);
    await store.write(store.batch().applySnapshot(2, { metadata: { index: 10, term: 3, confState: cs }, data: enc.encode('leader-snap') }));
    await store.close();
    store = await RaftLogStore.open(dir);
    const g1 = store.group(1);
    expect([g1.firstIndex(), g1.lastIndex(), g1.term(3), dec.decode(g1.snapshot().data)]).to.deep.equal([4, 5, 2, 'state@3']);
    expect(g1.initialState().confState.learners).to.deep.equal([4]);
    const g2 = store.group(2);
    expect([g2.firstIndex(), g2.lastIndex(), g2.term(10), dec.decode(g2.snapshot().data)]).to.deep.equal([11, 10, 3, 'leader-snap']);
    expect(() => g1.entries(2, 4, 100)).to.throw(/COMPACTED/);
    await store.close();
  });

  it('snapshots keep their whole configuration (joint voters, learners, learners_next, auto_leave) through create, install, gc and reopen; a RawNode restarted from the store uses it', async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir, { segmentBytes: 1024 });
    const joint = { voters: [1, 4, 5], learners: [6], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: true };
    const plain = { voters: [2, 7, 9], learners: [8], votersOutgoing: [], learnersNext: [], autoLeave: false };
    await store.write(store.batch().append(1, ents(1, [1, 1, 2, 2])).setHardState(1, { term: 2, vote: 1, commit: 4 }));
    await store.createSnapshot(1, 4, joint, enc.encode('s4'));
    await store.write(store.batch().applySnapshot(2, { metadata: { index: 9, term: 3, confState: plain }, data: enc.encode('s9') }).setHardState(2, { term: 3, vote: 0, commit: 9 }));
    expect(store.group(1).initialState().confState).to.deep.equal(joint);
    expect(store.group(2).initialState().confState).to.deep.equal(plain);
    for (let i = 0; i < 20; i++) await store.write(store.batch().setHardState(3, { term: 1, vote: 0, commit: 0 }).append(3, ents(i + 1, [1], 'z'.repeat(100))));
    await store.createSnapshot(3, 20, plain, enc.encode('s20'));
    await store.gc(); // re-writes the old snapshot records of groups 1 and 2
    await store.close();
    store = await RaftLogStore.open(dir);
    expect(store.group(1).initialState().confState).to.deep.equal(joint);
    expect(store.group(1).snapshot().metadata.confState).to.deep.equal(joint);
    expect(store.group(2).initialState().confState).to.deep.equal(plain);
    expect(store.group(3).initialState().confState).to.deep.equal(plain);
    const n1 = new RawNode({ id: 1, storage: store.group(1), electionTick: 10, heartbeatTick: 1, random: new Rng(1), applied: 4 });
    expect(n1.raft.confState()).to.deep.equal(joint);
    expect(n1.raft.tracker.voterIds()).to.deep.equal([1, 2, 3, 4, 5]);
    const n8 = new RawNode({ id: 8, storage: store.group(2), electionTick: 10, heartbeatTick: 1, random: new Rng(8), applied: 9 });
    expect([n8.raft.confState(), n8.raft.isLearner, n8.raft.promotable()]).to.deep.equal([plain, true, false]);
    await store.close();
  });

  it('gc deletes the segments no group needs, names the group holding it back, and recovery still restores every group', async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir, { segmentBytes: 2048 });
    const cs = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    // Group 1 moves fast and compacts; group 2 keeps an old entry alive.
    await store.write(store.batch().append(2, ents(1, [1])).setHardState(2, { term: 1, vote: 1, commit: 1 }));
    let idx = 0;
    for (let i = 0; i < 60; i++) {
      await store.write(store.batch().append(1, ents(idx + 1, Array(5).fill(1), 'p'.repeat(40))).setHardState(1, { term: 1, vote: 1, commit: idx + 5 }));
      idx += 5;
    }
    await store.createSnapshot(1, idx, cs, enc.encode(`s${idx}`));
    const segsBefore = readdirSync(dir).filter((f) => f.endsWith('.log')).length;
    let res = await store.gc();
    expect(res.heldBy).to.deep.equal([2]);
    expect(readdirSync(dir).filter((f) => f.endsWith('.log')).length).to.equal(segsBefore + 1); // nothing freed, one new segment
    // Group 2 compacts too: now everything old can go.
    await store.createSnapshot(2, 1, cs, enc.encode('s1'));
    res = await store.gc();
    expect(res.heldBy).to.deep.equal([]);
    const segsAfter = readdirSync(dir).filter((f) => f.endsWith('.log')).length;
    expect(segsAfter).to.be.lessThan(4);
    await store.write(store.batch().append(1, ents(idx + 1, [2])).setHardState(1, { term: 2, vote: 1, commit: idx + 1 }));
    await store.close();
    store = await RaftLogStore.open(dir);
    const g1 = store.group(1);
    expect([g1.firstIndex(), g1.lastIndex(), g1.term(idx), g1.term(idx + 1), dec.decode(g1.snapshot().data)]).to.deep.equal([idx + 1, idx + 1, 1, 2, `s${idx}`]);
    expect(g1.initialState().hardState).to.deep.equal({ term: 2, vote: 1, commit: idx + 1 });
    const g2 = store.group(2);
    expect([g2.firstIndex(), g2.lastIndex(), g2.term(1), dec.decode(g2.snapshot().data)]).to.deep.equal([2, 1, 1, 's1']);
    expect(g2.initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 1 });
    await store.close();
  });

  it('evicted entries are read back from their segments: same terms and bytes, limited by maxBytes, after suffix replacement, compaction and reopen', async () => {
    const seed = Date.now() % 100000;
    const rng = new Rng(seed);
    const dir = tempDir();
    let store = await RaftLogStore.open(dir, { segmentBytes: 16 * 1024 });
    const model = new Map<number, Map<number, Entry>>(); // group -> index -> entry
    const next = new Map<number, number>();
    for (let turn = 0; turn < 120; turn++) {
      const b = store.batch();
      for (const g of [1, 2, 3]) {
        if (!rng.chance(0.5)) continue;
        let from = next.get(g) ?? 1;
        // now and then a leader change replaces a suffix
        if (from > 3 && rng.int(10) === 0) from -= 1 + rng.int(2);
        const es: Entry[] = [];
        for (let i = rng.int(4); i >= 0; i--) es.push({ term: 1 + Math.floor(turn / 30), index: from + es.length, type: EntryType.Normal, data: rng.bytes(rng.pick([0, 10, 700, 5000])) });
        b.append(g, es);
        const m = model.get(g) ?? new Map<number, Entry>();
        for (const k of [...m.keys()]) if (k >= from) m.delete(k);
        for (const e of es) m.set(e.index, e);
        model.set(g, m);
        next.set(g, from + es.length);
      }
      if (!b.empty) await store.write(b);
      // evict most of what was written (the host evicts through its applied index)
      for (const g of [1, 2, 3]) if (rng.int(3) > 0) store.group(g).evictThrough((next.get(g) ?? 1) - 1 - rng.int(3));
    }
    const check = (what: string): void => {
      for (const [g, m] of model) {
        const gl = store.group(g);
        const lo = gl.firstIndex();
        const all = gl.entries(lo, gl.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
        expect(all.map((e) => e.index), `${what} seed ${seed} group ${g}`).to.deep.equal([...m.keys()].filter((i) => i >= lo).sort((a, b) => a - b));
        for (const e of all) {
          const want = m.get(e.index)!;
          expect([e.term, e.type, Buffer.from(e.data).equals(Buffer.from(want.data))], `${what} seed ${seed} group ${g} entry ${e.index}`).to.deep.equal([want.term, want.type, true]);
        }
        // a byte limit stops the read early (at least one entry), as for one append message
        const some = gl.entries(lo, gl.lastIndex() + 1, 6000);
        expect(some.length).to.be.at.least(1);
        expect(some.map((e) => e.index)).to.deep.equal(all.slice(0, some.length).map((e) => e.index));
        expect(gl.dataBytes(lo, gl.lastIndex() + 1)).to.equal(all.reduce((n, e) => n + e.data.length, 0));
      }
    };
    expect(store.stats.coldReads).to.equal(0);
    check('evicted');
    expect(store.stats.coldReads, 'read back from segments').to.be.greaterThan(0);
    // compaction behind a snapshot drops evicted and kept entries alike
    const cs = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    const cut = Math.floor((next.get(1)! - 1) / 2);
    await store.createSnapshot(1, cut, cs, enc.encode('s'));
    for (const k of [...model.get(1)!.keys()]) if (k <= cut) model.get(1)!.delete(k);
    check('compacted');
    await store.close();
    store = await RaftLogStore.open(dir, { segmentBytes: 16 * 1024 });
    for (const g of [1, 2, 3]) store.group(g).evictThrough(store.group(g).lastIndex());
    check('reopened and evicted');
    await store.close();
  });

  it('truncate compacts with no data; snapshot() builds from the state machine on demand and reuses it while current; truncation records survive gc and reopen; an older one never replaces a newer snapshot', async () => {
    const dir = tempDir();
    let store = await RaftLogStore.open(dir, { segmentBytes: 1024 });
    const cs = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    await store.write(store.batch().append(1, ents(1, [1, 1, 2, 2, 2])).setHardState(1, { term: 2, vote: 1, commit: 5 }));
    await store.write(store.batch().truncate(1, 3, cs));
    const g1 = store.group(1);
    expect([g1.firstIndex(), g1.lastIndex(), g1.term(3), g1.truncated, g1.snap.data.length]).to.deep.equal([4, 5, 2, true, 0]);
    // without a source the Raft core sees the (data-less) compaction point
    expect(g1.snapshot().metadata.index).to.equal(3);
    let built = 0;
    let at = 4;
    g1.snapshotSource = () => {
      built++;
      return { metadata: { index: at, term: 2, confState: cs }, data: enc.encode(`state@${at}`) };
    };
    expect(dec.decode(g1.snapshot().data)).to.equal('state@4');
    expect(dec.decode(g1.snapshot().data), 'reused for the next chunk window').to.equal('state@4');
    expect(built).to.equal(1);
    // a source behind the compaction point is refused, not sent
    await store.write(store.batch().truncate(1, 5, cs));
    at = 4;
    expect(() => g1.snapshot()).to.throw(/SNAPSHOT_TEMPORARILY_UNAVAILABLE/);
    at = 5;
    expect(g1.snapshot().metadata.index).to.equal(5);
    expect(() => store.batch().truncate(1, 5, cs)).to.throw(/SNAPSHOT_OUT_OF_DATE/);
    expect(() => store.batch().truncate(1, 4, cs)).to.throw(/SNAPSHOT_OUT_OF_DATE/);
    // group 2: an installed snapshot (with data) is replaced by a truncation at its own index
    await store.write(store.batch().applySnapshot(2, { metadata: { index: 7, term: 3, confState: cs }, data: enc.encode('leader-snap') }));
    await store.write(store.batch().truncate(2, 7, cs));
    expect([store.group(2).truncated, store.group(2).snap.data.length, store.group(2).term(7)]).to.deep.equal([true, 0, 3]);
    // group 3: an older truncation applied after a newer snapshot (two writes in flight) is ignored
    await store.write(store.batch().append(3, ents(1, [1, 1])));
    const older = store.batch().truncate(3, 2, cs);
    await store.write(store.batch().applySnapshot(3, { metadata: { index: 9, term: 4, confState: cs }, data: enc.encode('s9') }));
    await store.write(older);
    expect([store.group(3).snap.metadata.index, store.group(3).truncated, store.group(3).firstIndex()]).to.deep.equal([9, false, 10]);
    // gc re-writes the truncation records of groups 1 and 2 into the new segment
    for (let i = 0; i < 20; i++) await store.write(store.batch().append(4, ents(i + 1, [1], 'z'.repeat(100))));
    await store.write(store.batch().truncate(4, 20, cs));
    const res = await store.gc();
    expect(res.deletedBefore).to.be.greaterThan(1);
    await store.close();
    store = await RaftLogStore.open(dir);
    const r1 = store.group(1);
    expect([r1.firstIndex(), r1.lastIndex(), r1.term(5), r1.truncated, r1.hard.commit]).to.deep.equal([6, 5, 2, true, 5]);
    expect(store.group(1).initialState().confState).to.deep.equal(cs);
    expect([store.group(2).snap.metadata.index, store.group(2).truncated]).to.deep.equal([7, true]);
    expect([store.group(4).firstIndex(), store.group(4).truncated]).to.deep.equal([21, true]);
    await store.close();
  });

  it('raft groups driven over the store restart with their hard state and log and keep committing', async () => {
    const dir = tempDir();
    const groups = [1, 2, 3];
    const applied = new Map<number, string[]>(groups.map((g) => [g, []]));
    async function run(store: RaftLogStore, proposals: number): Promise<void> {
      const nodes = new Map<number, RawNode>();
      for (const g of groups) {
        const gl = store.group(g);
        if (gl.lastIndex() === 0 && gl.initialState().hardState.term === 0) {
          // bootstrap: a single-member group (config carried in the snapshot record)
          const boot = MemoryStorage.bootstrap([1]);
          await store.write(store.batch().applySnapshot(g, { ...boot.snapshot(), metadata: { ...boot.snapshot().metadata, index: 1, term: 1 } }));
        }
        nodes.set(g, new RawNode({ id: 1, storage: store.group(g), electionTick: 10, heartbeatTick: 1, random: new Rng(g), applied: store.group(g).initialState().hardState.commit }));
      }
      for (const n of nodes.values()) n.campaign();
      for (let i = 0; i <= proposals; i++) {
        if (i < proposals) for (const [g, n] of nodes) n.propose(enc.encode(`g${g}v${applied.get(g)!.length}`));
        // one host-loop turn: one batch across all groups
        const b = store.batch();
        const readies = [...nodes].filter(([, n]) => n.hasReady()).map(([g, n]) => [g, n, n.ready()] as const);
        for (const [g, , rd] of readies) {
          if (rd.snapshot) b.applySnapshot(g, rd.snapshot);
          b.append(g, rd.entries);
          if (rd.hardState) b.setHardState(g, rd.hardState);
        }
        await store.write(b);
        for (const [g, n, rd] of readies) {
          for (const e of rd.committedEntries) if (e.data.length > 0) applied.get(g)!.push(dec.decode(e.data));
          n.advance();
        }
      }
    }
    let store = await RaftLogStore.open(dir);
    await run(store, 5);
    const w = store.stats.writes;
    expect(w).to.be.at.most(3 + 6 + 1); // bootstraps + one write per turn
    await store.close();
    const hs = groups.map((g) => g);
    store = await RaftLogStore.open(dir);
    for (const g of hs) expect(store.group(g).lastIndex()).to.be.at.least(6);
    await run(store, 3);
    for (const g of groups) {
      expect(applied.get(g)!.slice(0, 5)).to.deep.equal([0, 1, 2, 3, 4].map((i) => `g${g}v${i}`));
      expect(applied.get(g)!.length).to.equal(8);
      expect(store.group(g).initialState().hardState.term).to.be.at.least(2);
    }
    await store.close();
  });
});
