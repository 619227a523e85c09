// A checked client workload for cluster fault tests: CacheClients run random get / put /
// putIfVersionMatch / remove on a few keys (so operations conflict), every operation recorded
// with its invocation and response time (HistoryRecorder); an operation that failed with an
// unknown outcome (timeout, PROPOSAL_DROPPED, connection lost after sending) is recorded as such
// and the checker may let it take effect or not. "Witness" keys are written once each; every
// acknowledged one must stay readable at its version. finish() reads every history key through
// every given node into the history, checks the witnesses, and checks the history per key
// (src/testing/linearizability.ts), printing the seed and a counterexample on failure.
import { expect } from 'chai';
import { type CacheClient, ClientError, type Key } from '../../src/client/index.js';
import { HistoryRecorder, checkHistory, type OpOutput } from '../../src/testing/linearizability.js';
import { Rng } from '../../src/util/rng.js';
import { type KvClient, connect, eventually, key } from './harness.js';

/** History keys: three share a primary (one shard), one elsewhere. */
export const KEYS: Record<string, Key> = {
  a: { primary: 'lin', secondary: 'a' },
  b: { primary: 'lin', secondary: 'b' },
  c: { primary: 'lin', secondary: 'c' },
  d: 'lin-other',
};
const NAMES = Object.keys(KEYS);
/** Errors that are bugs of the test, not outcomes of a faulty cluster. */
const TEST_BUGS = new Set(['INVALID_ARGUMENT', 'KEY_TOO_LARGE', 'VALUE_TOO_LARGE', 'NOT_SUPPORTED']);

/** A linearizable Get through one node; undefined when the node holds no replica of the key's
 *  shard (it does not route internally). Other errors throw (and are retried by the caller). */
async function getOrSkip(kv: KvClient, k: object): Promise<Record<string, unknown> | undefined> {
  try {
    return await kv.call('Get', { key: k }, 3000);
  } catch (e) {
    if (e instanceof Error && /has no replica of shard/.test(e.message)) return undefined;
    throw e;
  }
}

export function testSeed(): number {
  return process.env['SEED'] !== undefined ? Number(process.env['SEED']) : Math.floor(Math.random() * 2 ** 31);
}

export class LinWorkload {
  readonly rec = new HistoryRecorder();
  readonly errors = new Map<string, number>();
  /** witness key -> acknowledged version */
  readonly witnesses = new Map<string, number>();
  private stopped = false;
  private workers: Array<Promise<void>> = [];

  constructor(
    readonly seed: number,
    private readonly clients: CacheClient[],
  ) {}

  start(): void {
    const rng = new Rng(this.seed);
    this.workers = this.clients.map((c, i) => this.worker(i, c, rng.fork()));
  }

