// Raft-log truncation and garbage collection on three real hosts: under a stream of overwrites the
// node-wide Raft log stays a few rounds long (each round flushes the engine, truncates every
// group's log at the applied index that flush made durable, deletes old segments), and a full
// restart - also a crash-like one that loses the engine's memtable - recovers every shard from
// the engine plus the entries after the truncation points.
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { MultiRaftHost } from '../../src/store/host.js';
import { decodeLog } from '../../src/wal/log-reader.js';
import { TestCluster } from './helpers.js';

/** Files of `dir` ending in `suffix` ('.log': the Raft log's segments; '.free': deleted
 *  segments' files kept for reuse), their bytes, and the bytes of the log records they hold (a
 *  reused file keeps bytes of its earlier life past its records). */
function dirBytes(dir: string, suffix = '.log'): { files: number; bytes: number; logBytes: number } {
  let files = 0;
  let bytes = 0;
  let logBytes = 0;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(suffix)) continue;
    files++;
    const file = path.join(dir, f);
    bytes += statSync(file).size;
    if (suffix === '.log') logBytes += decodeLog(readFileSync(file), file, { tolerateTornTail: true }).validLength;
  }
  return { files, bytes, logBytes };
}

describe('store: Raft-log GC (3 hosts, real files)', function () {
  this.timeout(60000);
  let c: TestCluster;
  afterEach(async () => {
    await c?.closeAll();
  });

  it('keeps the log bounded under overwrites and recovers every shard after a restart', async () => {
    const GC_BYTES = 128 * 1024;
    c = new TestCluster([1, 2, 3], [0, 1, 2, 3], { logGcBytes: GC_BYTES });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const value = Buffer.alloc(1024, 1);
    const latest = new Map<string, number>();
    let written = 0;
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const shard = i % 4;
          const key = Buffer.from(`k${i}`);
          const v = Buffer.concat([value, Buffer.from(`-${round}`)]);
          const r = await c.leader(shard)!.propose(shard, { ops: [{ type: 'put', key, value: v }] });
          latest.set(`${shard}/k${i}`, (r.results[0] as { version: number }).version);
          written += v.length;
        }),
      );
    }
    const stats = [...c.hosts.values()].map((h) => h.stats);
    expect(stats.every((s) => s.logGcs > 0), JSON.stringify(stats.map((s) => s.logGcs))).to.equal(true);
    for (const [id, dir] of c.dirs) {
      // a round deletes the segments it freed in the background, after its turns resumed
      for (let i = 0; i < 300 && dirBytes(path.join(dir, 'raft')).logBytes >= written / 2; i++) await new Promise((r) => setTimeout(r, 10));
      const raft = dirBytes(path.join(dir, 'raft'));
      // 2 MB of values written; what stays is the live data (~100 KB per copy) and the last rounds
      expect(raft.logBytes, `node ${id} raft log bytes (${raft.files} files)`).to.be.lessThan(written / 2);
      expect(raft.files, `node ${id} raft log files`).to.be.lessThan(8);
      // the files of deleted segments kept for reuse are bounded too (RaftLogOptions.recycleSegments)
      expect(dirBytes(path.join(dir, 'raft'), '.free').files, `node ${id} free files`).to.be.at.most(1);
    }
    console.log(`      wrote ${(written / 1e6).toFixed(1)} MB; raft logs now ${[...c.dirs].map(([, d]) => { const r = path.join(d, 'raft'); const l = dirBytes(r); return `${(l.logBytes / 1e3).toFixed(0)} KB (files ${((l.bytes + dirBytes(r, '.free').bytes) / 1e3).toFixed(0)} KB)`; }).join(', ')}; GC rounds ${stats.map((s) => s.logGcs).join('/')}, truncations ${stats.map((s) => s.logTruncations).join('/')}`);

    for (const id of [1, 2, 3]) await c.stop(id);
    await c.startAll();
    await c.waitLeaders();
    for (const [k, version] of latest) {
      const [shard, key] = k.split('/') as [string, string];
      for (const h of c.hosts.values()) {
        const r = await h.read(Number(shard), Buffer.from(key));
        expect(r.version, `${k} on node ${h.nodeId}`).to.equal(version);
      }
    }
  });

  it('after crash-like stops (engine memtables lost) every acknowledged write is recovered from the flushed engine and the log after its truncation; an engine behind the truncation refuses to open', async () => {
    c = new TestCluster([1, 2, 3], [0, 1, 2, 3], { logGcBytes: 64 * 1024 });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const latest = new Map<string, { version: number; value: string }>();
    const value = Buffer.alloc(512, 7);
    for (let round = 0; round < 30; round++) {
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const shard = i % 4;
          const v = `${round}-${i}`;
          const r = await c.leader(shard)!.propose(shard, { ops: [{ type: 'put', key: Buffer.from(`k${i % 25}`), value: Buffer.concat([value, Buffer.from(v)]) }] });
          latest.set(`${shard}/k${i % 25}`, { version: (r.results[0] as { version: number }).version, value: v });
        }),
      );
    }
    const truncations = [...c.hosts.values()].map((h) => h.stats.logTruncations);
    expect(truncations.every((n) => n > 0), `truncations ${truncations}`).to.equal(true);
    await crashAllAndCheck(c, latest, 512);
    // an engine that lost what it had flushed (here: all of it) is not silently re-filled from a
    // log that no longer holds those entries
    await c.stop(1, { crash: true });
    rmSync(path.join(c.dirs.get(1)!, 'engine'), { recursive: true, force: true });
    const err = await MultiRaftHost.open({ nodeId: 1, dataDir: c.dirs.get(1)!, transport: c.hub.transport(1) }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err?.code).to.equal('CORRUPTION');
    expect(err?.message).to.match(/engine.*behind the Raft log's truncation/);
  });
  it('truncation rounds run beside the turns (groups in flight wait for a later turn); a crash-like stop under continuous writes loses no acknowledged write', async () => {
    c = new TestCluster([1, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7], { logGcBytes: 48 * 1024 });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const latest = new Map<string, { version: number; value: string }>();
    const pad = Buffer.alloc(700, 3);
    // closed-loop writers that never wait for each other: turns are always in flight
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const shard = (w + n) % 8;
        const key = `k${(w * 7 + n) % 20}`;
        const v = `${w}-${n}`;
        const r = await c.leader(shard)!.propose(shard, { ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.concat([pad, Buffer.from(v)]) }] });
        const version = (r.results[0] as { version: number }).version;
        const prev = latest.get(`${shard}/${key}`);
        if (!prev || prev.version < version) latest.set(`${shard}/${key}`, { version, value: v });
      }
    };
    const writers = Array.from({ length: 24 }, (_, w) => writer(w));
    const hosts = [...c.hosts.values()];
    for (let i = 0; i < 1000 && !hosts.every((h) => h.stats.logGcs >= 3 && h.stats.truncationDeferrals > 0); i++) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    await Promise.all(writers);
    const s = hosts.map((h) => h.stats);
    const summary = s.map((x) => `rounds ${x.logGcs}, turns during rounds ${x.truncationTurns}, groups deferred ${x.truncationDeferrals}`).join('; ');
    expect(s.every((x) => x.logGcs >= 3), summary).to.equal(true);
    // the loop kept turning while rounds were under way, and rounds met groups in flight
    expect(s.every((x) => x.truncationTurns > 0 && x.truncationDeferrals > 0), summary).to.equal(true);
    console.log(`      ${latest.size} keys, ${summary}`);
    await crashAllAndCheck(c, latest, 700);
  });
});

