// Loads proto/distcache.proto at run time (@grpc/proto-loader; no generated code) and exposes the
// service definitions plus the message shapes the server handles.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** proto/distcache.proto, found by walking up from this module (src/server or dist/src/server). */
export function protoPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'proto', 'distcache.proto');
    if (existsSync(p)) return p;
    dir = path.dirname(dir);
  }
  throw new Error('proto/distcache.proto not found above ' + fileURLToPath(import.meta.url));
}

export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export interface Services {
  keyValue: grpc.ServiceClientConstructor;
  raftTransport: grpc.ServiceClientConstructor;
  clusterAdmin: grpc.ServiceClientConstructor;
}

let cached: Services | undefined;

export function loadServices(): Services {
  if (cached) return cached;
  const def = protoLoader.loadSync(protoPath(), LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { distcache: { v1: Record<string, grpc.ServiceClientConstructor> } };
  const keyValue = pkg.distcache.v1['KeyValue'];
  const raftTransport = pkg.distcache.v1['RaftTransport'];
  const clusterAdmin = pkg.distcache.v1['ClusterAdmin'];
  if (!keyValue || !raftTransport || !clusterAdmin) throw new Error('distcache.proto lacks KeyValue, RaftTransport or ClusterAdmin');
  cached = { keyValue, raftTransport, clusterAdmin };
  return cached;
}

// ----- message shapes (as proto-loader hands them over with LOADER_OPTIONS)

export interface PKey {
  primary: Buffer;
  secondary: Buffer;
}
export type PConsistency = 'LINEARIZABLE' | 'FOLLOWER';
export interface PRaftBatch {
  from_node: string;
  from_raft_id: number;
  client_address: string;
  /** the sender's advertised peer address ('' = not sent) */
  peer_address: string;
  payload: Buffer;
}

export interface PMember {
  node_id: string;
  raft_id: number;
  peer_address: string;
  client_address: string;
}
export interface PJoinResponse {
  raft_id: number;
  members: PMember[];
  shard_count: number;
  replication_factor: number;
  cluster_id: string;
}
