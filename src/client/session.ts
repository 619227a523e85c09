// SessionConn: the client end of one node's KeyValue.Session stream (proto/distcache.proto,
// "Session"), the client hot path. One long-lived bidi stream per node connection carries every
// op the client sends there.
//
// Framing: call() gives the op an id (u32, != 0, unique among this connection's ops in flight)
// and queues it; the queue is flushed as ONE RequestBatch on setImmediate, i.e. once the current
// event-loop turn (and every microtask of it) is over, so all ops issued in one turn share one
// protobuf message and one HTTP/2 DATA write. A batch is flushed early at MAX_REQUESTS_PER_BATCH
// requests or about MAX_BATCH_BYTES bytes. Responses (in completion order) resolve their op by
// id.
//
// Deadlines: each request carries its remaining time (timeout_ms), which the server enforces; a
// sweep timer (only while ops are in flight) also fails ops whose deadline passed here, so a
// silent server cannot hold an op past its deadline.
//
// Failures: when the stream fails or ends, every op in flight on it fails with UNAVAILABLE (the
// grpc message is kept, so the caller's retry policy can tell "never connected" from "connection
// lost"), and the next call() opens a new stream: reopening is lazy. Responses for ids no longer
// waited for (their deadline passed here) are ignored.
import type * as grpc from '@grpc/grpc-js';
import { ClientError, type SessionErrorRecord, fromSessionError, toClientError } from './errors.js';

export const MAX_REQUESTS_PER_BATCH = 256;
export const MAX_BATCH_BYTES = 1 << 20;
const SWEEP_MS = 50;

/** Unary method name -> the oneof field of SessionRequest.op / SessionResponse.result. */
export const SESSION_FIELD: Readonly<Record<string, string>> = {
  Get: 'get',
  Put: 'put',
  Delete: 'delete',
  PutIfVersionMatch: 'put_if_version_match',
  MultiGet: 'multi_get',
  MultiPut: 'multi_put',
  RangeScan: 'range_scan',
};

type Resp = Record<string, unknown>;

interface Waiter {
  field: string;
  deadline: number;
  resolve: (r: Resp) => void;
  reject: (e: ClientError) => void;
}

interface WireResponse {
  id: number;
  error?: SessionErrorRecord;
  [field: string]: unknown;
}

/** One open stream and the ops written to it (failing the stream fails exactly these). */
interface Stream {
  call: grpc.ClientDuplexStream<unknown, unknown>;
  waiting: Map<number, Waiter>;
  dead: boolean;
}

export class SessionConn {
  private current: Stream | undefined;
  private queue: object[] = [];
  private queueBytes = 0;
  private flushScheduled = false;
  private nextId = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  /** `open` starts a new Session call on the node's channel. */
  constructor(private readonly open: () => grpc.ClientDuplexStream<unknown, unknown>) {}

  /** Ops sent and not yet answered (for spreading follower reads). */
  get inFlight(): number {
    return this.current?.waiting.size ?? 0;
  }

  /** Sends one op (`method` is the unary method name); resolves with its result message. */
  call(method: string, req: object, deadline: number): Promise<Resp> {
    const field = SESSION_FIELD[method];
    if (field === undefined) return Promise.reject(new ClientError('INVALID_ARGUMENT', `${method} is not a Session op`));
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'client is closed'));
    const s = (this.current ??= this.openStream());
    const id = this.allocId(s);
    return new Promise<Resp>((resolve, reject) => {
      s.waiting.set(id, { field, deadline, resolve, reject });
      this.queue.push({ id, timeout_ms: Math.max(1, deadline - Date.now()), [field]: req });
      this.queueBytes += requestBytes(req);
      if (this.queue.length >= MAX_REQUESTS_PER_BATCH || this.queueBytes >= MAX_BATCH_BYTES) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
      this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
    });
  }

  /** Cancels the stream; everything in flight fails with CLOSED. */
  close(): void {
    this.closed = true;
    this.queue = [];
    const s = this.current;
    this.current = undefined;
    if (s) {
      this.fail(s, new ClientError('CLOSED', 'client is closed'));
      s.call.cancel();
    }
    this.stopSweeper();
  }

  private allocId(s: Stream): number {
    // u32 ids wrap; skip the (rare) ones still waited for
    do this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    while (s.waiting.has(this.nextId));
    return this.nextId;
  }

  private openStream(): Stream {
    const call = this.open();
    const s: Stream = { call, waiting: new Map(), dead: false };
    call.on('data', (b: { responses: WireResponse[] }) => this.onBatch(s, b.responses));
    call.on('error', (e: unknown) => this.broken(s, e));
    call.on('end', () => this.broken(s, new ClientError('UNAVAILABLE', 'session stream ended by the server', { grpcCode: 14 })));
    return s;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const requests = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    const s = this.current;
    if (!s) return; // closed meanwhile: its waiters were failed already
    // grpc-js buffers while connecting and under flow control; a failed stream reports 'error'
    try {
      s.call.write({ requests });
    } catch (e) {
      this.broken(s, e); // e.g. written after the stream ended, before 'end' reached us
    }
  }

  private onBatch(s: Stream, responses: WireResponse[]): void {
    for (const r of responses) {
      if (r.id === 0) {
        // the server could not decode a batch of ours: which ops it held is unknown
        this.broken(s, new ClientError('UNAVAILABLE', `session protocol error: ${r.error?.message ?? 'response id 0'}`, { grpcCode: 14 }));
        return;
      }
      const w = s.waiting.get(r.id);
      if (!w) continue;
      s.waiting.delete(r.id);
      if (r.error) w.reject(fromSessionError(r.error));
      else w.resolve((r[w.field] as Resp | undefined) ?? {});
    }
    if (this.current?.waiting.size === 0 && this.queue.length === 0) this.stopSweeper();
  }

  /** The stream failed or ended: its ops fail UNAVAILABLE; the next call opens a new one. */
  private broken(s: Stream, e: unknown): void {
    if (s.dead) return;
    if (this.current === s) this.current = undefined;
    const ce = toClientError(e);
    this.fail(s, ce.code === 'UNAVAILABLE' ? ce : new ClientError('UNAVAILABLE', `session stream failed: ${ce.message}`, { ...(ce.grpcCode === undefined ? {} : { grpcCode: ce.grpcCode }), cause: ce }));
    try {
      s.call.cancel();
    } catch {
      // already finished
    }
  }

  private fail(s: Stream, err: ClientError): void {
    s.dead = true;
    const ws = [...s.waiting.values()];
    s.waiting.clear();
    for (const w of ws) w.reject(err);
  }

  private sweep(): void {
    const s = this.current;
    if (!s || s.waiting.size === 0) {
      this.stopSweeper();
      return;
    }
    const now = Date.now();
    for (const [id, w] of s.waiting) {
      if (w.deadline > now) continue;
      s.waiting.delete(id);
      w.reject(new ClientError('TIMEOUT', 'deadline exceeded waiting for the session response', { grpcCode: 4 }));
    }
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

/** A rough size of a request, to cap RequestBatch bytes: keys and values dominate. */
function requestBytes(req: object): number {
  const r = req as { key?: { primary: Buffer; secondary: Buffer }; value?: Buffer; keys?: unknown[]; entries?: Array<{ value: Buffer }> };
  let n = 16;
  if (r.key) n += r.key.primary.length + r.key.secondary.length;
  if (r.value) n += r.value.length;
  if (r.keys) n += r.keys.length * 32;
  if (r.entries) for (const e of r.entries) n += 32 + e.value.length;
  return n;
}
