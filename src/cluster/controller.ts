// ClusterController: the background work only the leader of the metadata group does, once per
// interval. Every node runs one; all but the metadata leader skip every round.
//
// Today: records the client addresses members advertise (learned from their Raft traffic) in the
// cluster record, so any node can tell clients where every member serves.
import { META_SHARD_ID } from '../ring/index.js';
import type { MultiRaftHost } from '../store/host.js';
import type { MetaManager } from './meta-manager.js';

export interface ControllerDeps {
  host: MultiRaftHost;
  meta: MetaManager;
  raftId: number;
  /** the client address this node knows for a member ('' = unknown) */
  clientAddressOf: (raftId: number) => string;
  log: (line: string) => void;
  intervalMs?: number;
}

export class ClusterController {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly d: ControllerDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.round(), this.d.intervalMs ?? 1000);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async round(): Promise<void> {
    if (this.busy || !this.d.meta.current) return;
    if (!this.d.host.shardIds().includes(META_SHARD_ID) || !this.d.host.isLeader(META_SHARD_ID)) return;
    this.busy = true;
    try {
      await this.recordClientAddresses();
    } catch (err) {
      this.d.log(`cluster controller: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private async recordClientAddresses(): Promise<void> {
    const stale = (c: { members: Array<{ raftId: number; clientAddress: string; state: string }> }): boolean =>
      c.members.some((m) => m.state !== 'removed' && this.d.clientAddressOf(m.raftId) !== '' && this.d.clientAddressOf(m.raftId) !== m.clientAddress);
    if (!stale(this.d.meta.current!.cluster)) return;
    await this.d.meta.update((v) => {
      if (!stale(v.cluster)) return undefined;
      const members = v.cluster.members.map((m) => {
        const a = m.state === 'removed' ? '' : this.d.clientAddressOf(m.raftId);
        return a !== '' ? { ...m, clientAddress: a } : m;
      });
      return { cluster: { ...v.cluster, members } };
    });
  }
}
