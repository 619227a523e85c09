// A TCP forwarder for tests: one listener on 127.0.0.1 that relays every accepted connection to a
// fixed target, and can cut the link without touching either process.
//
// Used as one proxy per DIRECTED pair of cache-server nodes (node A dials B's proxy "A->B"), so a
// partition is a set of blocked proxies. Cutting modes:
//   - block('reset'):     existing connections are destroyed, new ones are accepted and destroyed
//                         at once (the dialer sees a refused/reset connection quickly, as with an
//                         unreachable host that answers with RST).
//   - block('blackhole'): nothing is closed, but no byte moves in either direction: reading from
//                         both sides stops (TCP flow control backs up behind it, as behind a
//                         silently dropping link), new connections are accepted and held without
//                         dialing the target. heal() lets the held bytes through, as TCP
//                         retransmission would after a short partition.
//   - block('replies'):   requests still reach the target, its replies are held: the link that
//                         fails after the server got (and maybe applied) a request. Existing
//                         connections only; new ones are forwarded normally.
// heal() restores forwarding for new connections (and resumes held ones); resetConnections()
// closes the connections open now (RST or FIN) and leaves the listener as it is.
import net from 'node:net';

export type BlockMode = 'reset' | 'blackhole' | 'replies';

interface Link {
  client: net.Socket;
  upstream: net.Socket | undefined;
}

export class NetProxy {
  private readonly server: net.Server;
  private readonly links = new Set<Link>();
  private mode: 'reset' | 'blackhole' | undefined;
  /** block('replies') is in force on the links open when it was called */
  private held = false;
  readonly stats = { accepted: 0, refused: 0 };

  private constructor(
    readonly name: string,
    private readonly targetPort: number,
  ) {
    this.server = net.createServer((s) => this.accept(s));
  }

  /** Starts a proxy on a free (or given) local port forwarding to 127.0.0.1:targetPort. */
  static async start(name: string, targetPort: number, listenPort = 0): Promise<NetProxy> {
    const p = new NetProxy(name, targetPort);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(listenPort, '127.0.0.1', () => resolve());
    });
    return p;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get blocked(): boolean {
    return this.mode !== undefined || this.held;
  }

  private accept(client: net.Socket): void {
    client.on('error', () => {});
    if (this.mode === 'reset') {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const link: Link = { client, upstream: undefined };
    this.links.add(link);
    client.on('close', () => this.drop(link));
    if (this.mode === 'blackhole') {
      client.pause(); // held: dialed on heal()
      return;
    }
    this.dial(link);
  }

  private dial(link: Link): void {
    const up = net.connect(this.targetPort, '127.0.0.1');
    link.upstream = up;
    up.on('error', () => {});
    up.on('close', () => this.drop(link));
    // pipe() honours back-pressure in both directions; pausing a side (blackhole) stalls it.
    link.client.pipe(up);
    up.pipe(link.client);
    link.client.resume();
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.destroy();
    link.upstream?.destroy();
  }

  /** Cuts the link (see the file comment for the modes). */
  block(mode: BlockMode = 'reset'): void {
    if (mode === 'replies') {
      for (const link of this.links) {
        link.upstream?.unpipe();
        link.upstream?.pause();
      }
      this.held = true;
      return;
    }
    this.mode = mode;
    for (const link of [...this.links]) {
      if (mode === 'reset') {
        link.client.resetAndDestroy();
        link.upstream?.resetAndDestroy();
        this.drop(link);
      } else {
        // Stop reading on both sides; pipe() would resume a paused source on 'drain', so unpipe.
        link.client.unpipe();
        link.upstream?.unpipe();
        link.client.pause();
        link.upstream?.pause();
      }
    }
  }

  /** Closes every connection open now, with an RST ('rst') or an orderly FIN ('fin': what the
   *  peer of a killed process with no unread input sees); new ones are handled as before. */
  resetConnections(how: 'rst' | 'fin' = 'rst'): void {
    for (const link of [...this.links]) {
      if (how === 'rst') {
        link.client.resetAndDestroy();
        link.upstream?.resetAndDestroy();
      }
      this.drop(link);
    }
    this.held = false;
  }

  /** Restores the link: new connections are forwarded, held ones resume. */
  heal(): void {
    if (this.held) {
      this.held = false;
      for (const link of this.links) {
        if (!link.upstream) continue;
        link.upstream.pipe(link.client);
        link.upstream.resume();
      }
    }
    const was = this.mode;
    this.mode = undefined;
    if (was !== 'blackhole') return;
    for (const link of [...this.links]) {
      if (link.upstream === undefined) this.dial(link);
      else {
        link.client.pipe(link.upstream);
        link.upstream.pipe(link.client);
        link.client.resume();
        link.upstream.resume();
      }
    }
  }

  async close(): Promise<void> {
    for (const link of [...this.links]) this.drop(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
