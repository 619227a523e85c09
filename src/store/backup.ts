// Node backup: a consistent, restorable copy of one node's data directory, taken while the node
// runs. Layout, the consistency argument and what restoring means: docs/BACKUP.md.
//
//   <target>/engine/       engine checkpoint (LsmEngine.checkpoint: hard-linked SSTables + MANIFEST)
//   <target>/raft/         a fresh node-wide Raft log (RAFTLOG.md): per group one INSTALL_SNAPSHOT
//                          or TRUNCATE (the group's compaction point: with data, or with the
//                          state in the engine copy), one ENTRIES (every live entry after it)
//                          and one HARD_STATE record, written with one fsync
//   <target>/<file>        every other regular file at the top of the data directory (identity,
//                          keys), copied
//   <target>/BACKUP.json   written last: the marker of a complete backup (node, time, per shard)
//
// Order (the consistency argument, docs/BACKUP.md): the engine checkpoint is taken FIRST (time
// T1) and holds a prefix of the host's atomic apply writes, so per shard it holds exactly the
// state of its applied index A; the Raft state is captured AFTER (T2 >= T1) from the durable
// in-memory copy of the log, in one synchronous pass over all groups. A shard's log at T2 either
// still holds every entry after A (commit >= A, snapshot <= A) or has compacted past A, in which
// case its snapshot (> A) is in the backup and recovery re-applies it. Both are exactly the
// states a crash-restart recovers from; backupNode() checks the invariant per shard before it
// writes BACKUP.json.
import { constants as fsc } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { LsmEngine } from '../lsm/db.js';
import { readApplied } from './apply.js';
import type { MultiRaftHost } from './host.js';
import type { Entry, HardState, Snapshot } from '../raft/index.js';
import { RaftLogStore } from './raft-log.js';

/** Format version of BACKUP.json. */
export const BACKUP_FORMAT_VERSION = 1;
export const BACKUP_MARKER = 'BACKUP.json';
/** Directories of a data directory the backup writes itself (never copied as files). */
const OWN_DIRS = new Set(['engine', 'raft']);

export type BackupErrorCode = 'INVALID_ARGUMENT' | 'TARGET_NOT_EMPTY' | 'INCONSISTENT';

export class BackupError extends Error {
  constructor(
    readonly code: BackupErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BackupError';
  }
}

export interface ShardBackupInfo {
  shard: number;
  /** applied index in the engine checkpoint */
  applied: number;
  /** the Raft log's snapshot point in the backup */
  snapshot_index: number;
  /** last log index in the backup */
  last_index: number;
  term: number;
  commit: number;
  voters: number[];
}

export interface BackupManifest {
  format: number;
  created_at: string;
  node_id: string;
  raft_id: number;
  /** whatever the caller identifies the cluster by (members, shard count) */
  cluster: Record<string, unknown>;
  engine: { sequence: number; files: number };
  copied_files: string[];
  shards: ShardBackupInfo[];
}

export interface BackupIdentity {
  nodeId: string;
  cluster: Record<string, unknown>;
}

/** Takes a backup of the running host (whose data directory is `dataDir`) into `target`, which
 *  must not exist or be an empty directory outside `dataDir`. On failure the target is removed. */
export async function backupNode(host: MultiRaftHost, dataDir: string, target: string, id: BackupIdentity): Promise<BackupManifest> {
  const absData = path.resolve(dataDir);
  const absTarget = path.resolve(target);
  const rel = path.relative(absData, absTarget);
  if (rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel))) {
    throw new BackupError('INVALID_ARGUMENT', `backup path ${target} is inside the node's data directory ${dataDir}`);
  }
  const existing = await fsp.readdir(absTarget).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    if (err.code === 'ENOTDIR') throw new BackupError('TARGET_NOT_EMPTY', `backup path ${target} exists and is not a directory`);
    throw err;
  });
  if (existing.length > 0) throw new BackupError('TARGET_NOT_EMPTY', `backup path ${target} exists and is not empty`);
  await fsp.mkdir(absTarget, { recursive: true });
  try {
    return await writeBackup(host, absData, absTarget, id);
  } catch (err) {
    await fsp.rm(absTarget, { recursive: true, force: true });
    throw err;
  }
}

