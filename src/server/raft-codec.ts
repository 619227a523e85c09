// Compact binary encoding of a batch of Raft messages (GroupMessage[]) for the node-to-node
// transport (RaftTransport.Stream payload). Little-endian varints (util/bytes) for every number;
// all numbers are non-negative safe integers.
//
//   batch    := version u8 (=1) | count varint | message*count
//   message  := groupId varint | type u8 | flags u8 | from | to | term | logTerm | index |
//               commit | rejectHint (varints) | entryCount varint | entry*entryCount |
//               [context lenBytes] (flags&2) | [snapshot chunk] (flags&4) |
//               [tick varint] (flags&8) | [offset varint] (flags&16)
//               flags&1 = reject; tick: the leader's lease clock, sent on heartbeats and (with
//               lease reads) appends, echoed back in their responses
//   entry    := term varint | index varint | type u8 | data lenBytes
//   chunk    := meta.index | meta.term | confState | offset | totalBytes (varints) |
//               data lenBytes | done u8
//   confState:= voters | learners | votersOutgoing | learnersNext (each: count varint, ids
//               varint*) | autoLeave u8
//
// decodeBatch returns entries' data as views of the input (the bulk of a batch; gRPC hands each
// received message a buffer of its own) and copies the rest. A malformed payload throws
// DecodeError; the transport drops such a batch. encodeBatchMessage wraps a batch into the whole
// RaftBatch protobuf message (proto/distcache.proto) for the transport's sends: the sender's
// fields, then field 4 (payload) whose length is always a 5-byte varint (non-minimal varints are
// valid protobuf; every decoder reads them).
import type { ConfState, Entry, Message, SnapshotChunk } from '../raft/index.js';
import type { GroupMessage } from '../store/transport.js';
import { BufReader, BufWriter, DecodeError } from '../util/bytes.js';

export const RAFT_BATCH_V1 = 1;

const F_REJECT = 1;
const F_CONTEXT = 2;
const F_SNAPSHOT = 4;
const F_TICK = 8;
const F_OFFSET = 16;

function writeIds(w: BufWriter, ids: readonly number[]): void {
  w.varint(ids.length);
  for (const id of ids) w.varint(id);
}

function writeConfState(w: BufWriter, c: ConfState): void {
  writeIds(w, c.voters);
  writeIds(w, c.learners);
  writeIds(w, c.votersOutgoing);
  writeIds(w, c.learnersNext);
  w.u8(c.autoLeave ? 1 : 0);
}

/** An upper bound of encodeBatch's output size: the writer is sized once and its buffer handed
 *  over without a copy (BufWriter.finish), entries' data being most of a batch. */
function batchSizeBound(batch: readonly GroupMessage[]): number {
  let n = 16;
  for (const { message: m } of batch) {
    n += 128 + (m.context?.length ?? 0);
    for (const e of m.entries) n += 32 + e.data.length;
    const s = m.snapshot;
    if (s !== undefined) {
      const c = s.metadata.confState;
      n += 64 + 10 * (c.voters.length + c.learners.length + c.votersOutgoing.length + c.learnersNext.length) + s.data.length;
    }
  }
  return n;
}

export function encodeBatch(batch: readonly GroupMessage[], w = new BufWriter(batchSizeBound(batch))): Buffer {
  w.reset();
  writeBatch(w, batch);
  return w.finish();
}

/** RaftBatch.payload's field tag (field 4, length-delimited) */
const PAYLOAD_TAG = (4 << 3) | 2;
/** the payload's length is written as a 5-byte varint (non-minimal varints are valid protobuf)
 *  so that it can be filled in after the payload */
const PAYLOAD_LEN_BYTES = 5;

/**
 * A whole RaftBatch protobuf message (proto/distcache.proto): `header` (the sender's fields,
 * encoded once per transport by encodeBatchHeader) followed by the payload field holding
 * encodeBatch's bytes. One buffer and one copy of each entry: protobufjs would copy the payload
 * into a message buffer of its own (on the sender of every batch; a put's value, twice).
 */
export function encodeBatchMessage(header: Uint8Array, batch: readonly GroupMessage[]): Buffer {
  const w = new BufWriter(header.length + 1 + PAYLOAD_LEN_BYTES + batchSizeBound(batch));
  w.bytes(header).u8(PAYLOAD_TAG);
  const lenAt = w.length;
  for (let i = 0; i < PAYLOAD_LEN_BYTES; i++) w.u8(0);
  writeBatch(w, batch);
  const out = w.finish();
  let len = out.length - lenAt - PAYLOAD_LEN_BYTES;
  for (let i = 0; i < PAYLOAD_LEN_BYTES; i++, len = Math.floor(len / 128)) out[lenAt + i] = (len % 128) | (i < PAYLOAD_LEN_BYTES - 1 ? 0x80 : 0);
  return out;
}

