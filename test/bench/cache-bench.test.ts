// cache-bench: the zipf generator (seeded determinism, skew of the hottest keys against the exact
// zipf shares), option validation, and the load driver for ~1 s against one real cache-server
// child process, in-process and through the cache-bench CLI (--json).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Rng } from '../../src/util/rng.js';
import { openBackend, type Backend } from '../../bench/cache-bench/backend.js';
import { preload, runLoad } from '../../bench/cache-bench/driver.js';
import { UniformChooser, ZipfChooser, zeta } from '../../bench/cache-bench/keys.js';
import { CommanderError, OptionError, parseBenchArgs } from '../../bench/cache-bench/options.js';
import type { BenchReport } from '../../bench/cache-bench/report.js';
import { ServerProc, freePorts, rmDir, tmpDir } from '../server/harness.js';

const CLI_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/cache-bench/cli.js');

function draws(c: { next(): number }, n: number): number[] {
  return Array.from({ length: n }, () => c.next());
}

function counts(xs: number[], n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const x of xs) c[x]!++;
  return c;
}

describe('cache-bench: zipf key chooser', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const a = draws(new ZipfChooser(1000, 0.99, new Rng(7)), 2000);
    const b = draws(new ZipfChooser(1000, 0.99, new Rng(7)), 2000);
    const c = draws(new ZipfChooser(1000, 0.99, new Rng(8)), 2000);
    expect(a).to.deep.equal(b);
    expect(a).to.not.deep.equal(c);
  });

  it('stays in [0, n), also for n = 1 and n = 2', () => {
    for (const n of [1, 2, 3, 10, 1000]) {
      const xs = draws(new ZipfChooser(n, 0.9, new Rng(n)), 5000);
      expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x < n), `n=${n}`).to.equal(true);
      if (n > 1) expect(new Set(xs).size, `n=${n} uses more than one key`).to.be.greaterThan(1);
    }
  });

  for (const theta of [0.5, 0.8, 0.99]) {
    it(`theta ${theta}: the hottest keys get their zipf share (1/rank^theta / zeta(n, theta))`, () => {
      const n = 1000;
      const N = 200_000;
      const z = new ZipfChooser(n, theta, new Rng(1234));
      const c = counts(draws(z, N), n);
      const exact = (rank: number): number => 1 / Math.pow(rank, theta) / zeta(n, theta);
      expect(z.hottestShare).to.be.closeTo(exact(1), 1e-12);
      // ranks 1 and 2 are exact in the method; the standard error of a share at N = 200k is < 0.0012
      expect(c[0]! / N, 'rank 1').to.be.closeTo(exact(1), 0.005);
      expect(c[1]! / N, 'rank 2').to.be.closeTo(exact(2), 0.005);
      // beyond rank 2 the closed form approximates; the top-10 mass is still close
      let top10 = 0;
      for (let r = 1; r <= 10; r++) top10 += exact(r);
      expect(c.slice(0, 10).reduce((s, x) => s + x, 0) / N, 'top 10').to.be.closeTo(top10, 0.02);
      // skewed: the hottest key is drawn far more than a uniform key would be
      expect(c[0]! / N).to.be.greaterThan(10 / n);
    });
  }

  it('more skew (higher theta) puts more weight on the hottest key', () => {
    const share = (t: number): number => counts(draws(new ZipfChooser(1000, t, new Rng(5)), 50_000), 1000)[0]! / 50_000;
    expect(share(0.99)).to.be.greaterThan(share(0.8));
    expect(share(0.8)).to.be.greaterThan(share(0.5));
  });

  it('rejects theta outside (0, 1) and a bad key count', () => {
    expect(() => new ZipfChooser(10, 1, new Rng(1))).to.throw(RangeError, /theta/);
    expect(() => new ZipfChooser(10, 0, new Rng(1))).to.throw(RangeError, /theta/);
    expect(() => new ZipfChooser(0, 0.5, new Rng(1))).to.throw(RangeError, /key count/);
    expect(() => new UniformChooser(1.5, new Rng(1))).to.throw(RangeError, /key count/);
  });

  it('uniform covers the key space evenly', () => {
    const c = counts(draws(new UniformChooser(10, new Rng(3)), 100_000), 10);
    for (const x of c) expect(x / 100_000).to.be.closeTo(0.1, 0.01);
  });
});

