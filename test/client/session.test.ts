// The client's Session transport against real cache-server child processes: ops issued in one
// turn share RequestBatches, the unary transport gives the same answers, a stream broken by a
// SIGKILL fails its ops (never hangs) and is reopened lazily after a restart, and on a 3-node
// cluster follower reads are served by the followers (their host.followerReads counters grow)
// and return the value written before them.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { CacheClient, ClientError } from '../../src/client/index.js';
import { SessionConn } from '../../src/client/session.js';
import { loadServices } from '../../src/server/proto.js';
import { ServerProc, eventually, http, localCluster, rmDir, startSingleNode } from '../server/harness.js';


const pk = (s: string): { primary: Buffer; secondary: Buffer } => ({ primary: Buffer.from(s), secondary: Buffer.alloc(0) });

describe('client: session transport (single node)', function () {
  this.timeout(60000);
  let dir: string;
  let srv: ServerProc;
  let ports: number[];
  let addr: string;

  before(async () => {
    ({ dir, ports, srv, address: addr } = await startSingleNode());
  });

  after(async () => {
    await srv?.kill('SIGKILL');
    rmDir(dir);
  });

  it('ops issued in one turn travel in one RequestBatch, answered per id', async () => {
    const { keyValue } = loadServices();
    const ch = new keyValue(addr, grpc.credentials.createInsecure());
    const writes: number[] = [];
    const conn = new SessionConn(() => {
      const call = (ch as unknown as { Session: () => grpc.ClientDuplexStream<unknown, unknown> }).Session();
      const write = call.write.bind(call) as (m: unknown) => boolean;
      (call as unknown as { write: (m: { requests: unknown[] }) => boolean }).write = (m) => {
        writes.push(m.requests.length);
        return write(m);
      };
      return call;
    });
    try {
      const deadline = Date.now() + 5000;
      const puts = await Promise.all(Array.from({ length: 100 }, (_, i) => conn.call('Put', { key: pk(`b:${i}`), value: Buffer.from(`v${i}`) }, deadline)));
      expect(writes).to.deep.equal([100]);
      const gets = await Promise.all(Array.from({ length: 100 }, (_, i) => conn.call('Get', { key: pk(`b:${i}`), consistency: 'LINEARIZABLE' }, deadline)));
      expect(writes).to.deep.equal([100, 100]);
      gets.forEach((g, i) => {
        expect(g['found']).to.equal(true);
        expect((g['value'] as Buffer).toString()).to.equal(`v${i}`);
        expect(g['version']).to.equal(puts[i]!['version']);
      });
      // more than a batch holds: split at MAX_REQUESTS_PER_BATCH (256)
      await Promise.all(Array.from({ length: 600 }, (_, i) => conn.call('Get', { key: pk(`b:${i % 100}`), consistency: 'LINEARIZABLE' }, deadline)));
      expect(writes.slice(2)).to.deep.equal([256, 256, 88]);
      expect(conn.inFlight).to.equal(0);
    } finally {
      conn.close();
      ch.close();
    }
  });

  it('the unary transport and the session transport give the same answers and errors', async () => {
    const s = await CacheClient.connect([addr], { timeoutMs: 5000 });
    const u = await CacheClient.connect([addr], { timeoutMs: 5000, transport: 'unary' });
    try {
      const v1 = await s.put('same:1', 'a');
      expect(await u.get('same:1')).to.deep.include({ found: true, version: v1.version });
      const cas = await u.putIfVersionMatch('same:1', 'b', v1.version + 7);
      expect(await s.putIfVersionMatch('same:1', 'b', v1.version + 7)).to.deep.equal(cas);
      expect(cas).to.deep.equal({ ok: false, currentVersion: v1.version });
      for (const c of [s, u]) {
        const e = await c.put('', 'x').then(() => undefined, (err: unknown) => err as ClientError);
        expect(e).to.be.instanceOf(ClientError);
        expect(e!.code).to.equal('INVALID_ARGUMENT');
        expect(e!.grpcCode).to.equal(grpc.status.INVALID_ARGUMENT);
      }
      const keys = Array.from({ length: 30 }, (_, i) => `same:m${i}`);
      await s.multiPut(keys.map((k) => ({ key: k, value: k })));
      const [a, b] = await Promise.all([s.multiGet(keys), u.multiGet(keys)]);
      expect(a.map((x) => x.version)).to.deep.equal(b.map((x) => x.version));
      expect((await s.rangeScan({ start: 'same:', end: 'same;' })).map((i) => i.version)).to.deep.equal((await u.rangeScan({ start: 'same:', end: 'same;' })).map((i) => i.version));
      // many concurrent ops through the public API (one session, coalesced)
      const many = await Promise.all(keys.map((k) => s.get(k)));
      expect(many.every((g) => g.found && g.value!.toString().startsWith('same:m'))).to.equal(true);
    } finally {
      s.close();
      u.close();
    }
  });

  it('a stream broken by SIGKILL fails its ops (UNAVAILABLE/TIMEOUT, never a hang); after a restart the client reopens it', async () => {
    const c = await CacheClient.connect([addr], { timeoutMs: 1500, retries: 3 });
    try {
      const w = await c.put('durable', 'before-kill');
      // ops in flight when the server dies: each settles, either done or failed with a code
      const inflight = Array.from({ length: 50 }, (_, i) => c.put(`kill:${i}`, 'x').then(() => 'ok', (e: unknown) => (e as ClientError).code));
      await srv.kill('SIGKILL');
      const outcomes = await Promise.all(inflight);
      for (const o of outcomes) expect(['ok', 'UNAVAILABLE', 'TIMEOUT', 'PROPOSAL_DROPPED']).to.include(o);
      const down = await c.get('durable').then(() => undefined, (e: unknown) => e as ClientError);
      expect(down).to.be.instanceOf(ClientError);
      expect(['UNAVAILABLE', 'TIMEOUT']).to.include(down!.code);
      await srv.start();
      const g = await eventually(() => c.get('durable'), 20000, 100);
      expect(g).to.deep.include({ found: true, version: w.version });
      expect(g.value!.toString()).to.equal('before-kill');
      expect((await c.put('after-restart', 'y')).version).to.be.greaterThan(0);
    } finally {
      c.close();
    }
  });
});

