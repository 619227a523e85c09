#!/usr/bin/env node
// cache-server: runs one distcache node. Flags override the YAML file (--config), which overrides
// the embedded defaults (a single-node cluster, data in ./data). Exit codes: 0 after a graceful
// shutdown (SIGTERM/SIGINT), 2 for a bad configuration or bad flags, 1 for any other start-up
// failure.
import v8 from 'node:v8';
import { Command, CommanderError } from 'commander';
import { ConfigError, loadConfig, type CliOverrides } from '../server/config.js';
import { CacheNode } from '../server/node.js';
import { KvError } from '../util/errors.js';

// V8 drops the bytecode of functions not run for a while and compiles them again when they run:
// a node's rarer paths (flushes, compactions, snapshots, leadership changes) were discarded and
// recompiled over and over (~50 functions per node per 8 s of put load, --trace-flush-bytecode),
// and compilation was ~10% of the box's CPU under load. Keeping the bytecode costs a few MB. The
// throughput effect is within this box's noise (A/B: one set +8-30% per paired round, one even).
v8.setFlagsFromString('--no-flush-bytecode');

async function main(): Promise<void> {
  const program = new Command('cache-server')
    .description('Run one distcache node (no flags: a single-node cluster on 127.0.0.1, data in ./data).')
    .option('--config <file>', 'YAML configuration file')
    .option('--node-id <id>', 'cluster.node_id')
    .option('--listen-address <host>', 'server.listen_address')
    .option('--port <port>', 'client gRPC port (server.listen_port)')
    .option('--peer-port <port>', 'node-to-node Raft port (server.peer_port)')
    .option('--http-port <port>', 'admin HTTP port (server.http_port)')
    .option('--metrics-port <port>', 'Prometheus metrics port (monitoring.metrics_port)')
    .option('--data-dir <dir>', 'server.data_directory')
    .option('--initial-cluster <list>', 'founding members: node1=host:port,node2=host:port (advertised peer addresses)')
    .option('--seeds <list>', 'client addresses of an existing cluster to join: host:port,...')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    throw err;
  }
  const o = program.opts<Record<string, string | undefined>>();
  const overrides: CliOverrides = {};
  const set = <K extends keyof CliOverrides>(k: K, v: CliOverrides[K] | undefined): void => {
    if (v !== undefined) overrides[k] = v;
  };
  set('configPath', o['config']);
  set('nodeId', o['nodeId']);
  set('listenAddress', o['listenAddress']);
  set('port', o['port']);
  set('peerPort', o['peerPort']);
  set('httpPort', o['httpPort']);
  set('metricsPort', o['metricsPort']);
  set('dataDir', o['dataDir']);
  set('initialCluster', o['initialCluster']);
  set('seeds', o['seeds']);

  let config;
  try {
    config = loadConfig({ overrides });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cache-server: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const t0 = Date.now();
  let node: CacheNode;
  try {
    node = await CacheNode.start(config);
  } catch (err) {
    if (err instanceof KvError) {
      // configuration-like refusals (bad id, id taken, wrong data dir) exit 2, like a bad config
      process.stderr.write(`cache-server: ${err.code}: ${err.message}\n`);
      process.exit(err.code === 'INVALID_ARGUMENT' || err.code === 'ALREADY_EXISTS' ? 2 : 1);
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`cache-server: failed to start: ${e.code === 'EADDRINUSE' ? `address in use (${e.message})` : (e.stack ?? String(e))}\n`);
    process.exit(1);
  }
  const host = config.server.listen_address;
  process.stdout.write(
    `distcache node ${config.cluster.node_id} ready in ${Date.now() - t0} ms: client ${host}:${node.ports.client} peer ${host}:${node.ports.peer} http ${host}:${node.ports.http} metrics ${node.ports.metrics === 0 ? 'off' : `${host}:${node.ports.metrics}`}` +
      ` (mode ${config.cluster.mode}, ${node.shardMap.shardCount} shards, ${node.store.shardIds().length} local, rf ${config.cluster.replication_factor}, data ${config.server.data_directory}, pid ${process.pid})\n`,
  );
  let stopping = false;
  const shutdown = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`distcache node ${config.cluster.node_id}: ${sig}, shutting down\n`);
    node.stop().then(
      () => {
        process.stdout.write(`distcache node ${config.cluster.node_id}: stopped\n`);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`cache-server: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`cache-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