  /** Stops the clients' loops and waits for their last operations. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }

  get acknowledgedOps(): number {
    return this.rec.history().filter((o) => o.output !== 'unknown').length;
  }

  private async worker(id: number, c: CacheClient, r: Rng): Promise<void> {
    const lastSeen = new Map<string, number>(); // version this client last saw per key
    for (let n = 0; !this.stopped; n++) {
      if (r.chance(0.08)) {
        const wk = `w:${id}:${n}`;
        try {
          this.witnesses.set(wk, (await c.put(wk, wk)).version);
        } catch {
          /* unknown outcome: not a witness */
        }
        continue;
      }
      const name = r.pick(NAMES);
      const k = KEYS[name]!;
      const value = `${id}.${n}`;
      const dice = r.next();
      let kind: 'get' | 'put' | 'cas' | 'delete';
      let expected = 0;
      if (dice < 0.4) kind = 'get';
      else if (dice < 0.7) kind = 'put';
      else if (dice < 0.93) {
        kind = 'cas';
        // mostly the version this client saw last (often stale by now), sometimes "absent"
        expected = r.chance(0.8) ? (lastSeen.get(name) ?? 0) : 0;
      } else kind = 'delete';
      const h = this.rec.invoke(id, name, kind, kind === 'put' ? { value } : kind === 'cas' ? { value, expectedVersion: expected } : {});
      try {
        let out: OpOutput;
        if (kind === 'get') {
          const g = await c.get(k);
          out = g.found ? { ok: true, found: true, value: g.value!.toString(), version: g.version! } : { ok: true, found: false };
          lastSeen.set(name, g.found ? g.version! : 0);
        } else if (kind === 'put') {
          const p = await c.put(k, value);
          out = { ok: true, version: p.version };
          lastSeen.set(name, p.version);
        } else if (kind === 'cas') {
          const p = await c.putIfVersionMatch(k, value, expected);
          out = p.ok ? { ok: true, version: p.version } : { ok: false, version: p.currentVersion };
          lastSeen.set(name, p.ok ? p.version : p.currentVersion);
        } else {
          const d = await c.remove(k);
          out = { ok: true, found: d.found };
          lastSeen.set(name, 0);
        }
        this.rec.complete(h, out);
      } catch (e) {
        const code = e instanceof ClientError ? e.code : 'NON_CLIENT_ERROR';
        if (TEST_BUGS.has(code) || !(e instanceof ClientError)) {
          this.stopped = true; // a bug of this test: end the run
          throw e;
        }
        // Not provably a no-op: it may have taken effect, now or later.
        this.rec.fail(h);
        this.errors.set(`${kind}:${code}`, (this.errors.get(`${kind}:${code}`) ?? 0) + 1);
      }
    }
  }

  /**
   * Final reads of every history key through every node (linearizable reads), recorded into the
   * history; every witness readable at its version through every node; then the check.
   * `events` is printed with the summary.
   */
  async finish(nodes: Array<{ id: string; address: string }>, events: string[] = []): Promise<void> {
    const raw: KvClient[] = nodes.map((n) => connect(n.address));
    try {
      for (const name of NAMES) {
        const k = KEYS[name]!;
        const pk = typeof k === 'string' ? key(k) : key(k.primary.toString(), k.secondary!.toString());
        for (let i = 0; i < nodes.length; i++) {
          const h = this.rec.invoke(`final@${nodes[i]!.id}`, name, 'get');
          // nodes hold a subset of the shards (4+ nodes): no answer from those, at once
          const g = await eventually(() => getOrSkip(raw[i]!, pk), 20000, 100);
          if (!g) continue;
          this.rec.complete(h, g['found'] ? { ok: true, found: true, value: (g['value'] as Buffer).toString(), version: g['version'] as number } : { ok: true, found: false });
        }
      }
      for (const [wk, version] of this.witnesses) {
        let readers = 0;
        for (let i = 0; i < nodes.length; i++) {
          const g = await eventually(() => getOrSkip(raw[i]!, key(wk)), 20000, 100);
          if (!g) continue;
          readers++;
          expect(g, `witness ${wk} on ${nodes[i]!.id} (seed ${this.seed})`).to.include({ found: true, version });
        }
        expect(readers, `witness ${wk}: read through some node`).to.be.greaterThan(0);
      }
    } finally {
      for (const r of raw) r.close();
    }
    const history = this.rec.history();
    const unknown = history.filter((o) => o.output === 'unknown').length;
    const res = checkHistory(history, { timeoutMs: 30000 });
    console.log(
      `      ${history.length} ops (${unknown} unknown outcome), ${this.witnesses.size} witnesses; errors ${JSON.stringify(Object.fromEntries(this.errors))}; ` +
        `check: ${res.ok === true ? 'linearizable' : res.ok === false ? 'NOT linearizable' : 'undecided'} in ${Math.round(res.stats.ms)} ms, ${res.stats.states} states`,
    );
    if (events.length > 0) console.log(`      ${events.join('; ')}`);
    if (res.ok === false) console.log(`      SEED=${this.seed}: counterexample\n${res.explanation}`);
    if (res.ok === 'unknown') console.log(`      SEED=${this.seed}: ${res.reason}`);
    expect(res.ok, `history not linearizable (SEED=${this.seed}); see the counterexample above`).to.equal(true);
  }
}
