// Membership changes of the cluster record, run on the metadata leader (the caller forwards
// them there): admitting a joining node, and the decommission lifecycle
// up -> draining -> removed. Node ids are names chosen by operators; raft ids are assigned
// here, once, and never reused, so a removed node's id can never alias a new one in any group.
import { KvError } from '../util/errors.js';
import type { MetaManager } from './meta-manager.js';
import { type MetaMember, liveMembers } from './meta-state.js';

export interface JoinRequest {
  nodeId: string;
  peerAddress: string;
  clientAddress: string;
}

export interface Liveness {
  /** ms since the member was last heard from */
  sinceHeardMs: (raftId: number) => number;
  /** a member silent for less than this counts as live */
  liveWithinMs: number;
}

/**
 * Admits a node (or re-admits it under its existing raft id when it rejoins from the same peer
 * address, or from a new address after the old one went silent). Refuses an id held by a live
 * node at another address, and ids of removed nodes.
 */
export async function admit(meta: MetaManager, req: JoinRequest, live: Liveness): Promise<MetaMember> {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(req.nodeId)) throw new KvError('INVALID_ARGUMENT', `node id ${JSON.stringify(req.nodeId)}: use 1-64 letters, digits, '.', '_' or '-'`);
  if (!/^[^\s]+:\d{1,5}$/.test(req.peerAddress)) throw new KvError('INVALID_ARGUMENT', `peer address ${JSON.stringify(req.peerAddress)} is not host:port`);
  let admitted: MetaMember | undefined;
  await meta.update((v) => {
    const existing = v.cluster.members.find((m) => m.nodeId === req.nodeId);
    if (existing) {
      if (existing.state === 'removed') throw new KvError('ALREADY_EXISTS', `node id ${req.nodeId} belonged to a node that was removed from the cluster; start the new node with another --node-id`);
      if (existing.peerAddress !== req.peerAddress && live.sinceHeardMs(existing.raftId) < live.liveWithinMs) {
        throw new KvError('ALREADY_EXISTS', `node id ${req.nodeId} is taken by a live node at ${existing.peerAddress}; start this node with another --node-id`);
      }
      const updated: MetaMember = { ...existing, peerAddress: req.peerAddress, clientAddress: req.clientAddress || existing.clientAddress };
      admitted = updated;
      if (updated.peerAddress === existing.peerAddress && updated.clientAddress === existing.clientAddress) return undefined;
      return { cluster: { ...v.cluster, members: v.cluster.members.map((m) => (m === existing ? updated : m)) } };
    }
    const clash = liveMembers(v.cluster).find((m) => m.peerAddress === req.peerAddress && live.sinceHeardMs(m.raftId) < live.liveWithinMs);
    if (clash) throw new KvError('ALREADY_EXISTS', `peer address ${req.peerAddress} is in use by live member ${clash.nodeId}`);
    const member: MetaMember = { nodeId: req.nodeId, raftId: v.cluster.nextRaftId, peerAddress: req.peerAddress, clientAddress: req.clientAddress, state: 'up' };
    admitted = member;
    return { cluster: { ...v.cluster, nextRaftId: v.cluster.nextRaftId + 1, members: [...v.cluster.members, member] } };
  });
  return admitted!;
}

/** Starts draining a member: the placement drops it, shard leaders move its replicas away, and
 *  it is removed once it holds none. Refused when the rest could not hold the replicas. */
export async function decommission(meta: MetaManager, nodeId: string): Promise<MetaMember> {
  let out: MetaMember | undefined;
  await meta.update((v) => {
    const m = v.cluster.members.find((x) => x.nodeId === nodeId);
    if (!m || m.state === 'removed') throw new KvError('NOT_FOUND', `no member ${nodeId}`);
    out = m;
    if (m.state === 'draining') return undefined;
    const others = v.cluster.members.filter((x) => x !== m && x.state === 'up');
    if (others.length === 0) throw new KvError('FAILED_PRECONDITION', `${nodeId} is the last member that can hold replicas; add a node before removing it`);
    out = { ...m, state: 'draining' };
    return { cluster: { ...v.cluster, members: v.cluster.members.map((x) => (x === m ? out! : x)) } };
  });
  return out!;
}

/** Marks a drained member removed (it asked, holding no shard replica any more). */
export async function markRemoved(meta: MetaManager, raftId: number): Promise<void> {
  await meta.update((v) => {
    const m = v.cluster.members.find((x) => x.raftId === raftId);
    if (!m || m.state === 'removed') return undefined;
    if (m.state !== 'draining') throw new KvError('FAILED_PRECONDITION', `member ${m.nodeId} is ${m.state}, not draining`);
    return { cluster: { ...v.cluster, members: v.cluster.members.map((x) => (x === m ? { ...m, state: 'removed' as const } : x)) } };
  });
}
