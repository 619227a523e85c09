// Transport (src/store/transport.ts) over gRPC: the RaftTransport service.
//
// - Listens on the node's peer port (server.listen_address:server.peer_port) and hands received
//   batches to the host.
// - Dials each peer at its ADVERTISED peer address (cluster.members, from initial_cluster), one
//   long-lived client stream per peer; every host send() of a turn is one RaftBatch on it (the
//   host already batches all groups' messages per destination node per turn).
// - A broken or refused stream: the batch is dropped (Raft retransmits), the host is told
//   onUnreachable(node), and the stream is reopened after an exponential backoff (50 ms .. 2 s);
//   sends during the backoff are dropped and reported unreachable once per backoff period.
// - Every batch carries the sender's node id and advertised client address, so receivers learn
//   where to redirect clients (leader hints) without a separate exchange.
import * as grpc from '@grpc/grpc-js';
import type { GroupMessage, Transport } from '../store/transport.js';
import { type PRaftBatch, loadServices } from './proto.js';
import { decodeBatch, encodeBatchHeader, encodeBatchMessage } from './raft-codec.js';

export interface PeerInfo {
  nodeId: string;
  raftId: number;
  /** host:port of the peer's RaftTransport listener */
  peerAddress: string;
}

export interface GrpcTransportOptions {
  self: { nodeId: string; raftId: number; clientAddress: string; peerAddress?: string };
  peers: readonly PeerInfo[];
  /** host:port to bind the RaftTransport server to (port 0 = any) */
  bind: string;
  /** called with a peer's client address whenever a batch from it arrives */
  onPeerClientAddress?: (raftId: number, nodeId: string, clientAddress: string) => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The RaftTransport client with the stream's messages serialized here (encodeBatchMessage)
 *  instead of by protobufjs: same wire format, one copy of the batch fewer per send. */
let rawClient: grpc.ServiceClientConstructor | undefined;
function rawTransportClient(): grpc.ServiceClientConstructor {
  if (rawClient) return rawClient;
  const { raftTransport } = loadServices();
  const stream = raftTransport.service['Stream'];
  if (!stream) throw new Error('distcache.proto: RaftTransport lacks Stream');
  rawClient = grpc.makeGenericClientConstructor({ Stream: { ...stream, requestSerialize: (b: Buffer) => b } }, 'RaftTransport');
  return rawClient;
}

interface Peer {
  info: PeerInfo;
  client: grpc.Client;
  stream: grpc.ClientWritableStream<Buffer> | undefined;
  failures: number;
  retryAt: number;
  reportedAt: number;
}

export class GrpcTransport implements Transport {
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES });
  private readonly peers = new Map<number, Peer>();
  private receive: ((from: number, batch: GroupMessage[]) => void) | undefined;
  private unreachable: ((node: number) => void) | undefined;
  private closed = false;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  /** bound peer port (after start) */
  port = 0;
  /** this node's fields of every RaftBatch it sends, encoded once */
  private readonly header: Buffer;
  readonly stats = { batchesSent: 0, batchesDropped: 0, messagesDropped: 0, batchesReceived: 0, badBatches: 0, reconnects: 0 };

  constructor(private readonly o: GrpcTransportOptions) {
    this.minBackoff = o.minBackoffMs ?? 50;
    this.maxBackoff = o.maxBackoffMs ?? 2000;
    this.header = encodeBatchHeader({ fromNode: o.self.nodeId, fromRaftId: o.self.raftId, clientAddress: o.self.clientAddress, peerAddress: o.self.peerAddress ?? '' });
    const { raftTransport } = loadServices();
    this.server.addService(raftTransport.service, {
      Stream: (call: grpc.ServerReadableStream<PRaftBatch, object>, cb: grpc.sendUnaryData<object>) => {
        call.on('data', (b: PRaftBatch) => this.onBatch(b));
        call.on('end', () => cb(null, {}));
        call.on('error', () => {
          /* peer went away; it reconnects */
        });
      },
    });
    for (const p of o.peers) this.addPeer(p);
  }

  /** Adds a peer, or re-points one whose address changed (members come and go at run time). */
  addPeer(p: PeerInfo): void {
    if (p.raftId === this.o.self.raftId || this.closed) return;
    const old = this.peers.get(p.raftId);
    if (old && old.info.peerAddress === p.peerAddress) return;
    if (old) {
      old.stream?.end();
      old.client.close();
    }
    const client = new (rawTransportClient())(p.peerAddress, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.initial_reconnect_backoff_ms': this.minBackoff,
      'grpc.max_reconnect_backoff_ms': this.maxBackoff,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    });
    this.peers.set(p.raftId, { info: p, client, stream: undefined, failures: 0, retryAt: 0, reportedAt: 0 });
  }

  /** Binds the peer listener; resolves with the bound port. */
  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(this.o.bind, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) return reject(err);
        this.port = port;
        resolve(port);
      });
    });
  }

  private onBatch(b: PRaftBatch): void {
    if (this.closed || !this.receive) return;
    let batch: GroupMessage[];
    try {
      batch = decodeBatch(b.payload);
    } catch {
      this.stats.badBatches++;
      return;
    }
    this.stats.batchesReceived++;
    // hearing from a peer resets the backoff of our stream to it
    const peer = this.peers.get(b.from_raft_id);
    if (peer) peer.failures = 0;
    // a member we did not know of yet (it joined, or we restarted with an empty member list):
    // answer it at the peer address it advertises
    else if (b.peer_address) this.addPeer({ nodeId: b.from_node, raftId: b.from_raft_id, peerAddress: b.peer_address });
    if (b.client_address !== '') this.o.onPeerClientAddress?.(b.from_raft_id, b.from_node, b.client_address);
    this.receive(b.from_raft_id, batch);
  }

  send(toNode: number, batch: GroupMessage[]): void {
    if (this.closed) return;
    const peer = this.peers.get(toNode);
    if (!peer) return;
    const stream = this.streamOf(peer);
    if (!stream) {
      this.stats.batchesDropped++;
      this.stats.messagesDropped += batch.length;
      const now = Date.now();
      if (now - peer.reportedAt >= this.minBackoff) {
        peer.reportedAt = now;
        this.unreachable?.(toNode);
      }
      return;
    }
    stream.write(encodeBatchMessage(this.header, batch));
    this.stats.batchesSent++;
  }

  private streamOf(peer: Peer): grpc.ClientWritableStream<Buffer> | undefined {
    if (peer.stream) return peer.stream;
    if (Date.now() < peer.retryAt) return undefined;
    this.stats.reconnects++;
    const client = peer.client as unknown as { Stream(cb: grpc.requestCallback<object>): grpc.ClientWritableStream<Buffer> };
    const stream = client.Stream((err) => {
      if (peer.stream === stream) peer.stream = undefined;
      if (this.closed) return;
      if (err) {
        peer.failures++;
        peer.retryAt = Date.now() + Math.min(this.maxBackoff, this.minBackoff * 2 ** Math.min(peer.failures - 1, 10));
        this.unreachable?.(peer.info.raftId);
      }
    });
    stream.on('error', () => {
      /* reported through the callback */
    });
    peer.stream = stream;
    return stream;
  }

  onReceive(handler: (fromNode: number, batch: GroupMessage[]) => void): void {
    this.receive = handler;
  }

  onUnreachable(handler: (node: number) => void): void {
    this.unreachable = handler;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) {
      p.stream?.end();
      p.client.close();
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 500);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
