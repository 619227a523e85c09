// Leader role: replication (probe / pipelined replicate / chunked snapshot), commit, heartbeats,
// CheckQuorum, ReadIndex and lease reads, leadership transfer, and conf change admission.
import { decodeConfChange, isLeaveJoint } from './confchange.js';
import { RaftError, isRaftError } from './errors.js';
import { ProgressState, type Progress } from './progress.js';
import type { Raft } from './raft.js';
import { type Entry, type Message, EntryType, MessageType, NONE, entrySize, makeMessage } from './types.js';

export function stepLeader(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.Beat:
      bcastHeartbeat(r);
      return;
    case MessageType.CheckQuorum:
      if (!r.tracker.quorumActive(r.id)) {
        r.logger().warn(`node ${r.id} stepped down: no quorum active at term ${r.term}`);
        r.becomeFollower(r.term, NONE);
        return;
      }
      for (const [id, pr] of r.tracker.progress) if (id !== r.id) pr.recentActive = false;
      return;
    case MessageType.Prop:
      handleProposal(r, m);
      return;
    case MessageType.ReadIndex:
      handleReadIndex(r, m);
      return;
    case MessageType.TransferLeader:
      handleTransferLeader(r, m);
      return;
    default:
      break;
  }

  const pr = r.tracker.progress.get(m.from);
  if (pr === undefined) return;
  switch (m.type) {
    case MessageType.AppResp:
      handleAppendResponse(r, m, pr);
      return;
    case MessageType.HeartbeatResp:
      handleHeartbeatResponse(r, m, pr);
      return;
    case MessageType.SnapResp:
      pr.recentActive = true;
      if (pr.state !== ProgressState.Snapshot || m.index !== pr.pendingSnapshot) return;
      handleSnapshotAck(r, m.from, pr, m.offset ?? 0);
      return;
    case MessageType.Unreachable:
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      return;
    default:
      return;
  }
}

function handleProposal(r: Raft, m: Message): void {
  if (m.entries.length === 0) throw new RaftError('INVALID_ARGUMENT', 'empty proposal');
  if (!r.tracker.progress.has(r.id)) throw new RaftError('PROPOSAL_DROPPED', `node ${r.id} was removed from the configuration`);
  if (r.leadTransferee !== NONE) throw new RaftError('PROPOSAL_DROPPED', `node ${r.id}: leadership transfer to ${r.leadTransferee} in progress`);
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    if (e.type !== EntryType.ConfChange) continue;
    const cc = decodeConfChange(e.data);
    const joint = r.tracker.config.voters.isJoint();
    let refused = '';
    if (r.pendingConfIndex > r.log.applied) refused = `conf change ${r.pendingConfIndex} not yet applied (applied ${r.log.applied})`;
    else if (joint && !isLeaveJoint(cc)) refused = 'must leave the joint configuration first';
    else if (!joint && isLeaveJoint(cc)) refused = 'not in a joint configuration';
    if (refused) throw new RaftError('PROPOSAL_DROPPED', `node ${r.id} refused conf change: ${refused}`);
    r.pendingConfIndex = r.log.lastIndex() + i + 1;
  }
  // Copy entries: the caller's objects get term/index assigned.
  const ents: Entry[] = m.entries.map((e) => ({ term: 0, index: 0, type: e.type, data: e.data }));
  r.appendEntries(ents);
  // Batching: proposals arriving before the next ready() share one append per follower.
  r.pendingBroadcast = true;
}

// ---- replication -----------------------------------------------------------------------------

export function bcastAppend(r: Raft): void {
  for (const id of r.tracker.progress.keys()) {
    if (id === r.id) continue;
    // Fill the pipeline: with small maxSizePerMsg one broadcast may take several messages.
    if (maybeSendAppend(r, id, true)) while (maybeSendAppend(r, id, false));
  }
}

/**
 * Sends an append (or starts a snapshot) to `to` if flow control allows. With sendIfEmpty=false,
 * sends only when there are entries to carry. Returns whether a message was sent.
 */
export function maybeSendAppend(r: Raft, to: number, sendIfEmpty: boolean): boolean {
  const pr = r.tracker.progress.get(to);
  if (pr === undefined || pr.isPaused()) return false;
  const prevIndex = pr.next - 1;
  const prevTerm = r.log.termOf(prevIndex);
  let ents: Entry[];
  if (prevTerm === undefined) return sendSnapshot(r, to, pr);
  try {
    ents = r.log.entriesFrom(pr.next, r.cfg.maxSizePerMsg);
  } catch (err) {
    if (isRaftError(err, 'COMPACTED')) return sendSnapshot(r, to, pr);
    throw err;
  }
  if (ents.length === 0 && !sendIfEmpty) return false;
  const app = makeMessage({ type: MessageType.App, to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: r.log.committed });
  // the echo of this tick renews the lease (see handleAppendEntries)
  if (r.cfg.leaseEnabled) app.tick = r.leaderTicks;
  r.send(app);
  pr.appendSinceBeat = true;
  if (pr.state === ProgressState.Replicate) {
    if (ents.length > 0) {
      const last = ents[ents.length - 1]!.index;
      pr.optimisticUpdate(last);
      let bytes = 0;
      for (const e of ents) bytes += entrySize(e);
      pr.inflights.add(last, bytes);
    }
  } else if (pr.state === ProgressState.Probe) {
    pr.probeSent = true;
  }
  return true;
}