describe('client: follower reads (3-node cluster)', function () {
  this.timeout(90000);
  const ids = ['n1', 'n2', 'n3'];
  const procs: ServerProc[] = [];
  const dirs: string[] = [];
  const addrs: string[] = [];
  const httpPorts = new Map<string, number>(); // node id -> admin port

  before(async () => {
    for (const n of await localCluster(ids, 8)) {
      dirs.push(n.dir);
      procs.push(n.proc);
      addrs.push(n.address);
      httpPorts.set(n.id, Number(n.proc.spec.args[n.proc.spec.args.indexOf('--http-port') + 1]));
    }
    await Promise.all(procs.map((p) => p.start()));
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    for (const d of dirs) rmDir(d);
  });

  const followerReads = async (id: string): Promise<number> => ((await http(httpPorts.get(id)!, 'GET', '/api/stats')).json['host'] as { followerReads: number }).followerReads;

  it('follower reads are spread over the replicas, served by the followers, and see the preceding write', async () => {
    const c = await CacheClient.connect([addrs[0]!], { timeoutMs: 20000 });
    try {
      const w = await c.put('fr:k', 'v0');
      // the shard's leader, as the client learned it
      const sid = c.shardOfKey({ primary: Buffer.from('fr:k'), secondary: Buffer.alloc(0) });
      const followers = await eventually(async () => {
        const info = (await c.clusterInfo()) as { members: Array<{ client_address: string }>; shards: Array<{ shard_id: number; leader: string; replicas: string[] }> };
        const shard = info.shards.find((s) => s.shard_id === sid)!;
        expect(shard.leader).to.not.equal('');
        // the metadata leader records the members' client addresses shortly after start-up;
        // until the client knows all three, it can only send follower reads to those it knows
        expect(info.members.filter((m) => m.client_address !== '')).to.have.length(3);
        await c.refresh();
        return shard.replicas.filter((r) => r !== shard.leader);
      }, 20000, 100);
      expect(followers).to.have.length(2);
      // leadership may still move (leader balancing after start-up), so count on every node
      const before = new Map<string, number>();
      for (const id of ids) before.set(id, await followerReads(id));
      let version = w.version;
      for (let i = 0; i < 12; i++) {
        // each read follows a write acknowledged before it: it must see that write
        if (i % 3 === 0) version = (await c.put('fr:k', `v${i}`)).version;
        const g = await c.get('fr:k', { consistency: 'follower' });
        expect(g, `read ${i}`).to.deep.include({ found: true, version });
      }
      // round-robin over three replicas: about 8 of the 12 reads land on followers, on two nodes
      const served = await Promise.all(ids.map(async (id) => (await followerReads(id)) - before.get(id)!));
      expect(served.reduce((a, b) => a + b, 0), JSON.stringify(served)).to.be.at.least(6);
      expect(served.filter((n) => n > 0).length, JSON.stringify(served)).to.be.at.least(2);
      // multiGet and rangeScan with follower consistency see the same state
      expect((await c.multiGet(['fr:k'], { consistency: 'follower' }))[0]).to.deep.include({ found: true, version });
      expect((await c.rangeScan({ start: 'fr:', end: 'fr;', consistency: 'follower' })).map((x) => x.version)).to.deep.equal([version]);
    } finally {
      c.close();
    }
  });
});