/** The sender's fields of RaftBatch (all but the payload), protobuf-encoded. */
export function encodeBatchHeader(h: { fromNode: string; fromRaftId: number; clientAddress: string; peerAddress: string }): Buffer {
  const w = new BufWriter(64);
  const str = (field: number, v: string): void => {
    if (v === '') return; // proto3: a default value is not on the wire
    w.u8((field << 3) | 2).lenBytes(Buffer.from(v, 'utf8'));
  };
  str(1, h.fromNode);
  if (h.fromRaftId !== 0) w.u8(2 << 3).varint(h.fromRaftId);
  str(3, h.clientAddress);
  str(5, h.peerAddress);
  return w.finish();
}

function writeBatch(w: BufWriter, batch: readonly GroupMessage[]): void {
  w.u8(RAFT_BATCH_V1).varint(batch.length);
  for (const { groupId, message: m } of batch) {
    let flags = m.reject ? F_REJECT : 0;
    if (m.context !== undefined) flags |= F_CONTEXT;
    if (m.snapshot !== undefined) flags |= F_SNAPSHOT;
    if (m.tick !== undefined) flags |= F_TICK;
    if (m.offset !== undefined) flags |= F_OFFSET;
    w.varint(groupId).u8(m.type).u8(flags);
    w.varint(m.from).varint(m.to).varint(m.term).varint(m.logTerm).varint(m.index).varint(m.commit).varint(m.rejectHint);
    w.varint(m.entries.length);
    for (const e of m.entries) w.varint(e.term).varint(e.index).u8(e.type).lenBytes(e.data);
    if (m.context !== undefined) w.lenBytes(m.context);
    if (m.snapshot !== undefined) {
      const s = m.snapshot;
      w.varint(s.metadata.index).varint(s.metadata.term);
      writeConfState(w, s.metadata.confState);
      w.varint(s.offset).varint(s.totalBytes).lenBytes(s.data).u8(s.done ? 1 : 0);
    }
    if (m.tick !== undefined) w.varint(m.tick);
    if (m.offset !== undefined) w.varint(m.offset);
  }
}

function readIds(r: BufReader): number[] {
  const n = r.varint();
  if (n > r.remaining) throw new DecodeError(`id list of ${n} exceeds the payload`);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.varint());
  return out;
}

function copy(b: Buffer): Uint8Array {
  return new Uint8Array(b);
}

export function decodeBatch(buf: Buffer): GroupMessage[] {
  const r = new BufReader(buf);
  const version = r.u8();
  if (version !== RAFT_BATCH_V1) throw new DecodeError(`raft batch: unknown version ${version}`);
  const count = r.varint();
  if (count > r.remaining) throw new DecodeError(`raft batch: ${count} messages exceed the payload`);
  const out: GroupMessage[] = [];
  for (let i = 0; i < count; i++) {
    const groupId = r.varint();
    const type = r.u8();
    if (type > 18) throw new DecodeError(`raft batch: unknown message type ${type}`);
    const flags = r.u8();
    const m: Message = {
      type,
      from: r.varint(),
      to: r.varint(),
      term: r.varint(),
      logTerm: r.varint(),
      index: r.varint(),
      commit: r.varint(),
      reject: (flags & F_REJECT) !== 0,
      rejectHint: r.varint(),
      entries: [],
    };
    const ne = r.varint();
    if (ne > r.remaining) throw new DecodeError(`raft batch: ${ne} entries exceed the payload`);
    for (let j = 0; j < ne; j++) {
      const e: Entry = { term: r.varint(), index: r.varint(), type: r.u8(), data: new Uint8Array(0) };
      if (e.type > 1) throw new DecodeError(`raft batch: unknown entry type ${e.type}`);
      // A view, not a copy: entries are the bulk of a batch (a put's value, on every follower),
      // and the received buffer is ours (gRPC hands each message its own); it lives while the
      // Raft log keeps any of its entries in memory, i.e. until this node applied them
      // (GroupLog.evictThrough).
      e.data = r.lenBytes();
      m.entries.push(e);
    }
    if (flags & F_CONTEXT) m.context = copy(r.lenBytes());
    if (flags & F_SNAPSHOT) {
      const index = r.varint();
      const term = r.varint();
      const confState: ConfState = { voters: readIds(r), learners: readIds(r), votersOutgoing: readIds(r), learnersNext: readIds(r), autoLeave: r.u8() === 1 };
      const chunk: SnapshotChunk = { metadata: { index, term, confState }, offset: r.varint(), totalBytes: r.varint(), data: copy(r.lenBytes()), done: r.u8() === 1 };
      m.snapshot = chunk;
    }
    if (flags & F_TICK) m.tick = r.varint();
    if (flags & F_OFFSET) m.offset = r.varint();
    out.push({ groupId, message: m });
  }
  if (r.remaining !== 0) throw new DecodeError(`raft batch: ${r.remaining} trailing bytes`);
  return out;
}
