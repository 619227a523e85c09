import { expect } from 'chai';
import { LsmEngine } from '../../src/lsm/index.js';
import { MAX_PAUSE_MS, Pacer, SLICE_MS } from '../../src/lsm/pacer.js';
import { cleanupTempDirs, tempDir } from '../helpers/tmp.js';

/** A pacer on a fake clock that records the pauses it asks for. */
function fakePacer(duty: number, urgent: () => boolean): { pacer: Pacer; advance: (ms: number) => void; pauses: number[] } {
  let t = 1000;
  const pauses: number[] = [];
  const pacer = new Pacer(duty, urgent, () => t, async (ms) => {
    pauses.push(ms);
  });
  return { pacer, advance: (ms) => (t += ms), pauses };
}

describe('lsm: background pacing', () => {
  afterEach(cleanupTempDirs);

  it('after each slice of work, pauses so that the work keeps its duty cycle; never while writes wait; never long', async () => {
    const { pacer, advance, pauses } = fakePacer(0.25, () => false);
    advance(SLICE_MS - 1);
    expect(pacer.pace()).to.equal(undefined); // inside a slice: go on
    advance(1);
    await pacer.pace(); // a 4 ms slice at 25% buys 12 ms of pause
    expect(pauses).to.deep.equal([3 * SLICE_MS]);
    expect(pacer.pace()).to.equal(undefined); // a new slice began after the pause
    advance(1000); // a slice stretched by a stall does not buy a second-long pause
    await pacer.pace();
    expect(pauses[1]).to.equal(MAX_PAUSE_MS);

    let waiting = true;
    const u = fakePacer(0.25, () => waiting);
    u.advance(10);
    await u.pacer.pace(); // writes wait: only a yield, no pause
    expect(u.pauses).to.deep.equal([]);
    waiting = false;
    u.advance(10);
    await u.pacer.pace();
    expect(u.pauses).to.deep.equal([30]);

    const full = fakePacer(1, () => false);
    full.advance(100);
    await full.pacer.pace();
    expect(full.pauses).to.deep.equal([]);
  });

  it('a paced engine flushes and compacts to the same result, and refuses a duty cycle outside (0, 1]', async () => {
    for (const bad of [0, -0.5, 1.5, Number.NaN]) {
      let err: unknown;
      await LsmEngine.open(tempDir(), { backgroundDutyCycle: bad }).then((db) => db.close(), (e: unknown) => (err = e));
      expect((err as { code?: string }).code, `duty ${bad}`).to.equal('INVALID_ARGUMENT');
    }
    const db = await LsmEngine.open(tempDir(), { backgroundDutyCycle: 0.1, memtableBytes: 64 * 1024, targetFileBytes: 32 * 1024, l1MaxBytes: 128 * 1024, walSync: 'off' });
    const value = Buffer.alloc(300, 5);
    for (let round = 0; round < 4; round++) for (let i = 0; i < 1500; i++) await db.put(Buffer.from(`k${i % 700}`), Buffer.concat([value, Buffer.from(`${round}`)]));
    await db.flush();
    await db.compact();
    const stats = db.stats();
    expect(stats.flushes).to.be.greaterThan(3);
    expect(stats.compactions).to.be.greaterThan(0);
    for (let i = 0; i < 700; i++) expect(db.getSync(Buffer.from(`k${i}`))?.subarray(300).toString(), `k${i}`).to.equal('3');
    await db.close();
  });
});
