// Typed errors of distcache. Every error a caller may handle carries a stable `code` string
// (documented in README.md "Error codes"); codes are part of the API and never change meaning.

export type ErrorCode =
  | 'CORRUPTION'
  | 'KEY_TOO_LARGE'
  | 'VALUE_TOO_LARGE'
  | 'INVALID_ARGUMENT'
  | 'LOCKED'
  | 'CLOSED'
  | 'NOT_OPEN'
  | 'IO_ERROR'
  | 'NOT_FOUND'
  | 'ITERATOR_BUSY'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'UNAVAILABLE';

export class KvError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'KvError';
  }
}

/** Stored bytes failed a checksum or a structural check. Names the file and byte offset, so an
 *  operator can find the damage; the engine never returns data that failed verification. */
export class CorruptionError extends KvError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, detail: string) {
    super('CORRUPTION', `corruption in ${file} at offset ${offset}: ${detail}`);
    this.name = 'CorruptionError';
    this.file = file;
    this.offset = offset;
  }
}

export function invalidArgument(message: string): KvError {
  return new KvError('INVALID_ARGUMENT', message);
}

/** Narrows an unknown catch value to a NodeJS errno exception with the given code. */
export function isErrno(err: unknown, code: string): err is NodeJS.ErrnoException {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
