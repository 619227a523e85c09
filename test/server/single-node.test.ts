// One real cache-server process: every KeyValue call over a plain grpc-js client, bad input over
// gRPC and HTTP, the admin API, restart after SIGKILL, bad configuration exit codes.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { ServerProc, connect, eventually, freePorts, http, key, rmDir, tmpDir, type KvClient } from './harness.js';

function grpcErr(e: unknown): { code: number; details: string; md: Record<string, string> } {
  const se = e as grpc.ServiceError;
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(se.metadata?.getMap() ?? {})) md[k] = String(v);
  return { code: se.code, details: se.details, md };
}

describe('server: single node (child process)', function () {
  this.timeout(60000);
  let dir: string;
  let srv: ServerProc;
  let c: KvClient;
  let ports: number[];

  before(async () => {
    dir = tmpDir();
    ports = await freePorts(4);
    srv = new ServerProc({
      args: ['--data-dir', dir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', String(ports[3])],
      env: { DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000' },
    });
    await srv.start();
    c = connect(`127.0.0.1:${ports[0]}`);
  });

  after(async () => {
    c?.close();
    await srv?.kill('SIGKILL');
    rmDir(dir);
  });

  it('prints one ready line with its addresses', () => {
    expect(srv.readyLine).to.match(new RegExp(`client 127\\.0\\.0\\.1:${ports[0]} peer 127\\.0\\.0\\.1:${ports[1]} http 127\\.0\\.0\\.1:${ports[2]}`));
  });

  it('put / get / delete / putIfVersionMatch / multiGet / multiPut / rangeScan', async () => {
    const p1 = await c.call('Put', { key: key('user:1'), value: Buffer.from('alice') });
    expect(p1['version']).to.be.a('number').greaterThan(0);
    const g1 = await c.call('Get', { key: key('user:1') });
    expect(g1).to.include({ found: true, version: p1['version'] });
    expect((g1['value'] as Buffer).toString()).to.equal('alice');
    expect(await c.call('Get', { key: key('nope') })).to.include({ found: false });

    // putIfVersionMatch: success, then a mismatch -> ABORTED with current-version
    const p2 = await c.call('PutIfVersionMatch', { key: key('user:1'), value: Buffer.from('bob'), expected_version: p1['version'] });
    expect(p2['version']).to.be.greaterThan(p1['version'] as number);
    const mm = grpcErr(await c.call('PutIfVersionMatch', { key: key('user:1'), value: Buffer.from('x'), expected_version: p1['version'] }).catch((e: unknown) => e));
    expect(mm.code).to.equal(grpc.status.ABORTED);
    expect(mm.md).to.include({ 'error-code': 'VERSION_MISMATCH', 'current-version': String(p2['version']) });
    const created = await c.call('PutIfVersionMatch', { key: key('fresh'), value: Buffer.from('1'), expected_version: 0 });
    expect(created['version']).to.be.greaterThan(0);

    expect(await c.call('Delete', { key: key('user:1') })).to.deep.equal({ found: true });
    expect(await c.call('Delete', { key: key('user:1') })).to.deep.equal({ found: false });

    // secondary keys, including ':' and 0x00 bytes; multiPut atomic within one shard
    const entries = ['a', 'b:c', '\u0000z', 'd'].map((s, i) => ({ key: key('order', s), value: Buffer.from(`v${i}`) }));
    const mp = await c.call('MultiPut', { entries, atomic: true });
    expect(mp['versions']).to.have.length(4);
    const mg = await c.call('MultiGet', { keys: [key('order', 'd'), key('missing'), key('order', 'b:c')] });
    const results = mg['results'] as Array<Record<string, unknown>>;
    expect(results.map((r) => r['found'])).to.deep.equal([true, false, true]);
    expect((results[2]!['value'] as Buffer).toString()).to.equal('v1');

    // a cross-shard atomic multiPut is refused clearly
    const many = Array.from({ length: 20 }, (_, i) => ({ key: key(`k${i}`), value: Buffer.from('x') }));
    const na = grpcErr(await c.call('MultiPut', { entries: many, atomic: true }).catch((e: unknown) => e));
    expect(na.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(na.md['error-code']).to.equal('NOT_SUPPORTED');
    expect((await c.call('MultiPut', { entries: many, atomic: false }))['versions']).to.have.length(20);

    // range scan within one primary (its secondaries, in order) and across shards with a limit
    const scan = await c.call('RangeScan', { start: key('order'), end: key('order\u0000'), limit: 0 });
    const items = scan['items'] as Array<{ key: { primary: Buffer; secondary: Buffer }; value: Buffer }>;
    expect(items.map((i) => i.key.secondary.toString())).to.deep.equal(['\u0000z', 'a', 'b:c', 'd']);
    expect(scan['more']).to.equal(false);
    const all = await c.call('RangeScan', { start: key('k'), end: key('l'), limit: 5 });
    expect((all['items'] as unknown[]).length).to.equal(5);
    expect(all['more']).to.equal(true);
    const names = (all['items'] as Array<{ key: { primary: Buffer } }>).map((i) => i.key.primary.toString());
    expect(names).to.deep.equal([...names].sort());

    const info = await c.call('ClusterInfo', {});
    expect(info).to.include({ node_id: 'node1', shard_count: 1024, replication_factor: 3 }); // the target the cluster grows into as members join
    expect((info['shards'] as Array<{ leader: string }>).every((s) => s.leader === 'node1')).to.equal(true);
  });

  it('bad input over gRPC: clear INVALID_ARGUMENT, server keeps serving', async () => {
    const empty = grpcErr(await c.call('Put', { key: key(''), value: Buffer.from('x') }).catch((e: unknown) => e));
    expect(empty.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(empty.details).to.match(/primary must not be empty/);
    const nokey = grpcErr(await c.call('Get', {}).catch((e: unknown) => e));
    expect(nokey.code).to.equal(grpc.status.INVALID_ARGUMENT);
    const big = grpcErr(await c.call('Put', { key: key('big'), value: Buffer.alloc(4 * 1024 * 1024 + 1) }).catch((e: unknown) => e));
    expect(big.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(big.md['error-code']).to.equal('VALUE_TOO_LARGE');
    const bigKey = grpcErr(await c.call('Get', { key: key('k'.repeat(20000)) }).catch((e: unknown) => e));
    expect(bigKey.md['error-code']).to.equal('KEY_TOO_LARGE');
    const noEntries = grpcErr(await c.call('MultiGet', { keys: [] }).catch((e: unknown) => e));
    expect(noEntries.code).to.equal(grpc.status.INVALID_ARGUMENT);
    // malformed bytes (not a protobuf message) straight on the wire
    const malformed = await new Promise<grpc.ServiceError>((resolve) =>
      c.raw.makeUnaryRequest('/distcache.v1.KeyValue/Put', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]), { deadline: Date.now() + 5000 }, (e) => resolve(e!)),
    );
    expect(malformed.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(malformed.details).to.match(/malformed Put request/);
    // unknown fields are ignored by protobuf; the request still works
    const withUnknown = Buffer.concat([Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x41, 0x12, 0x01, 0x42]), Buffer.from([0xf8, 0x07, 0x01])]);
    const ok = await new Promise<Buffer>((resolve, reject) =>
      c.raw.makeUnaryRequest('/distcache.v1.KeyValue/Put', (b: Buffer) => b, (b: Buffer) => b, withUnknown, { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r!))),
    );
    expect(ok.length).to.be.greaterThan(0);
    expect(await c.call('Get', { key: key('A') })).to.include({ found: true });
  });

  it('admin HTTP: health, stats, nodes, flush, compact, backup; JSON errors', async () => {
    const h = await http(ports[2]!, 'GET', '/api/health');
    expect(h.status).to.equal(200);
    expect(h.json).to.include({ status: 'ok', node_id: 'node1', shards: 1024, leaders: 1024 });
    expect((await http(ports[2]!, 'GET', '/api/stats')).json).to.include.keys('node_id', 'ports', 'requests', 'connections', 'host', 'raft_log', 'transport', 'engine', 'memory');
    const nodes = await http(ports[2]!, 'GET', '/api/cluster/nodes');
    expect((nodes.json['nodes'] as unknown[]).length).to.equal(1);
    expect((await http(ports[2]!, 'POST', '/api/storage/flush')).json).to.deep.equal({ ok: true });
    expect((await http(ports[2]!, 'POST', '/api/storage/compact')).json).to.deep.equal({ ok: true });
    const backupDir = `${dir}-backup`;
    const b = await http(ports[2]!, 'POST', '/api/storage/backup', JSON.stringify({ path: backupDir }));
    expect(b.status, JSON.stringify(b.json)).to.equal(200);
    rmDir(backupDir);
    const badJson = await http(ports[2]!, 'POST', '/api/storage/backup', '{"path": ');
    expect(badJson.status).to.equal(400);
    expect((badJson.json['error'] as { code: string }).code).to.equal('INVALID_JSON');
    const noPath = await http(ports[2]!, 'POST', '/api/storage/backup', '{"path": 7}');
    expect(noPath.status).to.equal(400);
    expect((await http(ports[2]!, 'GET', '/api/nope')).status).to.equal(404);
    expect((await http(ports[2]!, 'GET', '/api/storage/flush')).status).to.equal(405);
    expect((await http(ports[2]!, 'GET', '/api/health')).status).to.equal(200);
  });

  it('SIGKILL then restart: every acknowledged write is there', async () => {
    const acked: Array<[string, number]> = [];
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const r = await c.call('Put', { key: key(`durable:${i}`), value: Buffer.from(`v${i}`) });
        acked.push([`durable:${i}`, r['version'] as number]);
      }),
    );
    await srv.kill('SIGKILL');
    c.close();
    await srv.start();
    c = connect(`127.0.0.1:${ports[0]}`);
    await eventually(() => c.call('Get', { key: key('durable:0') }));
    for (const [k, v] of acked) {
      const g = await c.call('Get', { key: key(k) });
      expect(g, k).to.include({ found: true, version: v });
    }
  });

  it('SIGTERM shuts down gracefully (exit 0)', async () => {
    expect(await srv.kill('SIGTERM')).to.equal(0);
    expect(srv.out).to.match(/stopped/);
    await srv.start();
    c.close();
    c = connect(`127.0.0.1:${ports[0]}`);
    expect(await eventually(() => c.call('Get', { key: key('durable:1') }))).to.include({ found: true });
  });

  it('bad configuration: a message naming the key, exit code 2', async () => {
    const r = await ServerProc.run(['--port', '70000', '--data-dir', dir]);
    expect(r.code).to.equal(2);
    expect(r.err).to.match(/server\.listen_port/);
    const r2 = await ServerProc.run(['--initial-cluster', 'node1=nohostport']);
    expect(r2.code).to.equal(2);
    expect(r2.err).to.match(/cluster\.initial_cluster/);
  });
});
