// Leader's view of one follower: match/next, the replication state machine and flow control.
//
//  Probe:     one append in flight at a time (probeSent pauses until a response or heartbeat);
//             used after a rejection or when the follower's position is unknown.
//  Replicate: pipelining; next is advanced optimistically on send, bounded by the Inflights
//             window (count and bytes). A rejection falls back to Probe.
//  Snapshot:  an InstallSnapshot transfer of `pendingSnapshot` is running in chunks; appends stop
//             until the follower reports an index covered by the snapshot.

export enum ProgressState {
  Probe = 0,
  Replicate = 1,
  Snapshot = 2,
}

/** A bounded window of in-flight appends, each identified by its last index. */
export class Inflights {
  private readonly idx: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.idx.length - this.head;
  }

  add(lastIndex: number, bytes: number): void {
    this.idx.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every in-flight append whose last index is <= to. */
  freeLE(to: number): void {
    while (this.head < this.idx.length && this.idx[this.head]! <= to) {
      this.bytes -= this.sizes[this.head]!;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.idx.length) {
      this.idx.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.idx[this.head]!);
  }

  full(): boolean {
    return this.count >= this.maxCount || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  reset(): void {
    this.idx.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** Probe: an append is outstanding; no more until a response or a heartbeat response. */
  probeSent = false;
  /** Snapshot: index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Snapshot: bytes acknowledged by the follower, bytes sent. */
  snapAcked = 0;
  snapSent = 0;
  /** Snapshot: the final chunk was sent (wait for an ack or a heartbeat response to retry). */
  snapDoneSent = false;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** An append went to this follower since the last heartbeat round (skipHeartbeatAfterAppend). */
  appendSinceBeat = false;
  isLearner: boolean;
  /** Highest leader tick echoed back in a heartbeat response (lease reads). */
  leaseAckTick = Number.NEGATIVE_INFINITY;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number, maxInflightBytes: number, isLearner: boolean) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapAcked = 0;
    this.snapSent = 0;
    this.snapDoneSent = false;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it; otherwise right after what we know matches.
    if (this.state === ProgressState.Snapshot) {
      const ps = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, ps + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** A successful append response up to n. Returns false if it told us nothing new. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Replicate: entries up to n were sent. */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * A rejection of the append whose preceding index was `rejected`; `matchHint` is the largest
   * index the follower might match (from the conflict hint). Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }

  toString(): string {
    return `${ProgressState[this.state]} match=${this.match} next=${this.next}${this.isLearner ? ' learner' : ''}${this.state === ProgressState.Snapshot ? ` snap=${this.pendingSnapshot}@${this.snapAcked}` : ''}`;
  }
}