/** Crash-like stops of every host (engine memtables lost), restart, then every replica of every
 *  key holds the latest acknowledged version and value (the value after `pad` bytes). */
async function crashAllAndCheck(c: TestCluster, latest: Map<string, { version: number; value: string }>, pad: number): Promise<void> {
  for (const id of [1, 2, 3]) await c.stop(id, { crash: true });
  await c.startAll();
  c.campaignSpread();
  await c.settle();
  for (const [k, want] of latest) {
    const [shard, key] = k.split('/') as [string, string];
    for (const h of c.hosts.values()) {
      await waitApplied(h, Number(shard), c.leader(Number(shard))!.appliedIndex(Number(shard)));
      const r = h.readLocal(Number(shard), Buffer.from(key));
      expect(r.version, `${k} on node ${h.nodeId}`).to.equal(want.version);
      expect(r.value!.subarray(pad).toString(), `${k} on node ${h.nodeId}`).to.equal(want.value);
    }
  }
}

async function waitApplied(h: MultiRaftHost, shard: number, index: number): Promise<void> {
  for (let i = 0; i < 500 && h.appliedIndex(shard) < index; i++) await new Promise((r) => setTimeout(r, 10));
  expect(h.appliedIndex(shard), `node ${h.nodeId} shard ${shard} applied`).to.be.at.least(index);
}
