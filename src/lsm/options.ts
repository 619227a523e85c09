// Engine options with their defaults applied and checked once, at open.
import { invalidArgument } from '../util/errors.js';
import type { LsmOptions } from './types.js';

export type ResolvedOptions = Required<Omit<LsmOptions, 'onEvent'>> & { onEvent: LsmOptions['onEvent'] | undefined };

export const DEFAULTS: ResolvedOptions = {
  walSync: 'batch',
  walBatchDelayMs: 2,
  memtableBytes: 64 * 1024 * 1024,
  memtableJitter: 0,
  maxImmutableMemtables: 2,
  maxKeyBytes: 64 * 1024,
  maxValueBytes: 64 * 1024 * 1024,
  blockBytes: 4096,
  compression: true,
  bloomBitsPerKey: 10,
  blockCacheBytes: 64 * 1024 * 1024,
  maxOpenTables: 500,
  targetFileBytes: 8 * 1024 * 1024,
  tableSyncBytes: 1024 * 1024,
  backgroundDutyCycle: 0.5,
  l0CompactionTrigger: 4,
  l0SlowdownTrigger: 12,
  l0StopTrigger: 20,
  l1MaxBytes: 64 * 1024 * 1024,
  sizeRatio: 10,
  createIfMissing: true,
  errorIfExists: false,
  onEvent: undefined,
};

export function resolveOptions(o: LsmOptions = {}): ResolvedOptions {
  const r: ResolvedOptions = { ...DEFAULTS };
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (r as Record<string, unknown>)[k] = v;
  if (!['always', 'batch', 'off'].includes(r.walSync)) throw invalidArgument(`walSync must be 'always', 'batch' or 'off', got ${String(r.walSync)}`);
  const positive: (keyof ResolvedOptions)[] = ['memtableBytes', 'maxImmutableMemtables', 'maxKeyBytes', 'maxValueBytes', 'blockBytes', 'maxOpenTables', 'targetFileBytes', 'l0CompactionTrigger', 'l0SlowdownTrigger', 'l0StopTrigger', 'l1MaxBytes', 'sizeRatio'];
  for (const k of positive) {
    const v = r[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw invalidArgument(`option ${k} must be a positive number, got ${String(v)}`);
  }
  if (r.bloomBitsPerKey < 0 || r.walBatchDelayMs < 0 || r.blockCacheBytes < 0 || !Number.isInteger(r.tableSyncBytes) || r.tableSyncBytes < 0) throw invalidArgument('bloomBitsPerKey, walBatchDelayMs, blockCacheBytes and tableSyncBytes must be >= 0');
  if (!(r.memtableJitter >= 0 && r.memtableJitter < 1)) throw invalidArgument(`memtableJitter must be in [0, 1), got ${String(r.memtableJitter)}`);
  if (!(r.backgroundDutyCycle > 0 && r.backgroundDutyCycle <= 1)) throw invalidArgument(`backgroundDutyCycle must be in (0, 1], got ${String(r.backgroundDutyCycle)}`);
  if (!(r.l0CompactionTrigger <= r.l0SlowdownTrigger && r.l0SlowdownTrigger <= r.l0StopTrigger)) {
    throw invalidArgument('need l0CompactionTrigger <= l0SlowdownTrigger <= l0StopTrigger');
  }
  return r;
}
