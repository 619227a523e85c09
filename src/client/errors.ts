// ClientError and the mapping of both error carriers to it: a unary call's grpc status plus
// trailing metadata (toClientError), and a Session response's error record (fromSessionError),
// which carries the same status number, distcache code and details (proto/distcache.proto).
import * as grpc from '@grpc/grpc-js';

export type ClientErrorCode =
  | 'NOT_LEADER'
  | 'VERSION_MISMATCH'
  | 'INVALID_ARGUMENT'
  | 'KEY_TOO_LARGE'
  | 'VALUE_TOO_LARGE'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'PROPOSAL_DROPPED'
  | 'NOT_SUPPORTED'
  /** the shard no longer owns the key (split/merge): refresh the routing and retry; not applied */
  | 'WRONG_SHARD'
  /** the key's range is being moved to another shard: retry shortly; not applied */
  | 'RANGE_MOVING'
  | 'CLOSED'
  | 'INTERNAL'
  | 'UNKNOWN';

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  readonly grpcCode: number | undefined;
  readonly leaderHint: string | undefined;
  readonly leaderId: string | undefined;
  readonly currentVersion: number | undefined;
  constructor(code: ClientErrorCode, message: string, extra: { grpcCode?: number; leaderHint?: string; leaderId?: string; currentVersion?: number; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'ClientError';
    this.code = code;
    this.grpcCode = extra.grpcCode;
    this.leaderHint = extra.leaderHint;
    this.leaderId = extra.leaderId;
    this.currentVersion = extra.currentVersion;
  }
}

const KNOWN_CODES = new Set<string>(['NOT_LEADER', 'VERSION_MISMATCH', 'INVALID_ARGUMENT', 'KEY_TOO_LARGE', 'VALUE_TOO_LARGE', 'UNAVAILABLE', 'TIMEOUT', 'PROPOSAL_DROPPED', 'NOT_SUPPORTED', 'WRONG_SHARD', 'RANGE_MOVING', 'CLOSED']);

/** The client code of a (grpc status, distcache error-code) pair. */
function classify(status: number, ec: string | undefined): ClientErrorCode {
  if (ec !== undefined && KNOWN_CODES.has(ec)) return ec as ClientErrorCode;
  if (status === grpc.status.FAILED_PRECONDITION) return 'NOT_LEADER';
  if (status === grpc.status.ABORTED) return 'VERSION_MISMATCH';
  if (status === grpc.status.INVALID_ARGUMENT) return 'INVALID_ARGUMENT';
  if (status === grpc.status.UNAVAILABLE) return 'UNAVAILABLE';
  if (status === grpc.status.DEADLINE_EXCEEDED) return 'TIMEOUT';
  if (status === grpc.status.CANCELLED) return 'CLOSED';
  return status === grpc.status.INTERNAL ? 'INTERNAL' : 'UNKNOWN';
}

function build(status: number, ec: string | undefined, message: string, get: (k: string) => string | undefined, cause: unknown): ClientError {
  const extra: { grpcCode: number; leaderHint?: string; leaderId?: string; currentVersion?: number; cause: unknown } = { grpcCode: status, cause };
  const hint = get('leader-hint');
  const lid = get('leader-id');
  const cv = get('current-version');
  if (hint !== undefined) extra.leaderHint = hint;
  if (lid !== undefined) extra.leaderId = lid;
  if (cv !== undefined) extra.currentVersion = Number(cv);
  const code = classify(status, ec);
  return new ClientError(code, message || code, extra);
}

/** Maps a grpc-js error (status + trailing metadata) to a ClientError. */
export function toClientError(e: unknown): ClientError {
  if (e instanceof ClientError) return e;
  const se = e as Partial<grpc.ServiceError>;
  if (typeof se?.code !== 'number') return new ClientError('UNKNOWN', e instanceof Error ? e.message : String(e), { cause: e });
  const md1 = (k: string): string | undefined => {
    const v = se.metadata?.get(k)[0];
    return v === undefined ? undefined : String(v);
  };
  return build(se.code, md1('error-code'), se.details || se.message || '', md1, e);
}

/** The error record of a Session response (SessionError in the proto). */
export interface SessionErrorRecord {
  status: number;
  code: string;
  message: string;
  details: Record<string, string>;
}

/** Maps a Session response's error to the ClientError the unary call would have produced. */
export function fromSessionError(e: SessionErrorRecord): ClientError {
  return build(e.status, e.code, e.message, (k) => e.details[k], undefined);
}
