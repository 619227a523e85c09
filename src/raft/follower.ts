// Follower role: accepts appends, heartbeats and snapshot chunks from the leader, forwards
// proposals / reads / transfer requests to it, and campaigns on TimeoutNow.
import { RaftError } from './errors.js';
import type { Raft } from './raft.js';
import { type Message, MessageType, NONE, makeMessage } from './types.js';

export function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.Prop:
      if (r.lead === NONE) throw new RaftError('PROPOSAL_DROPPED', `node ${r.id}: no leader at term ${r.term}`);
      if (r.cfg.disableProposalForwarding) throw new RaftError('PROPOSAL_DROPPED', `node ${r.id}: proposal forwarding disabled`);
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.App:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleAppendEntries(r, m);
      return;
    case MessageType.Heartbeat:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleHeartbeat(r, m);
      return;
    case MessageType.Snap:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleSnapshotChunk(r, m);
      return;
    case MessageType.TransferLeader:
      if (r.lead === NONE) return;
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.TimeoutNow:
      // The leader asked us to take over: campaign at once, skipping pre-vote and leases.
      r.hup('transfer');
      return;
    case MessageType.ReadIndex:
      if (r.lead === NONE) throw new RaftError('PROPOSAL_DROPPED', `node ${r.id}: no leader for read at term ${r.term}`);
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.ReadIndexResp:
      if (m.context !== undefined) r.readStates.push({ index: m.index, context: m.context });
      return;
    default:
      return;
  }
}

/** Every answer to an append echoes the leader's tick: like a heartbeat's, it tells the leader
 *  that this follower heard from it then (and so refuses votes for an election timeout), which
 *  renews the leader's lease without a separate heartbeat next to the append. */
function answerAppend(r: Raft, app: Message, resp: Message): void {
  if (app.tick !== undefined) resp.tick = app.tick;
  r.send(resp);
}

export function handleAppendEntries(r: Raft, m: Message): void {
  if (m.index < r.log.committed) {
    answerAppend(r, m, makeMessage({ type: MessageType.AppResp, to: m.from, index: r.log.committed }));
    return;
  }
  const lastNew = r.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
  if (lastNew !== undefined) {
    answerAppend(r, m, makeMessage({ type: MessageType.AppResp, to: m.from, index: lastNew }));
    return;
  }
  // Conflict hint (§5.3 optimisation): the largest index <= the probed one whose term is <= the
  // probed term. The leader can then skip a whole term of mismatching entries per round trip.
  const hint = r.log.findConflictByTerm(Math.min(m.index, r.log.lastIndex()), m.logTerm);
  answerAppend(r, m, makeMessage({ type: MessageType.AppResp, to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }));
}

export function handleHeartbeat(r: Raft, m: Message): void {
  r.log.commitTo(Math.min(m.commit, r.log.lastIndex()));
  const resp = makeMessage({ type: MessageType.HeartbeatResp, to: m.from });
  if (m.context !== undefined) resp.context = m.context;
  if (m.tick !== undefined) resp.tick = m.tick;
  r.send(resp);
}

/** Accepts chunks in order; anything out of order is answered with the offset we expect. */
export function handleSnapshotChunk(r: Raft, m: Message): void {
  const c = m.snapshot;
  if (c === undefined) return;
  const md = c.metadata;
  const ack = (offset: number): void => r.send(makeMessage({ type: MessageType.SnapResp, to: m.from, index: md.index, offset }));
  if (md.index <= r.log.committed) {
    // Already have it: tell the leader where we are instead.
    r.incomingSnapshot = undefined;
    r.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: r.log.committed }));
    return;
  }
  let inc = r.incomingSnapshot;
  if (c.offset === 0) {
    inc = r.incomingSnapshot = { index: md.index, term: md.term, chunks: [], received: 0 };
  } else if (inc === undefined || inc.index !== md.index || inc.term !== md.term || inc.received !== c.offset) {
    const same = inc !== undefined && inc.index === md.index && inc.term === md.term;
    ack(same ? inc!.received : 0);
    return;
  }
  inc.chunks.push(c.data);
  inc.received += c.data.length;
  if (!c.done) {
    ack(inc.received);
    return;
  }
  r.incomingSnapshot = undefined;
  const data = concat(inc.chunks, inc.received);
  if (data.length !== c.totalBytes) {
    ack(0);
    return;
  }
  if (r.restore({ metadata: md, data })) {
    r.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: r.log.lastIndex() }));
  } else {
    r.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: r.log.committed }));
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