async function writeBackup(host: MultiRaftHost, dataDir: string, target: string, id: BackupIdentity): Promise<BackupManifest> {
  // No log may be truncated past the engine copy's applied index between T1 and T2 (a
  // truncation's state lives only in the engine).
  const release = await host.holdLogTruncation();
  let cp: Awaited<ReturnType<typeof host.engine.checkpoint>>;
  let captured: Array<{ gid: number; snap: Snapshot; truncated: boolean; hard: HardState; entries: Entry[] }>;
  try {
    // 1. T1: the engine (a prefix of the host's apply writes).
    cp = await host.engine.checkpoint(path.join(target, 'engine'));

    // 2. T2: the Raft state of every group, captured synchronously (no await in this loop), so
    //    it is one moment of the durable log (the in-memory copy is updated only after a write
    //    is durable, see RaftLogStore.write).
    const log = host.log;
    captured = log.groupIds().map((gid) => {
      const g = log.group(gid);
      return { gid, snap: g.snap, truncated: g.truncated, hard: g.initialState().hardState, entries: g.entries(g.firstIndex(), g.lastIndex() + 1, Number.POSITIVE_INFINITY) };
    });
  } finally {
    release();
  }
  const out = await RaftLogStore.open(path.join(target, 'raft'), { sync: 'always' });
  try {
    const b = out.batch();
    for (const c of captured) {
      if (c.truncated) b.truncate(c.gid, c.snap.metadata.index, c.snap.metadata.confState, c.snap.metadata.term);
      else b.applySnapshot(c.gid, c.snap);
      b.append(c.gid, c.entries);
      b.setHardState(c.gid, c.hard);
    }
    b.sync = true;
    await out.write(b);
  } finally {
    await out.close();
  }

  // 3. Check the invariant against the checkpoint as a restart will open it.
  const shards: ShardBackupInfo[] = [];
  const engine = await LsmEngine.open(path.join(target, 'engine'), { createIfMissing: false, walSync: 'off' });
  try {
    for (const c of captured) {
      const shard = c.gid - 1;
      const applied = readApplied(engine, shard);
      const snapIndex = c.snap.metadata.index;
      const last = snapIndex + c.entries.length;
      if (applied > last || (applied >= snapIndex && applied > c.hard.commit) || (c.truncated && applied < snapIndex)) {
        throw new BackupError('INCONSISTENT', `shard ${shard}: engine applied index ${applied} is not covered by the Raft log (snapshot ${snapIndex}, last ${last}, commit ${c.hard.commit})`);
      }
      shards.push({ shard, applied, snapshot_index: snapIndex, last_index: last, term: c.hard.term, commit: c.hard.commit, voters: [...c.snap.metadata.confState.voters] });
    }
  } finally {
    await engine.close();
  }

  // 4. Other files of the data directory (node identity, keys).
  const copied: string[] = [];
  for (const ent of await fsp.readdir(dataDir, { withFileTypes: true })) {
    if (!ent.isFile() || OWN_DIRS.has(ent.name) || ent.name === BACKUP_MARKER) continue;
    await fsp.copyFile(path.join(dataDir, ent.name), path.join(target, ent.name), fsc.COPYFILE_EXCL);
    copied.push(ent.name);
  }

  // 5. The marker, last and durable.
  const manifest: BackupManifest = {
    format: BACKUP_FORMAT_VERSION,
    created_at: new Date().toISOString(),
    node_id: id.nodeId,
    raft_id: host.nodeId,
    cluster: id.cluster,
    engine: cp,
    copied_files: copied,
    shards,
  };
  const file = path.join(target, BACKUP_MARKER);
  const fh = await fsp.open(file, 'wx');
  try {
    await fh.writeFile(JSON.stringify(manifest, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncDir(target);
  return manifest;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
