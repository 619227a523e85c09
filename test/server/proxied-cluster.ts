// A cache-server cluster whose nodes reach each other only through NetProxy links, one per
// directed pair: node A's --initial-cluster lists B at the port of proxy "A->B". The server
// accepts these differing views because members are identified by node id (raft ids are the
// positions of the sorted ids, the ring is built from ids) and a node's own entry still names its
// real peer port; only the addresses a node dials differ. Client ports are reached directly.
//
// isolate(id) cuts every link from and to one node, partition(groups) cuts the links between
// groups, heal() restores all of them; the processes are never touched by a partition.
import { NetProxy, type BlockMode } from './net-proxy.js';
import { ServerProc, freePorts, rmDir, tmpDir } from './harness.js';

export interface ProxiedNode {
  id: string;
  dir: string;
  /** Client gRPC address, 127.0.0.1:port. */
  address: string;
  proc: ServerProc;
}

export class ProxiedCluster {
  private constructor(
    readonly nodes: ProxiedNode[],
    /** `${from}->${to}` -> the proxy `from` dials to reach `to` */
    readonly links: Map<string, NetProxy>,
  ) {}

  /** Allocates ports, starts the proxies, builds (does not start) the node processes. */
  static async create(ids: readonly string[], shardCount: number, env: Record<string, string> = {}): Promise<ProxiedCluster> {
    const ports = await freePorts(ids.length * 4);
    const peerPort = (i: number): number => ports[i * 4 + 1]!;
    const links = new Map<string, NetProxy>();
    for (let i = 0; i < ids.length; i++) {
      for (let j = 0; j < ids.length; j++) {
        if (i !== j) links.set(`${ids[i]}->${ids[j]}`, await NetProxy.start(`${ids[i]}->${ids[j]}`, peerPort(j)));
      }
    }
    const nodes = ids.map((id, i) => {
      const view = ids.map((other, j) => `${other}=127.0.0.1:${i === j ? peerPort(i) : links.get(`${id}->${other}`)!.port}`).join(',');
      const dir = tmpDir();
      const [client, peer, httpPort, metrics] = ports.slice(i * 4, i * 4 + 4);
      const proc = new ServerProc({
        args: ['--node-id', id, '--port', String(client), '--peer-port', String(peer), '--http-port', String(httpPort), '--metrics-port', String(metrics), '--data-dir', dir, '--initial-cluster', view],
        env: { DISTCACHE_CLUSTER_SHARD_COUNT: String(shardCount), DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000', ...env },
      });
      return { id, dir, address: `127.0.0.1:${client}`, proc };
    });
    return new ProxiedCluster(nodes, links);
  }

  node(id: string): ProxiedNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.proc.start()));
  }

  /** Cuts every link between a node of one group and a node of another. */
  partition(groups: readonly (readonly string[])[], mode: BlockMode = 'reset'): void {
    const groupOf = new Map<string, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const [name, proxy] of this.links) {
      const [from, to] = name.split('->') as [string, string];
      if (groupOf.get(from) !== groupOf.get(to)) proxy.block(mode);
    }
  }

  /** Cuts `id` off from every other node, both directions. */
  isolate(id: string, mode: BlockMode = 'reset'): void {
    this.partition([[id], this.nodes.map((n) => n.id).filter((x) => x !== id)], mode);
  }

  heal(): void {
    for (const p of this.links.values()) p.heal();
  }

  /** SIGKILLs the nodes, closes the proxies, removes the data directories. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.proc.kill('SIGKILL')));
    await Promise.all([...this.links.values()].map((p) => p.close()));
    for (const n of this.nodes) rmDir(n.dir);
  }
}
