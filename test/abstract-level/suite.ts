// Runs abstract-level's own conformance suite (node_modules/abstract-level/test) against
// DistcacheLevel, printing TAP on stdout. A plain node script, not a mocha test: tape owns the
// process. suite.test.ts spawns it and checks the TAP summary.
//
//   node dist/test/abstract-level/suite.js [--profile default|tiny]
//
// Profiles: `default` uses the engine's default options, so the suite's small data sets stay
// in the memtable; `tiny` uses a 1 KiB memtable, 256-byte blocks and an L0 trigger of 2, so
// the same tests read through flushed SSTables, compactions and merging iterators as well.
//
// Every database gets a fresh directory under one per-run temp root, removed at exit. Every
// database the factory made is closed at the end (the sublevel pass never closes its parents).
import type { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import tape from 'tape';
import { DistcacheLevel } from '../../src/lsm/abstract-level.js';
import type { LsmOptions } from '../../src/lsm/types.js';

const PROFILES: Record<string, LsmOptions> = {
  default: {},
  tiny: { memtableBytes: 1024, blockBytes: 256, targetFileBytes: 4096, l0CompactionTrigger: 2, l1MaxBytes: 16 * 1024 },
};

const argi = process.argv.indexOf('--profile');
const profileName = argi >= 0 ? process.argv[argi + 1] ?? '' : 'default';
const profile = PROFILES[profileName];
if (profile === undefined) {
  console.error(`unknown profile ${profileName}; use one of ${Object.keys(PROFILES).join(', ')}`);
  process.exit(2);
}

const root = mkdtempSync(path.join(os.tmpdir(), `distcache-abstract-level-${profileName}-`));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

type SuiteFn = (options: { test: typeof tape; factory: (options?: object) => DistcacheLevel }) => void;
const suite = createRequire(import.meta.url)('abstract-level/test') as SuiteFn;

/** Engine options of the profile, applied at open so that they stay out of the options
 *  abstract-level shows to hooks (its postopen tests compare those exactly). */
class ProfiledLevel extends DistcacheLevel {
  override async _open(options: Parameters<DistcacheLevel['_open']>[0]): Promise<void> {
    return super._open({ ...profile, ...options });
  }
}

const made: DistcacheLevel[] = [];
/** Sublevels made directly on factory databases (the suite's sublevel pass uses them). */
const subs: EventEmitter[] = [];
let n = 0;

suite({
  test: tape,
  factory(options?: object) {
    const dir = path.join(root, String(n++));
    mkdirSync(dir);
    const db = new ProfiledLevel(dir, options);
    made.push(db);
    const sublevel = db.sublevel.bind(db) as (...args: unknown[]) => EventEmitter;
    Object.defineProperty(db, 'sublevel', {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        const sub = sublevel(...args);
        subs.push(sub);
        return sub;
      },
    });
    return db;
  },
});

tape('teardown: close every database the factory made', async (t) => {
  // Some tests leave listeners that reopen a database (or sublevel) when it closes.
  for (const e of [...made, ...subs]) e.removeAllListeners();
  const results = await Promise.allSettled(made.map((db) => db.close()));
  let failed = 0;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') return;
    const err = r.reason as Error & { code?: string; cause?: { code?: string } };
    // hooks/postopen.js leaves a database (or, in the sublevel pass, a sublevel that its
    // parent then fails to close) status-locked on purpose; the process exit releases it.
    if (err.code === 'LEVEL_STATUS_LOCKED' || err.cause?.code === 'LEVEL_STATUS_LOCKED') return;
    failed++;
    t.comment(`${made[i]!.location}: ${String(err)}; cause: ${String(err.cause)}\n${String((err.cause as Error | undefined)?.stack)}`);
  });
  t.is(failed, 0, `${made.length} databases closed`);
});
