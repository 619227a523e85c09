// Admin HTTP API of a node (server.http_port). JSON in, JSON out; every error is
// {"error": {"code", "message"}} with a matching status (400 bad JSON / arguments, 404 unknown
// route, 405 wrong method, 413 body too large, 500 internal).
//   GET  /api/health            {status: "ok", node_id, uptime_s, shards, leaders}
//   GET  /api/stats             host, engine, transport and request counters
//   GET  /api/cluster/nodes     {nodes: [{id, address, state, replicas, leaders, ...}]}: every
//                               member's state (up, suspect, down, joining, draining) and the
//                               replica and leader counts it reports
//   DELETE /api/cluster/nodes/:id  decommission: drain the node's replicas, then remove it
//   POST /api/cluster/rebalance one rebalancing round now (it also runs by itself)
//   GET  /api/cluster/shards    {epoch, reshard, shards: [{shard_id, slot, hash_lo, hash_hi,
//                               replicas, retired}]}: the placement's routing table
//   POST /api/cluster/shards/:id/split   cut the shard's key space in two (new shard on the same
//                               replicas); answers when done: {op, shard_ids, epoch, moved_keys, ...}
//   POST /api/cluster/shards/:id/merge {"with": N}  move shard N's keys into :id (adjacent
//                               pieces of one slot) and retire N; 404 unknown shard, 409 not
//                               adjacent or another split/merge running
//   GET  /api/cluster/replicas  this node's replicas: role, term, commit/applied, members,
//                               replication progress (leaders), rebalancer counters
//   POST /api/storage/flush     flush the memtable to an SSTable
//   POST /api/storage/compact   compact the whole key space
//   POST /api/storage/backup    {"path": "..."}: a restorable backup of the node at path
//                               (engine checkpoint + Raft state, docs/BACKUP.md); 400 bad or
//                               missing path / path inside the data directory, 409 path exists
//                               and is not empty
import http from 'node:http';
import { closeHttp, listenHttp } from './http-listen.js';
import { BackupError, backupNode } from '../store/backup.js';
import type { CacheNode } from './node.js';
import { META_SHARD_ID } from '../ring/index.js';
import { StateRole } from '../raft/index.js';
import { describeShards } from './reshard.js';

