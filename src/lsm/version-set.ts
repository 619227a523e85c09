// The VersionSet owns the MANIFEST: the log of VersionEdits that records which SSTables are live
// at which level, the WAL segment recovery starts from, the next file number and the last
// sequence. Recovery replays it to rebuild the exact version; every change is appended and
// fdatasynced before it is installed. Format and recovery steps: ./MANIFEST.md.
//
// CURRENT names the live manifest. It is replaced atomically (write temp, fsync, rename, fsync
// the directory), so a crash leaves either the old or the new manifest in force, never neither.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CorruptionError, KvError, isErrno } from '../util/errors.js';
import { DecodeError } from '../util/bytes.js';
import { LogEncoder } from '../wal/log-writer.js';
import { readLogFile } from '../wal/log-reader.js';
import { syncDir } from '../wal/wal.js';
import { CURRENT, manifestFileName } from './filenames.js';
import { NUM_LEVELS, Version } from './version.js';
import { decodeEdit, emptyEdit, encodeEdit, type VersionEdit } from './version-edit.js';

export const COMPARATOR_NAME = 'distcache.InternalKeyComparator.v1';
/** Rewrite the manifest as a fresh snapshot once it grows past this. */
const MANIFEST_REWRITE_BYTES = 4 * 1024 * 1024;

