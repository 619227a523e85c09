// SessionApi: the server side of KeyValue.Session (proto/distcache.proto, "Session"), a
// bidi stream that multiplexes many client requests over one HTTP/2 stream.
//
// Each SessionRequest of a RequestBatch becomes one request of the node's Pipeline (validation,
// auth, acl, audit, hot keys; ctx.method is the op's unary method name, ctx.metadata the
// stream's metadata) and then the same router function the unary call of that name uses
// (deps.dispatch). So a request answers exactly what its unary twin answers; only the framing
// differs. Requests run concurrently; each is answered as it completes, and the answers
// completed in one event-loop turn leave as ONE ResponseBatch write (flushed on setImmediate, so
// every resolution of one host loop turn, which all land as microtasks, shares the write).
//
// Lifecycle of a stream:
//   - a request gets a deadline (timeout_ms, or server.request_timeout_ms when 0) and is
//     answered DEADLINE_EXCEEDED when it passes (the op itself may still complete: a proposed
//     write cannot be recalled; its late result is dropped);
//   - client half-close: in-flight requests finish and are answered, then the server ends the
//     stream;
//   - cancel / transport error: in-flight requests finish on their own, their answers are dropped;
//   - drain() (node shutdown): new requests are answered UNAVAILABLE, the stream ends once the
//     in-flight ones are answered, so grpc's graceful shutdown does not wait for idle sessions.
// Nothing a client sends can throw out of this module: a malformed batch, a request without an
// op, id 0 or an id already in flight is answered INVALID_ARGUMENT and the stream goes on.
import * as grpc from '@grpc/grpc-js';
import type { MethodName, Pipeline, RequestContext } from './pipeline.js';
import { isMalformed } from './validation.js';

/** The oneof field names of SessionRequest.op / SessionResponse.result, by unary method. */
export const SESSION_FIELDS = {
  Get: 'get',
  Put: 'put',
  Delete: 'delete',
  PutIfVersionMatch: 'put_if_version_match',
  MultiGet: 'multi_get',
  MultiPut: 'multi_put',
  RangeScan: 'range_scan',
} as const satisfies Partial<Record<MethodName, string>>;

export type SessionMethod = keyof typeof SESSION_FIELDS;
const METHOD_OF = new Map<string, SessionMethod>(Object.entries(SESSION_FIELDS).map(([m, f]) => [f, m as SessionMethod]));

/** Flush a ResponseBatch early once it holds this many responses or about this many bytes. */
export const MAX_RESPONSES_PER_BATCH = 512;
export const MAX_RESPONSE_BATCH_BYTES = 4 << 20;

export interface SessionError {
  status: number;
  code: string;
  message: string;
  details: Record<string, string>;
}

export interface SessionDeps {
  pipeline: Pipeline;
  /** the router function of the unary method (what the pipeline's terminal step calls) */
  dispatch(method: SessionMethod, request: unknown): Promise<unknown>;
  /** maps any error to the status the unary call would end with (code, details, metadata) */
  toStatus(err: unknown): Partial<grpc.StatusObject>;
  requestTimeoutMs(): number;
  /** request accounting of the node (in flight, totals, errors) */
  onStart(): void;
  onDone(failed: boolean): void;
}

type Duplex = grpc.ServerDuplexStream<unknown, unknown>;
interface Wire {
  id: number;
  [field: string]: unknown;
}

/** One request in flight; the object identity guards against double answers (deadline vs result). */
interface Flight {
  timer: NodeJS.Timeout | undefined;
}