describe('cache-bench: options', () => {
  const bad = (args: string[], re: RegExp): void => {
    let err: unknown;
    try {
      parseBenchArgs(args);
    } catch (e) {
      err = e;
    }
    expect(err, args.join(' ')).to.be.instanceOf(OptionError);
    expect((err as Error).message).to.match(re);
  };

  it('defaults: distcache on 127.0.0.1:8080, 16 in flight, 10 s, 50/50, 4 KiB, 10000 uniform keys', () => {
    const o = parseBenchArgs(['--seed', '9']);
    expect(o).to.deep.include({ target: 'distcache', endpoints: ['127.0.0.1:8080'], concurrency: 16, durationSec: 10, valueSize: 4096, keys: 10000, distribution: 'uniform', seed: 9, preload: false, json: false, progress: true });
    expect(o.mix).to.deep.equal({ put: 1, get: 1 });
    expect(parseBenchArgs(['--target', 'etcd']).endpoints).to.deep.equal(['127.0.0.1:2379']);
  });

  it('parses every flag', () => {
    const o = parseBenchArgs([
      '--target', 'etcd', '--endpoints', 'http://127.0.0.1:1, 127.0.0.1:2', '--concurrency', '64', '--duration', '0.5', '--ops', 'put:30,get:70',
      '--value-size', '0', '--keys', '5', '--distribution', 'zipf', '--zipf-theta', '0.8', '--preload', '--json', '--no-progress', '--timeout', '100',
    ]);
    expect(o).to.deep.include({ target: 'etcd', endpoints: ['127.0.0.1:1', '127.0.0.1:2'], concurrency: 64, durationSec: 0.5, valueSize: 0, keys: 5, distribution: 'zipf', zipfTheta: 0.8, preload: true, json: true, progress: false, timeoutMs: 100 });
    expect(o.mix).to.deep.equal({ put: 30, get: 70 });
    expect(parseBenchArgs(['--ops', 'get']).mix).to.deep.equal({ put: 0, get: 1 });
  });

  it('rejects bad values with a message naming the flag and the value', () => {
    bad(['--concurrency', '0'], /--concurrency must be an integer in \[1, 100000\], got '0'/);
    bad(['--concurrency', '2.5'], /--concurrency .* got '2.5'/);
    bad(['--duration', '0'], /--duration .* got '0'/);
    bad(['--duration', 'ten'], /--duration .* got 'ten'/);
    bad(['--ops', 'put,delete'], /--ops: unknown op 'delete'/);
    bad(['--ops', 'put,put'], /'put' given twice/);
    bad(['--ops', 'put:0'], /positive weight/);
    bad(['--ops', ','], /--ops needs at least one/);
    bad(['--distribution', 'pareto'], /--distribution must be uniform or zipf, got 'pareto'/);
    bad(['--zipf-theta', '1'], /--zipf-theta must be in \(0, 1\), got '1'/);
    bad(['--target', 'redis'], /--target must be distcache or etcd, got 'redis'/);
    bad(['--endpoints', 'localhost'], /--endpoints: 'localhost' is not host:port/);
    bad(['--endpoints', '127.0.0.1:70000'], /is not host:port/);
    bad(['--value-size', '-1'], /--value-size/);
    bad(['--keys', '0'], /--keys/);
    bad(['--seed', '-3'], /--seed/);
  });

  it('unknown flags and stray arguments are commander errors', () => {
    const write = process.stderr.write;
    process.stderr.write = () => true; // commander prints its own message; keep the test output clean
    try {
      expect(() => parseBenchArgs(['--concurency', '4'])).to.throw(CommanderError, /unknown option/);
      expect(() => parseBenchArgs(['stray'])).to.throw(CommanderError, /too many arguments/);
    } finally {
      process.stderr.write = write;
    }
  });
});

