// Command line for the Raft simulator:
//   npm run sim:raft -- --seeds A..B --steps N [--verbose]
// Prints exactly one summary line `seeds: S, steps: N, violations: V`; for each violating seed
// also the seed, its violations and the tail of its trace. Exits 1 on any violation.
// Replay one seed with `--seeds X..X`.
import { runSeed } from './sim/simulator.js';

function parseArgs(argv: string[]): { from: number; to: number; steps: number; verbose: boolean } {
  let from = 1;
  let to = 100;
  let steps = 2000;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seeds') {
      const v = argv[++i] ?? '';
      const m = /^(\d+)(?:\.\.(\d+))?$/.exec(v);
      if (!m) throw new Error(`--seeds expects A..B, got ${v}`);
      from = Number(m[1]);
      to = Number(m[2] ?? m[1]);
    } else if (a === '--steps') {
      steps = Number(argv[++i]);
      if (!Number.isSafeInteger(steps) || steps <= 0) throw new Error('--steps expects a positive integer');
    } else if (a === '--verbose') {
      verbose = true;
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  if (to < from) throw new Error('--seeds A..B needs A <= B');
  return { from, to, steps, verbose };
}

const args = parseArgs(process.argv.slice(2));
let violations = 0;
const reports: string[] = [];
for (let seed = args.from; seed <= args.to; seed++) {
  const res = runSeed(seed, args.steps);
  if (args.verbose) console.error(`seed ${seed}: ${JSON.stringify(res.stats)}`);
  if (res.violations.length > 0) {
    violations += res.violations.length;
    reports.push(
      [`seed ${seed}: ${res.violations.length} violation(s); replay: npm run sim:raft -- --seeds ${seed}..${seed} --steps ${args.steps}`, ...res.violations.map((v) => `  ! ${v}`), '  trace (last events):', ...res.trace.map((t) => `    ${t}`)].join('\n'),
    );
  }
}
console.log(`seeds: ${args.to - args.from + 1}, steps: ${args.steps}, violations: ${violations}`);
for (const r of reports) console.log(r);
process.exitCode = violations > 0 ? 1 : 0;
