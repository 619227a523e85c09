// The LOCK file: one engine per directory, across this and other processes.
// Node has no flock(), so the lock is a file created atomically (link(2) of a temp file, which
// fails if LOCK exists) holding the owner's pid. A LOCK left by a process that died (SIGKILL,
// power loss) is stale: its pid no longer runs, and it is taken over. Within one process a
// registry of held directories refuses a second open. Limitation: a recycled pid that happens to
// belong to a live process makes a stale lock look held; remove LOCK by hand then.
import { promises as fsp, realpathSync } from 'node:fs';
import path from 'node:path';
import { KvError, isErrno } from '../util/errors.js';
import { LOCK } from './filenames.js';

const heldHere = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

export class DirLock {
  private constructor(
    private readonly key: string,
    private readonly file: string,
  ) {}

  static async acquire(dir: string): Promise<DirLock> {
    const key = realpathSync(dir);
    const file = path.join(dir, LOCK);
    if (heldHere.has(key)) throw new KvError('LOCKED', `${dir} is already open in this process`);
    heldHere.add(key);
    try {
      const tmp = path.join(dir, `LOCK.${process.pid}.tmp`);
      await fsp.writeFile(tmp, `${process.pid}\n`);
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            await fsp.link(tmp, file);
            break;
          } catch (err) {
            if (!isErrno(err, 'EEXIST') || attempt > 0) throw lockedError(dir, file, err);
            const owner = Number((await fsp.readFile(file, 'utf8').catch(() => '')).trim());
            if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && pidAlive(owner)) {
              throw new KvError('LOCKED', `${dir} is locked by running process ${owner} (${file})`);
            }
            await fsp.rm(file, { force: true }); // stale: its owner is gone
          }
        }
      } finally {
        await fsp.rm(tmp, { force: true });
      }
      return new DirLock(key, file);
    } catch (err) {
      heldHere.delete(key);
      throw err;
    }
  }

  async release(): Promise<void> {
    await fsp.rm(this.file, { force: true });
    heldHere.delete(this.key);
  }
}

function lockedError(dir: string, file: string, cause: unknown): KvError {
  if (cause instanceof KvError) return cause;
  return new KvError('LOCKED', `could not lock ${dir} (${file}): ${String(cause)}`, { cause });
}
