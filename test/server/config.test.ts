// Node configuration (src/server/config.ts): the user's example loads as written, defaults,
// precedence (defaults < file < env < flags), the repo's config.yaml, and one clear ConfigError
// per kind of bad configuration; docs/CONFIG.md is in sync with the schema.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { ConfigError, configReference, loadConfig, parseInitialCluster, type LoadConfigOptions } from '../../src/server/config.js';
import { KvError } from '../../src/util/errors.js';
import { cleanupTempDirs, tempDir } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const EXAMPLE = `# config.yaml
server:
  listen_address: "0.0.0.0"
  listen_port: 8080
  data_directory: "./data"
  max_connections: 1000
  request_timeout_ms: 100

cluster:
  node_id: "node1"
  seed_nodes:
    - "node2:8080"
    - "node3:8080"
  replication_factor: 3
  shard_count: 1024

security:
  enable_authentication: true
  token_expiry_hours: 24

monitoring:
  enable_monitoring: true
  metrics_port: 9090
  retention_hours: 24

storage:
  engine_type: "lsm_tree"
  memtable_size_mb: 64
  enable_compression: false
`;

/** Loads with an empty environment unless one is given. */
const load = (o: LoadConfigOptions = {}) => loadConfig({ env: {}, hostname: 'testhost', ...o });

/** The ConfigError thrown by fn. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    expect(err).to.be.instanceOf(KvError);
    expect((err as ConfigError).code).to.equal('INVALID_ARGUMENT');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** Asserts loading `yaml` fails naming `key` and matching `problem`. */
function rejects(yaml: string, key: string, problem: RegExp, o: LoadConfigOptions = {}): ConfigError {
  const err = configError(() => load({ text: yaml, ...o }));
  expect(err.problems.map((p) => p.key), err.message).to.include(key);
  const p = err.problems.find((x) => x.key === key)!;
  expect(p.message, err.message).to.match(problem);
  expect(err.message).to.contain(`${key}: `);
  return err;
}

