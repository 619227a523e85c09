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

function runAndKill(dir: string, firstId: number, killAfterMs: number): Promise<CycleResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(firstId), '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
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
    let sawFlushOrCompaction = false;
    for (let cycle = 0; cycle < cycles; cycle++) {
      const killAfter = 50 + rng.int(400);
      const { acked } = await runAndKill(dir, nextId, killAfter);
      for (const id of acked) ackedAll.add(id);
      // Up to 4 writers may have had a batch in flight past the last ack.
      maxIssued = Math.max(maxIssued, ...acked, nextId) + 8;
      nextId = maxIssued + 1;

      const db = await LsmEngine.open(dir, CRASH_OPTIONS);
      try {
        const ctx = `seed ${seed}, cycle ${cycle}, killed after ${killAfter} ms`;
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
        const st = db.stats();
        if (st.levels.some((l) => l.files > 0)) sawFlushOrCompaction = true;
      } finally {
        await db.close();
      }
    }
    expect(ackedAll.size, 'the child acknowledged writes').to.be.greaterThan(cycles);
    expect(sawFlushOrCompaction, 'kills happened while tables were being written').to.equal(true);
  });
});
