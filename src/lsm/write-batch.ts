// The engine's WAL record: one atomic write batch. A batch is applied whole or not at all —
// including after a crash, because it is one log record and a torn record is dropped whole.
// Layout (see ./FORMAT.md "WAL record"):
//   firstSeq: uint64 LE | count: varint | op*
//   op := kind: uint8 (0 delete, 1 put) | keyLen: varint | key | (valueLen: varint | value)?  (put only)
// The ops get sequences firstSeq, firstSeq+1, ... in order.
import { BufReader, BufWriter, DecodeError, varintLength } from '../util/bytes.js';
import { Kind } from './keys.js';
import type { WriteOp } from './types.js';

export interface DecodedOp {
  kind: Kind;
  key: Buffer;
  value: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** Length of the value a put stores: its valuePrefix and value together. */
export function storedValueLength(op: WriteOp & { type: 'put' }): number {
  return (op.valuePrefix?.length ?? 0) + op.value.length;
}

export function encodedBatchSize(ops: readonly WriteOp[]): number {
  let n = 8 + varintLength(ops.length);
  for (const op of ops) {
    n += 1 + varintLength(op.key.length) + op.key.length;
    if (op.type === 'put') {
      const len = storedValueLength(op);
      n += varintLength(len) + len;
    }
  }
  return n;
}

export function encodeBatch(firstSeq: number, ops: readonly WriteOp[]): Buffer {
  const w = new BufWriter(encodedBatchSize(ops));
  w.u64(firstSeq).varint(ops.length);
  for (const op of ops) {
    if (op.type === 'put') {
      w.u8(Kind.Value).lenBytes(op.key);
      if (op.valuePrefix === undefined) w.lenBytes(op.value);
      else w.varint(op.valuePrefix.length + op.value.length).bytes(op.valuePrefix).bytes(op.value);
    } else {
      w.u8(Kind.Delete).lenBytes(op.key);
    }
  }
  return w.view();
}

/** Decodes a batch; the returned key/value Buffers alias `record`. Throws DecodeError. */
export function decodeBatch(record: Buffer): { firstSeq: number; ops: DecodedOp[] } {
  const r = new BufReader(record);
  const firstSeq = r.u64();
  const count = r.varint();
  const ops: DecodedOp[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r.u8();
    if (kind === Kind.Value) {
      const key = r.lenBytes();
      ops.push({ kind: Kind.Value, key, value: r.lenBytes() });
    } else if (kind === Kind.Delete) {
      ops.push({ kind: Kind.Delete, key: r.lenBytes(), value: EMPTY });
    } else {
      throw new DecodeError(`unknown op kind ${kind}`);
    }
  }
  if (r.remaining !== 0) throw new DecodeError(`${r.remaining} trailing bytes after batch`);
  return { firstSeq, ops };
}
