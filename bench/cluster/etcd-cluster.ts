// A 3-member etcd cluster on 127.0.0.1 for the race: `etcd` child processes (the binary from
// $ETCD_BIN or PATH), free ports, one temp data dir each, static bootstrap with --initial-cluster,
// etcd's default fsync behaviour. Logs go to etcd.log in each member's data dir.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from '../../test/server/harness.js';
import { trackDir, trackProcess } from './procs.js';

export const ETCD_INSTALL_HINT = 'etcd not found: set ETCD_BIN to an etcd 3.x binary or put etcd on PATH (Debian/Ubuntu: apt-get install etcd-server)';

/** $ETCD_BIN, else the first executable `etcd` on PATH, else undefined. */
export function findEtcd(): string | undefined {
  const candidates = process.env['ETCD_BIN'] ? [process.env['ETCD_BIN']] : (process.env['PATH'] ?? '').split(path.delimiter).filter((d) => d !== '').map((d) => path.join(d, 'etcd'));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

export function etcdVersion(bin: string): string {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n')[0]?.replace(/^etcd Version:\s*/, '') ?? '?';
}

export interface EtcdCluster {
  /** Client addresses, host:port. */
  endpoints: string[];
}

async function healthy(clientPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${clientPort}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

export async function startEtcdCluster(bin: string, size = 3, timeoutMs = 30_000): Promise<EtcdCluster> {
  const ports = await freePorts(size * 2);
  const names = Array.from({ length: size }, (_, i) => `etcd${i + 1}`);
  const peerUrl = (i: number): string => `http://127.0.0.1:${ports[i * 2 + 1]}`;
  const initial = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const token = `distcache-race-${process.pid}-${Date.now()}`;
  const members = names.map((name, i) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'distcache-race-etcd-'));
    trackDir(dir);
    const clientUrl = `http://127.0.0.1:${ports[i * 2]}`;
    const logFile = path.join(dir, 'etcd.log');
    const fd = openSync(logFile, 'a');
    const p = spawn(
      bin,
      [
        '--name', name, '--data-dir', path.join(dir, 'data'),
        '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i),
        '--initial-cluster', initial, '--initial-cluster-token', token, '--initial-cluster-state', 'new',
        '--logger', 'zap', '--log-level', 'warn',
      ],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd); // the child holds its own copy
    trackProcess(p);
    const m = { name, port: ports[i * 2]!, proc: p, logFile, spawnError: undefined as Error | undefined };
    p.once('error', (e) => (m.spawnError = e)); // e.g. EACCES: reported by the wait below
    return m;
  });
  const deadline = Date.now() + timeoutMs;
  for (const m of members) {
    while (!(await healthy(m.port))) {
      if (m.spawnError) throw new Error(`cannot start ${bin}: ${m.spawnError.message}`);
      if (m.proc.exitCode !== null || m.proc.signalCode !== null || Date.now() > deadline) {
        const log = readFileSync(m.logFile, 'utf8').split('\n').slice(-15).join('\n');
        throw new Error(`etcd member ${m.name} did not become healthy (exit ${m.proc.exitCode ?? m.proc.signalCode ?? 'none'}):\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { endpoints: members.map((m) => `127.0.0.1:${m.port}`) };
}
