// Request validation, the first interceptor of the pipeline: anything malformed, empty or
// oversize is answered INVALID_ARGUMENT here and never reaches the router or the Raft log.
import { type Interceptor, type MethodName, invalid } from './pipeline.js';
import type { PKey } from './proto.js';

export const MAX_KEY_BYTES = 16 * 1024;
export const MAX_VALUE_BYTES = 4 * 1024 * 1024;
export const MAX_BATCH_KEYS = 10_000;
export const MAX_SCAN_LIMIT = 100_000;
/** gRPC receive limit of the client port: above the largest valid request. */
export const MAX_REQUEST_BYTES = 64 * 1024 * 1024;

/** What the server's wrapped deserializer returns for bytes that are not a valid message. */
export interface Malformed {
  readonly __malformed: string;
}

export function isMalformed(v: unknown): v is Malformed {
  return typeof v === 'object' && v !== null && '__malformed' in v;
}

function checkKey(k: unknown, what: string): PKey {
  if (k === null || k === undefined) throw invalid(`${what} is required`);
  const key = k as PKey;
  if (!Buffer.isBuffer(key.primary) || key.primary.length === 0) throw invalid(`${what}.primary must not be empty`);
  const len = key.primary.length + (key.secondary?.length ?? 0);
  if (len > MAX_KEY_BYTES) throw invalid(`${what} of ${len} bytes exceeds ${MAX_KEY_BYTES} bytes`, 'KEY_TOO_LARGE');
  return key;
}

function checkValue(v: unknown, what: string): void {
  if (!Buffer.isBuffer(v)) throw invalid(`${what} must be bytes`);
  if (v.length > MAX_VALUE_BYTES) throw invalid(`${what} of ${v.length} bytes exceeds ${MAX_VALUE_BYTES} bytes`, 'VALUE_TOO_LARGE');
}

function checkCount(n: number, what: string): void {
  if (n === 0) throw invalid(`${what} must not be empty`);
  if (n > MAX_BATCH_KEYS) throw invalid(`${what} holds ${n} items; at most ${MAX_BATCH_KEYS}`);
}

type Req = Record<string, unknown>;

export function validateRequest(method: MethodName, request: unknown, shardCount: number): void {
  if (isMalformed(request)) throw invalid(`malformed ${method} request: ${request.__malformed}`);
  if (typeof request !== 'object' || request === null) throw invalid(`malformed ${method} request`);
  const r = request as Req;
  switch (method) {
    case 'Get':
    case 'Delete':
      checkKey(r['key'], 'key');
      return;
    case 'Put':
    case 'PutIfVersionMatch':
      checkKey(r['key'], 'key');
      checkValue(r['value'], 'value');
      return;
    case 'MultiGet': {
      const keys = r['keys'] as unknown[];
      checkCount(keys.length, 'keys');
      keys.forEach((k, i) => checkKey(k, `keys[${i}]`));
      return;
    }
    case 'MultiPut': {
      const entries = r['entries'] as Array<Req | null>;
      checkCount(entries.length, 'entries');
      entries.forEach((e, i) => {
        checkKey(e?.['key'], `entries[${i}].key`);
        checkValue(e?.['value'], `entries[${i}].value`);
      });
      return;
    }
    case 'RangeScan': {
      const limit = r['limit'] as number;
      if (limit > MAX_SCAN_LIMIT) throw invalid(`limit ${limit} exceeds ${MAX_SCAN_LIMIT}`);
      for (const s of r['shard_ids'] as number[]) if (s >= shardCount) throw invalid(`shard id ${s} out of range 0..${shardCount - 1}`);
      for (const w of ['start', 'end'] as const) {
        const k = r[w] as PKey | null;
        if (k !== null && k.primary.length + k.secondary.length > MAX_KEY_BYTES) throw invalid(`${w} exceeds ${MAX_KEY_BYTES} bytes`, 'KEY_TOO_LARGE');
      }
      return;
    }
    case 'ClusterInfo':
      return;
  }
}

export function validationInterceptor(shardCount: () => number): Interceptor {
  return {
    name: 'validation',
    handle: (ctx, next) => {
      validateRequest(ctx.method, ctx.request, shardCount());
      return next();
    },
  };
}
