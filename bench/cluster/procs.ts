// What the race started, so that it can all be undone: child PIDs and temp directories. stopAll()
// sends SIGTERM to each PID it was given (never by name), escalates to SIGKILL after a grace
// period, then removes the directories. installSignalCleanup() runs it on Ctrl-C / SIGTERM.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const procs = new Set<ChildProcess>();
const dirs = new Set<string>();

export function trackProcess(p: ChildProcess): void {
  procs.add(p);
  p.once('exit', () => procs.delete(p));
}

export function trackDir(d: string): void {
  dirs.add(d);
}

function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** SIGTERM, then SIGKILL if it has not exited within graceMs. Resolves once it has exited. */
export function stopProcess(p: ChildProcess, graceMs = 5000): Promise<void> {
  if (!alive(p) || p.pid === undefined) return Promise.resolve();
  const pid = p.pid;
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, graceMs);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}

let stopping: Promise<void> | undefined;

/** True once stopAll() has begun: start nothing new. */
export function isStopping(): boolean {
  return stopping !== undefined;
}

/** Stops every tracked process, then removes every tracked dir. Idempotent: a second call (a
 *  signal arriving while main's own cleanup runs) waits for the first. */
export function stopAll(): Promise<void> {
  stopping ??= (async () => {
    await Promise.all([...procs].map((p) => stopProcess(p)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    dirs.clear();
  })();
  return stopping;
}

/** On SIGINT/SIGTERM: stop everything, then exit 130 / 143. A second signal exits at once. */
export function installSignalCleanup(): void {
  let signalled = false;
  const on = (sig: NodeJS.Signals, code: number): void => {
    process.on(sig, () => {
      if (signalled) process.exit(code);
      signalled = true;
      process.stderr.write(`\n${sig}: stopping ${procs.size} processes, removing ${dirs.size} temp dirs\n`);
      void stopAll().finally(() => process.exit(code));
    });
  };
  on('SIGINT', 130);
  on('SIGTERM', 143);
}
