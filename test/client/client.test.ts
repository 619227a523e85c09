// distcache/client against real cache-server child processes: every op on one node (secondary
// keys with ':' and binary bytes, version mismatch, atomic multiPut in one shard vs NOT_SUPPORTED
// across shards, rangeScan order and limit), a 3-node cluster reached through a follower (NOT_LEADER
// hints), and a cache-cli smoke test.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { CacheClient, ClientError } from '../../src/client/index.js';
import { ServerProc, localCluster, rmDir, startSingleNode } from '../server/harness.js';

const CLI_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/cache-cli.js');

function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

async function rejects(p: Promise<unknown>): Promise<ClientError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e, 'expected a rejection').to.be.instanceOf(ClientError);
  return e as ClientError;
}

describe('client: single node', function () {
  this.timeout(60000);
  let dir: string;
  let srv: ServerProc;
  let ports: number[];
  let c: CacheClient;

  before(async () => {
    ({ dir, ports, srv } = await startSingleNode());
    c = await CacheClient.connect([`127.0.0.1:${ports[0]}`], { timeoutMs: 5000 });
  });

  after(async () => {
    c?.close();
    await srv?.kill('SIGKILL');
    rmDir(dir);
  });

  it('put / get / remove; values come back as Buffers', async () => {
    const p = await c.put('user:1', 'alice');
    expect(p.version).to.be.a('number').greaterThan(0);
    const g = await c.get('user:1');
    expect(g.found).to.equal(true);
    expect(g.version).to.equal(p.version);
    expect(Buffer.isBuffer(g.value)).to.equal(true);
    expect(g.value!.toString()).to.equal('alice');
    expect(await c.get('user:1', { consistency: 'follower' })).to.include({ found: true, version: p.version });
    expect(await c.get('nope')).to.deep.equal({ found: false });
    expect(await c.remove('user:1')).to.deep.equal({ found: true });
    expect(await c.remove('user:1')).to.deep.equal({ found: false });
    expect((await c.get('user:1')).found).to.equal(false);
  });

  it('secondary keys with ":" and binary bytes in both parts and in values', async () => {
    const bin = Buffer.from([0x00, 0xff, 0x3a, 0x00, 0x80]);
    await c.put({ primary: 'a:b', secondary: 'c:d' }, 'v1');
    await c.put({ primary: bin, secondary: Buffer.from([0, 0, 1]) }, bin);
    await c.put({ primary: 'a', secondary: 'b:c:d' }, 'v2');
    expect((await c.get({ primary: 'a:b', secondary: 'c:d' })).value!.toString()).to.equal('v1');
    expect((await c.get({ primary: 'a', secondary: 'b:c:d' })).value!.toString()).to.equal('v2');
    expect((await c.get({ primary: 'a:b' })).found).to.equal(false);
    expect((await c.get({ primary: 'a', secondary: 'b' })).found).to.equal(false);
    const g = await c.get({ primary: bin, secondary: Buffer.from([0, 0, 1]) });
    expect(g.found).to.equal(true);
    expect(Buffer.compare(g.value!, bin)).to.equal(0);
  });

  it('putIfVersionMatch: create with 0, match, mismatch reports the current version', async () => {
    const created = await c.putIfVersionMatch('cas', 'v0', 0);
    expect(created.ok).to.equal(true);
    if (!created.ok) return;
    const again = await c.putIfVersionMatch('cas', 'x', 0);
    expect(again).to.deep.equal({ ok: false, currentVersion: created.version });
    const next = await c.putIfVersionMatch('cas', 'v1', created.version);
    expect(next.ok).to.equal(true);
    if (!next.ok) return;
    expect(next.version).to.be.greaterThan(created.version);
    expect(await c.putIfVersionMatch('cas', 'v2', created.version)).to.deep.equal({ ok: false, currentVersion: next.version });
    expect((await c.get('cas')).value!.toString()).to.equal('v1');
  });

  it('multiGet in key order across shards; multiPut atomic in one shard, NOT_SUPPORTED across shards', async () => {
    const one = await c.multiPut(['x', 'y:1', 'z\u0000'].map((s, i) => ({ key: { primary: 'order', secondary: s }, value: `o${i}` })), { atomic: true });
    expect(one).to.have.length(3);
    expect(one.every((v) => v > 0)).to.equal(true);
    const many = Array.from({ length: 20 }, (_, i) => ({ key: `mk${i}`, value: `v${i}` }));
    const e = await rejects(c.multiPut(many, { atomic: true }));
    expect(e.code).to.equal('NOT_SUPPORTED');
    expect(e.message).to.match(/cross-shard atomic multiPut is not supported yet/);
    expect((await c.get('mk0')).found).to.equal(false);
    const vs = await c.multiPut(many, { atomic: false });
    expect(vs).to.have.length(20);
    expect(vs.every((v) => v > 0)).to.equal(true);
    const keys = ['mk19', 'missing', 'mk3', { primary: 'order', secondary: 'y:1' }, 'mk0'];
    const r = await c.multiGet(keys);
    expect(r.map((x) => x.found)).to.deep.equal([true, false, true, true, true]);
    expect(r.map((x) => x.value?.toString())).to.deep.equal(['v19', undefined, 'v3', 'o1', 'v0']);
    expect(r[0]!.version).to.equal(vs[19]);
    expect(await c.multiGet([])).to.deep.equal([]);
  });

  it('rangeScan: key order, limit, secondaries within one primary', async () => {
    const within = await c.rangeScan({ start: 'order', end: 'order\u0000' });
    expect(within.map((i) => i.key.secondary.toString())).to.deep.equal(['x', 'y:1', 'z\u0000']);
    expect(within.map((i) => i.value.toString())).to.deep.equal(['o0', 'o1', 'o2']);
    const limited = await c.rangeScan({ start: 'mk', end: 'ml', limit: 5 });
    expect(limited).to.have.length(5);
    const names = limited.map((i) => i.key.primary.toString());
    expect(names).to.deep.equal(['mk0', 'mk1', 'mk10', 'mk11', 'mk12']);
    const all = await c.rangeScan({ start: 'mk', end: 'ml', limit: 100 });
    expect(all).to.have.length(20);
    expect(all.every((i) => i.version > 0)).to.equal(true);
  });

  it('errors carry stable codes', async () => {
    expect((await rejects(c.put('', 'x'))).code).to.equal('INVALID_ARGUMENT');
    expect((await rejects(c.put('big', Buffer.alloc(4 * 1024 * 1024 + 1)))).code).to.equal('VALUE_TOO_LARGE');
    const dead = await rejects(CacheClient.connect([`127.0.0.1:${ports[3]}`], { timeoutMs: 500 }));
    expect(['UNAVAILABLE', 'TIMEOUT']).to.include(dead.code);
  });

  it('cache-cli: put / get / delete / scan / cluster-status / health with --format json', async () => {
    const base = ['--server', `127.0.0.1:${ports[0]}`, '--http', `127.0.0.1:${ports[2]}`, '--format', 'json', '--timeout', '5000'];
    const put = await cli([...base, 'put', 'cli:k', 'hello']);
    expect(put.code, put.err).to.equal(0);
    const pv = JSON.parse(put.out) as { version: number };
    expect(pv.version).to.be.greaterThan(0);
    const get = await cli([...base, 'get', 'cli:k']);
    expect(get.code, get.err).to.equal(0);
    expect(JSON.parse(get.out)).to.deep.equal({ key: 'cli:k', found: true, value: 'hello', version: pv.version });
    const scan = await cli([...base, 'scan', '--start', 'cli:', '--end', 'cli;', '--limit', '10']);
    expect(scan.code, scan.err).to.equal(0);
    expect((JSON.parse(scan.out) as Array<{ key: string }>).map((i) => i.key)).to.deep.equal(['cli:k']);
    const del = await cli([...base, 'delete', 'cli:k']);
    expect(JSON.parse(del.out)).to.deep.equal({ key: 'cli:k', found: true });
    const miss = await cli([...base, 'get', 'cli:k']);
    expect(miss.code).to.equal(1);
    expect(JSON.parse(miss.out)).to.deep.equal({ key: 'cli:k', found: false });
    const cs = await cli([...base, 'cluster-status']);
    expect(cs.code, cs.err).to.equal(0);
    expect(JSON.parse(cs.out)).to.include({ node_id: 'node1', shard_count: 1024, shards_without_leader: 0 });
    const h = await cli([...base, 'health']);
    expect(h.code, h.err).to.equal(0);
    expect(JSON.parse(h.out)).to.include({ status: 'ok' });
    const table = await cli(['--server', `127.0.0.1:${ports[0]}`, 'put', 'cli:t', 'v']);
    expect(table.out).to.match(/version/);
    const bad = await cli([...base, '--format', 'xml', 'get', 'k']);
    expect(bad.code).to.equal(2);
  });
});