function sendSnapshot(r: Raft, to: number, pr: Progress): boolean {
  if (!pr.recentActive) return false; // do not ship a snapshot to a node that seems down
  let snap;
  try {
    snap = r.log.snapshot();
  } catch (err) {
    if (isRaftError(err, 'SNAPSHOT_TEMPORARILY_UNAVAILABLE')) return false;
    throw err;
  }
  if (snap.metadata.index === 0) return false; // nothing to send yet
  pr.becomeSnapshot(snap.metadata.index);
  r.logger().debug(`node ${r.id} starts snapshot ${snap.metadata.index} to ${to}`);
  sendSnapshotChunks(r, to, pr);
  return true;
}

/** Sends chunks from snapSent while the window allows. Restarts if the snapshot changed. */
function sendSnapshotChunks(r: Raft, to: number, pr: Progress): void {
  const snap = r.log.snapshot();
  if (snap.metadata.index !== pr.pendingSnapshot) {
    // A newer snapshot replaced the one in transfer: start over with it.
    pr.becomeSnapshot(snap.metadata.index);
  }
  const total = snap.data.length;
  const chunk = r.cfg.snapshotChunkBytes;
  const window = r.cfg.snapshotWindow * chunk;
  while (!pr.snapDoneSent && pr.snapSent - pr.snapAcked < window) {
    const off = pr.snapSent;
    const end = Math.min(total, off + chunk);
    const done = end >= total;
    r.send(
      makeMessage({
        type: MessageType.Snap,
        to,
        snapshot: { metadata: snap.metadata, offset: off, totalBytes: total, data: snap.data.subarray(off, end), done },
      }),
    );
    pr.snapSent = end;
    pr.snapDoneSent = done;
  }
}

/** A chunk ack: `offset` is what the follower holds. An ack that does not advance means a chunk
 *  was lost, reordered or the follower restarted: go back to its offset (go-back-N). */
function handleSnapshotAck(r: Raft, from: number, pr: Progress, offset: number): void {
  if (offset > pr.snapAcked && offset <= pr.snapSent) {
    pr.snapAcked = offset;
  } else if (offset < pr.snapSent) {
    pr.snapAcked = offset;
    pr.snapSent = offset;
    pr.snapDoneSent = false;
  }
  sendSnapshotChunks(r, from, pr);
}

function handleAppendResponse(r: Raft, m: Message, pr: Progress): void {
  pr.recentActive = true;
  if (m.tick !== undefined && m.tick > pr.leaseAckTick) pr.leaseAckTick = m.tick;
  if (m.reject) {
    let nextProbe = m.rejectHint;
    if (m.logTerm > 0) {
      // The follower has term m.logTerm at rejectHint; skip to our last entry with a term <= it.
      nextProbe = r.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
    }
    if (pr.maybeDecrTo(m.index, nextProbe)) {
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      maybeSendAppend(r, m.from, true);
    }
    return;
  }
  const committedBefore = r.log.committed;
  const updated = pr.maybeUpdate(m.index);
  switch (pr.state) {
    case ProgressState.Probe:
      if (!updated && pr.match !== m.index) return; // stale
      pr.becomeReplicate();
      break;
    case ProgressState.Snapshot:
      if (pr.match + 1 < r.log.firstIndex()) return; // still needs the snapshot
      pr.becomeProbe();
      pr.becomeReplicate();
      break;
    case ProgressState.Replicate:
      if (!updated) return;
      pr.inflights.freeLE(m.index);
      break;
  }
  if (updated && r.maybeCommit()) {
    releasePendingReadIndexMessages(r);
    // Lazily, followers learn a commit later; but not a membership change's: a replica it
    // removes would never hear of it again (nor, from the leader of a new term, its first entries).
    if (!r.cfg.lazyCommitBroadcast || r.pendingConfIndex > committedBefore) bcastAppend(r);
  }
  // Pipelining: keep filling the window while there are entries to send.
  while (maybeSendAppend(r, m.from, false)) {
    /* keep sending */
  }
  if (m.from === r.leadTransferee && pr.match === r.log.lastIndex()) sendTimeoutNow(r, m.from);
}

