// ReadIndex bookkeeping on the leader (Raft thesis §6.4). A read request records the commit index
// at the time it arrived; the leader then broadcasts a heartbeat carrying the request's context.
// Once a quorum acknowledges that heartbeat, the leader knows it was still leader when the
// request arrived, so the recorded index covers every write committed before the read began.
// Requests are released in arrival order: an ack for a later request confirms earlier ones too.
import type { Message } from './types.js';

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<number>;
}

function key(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('latin1');
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  /** Registers a read of `index` for request m (m.context identifies it). Duplicate ctxs are ignored. */
  addRequest(index: number, m: Message): void {
    const k = key(m.context ?? new Uint8Array(0));
    if (this.pending.has(k)) return;
    this.pending.set(k, { req: m, index, acks: new Set() });
    this.queue.push(k);
  }

  /** Records that `id` acknowledged the heartbeat for ctx; returns who acked, or undefined. */
  recvAck(id: number, ctx: Uint8Array): Set<number> | undefined {
    const rs = this.pending.get(key(ctx));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Releases every request up to and including ctx, in order. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const k = key(ctx);
    const at = this.queue.indexOf(k);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexStatus[] = [];
    for (const d of done) {
      const rs = this.pending.get(d);
      if (rs) out.push(rs);
      this.pending.delete(d);
    }
    return out;
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    const k = this.queue[this.queue.length - 1];
    if (k === undefined) return undefined;
    return this.pending.get(k)?.req.context;
  }

  get size(): number {
    return this.queue.length;
  }
}
