// server.max_connections on a real cache-server process: with a limit of 2, two client
// connections are served, calls on a third are answered RESOURCE_EXHAUSTED naming the setting,
// and the third is served once one of the first two closes.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../src/server/proto.js';
import { ServerProc, eventually, freePorts, http, key, rmDir, tmpDir } from './harness.js';
import { parseExposition, scrape, valueOf } from './prom.js';

/** A client on its own TCP connection (grpc-js shares connections between clients of one
 *  process unless each has a local subchannel pool). */
function ownConnection(address: string): grpc.Client {
  const { keyValue } = loadServices();
  return new keyValue(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

function put(c: grpc.Client, k: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const fn = (c as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void>)['Put']!;
    fn.call(c, { key: key(k), value: Buffer.from('v') }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

describe('server: server.max_connections (child process)', function () {
  this.timeout(60000);

  it('serves N connections, answers the next RESOURCE_EXHAUSTED, promotes it when one closes', async () => {
    const dir = tmpDir();
    const ports = await freePorts(4);
    const srv = new ServerProc({
      args: ['--data-dir', dir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', String(ports[3])],
      env: { DISTCACHE_SERVER_MAX_CONNECTIONS: '2', DISTCACHE_CLUSTER_SHARD_COUNT: '4', DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000' },
    });
    const addr = `127.0.0.1:${ports[0]}`;
    const clients: grpc.Client[] = [];
    try {
      await srv.start();
      const [a, b, c] = [ownConnection(addr), ownConnection(addr), ownConnection(addr)];
      clients.push(a, b, c);
      await put(a, 'a');
      await put(b, 'b');
      const refused = (await put(c, 'c').then(() => undefined, (e: unknown) => e)) as grpc.ServiceError | undefined;
      expect(refused, 'third connection must be refused').to.not.equal(undefined);
      expect(refused!.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      expect(refused!.details).to.equal('server.max_connections (2) reached; retry later');
      expect(refused!.metadata.get('error-code')).to.deep.equal(['MAX_CONNECTIONS']);
      // the served ones keep working
      await put(a, 'a2');
      const stats = await http(ports[2]!, 'GET', '/api/stats');
      expect(stats.json['connections']).to.include({ served: 2, waiting: 1, max: 2 });
      const m = parseExposition((await scrape(ports[3]!)).text);
      expect(valueOf(m, 'distcache_requests_total', { method: 'Put', code: 'RESOURCE_EXHAUSTED' })).to.equal(1);
      expect(valueOf(m, 'distcache_client_connections', { state: 'waiting' })).to.equal(1);

      // one served connection closes: the waiting one is served
      a.close();
      await eventually(() => put(c, 'c'), 10000, 50);
      const after = await http(ports[2]!, 'GET', '/api/stats');
      expect(after.json['connections']).to.include({ served: 2, waiting: 0 });
    } finally {
      for (const c of clients) c.close();
      await srv.kill('SIGKILL');
      rmDir(dir);
    }
  });
});