export class VersionSet {
  current: Version = Version.empty();
  logNumber = 0;
  nextFileNumber = 2;
  lastSequence = 0;
  compactPointers: (Buffer | undefined)[] = new Array(NUM_LEVELS).fill(undefined);
  manifestNumber = 0;
  private manifest: FileHandle | null = null;
  private manifestSize = 0;
  private encoder = new LogEncoder(0);
  /** Versions some reader still holds, besides `current`. */
  private readonly pinned = new Set<Version>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly dir: string) {}

  /** Rebuilds the version from CURRENT + MANIFEST, or creates a new store. */
  static async open(dir: string, opts: { createIfMissing: boolean; errorIfExists: boolean }): Promise<VersionSet> {
    const vs = new VersionSet(dir);
    let current: string | undefined;
    try {
      current = await fsp.readFile(path.join(dir, CURRENT), 'utf8');
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    if (current === undefined) {
      if (!opts.createIfMissing) throw new KvError('NOT_FOUND', `store does not exist in ${dir} (createIfMissing is false)`);
    } else {
      if (opts.errorIfExists) throw new KvError('INVALID_ARGUMENT', `a store already exists in ${dir}`);
      await vs.replay(current);
    }
    await vs.writeSnapshotManifest();
    return vs;
  }

  private async replay(currentText: string): Promise<void> {
    const currentPath = path.join(this.dir, CURRENT);
    const m = /^(MANIFEST-\d{6,})\n$/.exec(currentText);
    if (!m) throw new CorruptionError(currentPath, 0, `CURRENT does not name a manifest: ${JSON.stringify(currentText.slice(0, 40))}`);
    const file = path.join(this.dir, m[1]!);
    // A torn last edit was never acknowledged (its flush or compaction had not finished).
    const result = await readLogFile(file, { tolerateTornTail: true });
    if (result.records.length === 0) throw new CorruptionError(file, 0, 'manifest has no version edits');
    this.manifestNumber = result.fileNumber;
    let version = Version.empty();
    for (const rec of result.records) {
      let edit: VersionEdit;
      try {
        edit = decodeEdit(rec.data);
      } catch (err) {
        if (err instanceof DecodeError) throw new CorruptionError(file, rec.offset, `bad version edit: ${err.message}`);
        throw err;
      }
      if (edit.comparator !== undefined && edit.comparator !== COMPARATOR_NAME) {
        throw new CorruptionError(file, rec.offset, `store uses comparator ${edit.comparator}, this engine ${COMPARATOR_NAME}`);
      }
      if (edit.logNumber !== undefined) this.logNumber = edit.logNumber;
      if (edit.nextFileNumber !== undefined) this.nextFileNumber = edit.nextFileNumber;
      if (edit.lastSequence !== undefined) this.lastSequence = edit.lastSequence;
      for (const p of edit.compactPointers) this.compactPointers[p.level] = p.key;
      version = version.apply(edit);
    }
    this.current = version;
    this.nextFileNumber = Math.max(this.nextFileNumber, this.manifestNumber + 1);
  }

  newFileNumber(): number {
    return this.nextFileNumber++;
  }

  /** Appends `edit` to the manifest (durably), then installs the resulting version.
   *  Calls are serialized. */
  logAndApply(edit: VersionEdit): Promise<void> {
    const run = async (): Promise<void> => {
      if (edit.logNumber !== undefined) this.logNumber = edit.logNumber;
      if (edit.lastSequence !== undefined) this.lastSequence = Math.max(this.lastSequence, edit.lastSequence);
      for (const p of edit.compactPointers) this.compactPointers[p.level] = p.key;
      const next = this.current.apply(edit);
      if (this.manifestSize > MANIFEST_REWRITE_BYTES) {
        this.current = next;
        await this.writeSnapshotManifest();
      } else {
        edit.nextFileNumber = this.nextFileNumber;
        await this.appendToManifest(encodeEdit(edit));
        this.current = next;
      }
    };
    const p = this.queue.then(run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** An edit describing the whole current state. */
  snapshotEdit(version = this.current): VersionEdit {
    const e = emptyEdit();
    e.comparator = COMPARATOR_NAME;
    e.logNumber = this.logNumber;
    e.nextFileNumber = this.nextFileNumber;
    e.lastSequence = this.lastSequence;
    this.compactPointers.forEach((key, level) => key && e.compactPointers.push({ level, key }));
    version.levels.forEach((files, level) => files.forEach((file) => e.newFiles.push({ level, file })));
    return e;
  }

  /** Starts a new manifest holding one snapshot edit and points CURRENT at it. */
  private async writeSnapshotManifest(): Promise<void> {
    const number = this.newFileNumber();
    const file = path.join(this.dir, manifestFileName(number));
    const { handle, size } = await createManifest(file, number, this.snapshotEdit());
    await setCurrent(this.dir, manifestFileName(number));
    const old = this.manifest;
    const oldNumber = this.manifestNumber;
    this.manifest = handle;
    this.manifestNumber = number;
    this.manifestSize = size;
    this.encoder = new LogEncoder(size);
    if (old) await old.close();
    if (oldNumber !== 0 && oldNumber !== number) await fsp.rm(path.join(this.dir, manifestFileName(oldNumber)), { force: true });
  }

  private async appendToManifest(record: Buffer): Promise<void> {
    this.encoder.add(record);
    const bytes = this.encoder.take();
    await this.manifest!.write(bytes);
    await this.manifest!.datasync();
    this.manifestSize += bytes.length;
  }

  /** Keeps `v` (and its files) alive until unpin. */
  pin(v: Version): Version {
    v.refs++;
    this.pinned.add(v);
    return v;
  }

  unpin(v: Version): void {
    if (--v.refs <= 0) this.pinned.delete(v);
  }

  /** File numbers referenced by the current version or any pinned one. */
  liveFiles(): Set<number> {
    const live = new Set<number>();
    this.current.allFileNumbers(live);
    for (const v of this.pinned) v.allFileNumbers(live);
    return live;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.manifest?.close();
    this.manifest = null;
  }
}

/** Creates manifest `file` holding one (snapshot) edit, synced; returns the open handle. */
export async function createManifest(file: string, number: number, edit: VersionEdit): Promise<{ handle: FileHandle; size: number }> {
  const handle = await fsp.open(file, 'wx');
  try {
    const enc = new LogEncoder(0);
    enc.addFileHeader(number);
    enc.add(encodeEdit(edit));
    const bytes = enc.take();
    await handle.write(bytes);
    await handle.datasync();
    return { handle, size: bytes.length };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Atomically points CURRENT at `manifestName` in `dir`. */
export async function setCurrent(dir: string, manifestName: string): Promise<void> {
  const tmp = path.join(dir, `CURRENT.${process.pid}.tmp`);
  const h = await fsp.open(tmp, 'w');
  try {
    await h.write(`${manifestName}\n`);
    await h.sync();
  } finally {
    await h.close();
  }
  await fsp.rename(tmp, path.join(dir, CURRENT));
  await syncDir(dir);
}