describe('client: 3-node cluster', function () {
  this.timeout(60000);
  const ids = ['n1', 'n2', 'n3'];
  const procs: ServerProc[] = [];
  const dirs: string[] = [];
  const addrs: string[] = [];

  before(async () => {
    for (const n of await localCluster(ids, 16)) {
      dirs.push(n.dir);
      procs.push(n.proc);
      addrs.push(n.address);
    }
    await Promise.all(procs.map((p) => p.start()));
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    for (const d of dirs) rmDir(d);
  });

  it('a client given only one endpoint reaches every shard leader (NOT_LEADER hints)', async () => {
    // connect before leaders are known everywhere: routing falls back to hints
    const c = await CacheClient.connect([addrs[1]!], { timeoutMs: 20000 });
    try {
      const keys = Array.from({ length: 40 }, (_, i) => `ck${i}`);
      const versions = new Map<string, number>();
      for (const k of keys) versions.set(k, (await c.put(k, `v-${k}`)).version);
      const got = await c.multiGet(keys);
      got.forEach((g, i) => {
        expect(g.found, keys[i]).to.equal(true);
        expect(g.version).to.equal(versions.get(keys[i]!));
      });
      expect((await c.get('ck7', { consistency: 'follower' })).value!.toString()).to.equal('v-ck7');
      const mp = await c.multiPut(keys.map((k) => ({ key: k, value: `w-${k}` })), { atomic: false });
      expect(mp).to.have.length(40);
      const cas = await c.putIfVersionMatch('ck1', 'cas', mp[1]!);
      expect(cas.ok).to.equal(true);
      const scan = await c.rangeScan({ start: 'ck', end: 'cl', limit: 100 });
      expect(scan.map((i) => i.key.primary.toString())).to.deep.equal([...keys].sort());
      expect(await c.remove('ck2')).to.deep.equal({ found: true });
      // every route pointed at one node: the shards it does not lead answer NOT_LEADER + leader-hint
      const routes = (c as unknown as { shards: Array<{ leader: string }> }).shards;
      for (const r of routes) r.leader = addrs[1]!;
      for (const k of keys.slice(0, 10)) expect((await c.put(k, `h-${k}`)).version).to.be.greaterThan(0);
      expect((await c.get('ck5')).value!.toString()).to.equal('h-ck5');
    } finally {
      c.close();
    }
  });
});
