// The request pipeline in front of the router: an ordered chain of interceptors, each of which
// may inspect or reject a request, or wrap what comes after it (timing, audit). Order is fixed
// and explicit (DEFAULT_ORDER); later issues fill the auth / acl / audit / hot-key slots.
import * as grpc from '@grpc/grpc-js';

export type MethodName = 'Get' | 'Put' | 'Delete' | 'PutIfVersionMatch' | 'MultiGet' | 'MultiPut' | 'RangeScan' | 'ClusterInfo';

export interface RequestContext {
  readonly method: MethodName;
  readonly request: unknown;
  readonly metadata: grpc.Metadata;
  readonly peer: string;
  /** absolute ms (Date.now() clock) after which the request is answered DEADLINE_EXCEEDED */
  readonly deadline: number;
  /** free-form per-request values interceptors hand to later ones (e.g. the authenticated subject) */
  readonly attrs: Map<string, unknown>;
}

export type Next = () => Promise<unknown>;

export interface Interceptor {
  readonly name: string;
  handle(ctx: RequestContext, next: Next): Promise<unknown>;
}

/** A client-visible error: gRPC status plus a stable distcache code and detail metadata. */
export class ApiError extends Error {
  constructor(
    readonly status: grpc.status,
    readonly code: string,
    message: string,
    readonly details: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const invalid = (message: string, code = 'INVALID_ARGUMENT'): ApiError => new ApiError(grpc.status.INVALID_ARGUMENT, code, message);

/** Slots in order; the validation interceptor runs first so nothing later sees malformed input. */
export const DEFAULT_ORDER = ['validation', 'auth', 'acl', 'audit', 'hotkeys'] as const;

/** A placeholder for a slot that a later issue implements. */
export function passThrough(name: string): Interceptor {
  return { name, handle: (_ctx, next) => next() };
}

export class Pipeline {
  constructor(readonly interceptors: readonly Interceptor[]) {}

  run(ctx: RequestContext, terminal: (ctx: RequestContext) => Promise<unknown>): Promise<unknown> {
    const chain = this.interceptors;
    const step = (i: number): Promise<unknown> => {
      const ic = chain[i];
      if (!ic) return terminal(ctx);
      return ic.handle(ctx, () => step(i + 1));
    };
    return step(0);
  }
}
