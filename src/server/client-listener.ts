// ClientListener: the client gRPC port of a node, and server.max_connections.
//
// grpc-js has no public hook to count or refuse connections of a port it binds itself, but it
// has a public way to be handed connections: Server.createConnectionInjector(). So the node
// owns the listening net.Server, counts the TCP connections it accepts, and injects each one into
// grpc-js (no proxying: grpc-js runs its HTTP/2 session on the accepted socket itself).
//
// The limit (see docs/CONFIG.md, server.max_connections):
//  - up to max_connections connections are SERVED;
//  - the next WAITING_ROOM connections are accepted and injected too, but every call on them is
//    answered RESOURCE_EXHAUSTED "server.max_connections (N) reached" — a clear error instead of
//    a bare connection reset; when a served connection closes, the oldest waiting one is promoted
//    and served from its next call on;
//  - connections beyond that are closed right after accept (counted as refused), which bounds
//    the sockets a flood can hold.
// Calls are matched to their connection by call.getPeer(), which grpc-js builds as
// `${socket.remoteAddress}:${socket.remotePort}` of the session's socket — the socket accepted
// here — so the key is computed the same way on both sides.
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';

/** Over-limit connections kept open (answered RESOURCE_EXHAUSTED) before new ones are closed. */
export const WAITING_ROOM = 64;

export interface ConnectionStats {
  served: number;
  waiting: number;
  accepted: number;
  refused: number;
}

export class ClientListener {
  private readonly listener: net.Server;
  private readonly injector: grpc.ConnectionInjector;
  private readonly served = new Set<string>();
  /** insertion order = arrival order: the oldest is promoted first */
  private readonly waiting = new Set<string>();
  private accepted = 0;
  private refused = 0;

  constructor(
    server: grpc.Server,
    readonly maxConnections: number,
  ) {
    this.injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    this.listener = net.createServer((socket) => this.onConnection(socket));
  }

  /** Binds host:port (0 = any free port); resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(port, host, () => {
        this.listener.off('error', reject);
        resolve((this.listener.address() as net.AddressInfo).port);
      });
    });
  }

  private onConnection(socket: net.Socket): void {
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on('error', () => undefined); // grpc-js's session reports and closes; nothing to add
    if (this.served.size < this.maxConnections) this.served.add(key);
    else if (this.waiting.size < WAITING_ROOM) this.waiting.add(key);
    else {
      this.refused++;
      socket.destroy();
      return;
    }
    this.accepted++;
    socket.once('close', () => {
      if (this.served.delete(key)) {
        const next = this.waiting.values().next();
        if (next.done !== true) {
          this.waiting.delete(next.value);
          this.served.add(next.value);
        }
      } else this.waiting.delete(key);
    });
    this.injector.injectConnection(socket);
  }

  /** Whether a call from `peer` (call.getPeer()) may be served now. A peer this listener does
   *  not know (grpc-js answered 'unknown') is served: the limit fails open, never closed. */
  admits(peer: string): boolean {
    return !this.waiting.has(peer);
  }

  /** The status a refused call is answered with. */
  refusal(): Partial<grpc.StatusObject> {
    const md = new grpc.Metadata();
    md.set('error-code', 'MAX_CONNECTIONS');
    return { code: grpc.status.RESOURCE_EXHAUSTED, details: `server.max_connections (${this.maxConnections}) reached; retry later`, metadata: md };
  }

  get stats(): ConnectionStats {
    return { served: this.served.size, waiting: this.waiting.size, accepted: this.accepted, refused: this.refused };
  }

  /** Stops accepting. Open connections are grpc-js's sessions: Server.tryShutdown/forceShutdown
   *  close them. */
  stopAccepting(): void {
    this.listener.close();
  }
}
