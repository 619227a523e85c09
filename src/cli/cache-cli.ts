#!/usr/bin/env node
// cache-cli: put/get/delete/scan/cluster-status/health against a distcache cluster.
// Exit codes: 0 ok, 1 operation error (printed with its code), 2 bad usage.
import { Command, CommanderError } from 'commander';
import { CacheClient, ClientError, type ClientErrorCode, type Key } from '../client/index.js';

interface Globals {
  server: string;
  http: string;
  format: 'json' | 'table';
  timeout: string;
}

function keyOf(primary: string, secondary: string | undefined): Key {
  return secondary === undefined ? primary : { primary, secondary };
}

function show(format: string, data: unknown, rows?: Array<Record<string, unknown>>): void {
  if (format === 'json') {
    process.stdout.write(JSON.stringify(data) + '\n');
    return;
  }
  const list = rows ?? [data as Record<string, unknown>];
  if (list.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cols = [...new Set(list.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown): string => (v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...list.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  process.stdout.write([line(cols), line(widths.map((w) => '-'.repeat(w))), ...list.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n') + '\n');
}

async function withClient<T>(g: Globals, fn: (c: CacheClient) => Promise<T>): Promise<T> {
  const timeoutMs = Number(g.timeout);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new CommanderError(2, 'cli.badTimeout', `--timeout must be a positive number of ms, got ${g.timeout}`);
  const c = await CacheClient.connect(g.server.split(',').map((s) => s.trim()).filter((s) => s !== ''), { timeoutMs });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function httpGet(g: Globals, p: string, method = 'GET', payload?: unknown): Promise<unknown> {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), Number(g.timeout) || 5000);
  try {
    const res = await fetch(`http://${g.http}${p}`, { signal: ctl.signal, method, ...(payload === undefined ? {} : { body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } }) });
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (!res.ok) throw new ClientError(((body.error?.code as ClientErrorCode | undefined) ?? 'UNAVAILABLE'), `${method} ${p}: HTTP ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
    return body;
  } catch (e) {
    if (e instanceof ClientError) throw e;
    throw new ClientError('UNAVAILABLE', `${method} http://${g.http}${p}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    clearTimeout(t);
  }
}

const str = (b: Buffer): string => b.toString('utf8');

async function main(): Promise<void> {
  const program = new Command('cache-cli')
    .description('Command-line client for a distcache cluster.')
    .option('--server <host:port>', 'client gRPC endpoint(s), comma separated', '127.0.0.1:8080')
    .option('--http <host:port>', 'admin HTTP endpoint (health)', '127.0.0.1:8180')
    .option('--format <fmt>', 'output format: json | table', 'table')
    .option('--timeout <ms>', 'per-operation deadline in ms', '5000')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const g = (): Globals => {
    const o = program.opts<Globals>();
    if (o.format !== 'json' && o.format !== 'table') throw new CommanderError(2, 'cli.badFormat', `--format must be json or table, got ${String(o.format)}`);
    return o;
  };

  program
    .command('put <key> <value>')
    .description('write a value')
    .option('--secondary <s>', 'secondary key')
    .action(async (key: string, value: string, o: { secondary?: string }) => {
      const gl = g();
      const r = await withClient(gl, (c) => c.put(keyOf(key, o.secondary), value));
      show(gl.format, { key, ...(o.secondary === undefined ? {} : { secondary: o.secondary }), version: r.version });
    });
  program
    .command('get <key>')
    .description('read a value')
    .option('--secondary <s>', 'secondary key')
    .option('--follower', 'allow a follower read')
    .action(async (key: string, o: { secondary?: string; follower?: boolean }) => {
      const gl = g();
      const r = await withClient(gl, (c) => c.get(keyOf(key, o.secondary), { consistency: o.follower ? 'follower' : 'linearizable' }));
      show(gl.format, r.found ? { key, found: true, value: str(r.value!), version: r.version } : { key, found: false });
      if (!r.found) process.exitCode = 1;
    });
  program
    .command('delete <key>')
    .description('delete a key')
    .option('--secondary <s>', 'secondary key')
    .action(async (key: string, o: { secondary?: string }) => {
      const gl = g();
      const r = await withClient(gl, (c) => c.remove(keyOf(key, o.secondary)));
      show(gl.format, { key, found: r.found });
    });
  program
    .command('scan')
    .description('keys in [start, end) in key order')
    .option('--start <key>', 'first primary key (inclusive)')
    .option('--end <key>', 'end primary key (exclusive)')
    .option('--limit <n>', 'maximum items', '100')
    .action(async (o: { start?: string; end?: string; limit: string }) => {
      const gl = g();
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit <= 0) throw new CommanderError(2, 'cli.badLimit', `--limit must be a positive integer, got ${o.limit}`);
      const items = await withClient(gl, (c) => c.rangeScan({ ...(o.start === undefined ? {} : { start: o.start }), ...(o.end === undefined ? {} : { end: o.end }), limit }));
      const rows = items.map((i) => ({ key: str(i.key.primary), secondary: str(i.key.secondary), value: str(i.value), version: i.version }));
      show(gl.format, rows, rows);
    });
  program
    .command('cluster-status')
    .description('members and shard leaders (ClusterInfo)')
    .action(async () => {
      const gl = g();
      const info = await withClient(gl, (c) => c.clusterInfo());
      const shards = (info['shards'] as Array<{ leader: string }>) ?? [];
      const members = (info['members'] as Array<{ node_id: string; raft_id: number; peer_address: string; client_address: string }>) ?? [];
      const leaders: Record<string, number> = {};
      let noLeader = 0;
      for (const s of shards) {
        if (s.leader === '') noLeader++;
        else leaders[s.leader] = (leaders[s.leader] ?? 0) + 1;
      }
      const rows = members.map((m) => ({ node_id: m.node_id, raft_id: m.raft_id, client_address: m.client_address, peer_address: m.peer_address, leaders: leaders[m.node_id] ?? 0 }));
      const summary = { node_id: info['node_id'], shard_count: info['shard_count'], replication_factor: info['replication_factor'], epoch: info['epoch'], shards_without_leader: noLeader, members: rows };
      if (gl.format === 'json') show('json', summary);
      else {
        process.stdout.write(`answered by ${String(info['node_id'])}: ${String(info['shard_count'])} shards, replication ${String(info['replication_factor'])}, ${noLeader} without a leader\n`);
        show('table', rows, rows);
      }
    });
  program
    .command('nodes')
    .description('GET /api/cluster/nodes on the admin HTTP endpoint (--http): state, replicas and leaders of every member')
    .action(async () => {
      const gl = g();
      const r = (await httpGet(gl, '/api/cluster/nodes')) as { nodes: Array<Record<string, unknown>> };
      if (gl.format === 'json') show(gl.format, r);
      else show(gl.format, r.nodes.map((n) => ({ id: n['id'], address: n['address'], state: n['state'], replicas: n['replicas'], leaders: n['leaders'] })));
    });

  program
    .command('decommission <node-id>')
    .description('DELETE /api/cluster/nodes/<node-id> (--http): move the node\'s replicas away, then remove it')
    .action(async (nodeId: string) => {
      const gl = g();
      show(gl.format, await httpGet(gl, `/api/cluster/nodes/${encodeURIComponent(nodeId)}`, 'DELETE'));
    });

  program
    .command('shards')
    .description('GET /api/cluster/shards (--http): the routing table (slot and sub-hash range of every shard)')
    .action(async () => {
      const gl = g();
      const r = (await httpGet(gl, '/api/cluster/shards')) as { shards: Array<Record<string, unknown>> };
      if (gl.format === 'json') show(gl.format, r);
      else show(gl.format, r.shards.filter((x) => !x['retired']).map((x) => ({ shard: x['shard_id'], slot: x['slot'], hash_lo: x['hash_lo'], hash_hi: x['hash_hi'], replicas: (x['replicas'] as string[]).join(',') })));
    });

  program
    .command('split <shard-id>')
    .description('POST /api/cluster/shards/<id>/split (--http): cut the shard in two, online (use a --timeout of seconds for big shards)')
    .action(async (id: string) => {
      const gl = g();
      show(gl.format, await httpGet(gl, `/api/cluster/shards/${encodeURIComponent(id)}/split`, 'POST'));
    });

  program
    .command('merge <shard-id> <other-shard-id>')
    .description('POST /api/cluster/shards/<id>/merge (--http): move the adjacent shard <other>\'s keys into <id> and retire <other>')
    .action(async (id: string, other: string) => {
      const gl = g();
      show(gl.format, await httpGet(gl, `/api/cluster/shards/${encodeURIComponent(id)}/merge`, 'POST', { with: Number(other) }));
    });

  program
    .command('health')
    .description('GET /api/health on the admin HTTP endpoint (--http)')
    .action(async () => {
      const gl = g();
      const h = (await httpGet(gl, '/api/health')) as Record<string, unknown>;
      show(gl.format, h);
      if (h['status'] !== 'ok') process.exitCode = 1;
    });

  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code.startsWith('cli.')) process.stderr.write(`error: ${err.message}\n`);
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    const code = err instanceof ClientError ? err.code : 'ERROR';
    const msg = err instanceof Error ? err.message : String(err);
    if (program.opts<Globals>().format === 'json') process.stderr.write(JSON.stringify({ error: { code, message: msg } }) + '\n');
    else process.stderr.write(`error ${code}: ${msg}\n`);
    process.exit(1);
  }
}

void main();
