// Client hot-path benchmark (not a test): a real 3-node cache-server cluster on 127.0.0.1 (child
// processes, as the server tests start them) driven by ONE client process through
// distcache/client, once per transport ('unary': one grpc call per op; 'session': the
// multiplexed Session stream), at several concurrencies, for put and get of 4 KiB values.
//   npm run bench:client [-- --seconds S] [--rounds R] [--concurrency 1,16,64,128] [--shards N] [--keys K]
// Every row runs R times (rounds interleave all rows, so a burst of load on a shared machine
// hits one round, not one transport) and reports the round with the most ops/s.
// Per row: ops/s; client CPU µs/op (process.cpuUsage() of this process over the run / ops);
// server CPU µs/op (utime+stime of the 3 server processes from /proc/<pid>/stat over the run /
// ops, summed over the nodes: the cluster's CPU per op, replication included); and for puts the
// Raft commands per proposed entry (host stats, summed over nodes), i.e. how much the host's
// group commit already merged concurrent writes of one shard into one entry.
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CacheClient } from '../../src/client/index.js';
import { type ClusterNode, http, localCluster, rmDir } from '../../test/server/harness.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

const SECONDS = Number(arg('seconds', '3'));
const ROUNDS = Number(arg('rounds', '2'));
const CONCURRENCY = arg('concurrency', '1,16,64,128').split(',').map(Number);
const SHARDS = Number(arg('shards', '64'));
const KEYS = Number(arg('keys', '10000'));
const VALUE = Buffer.alloc(4096, 0x61);
const TRANSPORTS = ['unary', 'session'] as const;

let clkTck = 100;
try {
  clkTck = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
} catch {
  // not a POSIX shell: the usual Linux value
}

/** utime+stime of a process in µs (Linux /proc), 0 elsewhere. */
function procCpuUs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / clkTck; // fields 14 and 15 of the full line
  } catch {
    return 0;
  }
}

interface HostCounters {
  entries: number;
  commands: number;
}

async function hostCounters(nodes: ClusterNode[]): Promise<HostCounters> {
  let entries = 0;
  let commands = 0;
  for (const n of nodes) {
    const port = Number(n.proc.spec.args[n.proc.spec.args.indexOf('--http-port') + 1]);
    const h = (await http(port, 'GET', '/api/stats')).json['host'] as { entriesProposed: number; commandsProposed: number };
    entries += h.entriesProposed;
    commands += h.commandsProposed;
  }
  return { entries, commands };
}

interface Row {
  transport: string;
  op: string;
  concurrency: number;
  ops: number;
  seconds: number;
  clientUs: number;
  serverUs: number;
  cmdsPerEntry: number | undefined;
  errors: number;
}

async function run(nodes: ClusterNode[], c: CacheClient, transport: string, op: 'put' | 'get', concurrency: number): Promise<Row> {
  let next = 0;
  const one = (): Promise<unknown> => {
    const k = `bench:${next++ % KEYS}`;
    return op === 'put' ? c.put(k, VALUE) : c.get(k);
  };
  // warm-up: connections, streams, JIT
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = 0; i < 20; i++) await one();
  }));
  const hc0 = await hostCounters(nodes);
  const srv0 = nodes.reduce((s, n) => s + procCpuUs(n.proc.pid), 0);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = Date.now() + SECONDS * 1000;
  let ops = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        try {
          await one();
          ops++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const srv = nodes.reduce((s, n) => s + procCpuUs(n.proc.pid), 0) - srv0;
  const hc1 = await hostCounters(nodes);
  const entries = hc1.entries - hc0.entries;
  return {
    transport,
    op,
    concurrency,
    ops,
    seconds,
    clientUs: (cpu.user + cpu.system) / Math.max(1, ops),
    serverUs: srv / Math.max(1, ops),
    cmdsPerEntry: op === 'put' && entries > 0 ? (hc1.commands - hc0.commands) / entries : undefined,
    errors,
  };
}

async function main(): Promise<void> {
  const nodes = await localCluster(['n1', 'n2', 'n3'], SHARDS);
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.proc.kill('SIGKILL')));
    for (const n of nodes) rmDir(n.dir);
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  const rows: Row[] = [];
  try {
    await Promise.all(nodes.map((n) => n.proc.start()));
    const addrs = nodes.map((n) => n.address);
    // wait until every shard has a leader that accepts writes
    const boot = await CacheClient.connect(addrs, { timeoutMs: 20000 });
    for (let i = 0; i < KEYS; i += 200) await boot.multiPut(Array.from({ length: Math.min(200, KEYS - i) }, (_, j) => ({ key: `bench:${i + j}`, value: VALUE })));
    boot.close();
    process.stderr.write(`cluster up: 3 nodes, ${SHARDS} shards, ${KEYS} keys of ${VALUE.length} B; ${SECONDS} s per row, ${ROUNDS} rounds\n`);
    const best = new Map<string, Row>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const concurrency of CONCURRENCY) {
        for (const op of ['put', 'get'] as const) {
          for (const transport of TRANSPORTS) {
            const c = await CacheClient.connect(addrs, { timeoutMs: 10000, transport });
            try {
              const r = await run(nodes, c, transport, op, concurrency);
              const id = `${op}/${concurrency}/${transport}`;
              const prev = best.get(id);
              if (!prev || r.ops / r.seconds > prev.ops / prev.seconds) best.set(id, r);
              process.stderr.write(`${transport} ${op} c=${concurrency}: ${(r.ops / r.seconds).toFixed(0)} ops/s, client ${r.clientUs.toFixed(1)} µs/op, servers ${r.serverUs.toFixed(1)} µs/op${r.errors ? `, ${r.errors} errors` : ''}\n`);
            } finally {
              c.close();
            }
          }
        }
      }
    }
    rows.push(...best.values());
  } finally {
    await stop();
  }
  const f = (n: number): string => (n >= 10000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));
  const lines = [
    '| op | concurrency | transport | ops/s | client CPU µs/op | servers CPU µs/op | Raft cmds/entry | errors |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.op} | ${r.concurrency} | ${r.transport} | ${f(r.ops / r.seconds)} | ${r.clientUs.toFixed(1)} | ${r.serverUs.toFixed(1)} | ${r.cmdsPerEntry === undefined ? '-' : r.cmdsPerEntry.toFixed(1)} | ${r.errors} |`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:client failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
