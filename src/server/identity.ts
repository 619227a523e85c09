// A node's identity in its data directory: IDENTITY (JSON) holds the node id and the raft id the
// cluster gave it, written once when the directory is first used. On every later start the node
// comes back as itself: a founder does not re-bootstrap shards, a joined node keeps its raft id,
// and a data directory started under another --node-id is refused instead of silently joining
// someone else's replicas.
//
// Format: {"format":1,"nodeId":"node2","raftId":4,"clusterId":"node1","shardCount":1024} written
// via a temp file and rename(2), so it is either absent or complete. shardCount is the cluster's
// (routing depends on it, so a restart with another cluster.shard_count must not change it).
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { KvError } from '../util/errors.js';

export interface Identity {
  nodeId: string;
  raftId: number;
  clusterId: string;
  /** the cluster's shard (slot) count, fixed at creation; absent in files of older versions */
  shardCount?: number;
}

const FILE = 'IDENTITY';

export async function readIdentity(dataDir: string): Promise<Identity | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dataDir, FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let j: { format?: unknown; nodeId?: unknown; raftId?: unknown; clusterId?: unknown; shardCount?: unknown };
  try {
    j = JSON.parse(text) as typeof j;
  } catch (err) {
    throw new KvError('CORRUPTION', `${path.join(dataDir, FILE)}: ${(err as Error).message}`);
  }
  if (j.format !== 1 || typeof j.nodeId !== 'string' || typeof j.raftId !== 'number' || typeof j.clusterId !== 'string') {
    throw new KvError('CORRUPTION', `${path.join(dataDir, FILE)}: not a distcache identity file`);
  }
  const id: Identity = { nodeId: j.nodeId, raftId: j.raftId, clusterId: j.clusterId };
  if (typeof j.shardCount === 'number') id.shardCount = j.shardCount;
  return id;
}

export async function writeIdentity(dataDir: string, id: Identity): Promise<void> {
  const tmp = path.join(dataDir, `${FILE}.tmp`);
  await writeFile(tmp, JSON.stringify({ format: 1, ...id }) + '\n');
  await rename(tmp, path.join(dataDir, FILE));
}

/** Refuses a data directory that belongs to another node. */
export function checkIdentity(id: Identity, nodeId: string, dataDir: string): void {
  if (id.nodeId !== nodeId) {
    throw new KvError('INVALID_ARGUMENT', `server.data_directory ${dataDir} belongs to node ${JSON.stringify(id.nodeId)}, not ${JSON.stringify(nodeId)}; start it with --node-id ${id.nodeId} or use another directory`);
  }
}
