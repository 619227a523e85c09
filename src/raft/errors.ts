// The one error type of the Raft core. `code` is stable and is what callers branch on.
//  COMPACTED                      requested index is behind the storage's first index
//  UNAVAILABLE                    requested index is beyond the storage's last index
//  SNAPSHOT_OUT_OF_DATE           snapshot older than the one the storage holds
//  SNAPSHOT_TEMPORARILY_UNAVAILABLE  storage cannot produce a snapshot right now; retried later
//  PROPOSAL_DROPPED               no leader, leadership transfer running, or conf change refused
//  CONFIG_INVALID                 RaftConfig failed validate()
//  INVALID_ARGUMENT               bad input from the caller (e.g. local message stepped from the network)
//  INVARIANT                      a bug or corrupted state; the node must stop

export type RaftErrorCode =
  | 'COMPACTED'
  | 'UNAVAILABLE'
  | 'SNAPSHOT_OUT_OF_DATE'
  | 'SNAPSHOT_TEMPORARILY_UNAVAILABLE'
  | 'PROPOSAL_DROPPED'
  | 'CONFIG_INVALID'
  | 'INVALID_ARGUMENT'
  | 'INVARIANT';

export class RaftError extends Error {
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = 'RaftError';
  }
}

export function isRaftError(err: unknown, code?: RaftErrorCode): err is RaftError {
  return err instanceof RaftError && (code === undefined || err.code === code);
}

/** Throws INVARIANT: used where etcd panics. */
export function invariant(cond: boolean, message: string): asserts cond {
  if (!cond) throw new RaftError('INVARIANT', message);
}

export function checkIndex(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RaftError('INVALID_ARGUMENT', `${what} must be a non-negative safe integer, got ${n}`);
}
