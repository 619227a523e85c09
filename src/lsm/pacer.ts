// Pacing of one flush or compaction (LsmOptions.backgroundDutyCycle). They run on the thread
// that serves requests, so a merge of a few hundred MiB that only yields now and then holds
// that thread for seconds. Paced, it works in slices of SLICE_MS of wall time, then sleeps long
// enough to keep its share of the thread at `duty` - unless `urgent()` says writes are waiting
// for it, when it only yields. Wall time, not CPU time: a merge waiting for its own file writes
// counts that as work, which errs on the side of the foreground.
import { sleep as realSleep, yieldToLoop } from '../util/async.js';

export const SLICE_MS = 4;
/** a slice stretched by a GC pause or a slow write must not buy a long sleep */
export const MAX_PAUSE_MS = 50;

export class Pacer {
  private sliceStart: number;

  constructor(
    private readonly duty: number,
    private readonly urgent: () => boolean,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = realSleep,
  ) {
    this.sliceStart = now();
  }

  /** Call often (every few dozen entries): undefined = go on; else wait for the promise. */
  pace(): Promise<void> | undefined {
    const worked = this.now() - this.sliceStart;
    if (worked < SLICE_MS) return undefined;
    const rest = this.duty >= 1 || this.urgent() ? 0 : (worked * (1 - this.duty)) / this.duty;
    return (rest >= 1 ? this.sleep(Math.min(rest, MAX_PAUSE_MS)) : yieldToLoop()).then(() => {
      this.sliceStart = this.now();
    });
  }
}