describe('server/config', () => {
  afterEach(cleanupTempDirs);

  describe('loading', () => {
    it("loads the user's example config as written", () => {
      const dir = tempDir();
      const file = path.join(dir, 'config.yaml');
      writeFileSync(file, EXAMPLE);
      const c = load({ file });
      expect(c.source).to.equal(file);
      expect(c.server).to.deep.include({ listen_address: '0.0.0.0', listen_port: 8080, data_directory: './data', max_connections: 1000, request_timeout_ms: 100 });
      expect(c.cluster).to.deep.include({ node_id: 'node1', seed_nodes: ['node2:8080', 'node3:8080'], replication_factor: 3, shard_count: 1024, mode: 'join' });
      expect(c.security).to.deep.include({ enable_authentication: true, token_expiry_hours: 24 });
      expect(c.monitoring).to.deep.equal({ enable_monitoring: true, metrics_port: 9090, retention_hours: 24 });
      expect(c.storage).to.deep.include({ engine_type: 'lsm_tree', memtable_size_mb: 64, enable_compression: false, sync_policy: 'batch' });
      // Listening on 0.0.0.0 and joining: advertised under the host name.
      expect(c.cluster.advertise_peer_address).to.equal('testhost:9080');
      expect(c.cluster.advertise_client_address).to.equal('testhost:8080');
    });

    it('embedded default: a single-node cluster of node1 on 127.0.0.1, data in ./data, RF 1', () => {
      const c = load();
      expect(c.source).to.equal(null);
      expect(c.cluster.mode).to.equal('single');
      expect(c.cluster.node_id).to.equal('node1');
      expect(c.cluster.replication_factor).to.equal(1);
      expect(c.cluster.shard_count).to.equal(1024);
      expect(c.cluster.members).to.deep.equal({ node1: { host: '127.0.0.1', port: 9080 } });
      expect(c.server).to.deep.equal({
        listen_address: '127.0.0.1',
        listen_port: 8080,
        http_port: 8180,
        peer_port: 9080,
        data_directory: './data',
        max_connections: 1000,
        request_timeout_ms: 100,
      });
      expect(c.storage).to.deep.equal({ engine_type: 'lsm_tree', memtable_size_mb: 64, enable_compression: true, sync_policy: 'batch', block_cache_mb: 64, log_writes_in_flight: 64, log_syncs_in_flight: 1, background_duty_percent: 50, l0_compaction_trigger: 4 });
      expect(c.security).to.deep.equal({ enable_authentication: false, token_expiry_hours: 24, token_secret_file: '' });
    });

    it('returns a deeply frozen object', () => {
      const c = load({ text: 'cluster: { initial_cluster: "node1=127.0.0.1:7101" }' });
      expect(Object.isFrozen(c) && Object.isFrozen(c.server) && Object.isFrozen(c.cluster.seed_nodes)).to.equal(true);
      expect(Object.isFrozen(c.cluster.members) && Object.isFrozen(c.cluster.members['node1'])).to.equal(true);
      expect(() => {
        (c.server as { listen_port: number }).listen_port = 1;
      }).to.throw(TypeError);
    });

    it('an empty file or an empty key means the defaults', () => {
      expect(load({ text: '' }).server.listen_port).to.equal(8080);
      expect(load({ text: '# nothing\n' }).cluster.node_id).to.equal('node1');
      expect(load({ text: 'server:\n  listen_port:\n' }).server.listen_port).to.equal(8080);
    });

    it("the repository's config.yaml runs node1..node3 on localhost and a fourth node joins", () => {
      const file = path.join(ROOT, 'config.yaml');
      const nodes = [
        load({ file }),
        load({ file, overrides: { nodeId: 'node2', port: 8081, metricsPort: 9091, dataDir: './data2' } }),
        load({ file, overrides: { nodeId: 'node3', port: '8082', metricsPort: '9092', dataDir: './data3' } }),
      ];
      expect(nodes.map((c) => [c.cluster.mode, c.server.listen_port, c.server.http_port, c.server.peer_port, c.monitoring.metrics_port, c.server.data_directory])).to.deep.equal([
        ['bootstrap', 8080, 8180, 7101, 9090, './data'],
        ['bootstrap', 8081, 8181, 7102, 9091, './data2'],
        ['bootstrap', 8082, 8182, 7103, 9092, './data3'],
      ]);
      for (const c of nodes) {
        expect(Object.keys(c.cluster.members)).to.deep.equal(['node1', 'node2', 'node3']);
        expect(c.cluster.replication_factor).to.equal(3);
      }
      expect(nodes[1]!.cluster.advertise_peer_address).to.equal('127.0.0.1:7102');
      expect(nodes[1]!.cluster.advertise_client_address).to.equal('127.0.0.1:8081');
      const n4 = load({ file, overrides: { nodeId: 'node4', port: 8083, metricsPort: 9093, dataDir: './data4', seeds: '127.0.0.1:8080' } });
      expect(n4.cluster.mode).to.equal('join');
      expect(n4.cluster.seed_nodes).to.deep.equal(['127.0.0.1:8080']);
      expect(n4.cluster.advertise_peer_address).to.equal('127.0.0.1:9083');
    });

    it('parses initial_cluster into members (IPv6 in brackets, spaces tolerated)', () => {
      const c = load({ text: 'cluster: { node_id: b, initial_cluster: "a=10.0.0.1:7101, b=[::1]:7102 ,c=db-3.example.com:7103" }' });
      expect(c.cluster.mode).to.equal('bootstrap');
      expect({ ...c.cluster.members }).to.deep.equal({
        a: { host: '10.0.0.1', port: 7101 },
        b: { host: '[::1]', port: 7102 },
        c: { host: 'db-3.example.com', port: 7103 },
      });
      expect(c.server.peer_port).to.equal(7102);
      expect(c.cluster.replication_factor).to.equal(3);
      expect(load({ text: 'cluster: { initial_cluster: "node1=127.0.0.1:7101,node2=127.0.0.1:7102" }' }).cluster.replication_factor).to.equal(2);
      expect(parseInitialCluster('')).to.deep.equal([]);
    });
  });

  describe('precedence: defaults < file < env < flags', () => {
    const file = 'server: { listen_port: 7000, data_directory: "/from/file" }\ncluster: { node_id: filenode }';

    it('env overrides defaults and the file', () => {
      const env = { DISTCACHE_SERVER_LISTEN_PORT: '7001', DISTCACHE_STORAGE_SYNC_POLICY: 'always', DISTCACHE_STORAGE_ENABLE_COMPRESSION: 'false' };
      const c = load({ text: file, env });
      expect(c.server.listen_port).to.equal(7001);
      expect(c.storage.sync_policy).to.equal('always');
      expect(c.storage.enable_compression).to.equal(false);
      expect(c.server.data_directory).to.equal('/from/file');
      const d = load({ env: { DISTCACHE_CLUSTER_SEED_NODES: 'a:1, b:2', DISTCACHE_CLUSTER_NODE_ID: 'envnode' } });
      expect(d.cluster.seed_nodes).to.deep.equal(['a:1', 'b:2']);
      expect(d.cluster.node_id).to.equal('envnode');
    });

    it('flags override env and the file', () => {
      const env = { DISTCACHE_SERVER_LISTEN_PORT: '7001', DISTCACHE_CLUSTER_NODE_ID: 'envnode' };
      const c = load({ text: file, env, overrides: { port: 7002, nodeId: 'clinode', dataDir: './cli', seeds: ['x:1', 'y:2'], httpPort: '7100', peerPort: 7200, metricsPort: 7300 } });
      expect(c.server).to.deep.include({ listen_port: 7002, data_directory: './cli', http_port: 7100, peer_port: 7200 });
      expect(c.cluster.node_id).to.equal('clinode');
      expect(c.cluster.seed_nodes).to.deep.equal(['x:1', 'y:2']);
      expect(c.monitoring.metrics_port).to.equal(7300);
    });

    it('the file comes from --config, then $DISTCACHE_CONFIG, then options.file', () => {
      const dir = tempDir();
      const a = path.join(dir, 'a.yaml');
      const b = path.join(dir, 'b.yaml');
      const f = path.join(dir, 'f.yaml');
      writeFileSync(a, 'cluster: { node_id: from-a }');
      writeFileSync(b, 'cluster: { node_id: from-b }');
      writeFileSync(f, 'cluster: { node_id: from-f }');
      expect(load({ file: f }).cluster.node_id).to.equal('from-f');
      expect(load({ file: f, env: { DISTCACHE_CONFIG: b } }).cluster.node_id).to.equal('from-b');
      expect(load({ file: f, env: { DISTCACHE_CONFIG: b }, overrides: { configPath: a } }).cluster.node_id).to.equal('from-a');
    });

    it('--initial-cluster from the command line makes a bootstrap member', () => {
      const c = load({ overrides: { nodeId: 'n2', initialCluster: 'n1=127.0.0.1:7101,n2=127.0.0.1:7102', port: 8081 } });
      expect(c.cluster.mode).to.equal('bootstrap');
      expect(c.server.peer_port).to.equal(7102);
      expect(c.cluster.replication_factor).to.equal(2);
    });
  });

  describe('bad configurations name the key and the problem', () => {
    it('unknown keys and sections (strict), with suggestions', () => {
      rejects('server: { listn_port: 8080 }', 'server.listn_port', /unknown key \(did you mean server\.listen_port\?\)/);
      rejects('server: { metrics_port: 9091 }', 'server.metrics_port', /belongs in the monitoring section/);
      rejects('sever: { listen_port: 8080 }', 'sever', /unknown section \(did you mean server\?\)/);
      rejects('cluster: { frobnicate: 1 }', 'cluster.frobnicate', /^unknown key$/);
      rejects('server: 5', 'server', /must be a mapping/);
    });

    it('wrong types', () => {
      rejects('server: { listen_port: "eighty" }', 'server.listen_port', /must be a port number.*got "eighty"/);
      rejects('server: { max_connections: 1.5 }', 'server.max_connections', /must be an integer/);
      rejects('storage: { enable_compression: "yes" }', 'storage.enable_compression', /must be true or false, got "yes"/);
      rejects('cluster: { seed_nodes: "node2" }', 'cluster.seed_nodes', /"node2" must be host:port/);
      rejects('cluster: { seed_nodes: [1, 2] }', 'cluster.seed_nodes', /must be a list of "host:port"/);
      rejects('cluster: { node_id: "has space" }', 'cluster.node_id', /must be a node id/);
      rejects('server: { data_directory: "" }', 'server.data_directory', /non-empty path/);
    });

    it('ports out of range', () => {
      rejects('server: { listen_port: 70000 }', 'server.listen_port', /0\.\.65535.*got 70000/);
      rejects('monitoring: { metrics_port: -1 }', 'monitoring.metrics_port', /0\.\.65535.*got -1/);
      rejects('server: { listen_port: 65500 }', 'server.http_port', /derived as listen_port \+ 100 = 65600/);
    });

    it('other ranges', () => {
      rejects('cluster: { shard_count: 0 }', 'cluster.shard_count', /1\.\.65534, got 0/);
      rejects('server: { request_timeout_ms: 0 }', 'server.request_timeout_ms', /1\.\.3600000, got 0/);
      rejects('storage: { sync_policy: sometimes }', 'storage.sync_policy', /one of "always", "batch", "off", got "sometimes"/);
    });

    it('bad initial_cluster entries', () => {
      rejects('cluster: { initial_cluster: "node1=127.0.0.1:7101,node2" }', 'cluster.initial_cluster', /entry 2 "node2" must be node_id=host:port/);
      rejects('cluster: { initial_cluster: "node1=127.0.0.1:99999" }', 'cluster.initial_cluster', /invalid port "99999"/);
      rejects('cluster: { initial_cluster: "node1=127.0.0.1:7101,node1=127.0.0.1:7102" }', 'cluster.initial_cluster', /"node1" is listed twice/);
      rejects('cluster: { initial_cluster: "node1=127.0.0.1:7101,node2=127.0.0.1:7101" }', 'cluster.initial_cluster', /same address 127\.0\.0\.1:7101/);
      rejects('cluster: { initial_cluster: "node1=bad_host!:7101" }', 'cluster.initial_cluster', /invalid host/);
      rejects('cluster: { initial_cluster: "node1=::1:7101" }', 'cluster.initial_cluster', /IPv6 host in brackets/);
      rejects('cluster: { initial_cluster: "node2=127.0.0.1:7102" }', 'cluster.initial_cluster', /does not list this node, "node1".*seed_nodes/);
    });

    it('replication_factor above the known members', () => {
      rejects('cluster: { replication_factor: 3 }', 'cluster.replication_factor', /3 exceeds the 1 member known: a single-node cluster/);
      rejects('cluster: { replication_factor: 3, initial_cluster: "node1=127.0.0.1:7101,node2=127.0.0.1:7102" }', 'cluster.replication_factor', /3 exceeds the 2 members known: cluster.initial_cluster lists 2/);
      rejects('', 'cluster.replication_factor', /\(from \$DISTCACHE_CLUSTER_REPLICATION_FACTOR\)/, { env: { DISTCACHE_CLUSTER_REPLICATION_FACTOR: '2' } });
    });

    it('engine_type other than lsm_tree', () => {
      rejects('storage: { engine_type: "rocksdb" }', 'storage.engine_type', /must be one of "lsm_tree", got "rocksdb"/);
    });

    it("two of this node's listeners on one port", () => {
      rejects('server: { listen_port: 9090 }', 'monitoring.metrics_port', /port 9090 \(default\) is also server.listen_port/);
      rejects('server: { listen_port: 8080, http_port: 8080 }', 'server.http_port', /port 8080 is also server.listen_port/);
      // Disabled monitoring frees the metrics port; 0 (any free port) never clashes.
      expect(load({ text: 'server: { listen_port: 9090 }\nmonitoring: { enable_monitoring: false }' }).server.listen_port).to.equal(9090);
      expect(load({ text: 'server: { listen_port: 0, http_port: 0, peer_port: 0 }\nmonitoring: { metrics_port: 0 }' }).server.http_port).to.equal(0);
    });

    it('a peer port or advertised address that contradicts initial_cluster', () => {
      const ic = 'cluster: { initial_cluster: "node1=127.0.0.1:7101" }';
      rejects(`${ic}\nserver: { peer_port: 7105 }`, 'server.peer_port', /7105 differs from the port 7101/);
      rejects('cluster: { initial_cluster: "node1=127.0.0.1:7101", advertise_peer_address: "10.0.0.1:7101" }', 'cluster.advertise_peer_address', /differs from 127\.0\.0\.1:7101/);
    });

    it('says where a bad value came from: flag, environment or default', () => {
      const e1 = configError(() => load({ overrides: { port: 'abc' } }));
      expect(e1.message).to.contain('server.listen_port: must be a port number 0..65535 (0 = any free port), got "abc" (from --port)');
      const e2 = configError(() => load({ env: { DISTCACHE_MONITORING_METRICS_PORT: '99999' } }));
      expect(e2.message).to.contain('(from $DISTCACHE_MONITORING_METRICS_PORT)');
      const e3 = configError(() => load({ overrides: { port: 9090 } }));
      expect(e3.message).to.match(/monitoring\.metrics_port: port 9090 \(default\) is also server\.listen_port \(from --port\)/);
    });

    it('reports every problem at once', () => {
      const err = configError(() => load({ text: 'server: { listn_port: 1, listen_port: 70000 }\nstorage: { engine_type: x }' }));
      expect(err.key).to.equal('server.listn_port');
      expect(err.problems.map((p) => p.key)).to.deep.equal(['server.listn_port', 'server.listen_port', 'storage.engine_type']);
    });

    it('YAML syntax errors and unreadable files', () => {
      const e = configError(() => load({ text: 'server:\n  listen_port: 1\n  listen_port: 2\n' }));
      expect(e.message).to.match(/YAML: Map keys must be unique at line 3/);
      const e2 = configError(() => load({ text: '- a\n- b\n' }));
      expect(e2.message).to.match(/must be a YAML mapping of sections/);
      const e3 = configError(() => load({ file: path.join(tempDir(), 'missing.yaml') }));
      expect(e3.message).to.match(/missing\.yaml:\n.*cannot read the file: ENOENT/);
    });
  });

  it('docs/CONFIG.md lists every key as the schema does (REWRITE=1 regenerates)', () => {
    const docPath = path.join(ROOT, 'docs', 'CONFIG.md');
    const doc = readFileSync(docPath, 'utf8');
    const begin = doc.indexOf('<!-- BEGIN GENERATED');
    const beginEnd = doc.indexOf('-->', begin) + 4;
    const end = doc.indexOf('<!-- END GENERATED -->');
    expect(begin).to.be.greaterThan(0);
    const expected = configReference();
    if (process.env['REWRITE'] === '1') writeFileSync(docPath, doc.slice(0, beginEnd) + expected + doc.slice(end));
    else expect(doc.slice(beginEnd, end)).to.equal(expected);
  });
});
