// Raft benchmark (not a test): an in-process 3-member group over the in-memory network, and a
// 3-member group whose members each persist to a node-wide RaftLogStore on real files.
//   npm run bench:raft [-- --seconds S]
// Reports proposals committed per second with batching on and off, and ticks and messages per
// committed proposal. "Batching on": 64 proposals per host-loop turn and appends up to 1 MiB;
// "off": one proposal per turn and one entry per append message.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Message, MemoryStorage, RawNode, type Storage, StateRole } from '../../src/raft/index.js';
import { RaftLogStore } from '../../src/store/raft-log.js';
import { Rng } from '../../src/util/rng.js';

interface Row {
  setup: string;
  batching: string;
  committed: number;
  seconds: number;
  ticks: number;
  messages: number;
  fsyncs: number;
}

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1] ?? 0) || 2;
const payload = new Uint8Array(100).fill(0x61);

interface Member {
  id: number;
  node: RawNode;
  persist: (rd: ReturnType<RawNode['ready']>) => Promise<void> | void;
  applied: number;
}

async function runGroup(setup: string, batching: boolean, makeStorage: (id: number) => Promise<{ storage: Storage; persist: Member['persist']; close: () => Promise<void>; syncs: () => number }>): Promise<Row> {
  const ids = [1, 2, 3];
  const members: Member[] = [];
  const closers: Array<() => Promise<void>> = [];
  const syncCounters: Array<() => number> = [];
  for (const id of ids) {
    const s = await makeStorage(id);
    closers.push(s.close);
    syncCounters.push(s.syncs);
    const node = new RawNode({
      id,
      storage: s.storage,
      electionTick: 10,
      heartbeatTick: 1,
      random: new Rng(id),
      maxSizePerMsg: batching ? 1 << 20 : 1,
      maxInflightMsgs: 256,
    });
    members.push({ id, node, persist: s.persist, applied: 0 });
  }
  let queue: Message[] = [];
  let messages = 0;
  let ticks = 0;
  async function turn(): Promise<void> {
    // One host-loop turn: every node's Ready persisted, then messages sent, then applied.
    for (let round = 0; round < 50; round++) {
      const readies = members.filter((m) => m.node.hasReady()).map((m) => [m, m.node.ready()] as const);
      if (readies.length === 0 && queue.length === 0) return;
      for (const [m, rd] of readies) await m.persist(rd);
      for (const [m, rd] of readies) {
        queue.push(...rd.messages);
        for (const e of rd.committedEntries) if (e.data.length > 0) m.applied++;
        m.node.advance();
      }
      const q = queue;
      queue = [];
      for (const msg of q) {
        messages++;
        members.find((m) => m.id === msg.to)?.node.step(msg);
      }
    }
  }
  members[0]!.node.campaign();
  while (members[0]!.node.raft.role !== StateRole.Leader) await turn();
  await turn();
  const leader = members[0]!;
  const base = leader.applied;
  const msgBase = messages;
  const syncBase = syncCounters.reduce((s, f) => s + f(), 0);
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < deadline) {
    const n = batching ? 64 : 1;
    for (let i = 0; i < n; i++) leader.node.propose(payload);
    for (const m of members) m.node.tick();
    ticks++;
    await turn();
  }
  await turn();
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const row: Row = {
    setup,
    batching: batching ? 'on' : 'off',
    committed: leader.applied - base,
    seconds: elapsed,
    ticks,
    messages: messages - msgBase,
    fsyncs: syncCounters.reduce((s, f) => s + f(), 0) - syncBase,
  };
  for (const c of closers) await c();
  return row;
}

async function memory(): Promise<{ storage: Storage; persist: Member['persist']; close: () => Promise<void>; syncs: () => number }> {
  const storage = MemoryStorage.bootstrap([1, 2, 3]);
  return {
    storage,
    persist: (rd) => {
      if (rd.snapshot) storage.applySnapshot(rd.snapshot);
      storage.append(rd.entries);
      if (rd.hardState) storage.setHardState(rd.hardState);
    },
    close: async () => {},
    syncs: () => 0,
  };
}

const dirs: string[] = [];
async function persistent(id: number): Promise<{ storage: Storage; persist: Member['persist']; close: () => Promise<void>; syncs: () => number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `raft-bench-${id}-`));
  dirs.push(dir);
  const store = await RaftLogStore.open(dir, { sync: 'always' });
  const boot = MemoryStorage.bootstrap([1, 2, 3]).snapshot();
  await store.write(store.batch().applySnapshot(1, { ...boot, metadata: { ...boot.metadata, index: 1, term: 1 } }));
  let syncs = 0;
  return {
    storage: store.group(1),
    persist: async (rd) => {
      const b = store.batch();
      if (rd.snapshot) b.applySnapshot(1, rd.snapshot);
      b.append(1, rd.entries);
      if (rd.hardState) b.setHardState(1, rd.hardState);
      if (!b.empty) {
        if (b.sync) syncs++;
        await store.write(b);
      }
    },
    close: () => store.close(),
    syncs: () => syncs,
  };
}

function fmt(rows: Row[]): string {
  const head = ['setup', 'batching', 'committed', 'commits/s', 'ticks/commit', 'msgs/commit', 'fsyncs/commit'];
  const lines = rows.map((r) => [
    r.setup,
    r.batching,
    String(r.committed),
    (r.committed / r.seconds).toFixed(0),
    (r.ticks / Math.max(1, r.committed)).toFixed(3),
    (r.messages / Math.max(1, r.committed)).toFixed(2),
    r.setup.includes('persistent') ? (r.fsyncs / Math.max(1, r.committed)).toFixed(3) : '-',
  ]);
  const all = [head, ...lines];
  const w = head.map((_, i) => Math.max(...all.map((l) => l[i]!.length)));
  return all.map((l) => l.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n');
}

const rows: Row[] = [];
rows.push(await runGroup('3 members, in-memory network', true, memory));
rows.push(await runGroup('3 members, in-memory network', false, memory));
rows.push(await runGroup('3 members, persistent raft log (fsync)', true, persistent));
rows.push(await runGroup('3 members, persistent raft log (fsync)', false, persistent));
for (const d of dirs) rmSync(d, { recursive: true, force: true });
console.log(`raft bench: ${seconds}s per row, 100-byte proposals, node ${process.version}, ${os.cpus().length} cpu(s)`);
console.log(fmt(rows));
