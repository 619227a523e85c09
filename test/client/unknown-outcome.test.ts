// distcache/client must not retry a write whose request may have reached the server: a connection
// that drops after the server received (and applied) a putIfVersionMatch leaves the outcome
// unknown. Retrying it would report VERSION_MISMATCH for a swap that happened (the retry sees
// the op's own version), which breaks linearizability of the client's answers.
//
// Setup: one real cache-server whose advertised client address is a NetProxy in front of its
// client port, so every client call crosses the proxy. The proxy holds the replies, the test
// waits until the write is visible on the server directly, then closes the connection: with a FIN
// (what the client of a killed server with no unread input sees; grpc-js says "Connection
// dropped") and with an RST ("read ECONNRESET").
import { expect } from 'chai';
import { CacheClient, ClientError } from '../../src/client/index.js';
import { NetProxy } from '../server/net-proxy.js';
import { ServerProc, connect, eventually, freePorts, key, rmDir, tmpDir } from '../server/harness.js';

describe('client: a write whose connection drops after it was sent', function () {
  this.timeout(60000);
  let dir: string;
  let srv: ServerProc;
  let proxy: NetProxy;
  let direct: string;

  before(async () => {
    dir = tmpDir();
    const ports = await freePorts(4);
    direct = `127.0.0.1:${ports[0]}`;
    proxy = await NetProxy.start('client', ports[0]!);
    srv = new ServerProc({
      args: ['--data-dir', dir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', String(ports[3])],
      env: { DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000', DISTCACHE_CLUSTER_SHARD_COUNT: '4', DISTCACHE_CLUSTER_ADVERTISE_CLIENT_ADDRESS: `127.0.0.1:${proxy.port}` },
    });
    await srv.start();
  });

  after(async () => {
    await srv?.kill('SIGKILL');
    await proxy?.close();
    rmDir(dir);
  });

  for (const how of ['fin', 'rst'] as const) {
    it(`putIfVersionMatch is not retried after the connection closes (${how.toUpperCase()}): an unknown outcome, never a false VERSION_MISMATCH`, async () => {
      const c = await CacheClient.connect([`127.0.0.1:${proxy.port}`], { timeoutMs: 5000 });
      const kv = connect(direct);
      try {
        const { version: v0 } = await c.put(`cas-drop-${how}`, 'v0');
        proxy.block('replies');
        const call = c.putIfVersionMatch(`cas-drop-${how}`, 'v1', v0).then(
          (r) => ({ r }),
          (e: unknown) => ({ e }),
        );
        // the swap happened on the server; its reply is stuck in the proxy
        const applied = await eventually(async () => {
          const g = await kv.call('Get', { key: key(`cas-drop-${how}`) }, 1000);
          expect((g['value'] as Buffer).toString()).to.equal('v1');
          return g['version'] as number;
        }, 5000, 20);
        proxy.resetConnections(how);
        proxy.heal();
        const out = await call;
        if ('r' in out) {
          expect.fail(`the client answered ${JSON.stringify(out.r)} although its swap to version ${applied} was applied: it retried a write that had reached the server`);
        }
        expect(out.e).to.be.instanceOf(ClientError);
        expect(['UNAVAILABLE', 'TIMEOUT']).to.include((out.e as ClientError).code);
        // the store holds exactly the one swap
        expect(await c.get(`cas-drop-${how}`)).to.deep.include({ found: true, version: applied });
      } finally {
        kv.close();
        c.close();
      }
    });
  }
});