describe('cache-bench: driver against one real cache-server', function () {
  this.timeout(60_000);
  let dir: string;
  let srv: ServerProc;
  let endpoint: string;
  let backend: Backend | undefined;

  before(async () => {
    dir = tmpDir();
    const ports = await freePorts(4);
    endpoint = `127.0.0.1:${ports[0]}`;
    srv = new ServerProc({
      args: ['--data-dir', dir, '--port', String(ports[0]), '--peer-port', String(ports[1]), '--http-port', String(ports[2]), '--metrics-port', String(ports[3])],
      env: { DISTCACHE_CLUSTER_SHARD_COUNT: '16', DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000' },
    });
    await srv.start();
  });

  after(async () => {
    await backend?.close();
    await srv?.kill('SIGKILL');
    rmDir(dir);
  });

  it('runs ~1 s of 50/50 puts and gets over preloaded keys: progress, sane percentiles, no errors', async () => {
    backend = await openBackend('distcache', [endpoint], 5000);
    const keys = 200;
    const value = Buffer.alloc(1024, 7);
    await preload(backend, keys, value, 8);
    const progress: number[] = [];
    const r = await runLoad({
      backend, concurrency: 8, durationMs: 1000, mix: { put: 1, get: 1 }, chooser: new ZipfChooser(keys, 0.9, new Rng(11)), value, rng: new Rng(12),
      progressIntervalMs: 250, onProgress: (p) => progress.push(p.ops),
    });
    expect(r.errors, JSON.stringify(r.errorsByCode)).to.equal(0);
    expect(r.ops).to.be.greaterThan(0);
    expect(r.notFound, 'every key was preloaded').to.equal(0);
    expect(r.byOp.put?.count).to.be.greaterThan(0);
    expect(r.byOp.get?.count).to.be.greaterThan(0);
    expect(r.byOp.put!.count + r.byOp.get!.count).to.equal(r.ops);
    const l = r.latency;
    expect(l.count).to.equal(r.ops);
    expect(l.p50Us).to.be.greaterThan(0);
    expect(l.p50Us).to.be.at.most(l.p99Us);
    expect(l.p99Us).to.be.at.most(l.p999Us);
    expect(l.p999Us).to.be.at.most(l.maxUs);
    expect(r.opsPerSec).to.be.closeTo(r.ops / r.elapsedSec, 1e-6);
    expect(r.cpuUsPerOp).to.be.greaterThan(0);
    expect(progress.length, 'progress callbacks').to.be.greaterThan(0);
    expect(progress.every((n, i) => i === 0 || n >= progress[i - 1]!), 'progress counts only grow').to.equal(true);
  });

  it('the cache-bench CLI prints a --json report (get-only after --preload) and exits 0', async () => {
    const { code, out, err } = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI_JS, '--endpoints', endpoint, '--duration', '1', '--concurrency', '4', '--ops', 'get', '--keys', '100', '--value-size', '512', '--preload', '--seed', '77', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '';
      let e = '';
      p.stdout.on('data', (d: Buffer) => (o += d.toString()));
      p.stderr.on('data', (d: Buffer) => (e += d.toString()));
      p.on('exit', (c) => resolve({ code: c, out: o, err: e }));
    });
    expect(code, err).to.equal(0);
    expect(err).to.match(/seed 77/);
    expect(err).to.match(/^preloaded 100 keys in /m);
    const rep = JSON.parse(out) as BenchReport;
    expect(rep).to.deep.include({ target: 'distcache', concurrency: 4, keys: 100, valueSize: 512, seed: 77, preloaded: true });
    expect(rep.result.ops).to.be.greaterThan(0);
    expect(rep.result.errors).to.equal(0);
    expect(rep.result.notFound).to.equal(0);
    expect(rep.result.byOp.put).to.equal(undefined);
  });

  it('the CLI exits 2 with a clear message for a bad flag', async () => {
    const { code, err } = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI_JS, '--concurrency', 'lots'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let e = '';
      p.stderr.on('data', (d: Buffer) => (e += d.toString()));
      p.on('exit', (c) => resolve({ code: c, err: e }));
    });
    expect(code).to.equal(2);
    expect(err).to.match(/--concurrency must be an integer .* got 'lots'/);
  });
});
