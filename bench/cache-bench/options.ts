// cache-bench's command line: commander declares the flags, validateOptions() turns the raw
// strings into a checked BenchOptions or throws an OptionError whose message names the flag and
// the value it got. Pure (no I/O), so the tests call it directly.
import { Command, CommanderError } from 'commander';

export type Target = 'distcache' | 'etcd';
export type OpName = 'put' | 'get';
export type Distribution = 'uniform' | 'zipf';

export interface BenchOptions {
  target: Target;
  endpoints: string[];
  /** Operations in flight (closed loop: one worker per slot). */
  concurrency: number;
  durationSec: number;
  /** Relative weight of each op in the mix; ops with weight 0 are never issued. */
  mix: Record<OpName, number>;
  valueSize: number;
  keys: number;
  distribution: Distribution;
  zipfTheta: number;
  seed: number;
  preload: boolean;
  json: boolean;
  progress: boolean;
  timeoutMs: number;
}

export class OptionError extends Error {
  override readonly name = 'OptionError';
}

export const DEFAULT_ENDPOINTS: Record<Target, string> = { distcache: '127.0.0.1:8080', etcd: '127.0.0.1:2379' };
const MAX_CONCURRENCY = 100_000;
const MAX_VALUE_SIZE = 64 << 20; // the client's gRPC message limit

/** The raw flag values as commander hands them over (strings, booleans). */
export interface RawOptions {
  target?: string;
  endpoints?: string;
  concurrency?: string;
  duration?: string;
  ops?: string;
  valueSize?: string;
  keys?: string;
  distribution?: string;
  zipfTheta?: string;
  seed?: string;
  preload?: boolean;
  json?: boolean;
  progress?: boolean;
  timeout?: string;
}

function int(flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new OptionError(`${flag} must be an integer in [${min}, ${max}], got '${v}'`);
  }
  return n;
}

function num(flag: string, v: string, ok: (n: number) => boolean, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new OptionError(`${flag} must be ${what}, got '${v}'`);
  return n;
}

/** `put,get` (equal weights) or `put:30,get:70`. */
export function parseMix(v: string): Record<OpName, number> {
  const mix: Record<OpName, number> = { put: 0, get: 0 };
  const parts = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new OptionError(`--ops needs at least one of put, get, got '${v}'`);
  for (const p of parts) {
    const [name, w] = p.split(':');
    if (name !== 'put' && name !== 'get') throw new OptionError(`--ops: unknown op '${name ?? ''}' (known: put, get)`);
    if (mix[name] !== 0) throw new OptionError(`--ops: '${name}' given twice`);
    mix[name] = w === undefined ? 1 : num('--ops', w, (n) => n > 0, `a positive weight for ${name}`);
  }
  return mix;
}

/** host:port with a port in 1..65535; an etcd URL's http:// prefix is accepted and dropped. */
export function parseEndpoints(v: string): string[] {
  const list = v.split(',').map((s) => s.trim().replace(/^https?:\/\//, '')).filter((s) => s !== '');
  if (list.length === 0) throw new OptionError(`--endpoints needs at least one host:port, got '${v}'`);
  for (const e of list) {
    const m = /^(.+):(\d+)$/.exec(e);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new OptionError(`--endpoints: '${e}' is not host:port`);
  }
  return list;
}

export function validateOptions(raw: RawOptions): BenchOptions {
  const target = raw.target ?? 'distcache';
  if (target !== 'distcache' && target !== 'etcd') throw new OptionError(`--target must be distcache or etcd, got '${target}'`);
  const distribution = raw.distribution ?? 'uniform';
  if (distribution !== 'uniform' && distribution !== 'zipf') throw new OptionError(`--distribution must be uniform or zipf, got '${distribution}'`);
  const mix = parseMix(raw.ops ?? 'put,get');
  const preload = raw.preload === true;
  const durationSec = num('--duration', raw.duration ?? '10', (n) => n > 0 && n <= 86_400, 'a number of seconds in (0, 86400]');
  const keys = int('--keys', raw.keys ?? '10000', 1, 1e9);
  if (preload && keys > 10_000_000) throw new OptionError(`--preload writes every key; --keys ${keys} is more than 10000000`);
  return {
    target,
    endpoints: parseEndpoints(raw.endpoints ?? DEFAULT_ENDPOINTS[target]),
    concurrency: int('--concurrency', raw.concurrency ?? '16', 1, MAX_CONCURRENCY),
    durationSec,
    mix,
    valueSize: int('--value-size', raw.valueSize ?? '4096', 0, MAX_VALUE_SIZE),
    keys,
    distribution,
    zipfTheta: num('--zipf-theta', raw.zipfTheta ?? '0.99', (n) => n > 0 && n < 1, 'in (0, 1)'),
    seed: raw.seed === undefined ? Math.floor(Math.random() * 0x1_0000_0000) : int('--seed', raw.seed, 0, 0xffff_ffff),
    preload,
    json: raw.json === true,
    progress: raw.progress !== false,
    timeoutMs: int('--timeout', raw.timeout ?? '5000', 1, 3_600_000),
  };
}

export function buildCommand(): Command {
  return new Command('cache-bench')
    .description('Closed-loop load generator for distcache (or etcd, for comparison): N operations in flight for a fixed time; reports ops/s and latency percentiles.')
    .option('--target <name>', 'distcache | etcd', 'distcache')
    .option('--endpoints <list>', `host:port,... (default ${DEFAULT_ENDPOINTS.distcache} for distcache, ${DEFAULT_ENDPOINTS.etcd} for etcd)`)
    .option('--concurrency <n>', 'operations in flight', '16')
    .option('--duration <seconds>', 'measured run time', '10')
    .option('--ops <list>', 'op mix: put,get (equal weights), put, get, or weighted put:30,get:70', 'put,get')
    .option('--value-size <bytes>', 'bytes per put value', '4096')
    .option('--keys <n>', 'key space size', '10000')
    .option('--distribution <name>', 'uniform | zipf', 'uniform')
    .option('--zipf-theta <theta>', 'zipf skew in (0, 1)', '0.99')
    .option('--seed <n>', 'PRNG seed for keys and values (default: random, printed)')
    .option('--preload', 'write every key once before the measured run (for get-only runs)')
    .option('--json', 'print the final report as JSON on stdout')
    .option('--no-progress', 'no progress line on stderr')
    .option('--timeout <ms>', 'per-operation deadline', '5000')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
}

/** Parses user arguments (argv without node and script). Throws OptionError for bad values and
 *  CommanderError for unknown flags, --help and --version (exitCode 0 for help). */
export function parseBenchArgs(args: readonly string[]): BenchOptions {
  const cmd = buildCommand();
  cmd.parse([...args], { from: 'user' });
  if (cmd.args.length > 0) throw new OptionError(`unexpected argument '${cmd.args[0] ?? ''}'`);
  return validateOptions(cmd.opts<RawOptions>());
}

export { CommanderError };
