#!/usr/bin/env node
// cache-bench: closed-loop load against distcache (or etcd, for comparison). Wires options ->
// backend -> optional preload -> driver (with the progress line) -> report. Exit codes: 0 done
// (errors, if any, are in the report), 1 could not run (connect or preload failed, no op
// succeeded), 2 bad usage. The first Ctrl-C ends the run early and still reports.
import { Rng } from '../../src/util/rng.js';
import { openBackend, type Backend } from './backend.js';
import { preload, runLoad } from './driver.js';
import { UniformChooser, ZipfChooser } from './keys.js';
import { CommanderError, OptionError, parseBenchArgs, type BenchOptions } from './options.js';
import { ProgressLine } from './progress.js';
import { fmtReport, si, toReport, us } from './report.js';

function log(o: BenchOptions, s: string): void {
  if (o.progress) process.stderr.write(s + '\n');
}

async function main(): Promise<number> {
  let o: BenchOptions;
  try {
    o = parseBenchArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander printed it
    if (e instanceof OptionError) {
      process.stderr.write(`cache-bench: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const rng = new Rng(o.seed);
  const chooser = o.distribution === 'zipf' ? new ZipfChooser(o.keys, o.zipfTheta, rng.fork()) : new UniformChooser(o.keys, rng.fork());
  const opRng = rng.fork();
  const value = Buffer.from(rng.fork().bytes(o.valueSize)); // random bytes: no compression gains
  log(o, `cache-bench: seed ${o.seed} (replay with --seed ${o.seed})`);

  let backend: Backend;
  try {
    backend = await openBackend(o.target, o.endpoints, o.timeoutMs);
  } catch (e) {
    process.stderr.write(`cache-bench: cannot connect to ${o.target} at ${o.endpoints.join(',')}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  const ac = new AbortController();
  const onSigint = (): void => {
    if (ac.signal.aborted) process.exit(130);
    ac.abort();
  };
  process.on('SIGINT', onSigint);
  const line = new ProgressLine();
  try {
    if (o.preload) {
      const t = Date.now();
      try {
        await preload(backend, o.keys, value, o.concurrency, o.progress ? (n) => line.update(`preload ${n}/${o.keys}`) : undefined);
      } catch (e) {
        line.done();
        process.stderr.write(`cache-bench: preload failed: ${e instanceof Error ? e.message : String(e)}\n`);
        return 1;
      }
      line.done();
      log(o, `preloaded ${o.keys} keys in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    const result = await runLoad({
      backend,
      concurrency: o.concurrency,
      durationMs: o.durationSec * 1000,
      mix: o.mix,
      chooser,
      value,
      rng: opRng,
      signal: ac.signal,
      ...(o.progress
        ? { onProgress: (p) => line.update(`[${p.elapsedSec.toFixed(0).padStart(3)} s] ${si(p.opsPerSec).padStart(7)} ops/s  p99 ${us(p.p99Us).padStart(9)}  total ${p.ops}  errors ${p.errors}`) }
        : {}),
    });
    line.done();
    const rep = toReport(o, result);
    process.stdout.write(o.json ? JSON.stringify(rep) + '\n' : fmtReport(rep));
    return result.ops > 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSigint);
    await backend.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`cache-bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