class Session {
  private readonly inflight = new Map<number, Flight>();
  private out: Wire[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private blocked = false;
  /** cancelled or broken: nothing more is written */
  private closed = false;
  /** the client half-closed, or the node drains: end once nothing is in flight */
  private ending = false;
  private draining = false;
  private readonly peer: string;

  constructor(
    private readonly call: Duplex,
    private readonly deps: SessionDeps,
    private readonly onClose: (s: Session) => void,
  ) {
    this.peer = call.getPeer();
    call.on('data', (b: unknown) => this.onBatch(b));
    call.on('end', () => {
      this.ending = true;
      this.maybeEnd();
    });
    call.on('cancelled', () => this.close());
    call.on('error', () => this.close());
    call.on('close', () => this.close());
  }

  drain(): void {
    this.draining = true;
    this.ending = true;
    this.maybeEnd();
  }

  private onBatch(batch: unknown): void {
    if (this.closed) return;
    if (isMalformed(batch) || typeof batch !== 'object' || batch === null || !Array.isArray((batch as { requests?: unknown }).requests)) {
      const why = isMalformed(batch) ? batch.__malformed : 'not a RequestBatch';
      this.respond({ id: 0, error: invalidError(`malformed RequestBatch: ${why}`) }, 64);
      return;
    }
    for (const r of (batch as { requests: Wire[] }).requests) this.start(r);
  }

  private start(r: Wire): void {
    const id = r.id;
    const field = typeof r['op'] === 'string' ? r['op'] : '';
    const method = METHOD_OF.get(field);
    if (id === 0) return this.respond({ id: 0, error: invalidError('request id 0 is reserved') }, 64);
    if (this.inflight.has(id)) return this.respond({ id, error: invalidError(`request id ${id} is already in flight on this stream`) }, 64);
    if (method === undefined) return this.respond({ id, error: invalidError(`request ${id} has no op set`) }, 64);
    if (this.draining) return this.respond({ id, error: { status: grpc.status.UNAVAILABLE, code: 'UNAVAILABLE', message: 'the node is shutting down', details: {} } }, 64);
    const now = Date.now();
    const timeoutMs = typeof r['timeout_ms'] === 'number' && r['timeout_ms'] > 0 ? r['timeout_ms'] : this.deps.requestTimeoutMs();
    const ctx: RequestContext = { method, request: r[field], metadata: this.call.metadata, peer: this.peer, deadline: now + timeoutMs, attrs: new Map() };
    const flight: Flight = { timer: undefined };
    this.inflight.set(id, flight);
    this.deps.onStart();
    flight.timer = setTimeout(() => this.finish(id, flight, method, false, deadlineError(method, timeoutMs)), timeoutMs);
    let work: Promise<unknown>;
    try {
      work = this.deps.pipeline.run(ctx, (c) => this.deps.dispatch(method, c.request));
    } catch (err) {
      work = Promise.reject(err); // an interceptor that throws synchronously (validation does)
    }
    work.then(
      (res) => this.finish(id, flight, method, true, res),
      (err: unknown) => this.finish(id, flight, method, false, this.errorOf(err)),
    );
  }

  private finish(id: number, flight: Flight, method: SessionMethod, ok: boolean, value: unknown): void {
    if (this.inflight.get(id) !== flight) return; // answered already (deadline passed first)
    this.inflight.delete(id);
    clearTimeout(flight.timer);
    this.deps.onDone(!ok);
    if (!this.closed) {
      if (ok) this.respond({ id, [SESSION_FIELDS[method]]: value }, resultBytes(value));
      else this.respond({ id, error: value }, 64 + (value as SessionError).message.length);
    }
    this.maybeEnd();
  }

  private errorOf(err: unknown): SessionError {
    const st = this.deps.toStatus(err);
    const details: Record<string, string> = {};
    let code = 'INTERNAL';
    for (const [k, v] of Object.entries(st.metadata?.getMap() ?? {})) {
      const s = typeof v === 'string' ? v : v.toString();
      if (k === 'error-code') code = s;
      else details[k] = s;
    }
    return { status: st.code ?? grpc.status.INTERNAL, code, message: st.details ?? code, details };
  }

  private respond(w: Wire, bytes: number): void {
    if (this.closed) return;
    this.out.push(w);
    this.outBytes += bytes;
    if (this.out.length >= MAX_RESPONSES_PER_BATCH || this.outBytes >= MAX_RESPONSE_BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
        this.maybeEnd();
      });
    }
  }

  private flush(): void {
    if (this.closed || this.blocked || this.out.length === 0) return;
    const responses = this.out;
    this.out = [];
    this.outBytes = 0;
    try {
      if (!this.call.write({ responses })) {
        // HTTP/2 flow control: hold further answers (they keep coalescing) until drained
        this.blocked = true;
        this.call.once('drain', () => {
          this.blocked = false;
          this.flush();
          this.maybeEnd();
        });
      }
    } catch {
      this.close();
    }
  }

  private maybeEnd(): void {
    if (this.closed || !this.ending || this.inflight.size > 0 || this.flushScheduled || this.blocked) return;
    this.flush();
    if (this.blocked) return;
    this.closed = true;
    try {
      this.call.end();
    } catch {
      // the stream went away meanwhile: nothing to end
    }
    this.onClose(this);
  }

  private close(): void {
    if (this.closed) {
      this.onClose(this);
      return;
    }
    this.closed = true;
    this.out = [];
    // in-flight ops run to completion (a proposed write cannot be recalled); their answers
    // are dropped in finish(). Their deadline timers are no longer needed.
    for (const f of this.inflight.values()) clearTimeout(f.timer);
    this.onClose(this);
  }
}

function invalidError(message: string): SessionError {
  return { status: grpc.status.INVALID_ARGUMENT, code: 'INVALID_ARGUMENT', message, details: {} };
}

function deadlineError(method: string, timeoutMs: number): SessionError {
  return { status: grpc.status.DEADLINE_EXCEEDED, code: 'DEADLINE_EXCEEDED', message: `${method} did not complete within its deadline (${timeoutMs} ms)`, details: {} };
}

/** A rough size of a result, to cap ResponseBatch bytes: the value bytes dominate. */
function resultBytes(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 16;
  const o = v as { value?: Buffer; results?: Array<{ value?: Buffer }>; items?: Array<{ key: { primary: Buffer; secondary: Buffer }; value: Buffer }> };
  let n = 32;
  if (o.value) n += o.value.length;
  if (o.results) for (const r of o.results) n += 16 + (r.value?.length ?? 0);
  if (o.items) for (const it of o.items) n += 24 + it.key.primary.length + it.key.secondary.length + it.value.length;
  return n;
}

/** The Session handler of one node and the set of its open streams. */
export class SessionApi {
  private readonly sessions = new Set<Session>();
  private draining = false;

  constructor(private readonly deps: SessionDeps) {}

  /** The grpc bidi handler to register as KeyValue.Session. */
  readonly handler: grpc.handleBidiStreamingCall<unknown, unknown> = (call) => {
    const s = new Session(call, this.deps, (x) => this.sessions.delete(x));
    this.sessions.add(s);
    if (this.draining) s.drain();
  };

  get openSessions(): number {
    return this.sessions.size;
  }

  /** Node shutdown: every stream ends once its in-flight requests are answered. */
  drain(): void {
    this.draining = true;
    for (const s of [...this.sessions]) s.drain();
  }
}
