// The automatic split policy: a shard holding more than cluster.split_shard_mb is split in two.
// Each node checks the shards it leads (the leader's replica is the one that is up to date) every
// check period: a cheap upper bound first (last snapshot + entries applied since), then, only for
// shards over the threshold by that bound, the exact size by scanning the shard's keys. One split
// request per round, sent to the metadata leader (which runs one split or merge at a time).
// There is no automatic merge: two halves that shrank are merged by hand.
import { META_SHARD_ID } from '../ring/index.js';
import type { MultiRaftHost } from '../store/host.js';
import type { MetaManager } from './meta-manager.js';

export interface AutoSplitDeps {
  host: MultiRaftHost;
  meta: MetaManager;
  /** split threshold in bytes; 0 disables */
  thresholdBytes: number;
  split(shardId: number): Promise<unknown>;
  log(line: string): void;
}

export class AutoSplitter {
  readonly stats = { checks: 0, requested: 0, failed: 0 };
  private inFlight = false;
  private readonly estimates = new Map<number, { applied: number; bytes: number }>();

  constructor(private readonly d: AutoSplitDeps) {}

  /** One check round; resolves when the split it requested (if any) is done or failed. */
  async check(): Promise<number | undefined> {
    const { host, meta, thresholdBytes } = this.d;
    if (thresholdBytes <= 0 || this.inFlight || !meta.current || meta.current.placement.reshard) return undefined;
    this.stats.checks++;
    let biggest: { shardId: number; bytes: number } | undefined;
    for (const shardId of host.shardIds()) {
      if (shardId === META_SHARD_ID || !host.isLeader(shardId)) continue;
      // an idle shard (nothing applied since the last round) keeps its estimate: idle costs ~nothing
      const applied = host.appliedIndex(shardId);
      let seen = this.estimates.get(shardId);
      if (seen?.applied !== applied) this.estimates.set(shardId, (seen = { applied, bytes: host.shardSizeEstimate(shardId) }));
      if (seen.bytes <= thresholdBytes) continue;
      const bytes = host.shardBytes(shardId);
      if (bytes > thresholdBytes && (!biggest || bytes > biggest.bytes)) biggest = { shardId, bytes };
    }
    if (!biggest) return undefined;
    this.inFlight = true;
    this.stats.requested++;
    this.d.log(`shard ${biggest.shardId} holds ${(biggest.bytes / 1048576).toFixed(1)} MiB (> ${(thresholdBytes / 1048576).toFixed(1)} MiB): splitting it`);
    try {
      await this.d.split(biggest.shardId);
      return biggest.shardId;
    } catch (err) {
      this.stats.failed++;
      this.d.log(`automatic split of shard ${biggest.shardId} failed (will retry): ${(err as Error).message}`);
      return undefined;
    } finally {
      this.inFlight = false;
    }
  }
}
