// A 3-node distcache cluster on 127.0.0.1 for the race: real cache-server child processes started
// through the test harness (localCluster: free ports, temp data dirs, --initial-cluster), default
// sync policy, ready once every shard has a leader known to every node.
import { connect, eventually, localCluster } from '../../test/server/harness.js';
import { trackDir, trackProcess } from './procs.js';

export interface DistcacheCluster {
  endpoints: string[];
  shardCount: number;
}

export async function startDistcacheCluster(shardCount: number, size = 3): Promise<DistcacheCluster> {
  const nodes = await localCluster(Array.from({ length: size }, (_, i) => `n${i + 1}`), shardCount);
  for (const n of nodes) trackDir(n.dir);
  await Promise.all(
    nodes.map(async (n) => {
      const started = n.proc.start(60_000);
      trackProcess(n.proc.proc!);
      await started;
    }),
  );
  for (const n of nodes) {
    const c = connect(n.address);
    try {
      await eventually(async () => {
        const info = await c.call('ClusterInfo', {});
        const shards = info['shards'] as Array<{ leader_address: string }>;
        if (shards.length !== shardCount || !shards.every((s) => s.leader_address !== '')) throw new Error(`${n.id}: not every shard has a leader yet`);
      }, 60_000, 200);
    } finally {
      c.close();
    }
  }
  return { endpoints: nodes.map((n) => n.address), shardCount };
}
