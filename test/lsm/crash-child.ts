// Child process of the crash test: writes atomic batches to an engine as fast as it can, with
// walSync 'always', from several concurrent writers, and prints "ack <id>" for each batch once
// write() resolved. The parent SIGKILLs it at a random moment. Small memtables and tables make
// flushes and compactions happen all the time, so kills land inside them too.
// argv: dir firstBatchId writers [crashAt]
// crashAt = "<engine event type>:<n>": the child SIGKILLs itself at the n-th such event, i.e.
// exactly inside a flush or compaction (e.g. after its tables are synced, before the manifest).
import { LsmEngine } from '../../src/lsm/index.js';

export const batchSize = (id: number): number => (id % 5) + 1;
export const batchKey = (id: number, j: number): Buffer => Buffer.from(`b${String(id).padStart(8, '0')}-${j}`);
export const batchValue = (id: number): Buffer => Buffer.from(`v${id}`.padEnd(40 + (id % 200), '#'));
export const hotKey = (id: number): Buffer => Buffer.from(`hot${id % 37}`);
export const CRASH_OPTIONS = { walSync: 'always', memtableBytes: 24 * 1024, targetFileBytes: 12 * 1024, l1MaxBytes: 48 * 1024, blockBytes: 1024, l0CompactionTrigger: 2 } as const;

async function main(): Promise<void> {
  const [dir, first, writers, crashAt] = process.argv.slice(2);
  const [crashEvent, crashCount] = (crashAt ?? '').split(':');
  let seen = 0;
  const db = await LsmEngine.open(dir!, {
    ...CRASH_OPTIONS,
    onEvent: (e) => {
      if (e.type === crashEvent && ++seen >= Number(crashCount)) process.kill(process.pid, 'SIGKILL');
    },
  });
  let next = Number(first);
  process.stdout.write('ready\n');
  const writer = async (): Promise<void> => {
    for (;;) {
      const id = next++;
      const ops: { type: 'put'; key: Buffer; value: Buffer }[] = [];
      for (let j = 0; j < batchSize(id); j++) ops.push({ type: 'put', key: batchKey(id, j), value: batchValue(id) });
      ops.push({ type: 'put', key: hotKey(id), value: Buffer.from(String(id)) });
      await db.write(ops);
      process.stdout.write(`ack ${id}\n`);
    }
  };
  await Promise.all(Array.from({ length: Number(writers) }, writer));
}

if (process.argv[1]?.endsWith('crash-child.js')) {
  main().catch((err) => {
    process.stderr.write(`crash-child failed: ${String(err)}\n`);
    process.exit(1);
  });
}
