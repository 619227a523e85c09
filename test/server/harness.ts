// Real cache-server child processes for the server tests, and a plain grpc-js client built
// from proto/distcache.proto.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../src/server/proto.js';

/** the launcher users run (bin/cache-server: sets the node's process settings, then execs node
 *  on dist/src/cli/cache-server.js, keeping its PID); tests and benches start nodes through it */
export const SERVER_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/cache-server');

/** spawn arguments that start cache-server through its launcher with this test's node binary */
function launch(nodeArgs: readonly string[], args: readonly string[], env: Record<string, string> | undefined): Parameters<typeof spawn> {
  const launcherEnv = { DISTCACHE_NODE: process.execPath, DISTCACHE_NODE_ARGS: nodeArgs.join(' ') };
  return ['/bin/sh', [SERVER_BIN, ...args], { env: { ...process.env, ...launcherEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }];
}

/**
 * `n` distinct ports that were free a moment ago. Picked below Linux's ephemeral range
 * (32768+): a port the kernel hands out for bind(0) is also what it hands to outgoing
 * connections, so a server started on it a little later could find it taken (EADDRINUSE).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < n * 50; tries++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (ports.includes(port)) continue;
    const s = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    servers.push(s);
    ports.push(port);
  }
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  if (ports.length < n) throw new Error(`found only ${ports.length} of ${n} free ports`);
  return ports;
}

export function tmpDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'distcache-server-'));
}

export function rmDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
}

export interface ServerSpec {
  args: string[];
  env?: Record<string, string>;
  /** node flags before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses) */
  nodeArgs?: string[];
}

export class ServerProc {
  proc: ChildProcess | undefined;
  out = '';
  err = '';
  readyLine = '';

  constructor(readonly spec: ServerSpec) {}

  /** Starts the process; resolves at the ready line, rejects if it exits first. */
  start(timeoutMs = 15000): Promise<void> {
    this.readyLine = '';
    this.out = '';
    this.err = '';
    const p = spawn(...launch(this.spec.nodeArgs ?? [], this.spec.args, this.spec.env));
    this.proc = p;
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`server not ready in ${timeoutMs} ms: ${this.out} ${this.err}`)), timeoutMs);
      p.stdout!.on('data', (d: Buffer) => {
        this.out += d.toString();
        const line = this.out.split('\n').find((l) => l.includes(' ready in '));
        if (line && !this.readyLine) {
          this.readyLine = line;
          clearTimeout(t);
          resolve();
        }
      });
      p.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
      p.on('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`server exited with ${code}: ${this.err}`));
      });
    }).then(() => {
      this.readyLine = this.out.split('\n').find((l) => l.includes(' ready in ')) ?? '';
    });
  }

  /** Runs to completion (for bad-config tests): exit code and output. */
  static run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
    return new Promise((resolve) => {
      const p = spawn(...launch([], args, env));
      let out = '';
      let err = '';
      p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => resolve({ code, out, err }));
    });
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p?.exitCode ?? null);
    return new Promise((resolve) => {
      p.once('exit', (code) => resolve(code));
      process.kill(p.pid!, signal);
    });
  }
}

export type Call = (method: string, req: object, deadlineMs?: number) => Promise<Record<string, unknown>>;

export interface KvClient {
  call: Call;
  raw: grpc.Client;
  close(): void;
}

export function connect(address: string): KvClient {
  const { keyValue } = loadServices();
  const client = new keyValue(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20, 'grpc.max_receive_message_length': 64 << 20 });
  const call: Call = (method, req, deadlineMs = 5000) =>
    new Promise((resolve, reject) => {
      const fn = (client as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Record<string, unknown>) => void) => void>)[method]!;
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(e) : resolve(r)));
    });
  return { call, raw: client, close: () => client.close() };
}

export function key(primary: string, secondary?: string): { primary: Buffer; secondary?: Buffer } {
  return secondary === undefined ? { primary: Buffer.from(primary) } : { primary: Buffer.from(primary), secondary: Buffer.from(secondary) };
}

export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 10000, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }
  throw last;
}

/**
 * Waits until shard leadership stops moving: every node's view of every shard's leader is known
 * and unchanged over `quietMs`. A new cluster's leaders, or a healed partition's, are moved by the
 * rebalancer toward the placement's choice (up to 8 shards per 500 ms round); a test that pins a
 * shard's leader must not race such a transfer.
 */
export async function settledLeaders(clients: readonly KvClient[], quietMs = 1500, timeoutMs = 30000): Promise<void> {
  const views = async (): Promise<string> =>
    (
      await Promise.all(
        clients.map(async (c) => {
          const shards = (await c.call('ClusterInfo', {}))['shards'] as Array<{ leader: string }>;
          if (shards.some((s) => s.leader === '')) throw new Error('a shard without a known leader');
          return shards.map((s) => s.leader).join(',');
        }),
      )
    ).join(' | ');
  await eventually(async () => {
    const before = await views();
    await new Promise((r) => setTimeout(r, quietMs));
    const after = await views();
    if (after !== before) throw new Error(`shard leaders still moving: ${before} -> ${after}`);
  }, timeoutMs, 100);
}

export async function http(port: number, method: string, p: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, body === undefined ? { method } : { method, body, headers: { 'content-type': 'application/json' } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

export interface ClusterNode {
  id: string;
  dir: string;
  /** Client gRPC address, 127.0.0.1:port. */
  address: string;
  proc: ServerProc;
}

/** Specs (not yet started) for a cluster of `ids` on free local ports, bootstrapped with
 *  --initial-cluster, each in its own temp data directory. */
export async function localCluster(ids: readonly string[], shardCount: number): Promise<ClusterNode[]> {
  const ports = await freePorts(ids.length * 4);
  const initial = ids.map((id, i) => `${id}=127.0.0.1:${ports[i * 4 + 1]}`).join(',');
  return ids.map((id, i) => {
    const dir = tmpDir();
    const [client, peer, httpPort, metrics] = ports.slice(i * 4, i * 4 + 4);
    const proc = new ServerProc({
      args: ['--node-id', id, '--port', String(client), '--peer-port', String(peer), '--http-port', String(httpPort), '--metrics-port', String(metrics), '--data-dir', dir, '--initial-cluster', initial],
      env: { DISTCACHE_CLUSTER_SHARD_COUNT: String(shardCount), DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000' },
    });
    return { id, dir, address: `127.0.0.1:${client}`, proc };
  });
}

/** Arguments of a single-node cache-server on the four given ports (client, peer, http, metrics). */
export function singleNodeArgs(dir: string, ports: readonly number[]): string[] {
  return ['--data-dir', dir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', String(ports[3])];
}

/** A started single-node cache-server in a fresh temp dir on free ports. */
export async function startSingleNode(): Promise<{ dir: string; ports: number[]; srv: ServerProc; address: string }> {
  const dir = tmpDir();
  const ports = await freePorts(4);
  const srv = new ServerProc({ args: singleNodeArgs(dir, ports), env: { DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000' } });
  await srv.start();
  return { dir, ports, srv, address: `127.0.0.1:${ports[0]}` };
}
