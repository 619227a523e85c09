// Transport between nodes for Raft messages of many groups (the gRPC implementation comes with
// the node server). Contract:
//  - send() is fire-and-forget and may drop, delay, reorder or duplicate: Raft tolerates all of
//    it. The host calls it only AFTER the Ready that produced the messages was persisted, except
//    for a leader's appends, heartbeats and snapshots (see the ordering rules in host.ts).
//  - Messages are batched per destination NODE (not per group): one call per peer per host-loop
//    turn carries the messages of every group.
//  - When a peer cannot be reached the transport calls onUnreachable so the host can report it
//    to each group (RawNode.reportUnreachable), which stops pipelining to that peer.
//  - Received batches are handed to onReceive; the host steps each message into its group.
import type { Message } from '../raft/index.js';

export interface GroupMessage {
  groupId: number;
  message: Message;
}

export interface Transport {
  /** Sends a batch of messages (possibly of many groups) to one node. */
  send(toNode: number, batch: GroupMessage[]): void;
  onReceive(handler: (fromNode: number, batch: GroupMessage[]) => void): void;
  onUnreachable(handler: (node: number) => void): void;
  close(): Promise<void>;
}

/** An in-process transport connecting nodes that share a hub (tests and benchmarks). */
export class LocalHub {
  private readonly nodes = new Map<number, { receive?: (from: number, b: GroupMessage[]) => void; unreachable?: (n: number) => void }>();
  /** tests: messages for which this returns true are lost on the way */
  drop: ((from: number, to: number, m: GroupMessage) => boolean) | undefined;

  transport(nodeId: number): Transport {
    const entry: { receive?: (from: number, b: GroupMessage[]) => void; unreachable?: (n: number) => void } = {};
    this.nodes.set(nodeId, entry);
    return {
      send: (to, batch) => {
        const peer = this.nodes.get(to);
        const drop = this.drop;
        if (drop) {
          batch = batch.filter((m) => !drop(nodeId, to, m));
          // nothing got through: the receiver must not count it as hearing from this node
          if (batch.length === 0) return;
        }
        if (peer?.receive) peer.receive(nodeId, batch);
        else entry.unreachable?.(to);
      },
      onReceive: (h) => {
        entry.receive = h;
      },
      onUnreachable: (h) => {
        entry.unreachable = h;
      },
      close: async () => {
        this.nodes.delete(nodeId);
      },
    };
  }
}
