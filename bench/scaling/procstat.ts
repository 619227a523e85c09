// What the scaling bench reads about a server process and its data from the OS (Linux /proc and
// the file system): CPU time (utime+stime), peak resident memory, and a directory's size on disk.
// Elsewhere than Linux the /proc readers return undefined and the tables say "n/a".
import { execSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

let clkTck = 100;
try {
  clkTck = Number(execSync('getconf CLK_TCK', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()) || 100;
} catch {
  // no getconf: the usual Linux value
}

/** utime+stime of `pid` in µs; undefined when it cannot be read (process gone, no /proc). */
export function cpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces: split after its closing parenthesis
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / clkTck; // fields 14, 15 of the full line
  } catch {
    return undefined;
  }
}

/** Peak resident set (VmHWM) of `pid` in bytes. */
export function peakRssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Bytes of the regular files under `dir` (apparent sizes, like `du -sb`). Files that vanish
 *  while it walks (compaction, log truncation) are skipped. */
export function dirBytes(dir: string): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    try {
      const st = lstatSync(p);
      if (st.isDirectory()) total += dirBytes(p);
      else if (st.isFile()) total += st.size;
    } catch {
      // removed meanwhile
    }
  }
  return total;
}
