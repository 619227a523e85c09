// Prometheus metrics of a real cache-server process: /metrics on monitoring.metrics_port (0 =
// any port, reported in the ready line and /api/stats) parses as the text exposition format, and
// its counters move by exactly the requests made; monitoring.enable_monitoring=false listens on
// nothing.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { ServerProc, connect, freePorts, http, key, rmDir, tmpDir, type KvClient } from './harness.js';
import { type Exposition, parseExposition, scrape, valueOf } from './prom.js';

const SHARDS = 8;
const DASHBOARD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../docs/grafana/distcache.json');

describe('server: Prometheus metrics (child process)', function () {
  this.timeout(60000);
  let dir: string;
  let srv: ServerProc;
  let c: KvClient;
  let ports: number[];
  let metricsPort: number;

  before(async () => {
    dir = tmpDir();
    ports = await freePorts(3);
    srv = new ServerProc({
      args: ['--data-dir', dir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', '0'],
      env: { DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000', DISTCACHE_CLUSTER_SHARD_COUNT: String(SHARDS) },
    });
    await srv.start();
    c = connect(`127.0.0.1:${ports[0]}`);
    const m = / metrics 127\.0\.0\.1:(\d+) /.exec(srv.readyLine);
    expect(m, srv.readyLine).to.not.equal(null);
    metricsPort = Number(m![1]);
  });

  after(async () => {
    c?.close();
    await srv?.kill('SIGKILL');
    rmDir(dir);
  });

  async function metrics(): Promise<Exposition> {
    const r = await scrape(metricsPort);
    expect(r.status).to.equal(200);
    expect(r.contentType).to.match(/^text\/plain; version=0\.0\.4/);
    return parseExposition(r.text);
  }

  it('binds port 0 to a free port, shown in the ready line and /api/stats', async () => {
    expect(metricsPort).to.be.greaterThan(0);
    const stats = await http(ports[2]!, 'GET', '/api/stats');
    expect(stats.json['ports']).to.deep.equal({ client: ports[0], peer: ports[1], http: ports[2], metrics: metricsPort });
    expect((await fetch(`http://127.0.0.1:${metricsPort}/nope`)).status).to.equal(404);
  });

  it('counts requests by method and status code, exactly', async () => {
    const before = await metrics();
    const puts = 7;
    for (let i = 0; i < puts; i++) await c.call('Put', { key: key(`m:${i}`), value: Buffer.from(`v${i}`) });
    for (let i = 0; i < 3; i++) await c.call('Get', { key: key(`m:${i}`) });
    const bad = await c.call('Put', { key: key(''), value: Buffer.from('x') }).catch((e: unknown) => e as grpc.ServiceError);
    expect((bad as grpc.ServiceError).code).to.equal(grpc.status.INVALID_ARGUMENT);
    const after = await metrics();

    const d = (name: string, labels: Record<string, string>): number => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(after.types.get('distcache_requests_total')).to.equal('counter');
    expect(after.types.get('distcache_request_duration_seconds')).to.equal('histogram');
    expect(d('distcache_requests_total', { method: 'Put', code: 'OK' })).to.equal(puts);
    expect(d('distcache_requests_total', { method: 'Get', code: 'OK' })).to.equal(3);
    expect(d('distcache_requests_total', { method: 'Put', code: 'INVALID_ARGUMENT' })).to.equal(1);
    expect(d('distcache_request_duration_seconds_count', { method: 'Put' })).to.equal(puts + 1);
    expect(d('distcache_request_duration_seconds_bucket', { method: 'Put', le: '+Inf' })).to.equal(puts + 1);
    // buckets are cumulative, from 100 µs to 10 s
    const buckets = after.samples.filter((s) => s.name === 'distcache_request_duration_seconds_bucket' && s.labels['method'] === 'Put');
    expect(buckets.map((b) => b.labels['le'])).to.include.members(['0.0001', '10', '+Inf']);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).to.be.at.least(buckets[i - 1]!.value);
    expect(valueOf(after, 'distcache_requests_in_flight')).to.equal(0);
    // every sample carries the node id
    expect(after.samples.filter((s) => s.name.startsWith('distcache_')).every((s) => s.labels['node_id'] === 'node1')).to.equal(true);
  });

  it('reports Raft, transport, engine and process metrics', async () => {
    const before = await metrics();
    for (let i = 0; i < 5; i++) await c.call('Put', { key: key(`r:${i}`), value: Buffer.from('x') });
    expect((await http(ports[2]!, 'POST', '/api/storage/flush')).status).to.equal(200);
    const after = await metrics();
    expect(valueOf(after, 'distcache_raft_groups')).to.equal(SHARDS + 1); // + the cluster-metadata group
    expect(valueOf(after, 'distcache_raft_leaders')).to.equal(SHARDS + 1); // + the cluster-metadata group
    // each sequential put is at least one proposal, one log write and one fsync
    expect(valueOf(after, 'distcache_raft_proposals_total') - valueOf(before, 'distcache_raft_proposals_total')).to.be.at.least(5);
    expect(valueOf(after, 'distcache_raft_commands_proposed_total') - valueOf(before, 'distcache_raft_commands_proposed_total')).to.equal(5);
    expect(valueOf(after, 'distcache_raft_log_fsyncs_total') - valueOf(before, 'distcache_raft_log_fsyncs_total')).to.be.at.least(5);
    expect(valueOf(after, 'distcache_raft_log_bytes_total')).to.be.greaterThan(valueOf(before, 'distcache_raft_log_bytes_total'));
    expect(valueOf(after, 'distcache_raft_log_cold_reads_total'), 'a single node never sends entries read back from its log').to.equal(0);
    expect(valueOf(after, 'distcache_engine_flushes_total') - valueOf(before, 'distcache_engine_flushes_total')).to.be.at.least(1);
    expect(valueOf(after, 'distcache_engine_level_files', { level: '0' }) + valueOf(after, 'distcache_engine_level_files', { level: '1' })).to.be.at.least(1);
    for (const name of [
      'distcache_engine_memtable_bytes',
      'distcache_engine_write_stalls_total',
      'distcache_engine_compactions_total',
      'distcache_transport_batches_total',
      'distcache_raft_messages_total',
      'distcache_raft_log_cold_reads_total',
      'distcache_client_connections',
      'process_cpu_user_seconds_total',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(after.types.has(name.replace(/_total$/, '')) || after.types.has(name), name).to.equal(true);
    }
    expect(valueOf(after, 'distcache_engine_block_cache_requests_total', { result: 'hit' })).to.be.at.least(0);
    expect(valueOf(after, 'distcache_client_connections', { state: 'served' })).to.equal(1);
  });

  it('every metric the Grafana dashboard queries is exported', async () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const names = new Set(dash.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/\b(distcache|process|nodejs)_[a-z0-9_]+/g) ?? [])));
    expect(names.size).to.be.greaterThan(10);
    const m = await metrics();
    for (const n of names) expect(m.samples.some((s) => s.name === n), n).to.equal(true);
  });
});

describe('server: monitoring.enable_monitoring=false', function () {
  this.timeout(60000);

  it('serves no metrics port', async () => {
    const dir = tmpDir();
    const ports = await freePorts(4);
    const srv = new ServerProc({
      args: ['--data-dir', dir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', String(ports[3])],
      env: { DISTCACHE_MONITORING_ENABLE_MONITORING: 'false', DISTCACHE_CLUSTER_SHARD_COUNT: String(SHARDS) },
    });
    try {
      await srv.start();
      expect(srv.readyLine).to.match(/ metrics off /);
      const stats = await http(ports[2]!, 'GET', '/api/stats');
      expect((stats.json['ports'] as Record<string, unknown>)['metrics']).to.equal(null);
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect(ports[3]!, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve('connected');
        });
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      expect(refused).to.equal('ECONNREFUSED');
      // the node itself works
      const kv: KvClient = connect(`127.0.0.1:${ports[0]}`);
      try {
        expect((await kv.call('Put', { key: key('a'), value: Buffer.from('1') }))['version']).to.be.greaterThan(0);
      } finally {
        kv.close();
      }
    } finally {
      await srv.kill('SIGKILL');
      rmDir(dir);
    }
  });
});
