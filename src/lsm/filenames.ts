// Names of the files in an engine directory (see ./FORMAT.md "Files").
import path from 'node:path';

export const CURRENT = 'CURRENT';
export const LOCK = 'LOCK';
export const WAL_DIR = 'wal';

const pad = (n: number): string => String(n).padStart(6, '0');

export function tableFileName(n: number): string {
  return `${pad(n)}.sst`;
}
export function manifestFileName(n: number): string {
  return `MANIFEST-${pad(n)}`;
}
export function tablePath(dir: string, n: number): string {
  return path.join(dir, tableFileName(n));
}

export type ParsedName = { kind: 'table' | 'manifest' | 'temp'; number: number } | undefined;

export function parseFileName(name: string): ParsedName {
  let m = /^(\d{6,})\.sst$/.exec(name);
  if (m) return { kind: 'table', number: Number(m[1]) };
  m = /^MANIFEST-(\d{6,})$/.exec(name);
  if (m) return { kind: 'manifest', number: Number(m[1]) };
  m = /^(\d{6,})\.(sst|dbtmp)\.tmp$/.exec(name);
  if (m) return { kind: 'temp', number: Number(m[1]) };
  return undefined;
}
