// The closed-loop load driver: `concurrency` workers, each issuing its next operation as soon as
// the previous one completes, until the duration is over (ops in flight at the deadline are
// awaited and counted). Latencies of successful ops go into hdr histograms (µs) per op and
// overall; failures are counted by error code and not timed. Client CPU is process.cpuUsage()
// over the run, divided by the ops completed (successful or not): what one op costs this process.
import { performance } from 'node:perf_hooks';
import type { Rng } from '../../src/util/rng.js';
import { errorCode, type Backend } from './backend.js';
import { newHistogram, summarize, type Histogram, type LatencySummary } from './histogram.js';
import { keyName, type KeyChooser } from './keys.js';
import type { OpName } from './options.js';

export interface DriverConfig {
  backend: Backend;
  concurrency: number;
  durationMs: number;
  mix: Record<OpName, number>;
  chooser: KeyChooser;
  /** Written by every put (shared, never mutated). */
  value: Buffer;
  /** Draws the op of each step (keys come from the chooser's own generator). */
  rng: Rng;
  progressIntervalMs?: number;
  onProgress?: (p: ProgressSample) => void;
  /** Ends the run early (Ctrl-C): workers issue no new ops once it is aborted. */
  signal?: AbortSignal;
}

export interface ProgressSample {
  elapsedSec: number;
  ops: number;
  errors: number;
  /** Over the last interval. */
  opsPerSec: number;
  p99Us: number;
}

export interface OpResult extends LatencySummary {
  opsPerSec: number;
}

export interface RunResult {
  elapsedSec: number;
  /** Successful operations. */
  ops: number;
  opsPerSec: number;
  errors: number;
  errorsByCode: Record<string, number>;
  /** Gets that found no value (not an error; a get-only run without --preload sees many). */
  notFound: number;
  latency: LatencySummary;
  byOp: Partial<Record<OpName, OpResult>>;
  cpuUserUs: number;
  cpuSystemUs: number;
  /** (user + system CPU) / (ops + errors). */
  cpuUsPerOp: number;
}

const OPS: readonly OpName[] = ['put', 'get'];

export async function runLoad(cfg: DriverConfig): Promise<RunResult> {
  const { backend, chooser, value, rng } = cfg;
  if (!(cfg.concurrency >= 1)) throw new RangeError('concurrency must be >= 1');
  const weights = OPS.map((o) => cfg.mix[o]);
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new RangeError('the op mix is empty');
  const putShare = cfg.mix.put / total;

  const all = newHistogram();
  const perOp: Record<OpName, Histogram> = { put: newHistogram(), get: newHistogram() };
  const interval = newHistogram();
  const errorsByCode: Record<string, number> = {};
  let ops = 0;
  let errors = 0;
  let notFound = 0;
  let intervalOps = 0;

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + cfg.durationMs;

  const worker = async (): Promise<void> => {
    while (performance.now() < end && cfg.signal?.aborted !== true) {
      const op: OpName = putShare >= 1 || (putShare > 0 && rng.next() < putShare) ? 'put' : 'get';
      const key = keyName(chooser.next());
      const s = performance.now();
      try {
        if (op === 'put') await backend.put(key, value);
        else if (!(await backend.get(key))) notFound++;
      } catch (e) {
        errors++;
        const c = errorCode(e);
        errorsByCode[c] = (errorsByCode[c] ?? 0) + 1;
        continue;
      }
      const us = Math.max(1, Math.round((performance.now() - s) * 1000));
      all.recordValue(us);
      perOp[op].recordValue(us);
      interval.recordValue(us);
      ops++;
      intervalOps++;
    }
  };

  let lastTick = t0;
  const timer =
    cfg.onProgress === undefined
      ? undefined
      : setInterval(() => {
          const now = performance.now();
          const p: ProgressSample = { elapsedSec: (now - t0) / 1000, ops, errors, opsPerSec: intervalOps / ((now - lastTick) / 1000), p99Us: interval.totalCount > 0 ? interval.getValueAtPercentile(99) : 0 };
          lastTick = now;
          intervalOps = 0;
          interval.reset();
          cfg.onProgress?.(p);
        }, cfg.progressIntervalMs ?? 1000);
  try {
    await Promise.all(Array.from({ length: cfg.concurrency }, worker));
  } finally {
    if (timer !== undefined) clearInterval(timer);
  }
  const elapsedSec = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);

  const byOp: Partial<Record<OpName, OpResult>> = {};
  for (const o of OPS) {
    const h = perOp[o];
    if (h.totalCount > 0) byOp[o] = { ...summarize(h), opsPerSec: h.totalCount / elapsedSec };
  }
  const result: RunResult = {
    elapsedSec,
    ops,
    opsPerSec: ops / elapsedSec,
    errors,
    errorsByCode,
    notFound,
    latency: summarize(all),
    byOp,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    cpuUsPerOp: ops + errors > 0 ? (cpu.user + cpu.system) / (ops + errors) : 0,
  };
  for (const h of [all, perOp.put, perOp.get, interval]) h.destroy();
  return result;
}

/** Writes every key index in [0, keys) once, `concurrency` at a time. Throws on the first
 *  failure: a get-only run over a half-written key space would measure misses. */
export async function preload(backend: Backend, keys: number, value: Buffer, concurrency: number, onProgress?: (done: number) => void): Promise<void> {
  let next = 0;
  let done = 0;
  const timer = onProgress === undefined ? undefined : setInterval(() => onProgress(done), 1000);
  let failed = false; // stops the other workers once one has failed
  const worker = async (): Promise<void> => {
    while (!failed && next < keys) {
      const i = next++;
      try {
        await backend.put(keyName(i), value);
      } catch (e) {
        failed = true;
        throw e;
      }
      done++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, keys) }, worker));
  } finally {
    if (timer !== undefined) clearInterval(timer);
  }
}
