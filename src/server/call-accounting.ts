// Per-call accounting of the client gRPC API, wrapped around each unary handler before the
// request pipeline runs: the server.max_connections admission check (client-listener.ts), the
// in-flight gauge, and the request count / latency metrics by method and final gRPC status.
// Kept out of the router so that every handler — unary today, streaming later — can be wrapped
// the same way without touching its logic.
import * as grpc from '@grpc/grpc-js';
import type { NodeMetrics } from '../monitoring/metrics.js';
import type { ClientListener } from './client-listener.js';

export interface CallAccounting {
  listener: ClientListener | undefined;
  metrics: NodeMetrics | undefined;
}

/** Name of a gRPC status code ("OK", "RESOURCE_EXHAUSTED", ...). */
export function statusName(code: grpc.status | undefined): string {
  return grpc.status[code ?? grpc.status.UNKNOWN] ?? String(code);
}

/** Wraps a unary handler: refuses calls of over-limit connections, times and counts the rest. */
export function accountedUnary(method: string, acc: CallAccounting, handler: grpc.handleUnaryCall<unknown, unknown>): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const m = acc.metrics;
    const finish = (code: grpc.status | undefined): void => {
      m?.observeRequest(method, statusName(code), Number(process.hrtime.bigint() - started) / 1e9);
    };
    if (acc.listener !== undefined && !acc.listener.admits(call.getPeer())) {
      const refusal = acc.listener.refusal();
      finish(refusal.code);
      callback(refusal);
      return;
    }
    m?.requestStarted();
    let done = false;
    handler(call, (err, value, trailer, flags) => {
      if (!done) {
        done = true;
        m?.requestFinished();
        finish(err ? (err.code ?? grpc.status.UNKNOWN) : grpc.status.OK);
      }
      callback(err, value, trailer, flags);
    });
  };
}
