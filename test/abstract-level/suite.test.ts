// Runs abstract-level's conformance suite against DistcacheLevel in child processes (see
// suite.ts; tape owns its process) and asserts a clean TAP summary: exit code 0, `# fail 0`,
// and more passing assertions than a floor, so a suite that silently ran nothing fails too.
// On failure the failing TAP blocks are printed.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'suite.js');

/** abstract-level 3.1.1 makes 5,168 assertions (plus our teardown's one) with our manifest
 *  (getSync, has, explicit snapshots, iterator signals; then all again on a sublevel). The
 *  floor catches a suite that ran nothing or had whole sections switched off. */
const PASS_FLOOR = 5000;

interface TapResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(profile: string): Promise<TapResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, '--profile', profile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Each `not ok` line with the comment header it belongs to and its YAML diagnostics. */
function failingBlocks(tap: string): string[] {
  const lines = tap.split('\n');
  const blocks: string[] = [];
  let header = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('# ')) header = line;
    if (!line.startsWith('not ok')) continue;
    const block = [header, line];
    for (let j = i + 1; j < lines.length && /^\s/.test(lines[j]!); j++) block.push(lines[j]!);
    blocks.push(block.join('\n'));
  }
  return blocks;
}

function count(tap: string, what: 'pass' | 'fail'): number | undefined {
  const m = new RegExp(`^# ${what}\\s+(\\d+)$`, 'm').exec(tap);
  return m ? Number(m[1]) : undefined;
}

const PROFILES = ['default', 'tiny'];

describe('abstract-level conformance suite', function () {
  this.timeout(600_000);
  // Both profiles run at once (each is mostly waiting on fsync and timers).
  const runs = new Map<string, Promise<TapResult>>();
  before(function () {
    for (const p of PROFILES) runs.set(p, run(p));
  });

  for (const profile of PROFILES) {
    it(`passes every test of abstract-level/test against DistcacheLevel (profile ${profile})`, async function () {
      const r = await runs.get(profile)!;
      const pass = count(r.stdout, 'pass');
      const fail = count(r.stdout, 'fail') ?? 0;
      const blocks = failingBlocks(r.stdout);
      const report = [
        `exit code ${String(r.code)}${r.signal ? ` (signal ${r.signal})` : ''}, pass ${String(pass)}, fail ${fail}`,
        ...blocks.slice(0, 30),
        blocks.length > 30 ? `... ${blocks.length - 30} more failing blocks` : '',
        r.stderr ? `stderr:\n${r.stderr.slice(-4000)}` : '',
        pass === undefined ? `no TAP summary; stdout tail:\n${r.stdout.slice(-4000)}` : '',
      ].filter((s) => s !== '').join('\n\n');
      if (r.code !== 0 || fail !== 0 || pass === undefined || pass < PASS_FLOOR) console.log(report);
      expect(blocks, report).to.have.length(0);
      expect(fail, report).to.equal(0);
      expect(r.code, report).to.equal(0);
      expect(pass, report).to.be.a('number').and.above(PASS_FLOOR);
    });
  }
});
