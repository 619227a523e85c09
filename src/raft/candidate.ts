// Candidate and pre-candidate roles: count votes; step down on hearing from a leader of our term.
import { RaftError } from './errors.js';
import { handleAppendEntries, handleHeartbeat, handleSnapshotChunk } from './follower.js';
import { bcastAppend } from './leader.js';
import { VoteResult } from './quorum.js';
import type { Raft } from './raft.js';
import { type Message, MessageType, NONE, StateRole } from './types.js';

export function stepCandidate(r: Raft, m: Message): void {
  // A pre-candidate only counts pre-vote responses; a candidate only vote responses.
  const myVoteResp = r.role === StateRole.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
  switch (m.type) {
    case MessageType.Prop:
      throw new RaftError('PROPOSAL_DROPPED', `node ${r.id}: campaigning, no leader at term ${r.term}`);
    case MessageType.ReadIndex:
      throw new RaftError('PROPOSAL_DROPPED', `node ${r.id}: campaigning, no leader for read`);
    case MessageType.App:
      r.becomeFollower(m.term, m.from);
      handleAppendEntries(r, m);
      return;
    case MessageType.Heartbeat:
      r.becomeFollower(m.term, m.from);
      handleHeartbeat(r, m);
      return;
    case MessageType.Snap:
      r.becomeFollower(m.term, m.from);
      handleSnapshotChunk(r, m);
      return;
    case MessageType.TimeoutNow:
      return;
    default:
      if (m.type !== myVoteResp) return;
  }
  const res = r.poll(m.from, m.type, !m.reject);
  if (res === VoteResult.Won) {
    if (r.role === StateRole.PreCandidate) {
      r.campaign('election');
    } else {
      r.becomeLeader();
      bcastAppend(r);
    }
  } else if (res === VoteResult.Lost) {
    // A pre-candidate that lost keeps its term (§9.6 of the thesis).
    r.becomeFollower(r.term, NONE);
  }
}
