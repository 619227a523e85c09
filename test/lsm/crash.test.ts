// Kills a real writer process with SIGKILL at random moments (mid-write, mid-flush,
// mid-compaction) and checks after each reopen that every acknowledged batch is present and no
// batch is half applied. CRASH_CYCLES sets the cycle count (default 20; npm run test:crash-long).
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { LsmEngine } from '../../src/lsm/index.js';
import { CRASH_OPTIONS, batchKey, batchSize, batchValue, hotKey } from './crash-child.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng, seedFromEnv } from '../helpers/rng.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.js');

interface CycleResult {
  acked: number[];
  stderr: string;
}

/** Runs the child until it is SIGKILLed: by us after killAfterMs, or by itself at `crashAt`. */
function runAndKill(dir: string, firstId: number, killAfterMs: number, crashAt?: string): Promise<CycleResult> {
  return new Promise((resolve, reject) => {
    const args = [CHILD, dir, String(firstId), '4', ...(crashAt ? [crashAt] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked: number[] = [];
    let stderr = '';
    let buf = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        else if (line.startsWith('ack ')) acked.push(Number(line.slice(4)));
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}): ${stderr}`));
      else resolve({ acked, stderr });
    });
  });
}

/** Reopens `dir` and checks every batch id up to maxIssued: acknowledged ones complete, others
 *  complete or absent. Returns the engine stats seen. */
async function verify(dir: string, ackedAll: Set<number>, maxIssued: number, ctx: string): Promise<void> {
  const db = await LsmEngine.open(dir, CRASH_OPTIONS);
  try {
    for (let id = 0; id <= maxIssued; id++) {
      let present = 0;
      for (let j = 0; j < batchSize(id); j++) {
        const v = db.getSync(batchKey(id, j));
        if (v !== undefined) {
          expect(v.equals(batchValue(id)), `${ctx}: batch ${id} value`).to.equal(true);
          present++;
        }
      }
      if (ackedAll.has(id)) expect(present, `${ctx}: acknowledged batch ${id} lost`).to.equal(batchSize(id));
      else expect([0, batchSize(id)], `${ctx}: batch ${id} half applied (${present} keys)`).to.include(present);
      if (ackedAll.has(id)) expect(db.getSync(hotKey(id)), `${ctx}: hot key of ${id}`).to.not.equal(undefined);
    }
    // Nothing is resurrected or invented: every stored batch key belongs to an issued batch.
    for await (const [k] of db.scan({ gte: Buffer.from('b'), lt: Buffer.from('c') })) {
      const id = Number(k.toString().slice(1, 9));
      expect(id, `${ctx}: key ${k} from a batch never issued`).to.be.at.most(maxIssued);
    }
  } finally {
    await db.close();
  }
}

describe('lsm: crash safety with SIGKILL (real child processes)', function () {
  this.timeout(300_000);
  afterEach(cleanupTempDirs);

  it('every acknowledged batch survives and no batch is half applied', async () => {
    const cycles = Number(process.env.CRASH_CYCLES ?? 20);
    const seed = seedFromEnv();
    const rng = new Rng(seed);
    const dir = tempDir('distcache-crash-');
    const ackedAll = new Set<number>();
    let nextId = 0;
    let maxIssued = 0;
    for (let cycle = 0; cycle < cycles; cycle++) {
      const killAfter = 50 + rng.int(400);
      const { acked } = await runAndKill(dir, nextId, killAfter);
      for (const id of acked) ackedAll.add(id);
      // Up to 4 writers may have had a batch in flight past the last ack.
      maxIssued = Math.max(maxIssued, ...acked, nextId) + 8;
      nextId = maxIssued + 1;

      await verify(dir, ackedAll, maxIssued, `seed ${seed}, cycle ${cycle}, killed after ${killAfter} ms`);
    }
    expect(ackedAll.size, 'the child acknowledged writes').to.be.greaterThan(cycles);
  });

  // Kills at exact points inside background work: after a flush's or compaction's tables are
  // synced but before the manifest names them, right after the edit, and as compaction starts.
  const points = ['flush-tables-written:1', 'flush-end:2', 'compaction-begin:1', 'compaction-tables-written:1', 'compaction-tables-written:3', 'compaction-end:2'];
  it(`recovers after kills inside flush and compaction (${points.join(', ')})`, async () => {
    const dir = tempDir('distcache-crashpoint-');
    const ackedAll = new Set<number>();
    let nextId = 0;
    let maxIssued = 0;
    for (const point of points) {
      const { acked, stderr } = await runAndKill(dir, nextId, 60_000, point);
      expect(stderr).to.equal('');
      for (const id of acked) ackedAll.add(id);
      maxIssued = Math.max(maxIssued, ...acked, nextId) + 8;
      nextId = maxIssued + 1;
      await verify(dir, ackedAll, maxIssued, `killed at ${point}`);
    }
    expect(ackedAll.size).to.be.greaterThan(points.length);
  });
});