const MAX_BODY = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class AdminHttp {
  private readonly server: http.Server;

  constructor(private readonly node: CacheNode) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  listen(host: string, port: number): Promise<number> {
    return listenHttp(this.server, host, port);
  }

  close(): Promise<void> {
    return closeHttp(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const route = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
      const body = await readBody(req);
      const out = await this.route(route, url.pathname, body);
      send(res, 200, out);
    } catch (err) {
      if (err instanceof HttpError) send(res, err.status, { error: { code: err.code, message: err.message } });
      else send(res, 500, { error: { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) } });
    }
  }

  private async route(route: string, pathname: string, body: string): Promise<unknown> {
    const n = this.node;
    const host = n.store;
    switch (route) {
      case 'GET /api/health':
        return { status: 'ok', node_id: n.config.cluster.node_id, uptime_s: Math.round((Date.now() - n.startedAt) / 1000), shards: host.shardIds().filter((s) => s !== META_SHARD_ID).length, leaders: n.leaderCounts()[n.config.cluster.node_id] ?? 0 };
      case 'GET /api/stats':
        return {
          node_id: n.config.cluster.node_id,
          ports: { client: n.ports.client, peer: n.ports.peer, http: n.ports.http, metrics: n.ports.metrics === 0 ? null : n.ports.metrics },
          requests: { ...n.requests, in_flight: n.inFlightRequests },
          connections: { ...n.connectionStats, max: n.config.server.max_connections },
          host: host.stats,
          raft_log: { ...host.log.stats, syncs: host.log.syncs, syncMs: host.log.walStats.syncMs, writeMs: host.log.walStats.writeMs },
          transport: n.peerTransport.stats,
          engine: host.engine.stats(),
          reshard: n.reshardStats,
          memory: process.memoryUsage(),
        };
      case 'GET /api/cluster/nodes':
        return n.clusterNodes();
      case 'GET /api/cluster/replicas':
        return {
          node_id: n.config.cluster.node_id,
          replicas: host.shardIds().map((shard) => {
            const st = host.replicaStatus(shard);
            return {
              shard: shard === META_SHARD_ID ? 'meta' : shard,
              role: StateRole[st.role],
              leader: st.lead,
              term: st.term,
              commit: st.commit,
              applied: st.applied,
              last_index: st.lastIndex,
              voters: st.confState.voters,
              learners: st.confState.learners,
              progress: Object.fromEntries([...st.progress].map(([id, p]) => [id, p])),
            };
          }),
          rebalancer: n.clusterController?.rebalancer.stats ?? null,
        };
      case 'POST /api/cluster/rebalance':
        return { ok: true, ...(await n.rebalanceNow()) };
      case 'POST /api/storage/flush':
        await host.engine.flush();
        return { ok: true };
      case 'POST /api/storage/compact':
        await host.engine.compact();
        return { ok: true };
      case 'POST /api/storage/backup': {
        const j = parseJson(body);
        const p = (j as { path?: unknown } | null)?.path;
        if (typeof p !== 'string' || p === '') throw new HttpError(400, 'INVALID_ARGUMENT', 'body must be {"path": "<directory>"}');
        try {
          const cluster = { shard_count: n.shardMap.shardCount, replication_factor: n.shardMap.replicationFactor, members: n.members.map((m) => ({ node_id: m.nodeId, raft_id: m.raftId, peer_address: m.peerAddress })) };
          const m = await backupNode(host, n.config.server.data_directory, p, { nodeId: n.config.cluster.node_id, cluster });
          return { ok: true, path: p, created_at: m.created_at, engine: m.engine, shards: m.shards.length, copied_files: m.copied_files };
        } catch (err) {
          if (err instanceof BackupError) throw new HttpError(err.code === 'TARGET_NOT_EMPTY' ? 409 : err.code === 'INVALID_ARGUMENT' ? 400 : 500, err.code, err.message);
          throw new HttpError(500, 'BACKUP_FAILED', err instanceof Error ? err.message : String(err));
        }
      }
    }
    if (route === 'GET /api/cluster/shards') {
      const v = n.metadata;
      return { epoch: v?.placement.epoch ?? 0, reshard: v?.placement.reshard ?? null, shards: describeShards(v) };
    }
    const reshard = /^POST \/api\/cluster\/shards\/([^/]+)\/(split|merge)$/.exec(route);
    if (reshard) {
      const id = Number(reshard[1]);
      if (!Number.isInteger(id) || id < 0) throw new HttpError(400, 'INVALID_ARGUMENT', `shard id must be a non-negative integer, got ${JSON.stringify(reshard[1])}`);
      let other: number | undefined;
      if (reshard[2] === 'merge') {
        const b = parseJson(body) as { with?: unknown } | null;
        if (!b || !Number.isInteger(b.with) || (b.with as number) < 0) throw new HttpError(400, 'INVALID_ARGUMENT', 'merge needs a body {"with": <shard id>}: the adjacent shard merged into this one');
        other = b.with as number;
      }
      try {
        return { ok: true, ...(await n.reshardCall({ op: reshard[2] as 'split' | 'merge', shard_id: id, ...(other !== undefined ? { other_shard_id: other } : {}) })) };
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'INTERNAL';
        const status = code === 'NOT_FOUND' ? 404 : code === 'FAILED_PRECONDITION' ? 409 : code === 'INVALID_ARGUMENT' ? 400 : 503;
        throw new HttpError(status, code, err instanceof Error ? err.message : String(err));
      }
    }
    const del = /^DELETE \/api\/cluster\/nodes\/([^/]+)$/.exec(route);
    if (del) {
      try {
        return { ok: true, ...((await n.decommissionNode(decodeURIComponent(del[1]!))) as object) };
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'INTERNAL';
        const status = code === 'NOT_FOUND' ? 404 : code === 'FAILED_PRECONDITION' ? 409 : code === 'INVALID_ARGUMENT' ? 400 : 503;
        throw new HttpError(status, code, err instanceof Error ? err.message : String(err));
      }
    }
    const known = ['/api/cluster/shards', '/api/cluster/replicas', '/api/cluster/rebalance', '/api/health', '/api/stats', '/api/cluster/nodes', '/api/storage/flush', '/api/storage/compact', '/api/storage/backup'];
    if (known.includes(pathname.replace(/\/+$/, ''))) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${route.split(' ')[0]} is not allowed on ${pathname}`);
    throw new HttpError(404, 'NOT_FOUND', `no route ${route}`);
  }
}

function parseJson(body: string): unknown {
  if (body.trim() === '') return null;
  try {
    return JSON.parse(body);
  } catch (err) {
    throw new HttpError(400, 'INVALID_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, 'BODY_TOO_LARGE', `request body exceeds ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
