// The store under load, behind one small interface so the driver does not know which it is:
//   distcache  CacheClient from src/client: put, and get with its default (linearizable) consistency
//   etcd       the etcd3 package: put, and a range with serializable=false (etcd's default), which
//              etcd serves linearizably (ReadIndex through the leader)
// Both clients retry on their own; the driver counts what still fails, by errorCode().
import type { Etcd3 } from 'etcd3';
import { CacheClient } from '../../src/client/index.js';
import type { Target } from './options.js';

export interface Backend {
  readonly target: Target;
  put(key: string, value: Buffer): Promise<void>;
  /** Resolves true when the key was found. */
  get(key: string): Promise<boolean>;
  close(): Promise<void>;
}

class DistcacheBackend implements Backend {
  readonly target = 'distcache';
  constructor(private readonly c: CacheClient) {}
  async put(key: string, value: Buffer): Promise<void> {
    await this.c.put(key, value);
  }
  async get(key: string): Promise<boolean> {
    return (await this.c.get(key)).found;
  }
  async close(): Promise<void> {
    this.c.close();
  }
}

class EtcdBackend implements Backend {
  readonly target = 'etcd';
  constructor(private readonly c: Etcd3) {}
  async put(key: string, value: Buffer): Promise<void> {
    await this.c.put(key).value(value).exec();
  }
  async get(key: string): Promise<boolean> {
    // serializable(false) is the default; spelled out because it is what makes the read linearizable
    return (await this.c.get(key).serializable(false).buffer()) !== null;
  }
  async close(): Promise<void> {
    this.c.close();
  }
}

export async function openBackend(target: Target, endpoints: string[], timeoutMs: number): Promise<Backend> {
  if (target === 'distcache') return new DistcacheBackend(await CacheClient.connect(endpoints, { timeoutMs }));
  // etcd3 is a dev dependency: loaded only for --target etcd, so an installed cache-bench
  // runs against distcache without it
  const { Etcd3 } = await import('etcd3');
  const c = new Etcd3({
    hosts: endpoints.map((e) => `http://${e}`),
    dialTimeout: timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    grpcOptions: { 'grpc.max_send_message_length': 64 << 20, 'grpc.max_receive_message_length': 64 << 20 },
  });
  try {
    await c.maintenance.status(); // fail fast with a clear error when nothing listens
  } catch (e) {
    c.close();
    throw e;
  }
  return new EtcdBackend(c);
}

/** A short stable name for an error: the client's code (distcache), else the class name (etcd3). */
export function errorCode(e: unknown): string {
  if (typeof e === 'object' && e !== null) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const name = (e as { constructor?: { name?: unknown } }).constructor?.name;
    if (typeof name === 'string' && name !== '' && name !== 'Error' && name !== 'Object') return name;
    if (e instanceof Error) return e.name;
  }
  return 'UNKNOWN';
}