function handleHeartbeatResponse(r: Raft, m: Message, pr: Progress): void {
  pr.recentActive = true;
  pr.probeSent = false;
  // Appends may have been lost with the window full: free one slot so a new append goes out;
  // if it leaves a gap the follower rejects it and we fall back to probing from match.
  if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
  if (m.tick !== undefined && m.tick > pr.leaseAckTick) pr.leaseAckTick = m.tick;
  if (pr.state === ProgressState.Snapshot) {
    // Retry the snapshot transfer from what the follower last acknowledged.
    pr.snapSent = pr.snapAcked;
    pr.snapDoneSent = false;
    sendSnapshotChunks(r, m.from, pr);
  } else if (pr.match < r.log.lastIndex() || pr.state === ProgressState.Probe) {
    maybeSendAppend(r, m.from, true);
  }
  if (m.context === undefined) return;
  const acks = r.readOnly.recvAck(m.from, m.context);
  if (acks === undefined || !r.tracker.quorumHas(acks)) return;
  for (const rs of r.readOnly.advance(m.context)) respondToReadIndex(r, rs.req, rs.index);
}

export function bcastHeartbeat(r: Raft, ctx?: Uint8Array): void {
  const c = ctx ?? r.readOnly.lastPendingRequestCtx();
  // Only a periodic beat (no read to confirm) may skip followers that an append just reached.
  const mayskip = c === undefined && r.cfg.skipHeartbeatAfterAppend;
  for (const [id, pr] of r.tracker.progress) {
    if (id === r.id) continue;
    const recent = pr.appendSinceBeat;
    pr.appendSinceBeat = false;
    // Probe and Snapshot progress need the heartbeat response to resume (probeSent, retries).
    if (mayskip && recent && pr.state === ProgressState.Replicate) continue;
    // Never tell a follower to commit beyond what it is known to have.
    const m = makeMessage({ type: MessageType.Heartbeat, to: id, commit: Math.min(pr.match, r.log.committed), tick: r.leaderTicks });
    if (c !== undefined) m.context = c;
    r.send(m);
  }
}

// ---- reads -------------------------------------------------------------------------------------

function handleReadIndex(r: Raft, m: Message): void {
  if (r.tracker.isSingleton()) {
    respondToReadIndex(r, m, r.log.committed);
    return;
  }
  if (!r.committedEntryInCurrentTerm()) {
    // §8: the leader's commit index is only known to be current once it has committed an entry
    // of its own term. Hold the request until then.
    r.pendingReadIndexMessages.push(m);
    return;
  }
  serveReadIndex(r, m);
}

function serveReadIndex(r: Raft, m: Message): void {
  if (r.cfg.leaseEnabled && leaseValid(r)) {
    respondToReadIndex(r, m, r.log.committed);
    return;
  }
  const ctx = m.context ?? new Uint8Array(0);
  r.readOnly.addRequest(r.log.committed, m);
  r.readOnly.recvAck(r.id, ctx);
  bcastHeartbeat(r, ctx);
}

/**
 * The lease holds while a quorum acknowledged a heartbeat sent less than leaseTicks ago (in our
 * ticks). Followers that acknowledged it refuse votes for electionTick of their own ticks, and
 * leaseTicks = electionTick - leaseDriftTicks absorbs clock-rate differences.
 */
export function leaseValid(r: Raft): boolean {
  if (!r.cfg.leaseEnabled || r.leaseRevoked || r.leadTransferee !== NONE) return false;
  const start = r.tracker.config.voters.committed((id) => (id === r.id ? r.leaderTicks : r.tracker.progress.get(id)?.leaseAckTick ?? Number.NEGATIVE_INFINITY));
  return start + r.cfg.leaseTicks > r.leaderTicks;
}

function respondToReadIndex(r: Raft, req: Message, index: number): void {
  if (req.from === NONE || req.from === r.id) {
    r.readStates.push({ index, context: req.context ?? new Uint8Array(0) });
    return;
  }
  const resp = makeMessage({ type: MessageType.ReadIndexResp, to: req.from, index });
  if (req.context !== undefined) resp.context = req.context;
  r.send(resp);
}

export function releasePendingReadIndexMessages(r: Raft): void {
  if (r.pendingReadIndexMessages.length === 0 || !r.committedEntryInCurrentTerm()) return;
  const msgs = r.pendingReadIndexMessages;
  r.pendingReadIndexMessages = [];
  for (const m of msgs) serveReadIndex(r, m);
}

// ---- leadership transfer -------------------------------------------------------------------

function handleTransferLeader(r: Raft, m: Message): void {
  const target = m.from;
  const pr = r.tracker.progress.get(target);
  if (pr === undefined || pr.isLearner) return;
  if (target === r.id) return;
  if (r.leadTransferee !== NONE) {
    if (r.leadTransferee === target) return;
    r.abortLeaderTransfer();
  }
  // Must finish within an election timeout (tickHeartbeat aborts it otherwise).
  r.electionElapsed = 0;
  r.leadTransferee = target;
  if (pr.match === r.log.lastIndex()) sendTimeoutNow(r, target);
  else maybeSendAppend(r, target, true);
}

function sendTimeoutNow(r: Raft, to: number): void {
  // The transferee will win without waiting for leases to expire: stop serving lease reads.
  r.leaseRevoked = true;
  r.send(makeMessage({ type: MessageType.TimeoutNow, to }));
}
