// Adapts a running CacheNode's stats objects (host, Raft log, transport, engine, client
// connections) to the callbacks NodeMetrics reads at scrape time. The only place that knows both
// sides: monitoring/ does not import store/ or lsm/, and they do not import monitoring/.
import type { MetricsSources } from '../monitoring/metrics.js';
import type { CacheNode } from './node.js';

export function metricsSources(node: CacheNode): MetricsSources {
  return {
    engine: () => node.store.engine.stats(),
    raft: () => {
      const host = node.store;
      const h = host.stats;
      let leaders = 0;
      const shards = host.shardIds();
      for (const s of shards) if (host.isLeader(s)) leaders++;
      return {
        groups: shards.length,
        leaders,
        entriesProposed: h.entriesProposed,
        commandsProposed: h.commandsProposed,
        logWrites: host.log.stats.writes,
        logSyncs: host.log.syncs,
        logBytes: host.log.stats.bytes,
        logColdReads: host.log.stats.coldReads,
        snapshotsCreated: h.snapshotsCreated,
        snapshotsApplied: h.snapshotsApplied,
        messagesSent: h.messagesSent,
        messagesReceived: h.messagesReceived,
      };
    },
    transport: () => node.peerTransport.stats,
    connections: () => node.connectionStats,
  };
}
