// POST /api/storage/backup produces a directory a cache-server starts from (docs/BACKUP.md):
// a single node restored from its backup serves every key written before the backup with its
// version (and none written after); a restored member of a 3-node cluster is caught up by the
// others. Errors are JSON: 409 for a non-empty target, 400 for a missing path or one inside the
// data directory.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { ServerProc, connect, eventually, freePorts, http, key, localCluster, rmDir, tmpDir, type KvClient } from './harness.js';

const SHARDS = 16;

describe('server: backup and restore (child processes)', function () {
  this.timeout(90000);
  const dirs: string[] = [];
  const procs: ServerProc[] = [];
  const clients: KvClient[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
    for (const d of dirs.splice(0)) rmDir(d);
  });

  function single(dataDir: string, ports: number[]): ServerProc {
    const p = new ServerProc({
      args: ['--data-dir', dataDir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', String(ports[3])],
      env: { DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000', DISTCACHE_CLUSTER_SHARD_COUNT: String(SHARDS) },
    });
    procs.push(p);
    return p;
  }

  it('single node: restore after SIGKILL serves the keys acknowledged before the backup, with their versions', async () => {
    const dir = tmpDir();
    const backup = `${tmpDir()}/b`;
    dirs.push(dir, path.dirname(backup));
    const ports = await freePorts(4);
    const srv = single(dir, ports);
    await srv.start();
    const c = connect(`127.0.0.1:${ports[0]}`);
    clients.push(c);

    const before = new Map<string, number>();
    const putBefore = async (k: string, v: string): Promise<void> => {
      before.set(k, (await c.call('Put', { key: key(k), value: Buffer.from(v) }))['version'] as number);
    };
    for (let i = 0; i < 40; i++) await putBefore(`pre:${i}`, `v${i}`);
    // part of the state in SSTables, part in the memtable
    expect((await http(ports[2]!, 'POST', '/api/storage/flush')).status).to.equal(200);
    for (let i = 40; i < 80; i++) await putBefore(`pre:${i}`, `v${i}`);
    await c.call('Delete', { key: key('pre:0') });
    before.delete('pre:0');

    const b = await http(ports[2]!, 'POST', '/api/storage/backup', JSON.stringify({ path: backup }));
    expect(b.status, JSON.stringify(b.json)).to.equal(200);
    expect(b.json).to.include({ ok: true, path: backup, shards: SHARDS + 1 }); // + the cluster-metadata group

    // after the backup: new keys, an overwrite, a delete — none of it is in the backup
    for (let i = 0; i < 20; i++) await c.call('Put', { key: key(`post:${i}`), value: Buffer.from('x') });
    await c.call('Put', { key: key('pre:1'), value: Buffer.from('overwritten') });
    await c.call('Delete', { key: key('pre:2') });

    // JSON errors
    const again = await http(ports[2]!, 'POST', '/api/storage/backup', JSON.stringify({ path: backup }));
    expect(again.status).to.equal(409);
    expect(again.json['error']).to.include({ code: 'TARGET_NOT_EMPTY' });
    expect((again.json['error'] as { message: string }).message).to.match(/exists and is not empty/);
    const missing = await http(ports[2]!, 'POST', '/api/storage/backup', '{}');
    expect(missing.status).to.equal(400);
    expect(missing.json['error']).to.include({ code: 'INVALID_ARGUMENT' });
    const inside = await http(ports[2]!, 'POST', '/api/storage/backup', JSON.stringify({ path: path.join(dir, 'bk') }));
    expect(inside.status).to.equal(400);
    expect((inside.json['error'] as { message: string }).message).to.match(/inside the node's data directory/);
    expect(existsSync(path.join(dir, 'bk'))).to.equal(false);

    await srv.kill('SIGKILL');
    const manifest = JSON.parse(readFileSync(path.join(backup, 'BACKUP.json'), 'utf8')) as { node_id: string; shards: unknown[] };
    expect(manifest.node_id).to.equal('node1');
    expect(manifest.shards).to.have.length(SHARDS + 1); // + the cluster-metadata group

    // a new process on the backup directory
    const ports2 = await freePorts(4);
    const restored = single(backup, ports2);
    await restored.start();
    const r = connect(`127.0.0.1:${ports2[0]}`);
    clients.push(r);
    await eventually(() => r.call('Get', { key: key('pre:3') }));
    for (const [k, version] of before) {
      const g = await r.call('Get', { key: key(k) });
      expect(g, k).to.include({ found: true, version });
      if (k === 'pre:1') expect((g['value'] as Buffer).toString()).to.equal('v1');
    }
    expect(await r.call('Get', { key: key('pre:0') })).to.include({ found: false });
    for (let i = 0; i < 20; i++) expect(await r.call('Get', { key: key(`post:${i}`) }), `post:${i}`).to.include({ found: false });
    // and it takes writes, with versions above everything restored
    const maxBefore = Math.max(...before.values());
    const w = await r.call('Put', { key: key('pre:1'), value: Buffer.from('new') });
    expect(w['version'] as number).to.be.greaterThan(before.get('pre:1')!);
    expect(maxBefore).to.be.greaterThan(0);
  });

  it('3 nodes: a member restored from its backup is caught up by the others', async () => {
    const nodes = await localCluster(['n1', 'n2', 'n3'], SHARDS);
    for (const n of nodes) {
      dirs.push(n.dir);
      procs.push(n.proc);
    }
    const backup = `${tmpDir()}/n3`;
    dirs.push(path.dirname(backup));
    await Promise.all(nodes.map((n) => n.proc.start()));
    const byAddr = new Map(nodes.map((n) => [n.address, connect(n.address)]));
    clients.push(...byAddr.values());

    /** Put through any node, following NOT_LEADER hints until the write lands. */
    const put = async (k: string, v: string): Promise<number> => {
      let addr = nodes[0]!.address;
      return eventually(async () => {
        try {
          return (await byAddr.get(addr)!.call('Put', { key: key(k), value: Buffer.from(v) }, 3000))['version'] as number;
        } catch (e) {
          const hint = (e as grpc.ServiceError).metadata?.get('leader-hint')[0];
          addr = typeof hint === 'string' && byAddr.has(hint) ? hint : nodes[Math.floor(Math.random() * 3)]!.address;
          throw e;
        }
      }, 20000, 50);
    };
    const versions = new Map<string, number>();
    for (let i = 0; i < 30; i++) versions.set(`a:${i}`, await put(`a:${i}`, `a${i}`));

    const n3 = nodes[2]!;
    const httpPort = Number(n3.proc.spec.args[n3.proc.spec.args.indexOf('--http-port') + 1]);
    const b = await http(httpPort, 'POST', '/api/storage/backup', JSON.stringify({ path: backup }));
    expect(b.status, JSON.stringify(b.json)).to.equal(200);
    await n3.proc.kill('SIGKILL');

    // the two others keep writing while n3 is down
    for (let i = 0; i < 30; i++) versions.set(`b:${i}`, await put(`b:${i}`, `b${i}`));

    // n3 comes back on its backup (same node id, ports and cluster)
    const args = [...n3.proc.spec.args];
    args[args.indexOf('--data-dir') + 1] = backup;
    const restored = new ServerProc({ ...n3.proc.spec, args });
    procs.push(restored);
    await restored.start();
    byAddr.get(n3.address)!.close();
    const r = connect(n3.address);
    clients.push(r);
    // A read on n3 is served from n3's own engine once n3 has applied up to the leader's commit
    // index (ReadIndex from the follower): seeing the b: keys there means it caught up.
    for (const [k, version] of versions) {
      const g = await eventually(() => r.call('Get', { key: key(k) }, 3000), 20000, 100);
      expect(g, k).to.include({ found: true, version });
    }
  });
});
