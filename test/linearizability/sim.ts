// Builders for hand-written histories and a simulator producing histories that are linearizable
// by construction: a real sequential register applies each op at a linearization point, and the
// op's invocation / response are placed randomly around that point, with clients issuing their
// ops one at a time.
import type { Operation, OpOutput } from '../../src/testing/linearizability.js';

// ---- hand-written histories -------------------------------------------------------------------

export function put(c: number, value: string, inv: number, ret: number, version?: number, key = 'k'): Operation {
  return { clientId: c, key, kind: 'put', input: { value }, output: { ok: true, version }, invokeTime: inv, returnTime: ret };
}

/** value null = not found. */
export function get(c: number, inv: number, ret: number, value: string | null, version?: number, key = 'k'): Operation {
  const output: OpOutput = value === null ? { ok: true, found: false } : { ok: true, found: true, value, version };
  return { clientId: c, key, kind: 'get', input: {}, output, invokeTime: inv, returnTime: ret };
}

export function del(c: number, inv: number, ret: number, found?: boolean, version?: number, key = 'k'): Operation {
  return { clientId: c, key, kind: 'delete', input: {}, output: { ok: true, found, version }, invokeTime: inv, returnTime: ret };
}

export function cas(
  c: number,
  expectedVersion: number,
  value: string,
  inv: number,
  ret: number,
  ok: boolean,
  version?: number,
  key = 'k',
): Operation {
  return { clientId: c, key, kind: 'cas', input: { expectedVersion, value }, output: { ok, version }, invokeTime: inv, returnTime: ret };
}

/** The same op with an unknown outcome (timed out at some point after `inv`). */
export function unknown(op: Operation): Operation {
  return { ...op, output: 'unknown', returnTime: Infinity };
}

// ---- simulation -------------------------------------------------------------------------------

export interface SimStep {
  client: number;
  key: number;
  kind: 'put' | 'get' | 'delete' | 'cas';
  /** Index into the value pool (or a unique value when the pool is empty). */
  value: number;
  /** Time from invocation to the linearization point, and from it to the response. */
  pre: number;
  post: number;
  /** Idle time before the linearization point, relative to the previous one. */
  gap: number;
  /** Extra version increment (ignored under plusOne). */
  versionGap: number;
  /** cas: 0 expect the current version, 1 expect 0, 2 expect current+1..  */
  casMode: number;
  /** Unknown outcome: the response is lost; `applied` says whether it took effect. */
  lost: boolean;
  applied: boolean;
}

export interface SimConfig {
  keys: string[];
  clients: number;
  valuePool?: string[];
  plusOne?: boolean;
}

interface Reg {
  present: boolean;
  value: string;
  version: number;
}

export function simulate(steps: readonly SimStep[], cfg: SimConfig): Operation[] {
  const free = new Array<number>(cfg.clients).fill(0);
  const regs = cfg.keys.map((): Reg => ({ present: false, value: '', version: 0 }));
  const ops: Operation[] = [];
  let lastLin = 0;
  steps.forEach((s, j) => {
    const client = s.client % cfg.clients;
    const keyIdx = s.key % cfg.keys.length;
    const key = cfg.keys[keyIdx]!;
    const reg = regs[keyIdx]!;
    const pool = cfg.valuePool ?? [];
    const value = pool.length > 0 ? pool[s.value % pool.length]! : `w${j}`;
    const lin = Math.max(lastLin + 1 + s.gap, free[client]! + s.pre + 1);
    lastLin = lin;
    const invokeTime = lin - s.pre;
    const returnTime = lin + s.post;
    free[client] = returnTime;
    const nextVersion = (): number => reg.version + 1 + (cfg.plusOne ? 0 : s.versionGap);
    const lost = s.lost && s.kind !== 'get';
    const apply = !lost || s.applied;
    let output: OpOutput;
    const input: Operation['input'] = {};
    switch (s.kind) {
      case 'get':
        output = reg.present ? { ok: true, found: true, value: reg.value, version: reg.version } : { ok: true, found: false };
        break;
      case 'put': {
        input.value = value;
        const v = nextVersion();
        if (apply) Object.assign(reg, { present: true, value, version: v });
        output = { ok: true, version: v };
        break;
      }
      case 'delete': {
        const found = reg.present;
        if (found) {
          const v = nextVersion();
          if (apply) Object.assign(reg, { present: false, value: '', version: v });
          output = { ok: true, found, version: v };
        } else output = { ok: true, found };
        break;
      }
      case 'cas': {
        const current = reg.present ? reg.version : 0;
        const expected = s.casMode === 0 ? current : s.casMode === 1 ? 0 : current + s.casMode - 1;
        input.value = value;
        input.expectedVersion = expected;
        if (expected === current) {
          const v = nextVersion();
          if (apply) Object.assign(reg, { present: true, value, version: v });
          output = { ok: true, version: v };
        } else output = { ok: false, version: current };
        break;
      }
    }
    ops.push({
      clientId: client,
      key,
      kind: s.kind,
      input,
      output: lost ? 'unknown' : output,
      invokeTime,
      returnTime: lost ? Infinity : returnTime,
    });
  });
  return ops;
}
