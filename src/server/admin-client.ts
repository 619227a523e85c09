// Calls to the ClusterAdmin service of a cluster (joining through seeds, decommissioning,
// a drained node leaving): tries the given addresses, follows NOT_LEADER hints to the metadata
// leader, retries unreachable nodes with a short pause until the deadline. Errors that retrying
// cannot fix (ALREADY_EXISTS, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION) end the call at
// once as a KvError with the server's code and message.
import * as grpc from '@grpc/grpc-js';
import { sleep } from '../util/async.js';
import { type ErrorCode, KvError } from '../util/errors.js';
import { loadServices } from './proto.js';

const FINAL = new Set(['ALREADY_EXISTS', 'INVALID_ARGUMENT', 'NOT_FOUND', 'FAILED_PRECONDITION']);
const ATTEMPT_MS = 3000;

export async function clusterAdminCall<Res>(addresses: readonly string[], method: 'Join' | 'SetNodeState' | 'Reshard' | 'ShardCommand' | 'ShardScan', request: object, timeoutMs: number): Promise<Res> {
  const { clusterAdmin } = loadServices();
  const deadline = Date.now() + timeoutMs;
  const queue = [...addresses];
  let last = 'no address to call';
  for (let round = 0; Date.now() < deadline; round++) {
    const tried = new Set<string>();
    while (queue.length > 0 && Date.now() < deadline) {
      const addr = queue.shift()!;
      if (tried.has(addr)) continue;
      tried.add(addr);
      const client = new clusterAdmin(addr, grpc.credentials.createInsecure());
      try {
        return await new Promise<Res>((resolve, reject) => {
          const fn = (client as unknown as Record<string, (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method]!;
          fn.call(client, request, { deadline: Date.now() + Math.min(ATTEMPT_MS, Math.max(1, deadline - Date.now())) }, (err, res) => (err ? reject(err) : resolve(res)));
        });
      } catch (e) {
        const err = e as grpc.ServiceError;
        const code = String(err.metadata?.get('error-code')[0] ?? '');
        if (FINAL.has(code)) throw new KvError(code as ErrorCode, err.details || err.message);
        const hint = String(err.metadata?.get('leader-hint')[0] ?? '');
        if (hint !== '' && !tried.has(hint)) queue.unshift(hint);
        last = `${addr}: ${err.details || err.message}`;
      } finally {
        client.close();
      }
    }
    queue.push(...addresses);
    await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
  }
  throw new KvError('UNAVAILABLE', `cluster admin ${method} did not succeed within ${timeoutMs} ms (last: ${last})`);
}
