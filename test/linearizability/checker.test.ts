// Hand-written histories for the key-value linearizability checker: accepted and rejected ones,
// delete and cas semantics, unknown outcomes, version models, budgets and the recorder.
import { expect } from 'chai';
import { checkHistory, HistoryRecorder, type CheckOptions, type CheckResult, type Operation } from '../../src/testing/linearizability.js';
import { cas, del, get, put, unknown } from './sim.js';

function accepts(h: Operation[], opts?: CheckOptions): void {
  const r = checkHistory(h, opts);
  expect(r.ok, r.ok === false ? r.explanation : r.ok === 'unknown' ? r.reason : '').to.equal(true);
}

function rejects(h: Operation[], opts?: CheckOptions): Extract<CheckResult, { ok: false }> {
  const r = checkHistory(h, opts);
  if (r.ok !== false) expect.fail(`expected a violation, got ${JSON.stringify(r)}`);
  expect(r.explanation).to.be.a('string').and.not.equal('');
  return r;
}

describe('linearizability checker: basics', () => {
  it('accepts the empty history and a sequential one', () => {
    accepts([]);
    accepts([get(1, 0, 1, null), put(1, 'a', 2, 3, 1), get(2, 4, 5, 'a', 1), put(2, 'b', 6, 7, 2), get(1, 8, 9, 'b', 2)]);
  });

  it('rejects a stale read after a completed write', () => {
    const r = rejects([put(1, 'a', 0, 10, 1), put(2, 'b', 20, 30, 2), get(3, 40, 50, 'a', 1)]);
    expect(r.key).to.equal('k');
    expect(r.explanation).to.include('#2').and.include('"a"').and.include('"b"');
  });

  it('accepts the old value when the read overlaps the write', () => {
    accepts([put(1, 'a', 0, 10, 1), put(2, 'b', 20, 30, 2), get(3, 25, 50, 'a', 1)]);
    accepts([put(1, 'a', 0, 10, 1), put(2, 'b', 20, 30, 2), get(3, 25, 50, 'b', 2)]);
  });

  it('rejects a read of a value never written', () => {
    const r = rejects([put(1, 'a', 0, 10, 1), get(2, 5, 15, 'zzz')]);
    expect(r.explanation).to.include('"zzz"');
  });

  it('rejects a read that sees a write before that write was invoked', () => {
    rejects([get(2, 0, 5, 'a'), put(1, 'a', 10, 20, 1)]);
  });

  it('rejects a lost update: two cas from the same version both succeed', () => {
    const h = [put(1, 'a', 0, 1, 1), cas(1, 1, 'x', 10, 20, true, 2), cas(2, 1, 'y', 12, 22, true, 3)];
    const r = rejects(h);
    expect(r.explanation).to.include('expected version 1');
  });

  it('rejects a lost update: overwritten write reappears with the newer version', () => {
    // b was written after a (with a higher version) and yet a is read back with b's version.
    rejects([put(1, 'a', 0, 10, 1), put(2, 'b', 20, 30, 2), get(3, 40, 50, 'a', 2)]);
  });

  it('accepts concurrent ops that are linearizable in exactly one order', () => {
    // put a and put b overlap each other and a read of a; b's version is higher, so the order
    // must be put a, get a, put b — and the final read must see b.
    const h = [put(1, 'a', 0, 100, 1), put(2, 'b', 10, 110, 2), get(3, 20, 120, 'a', 1), get(4, 200, 210, 'b', 2)];
    accepts(h);
    // The same, but the final read saw a: put b (the later version) would have to come first.
    rejects([put(1, 'a', 0, 100, 1), put(2, 'b', 10, 110, 2), get(3, 20, 120, 'a', 1), get(4, 200, 210, 'a', 1)]);
    // Versions contradict the only order the reads allow.
    rejects([put(1, 'a', 0, 100, 2), put(2, 'b', 10, 110, 1), get(3, 20, 120, 'a'), get(4, 200, 210, 'b')]);
  });

  it('treats equal timestamps as concurrent', () => {
    accepts([put(1, 'a', 0, 10, 1), get(2, 10, 20, null)]);
    rejects([put(1, 'a', 0, 10, 1), get(2, 11, 20, null)]);
  });

  it('partitions by key and reports the failing key', () => {
    const h = [
      put(1, 'a', 0, 10, 1, 'x'),
      put(1, 'a', 0, 10, 1, 'y'),
      get(2, 20, 30, 'a', 1, 'x'),
      get(2, 20, 30, null, undefined, 'y'),
    ];
    const r = rejects(h);
    expect(r.key).to.equal('y');
    expect(r.explanation).to.include('"y"');
  });

  it('ignores ops whose output says they did not happen', () => {
    const failedPut: Operation = { ...put(1, 'a', 0, 10), output: { ok: false } };
    accepts([failedPut, get(2, 20, 30, null)]);
  });

  it('validates malformed ops', () => {
    expect(() => checkHistory([{ ...put(1, 'a', 10, 5) }])).to.throw(TypeError, /returnTime < invokeTime/);
    expect(() => checkHistory([{ ...put(1, 'a', 0, 5), returnTime: Infinity }])).to.throw(TypeError, /unknown/);
  });
});

describe('linearizability checker: unknown outcomes', () => {
  const lostPut = unknown(put(1, 'x', 10, 20));

  it('may take effect', () => {
    accepts([put(2, 'a', 0, 5, 1), lostPut, get(3, 30, 40, 'x', 2)]);
  });

  it('may not take effect', () => {
    accepts([put(2, 'a', 0, 5, 1), lostPut, get(3, 30, 40, 'a', 1)]);
  });

  it('may take effect long after the call gave up', () => {
    accepts([put(2, 'a', 0, 5, 1), lostPut, get(3, 30, 40, 'a', 1), get(3, 1000, 1010, 'x', 7)]);
  });

  it('cannot take effect before it was invoked', () => {
    rejects([put(2, 'a', 0, 5, 1), get(3, 6, 8, 'x'), lostPut]);
  });

  it('cannot take effect twice (observed, then un-observed)', () => {
    rejects([put(2, 'a', 0, 5, 1), lostPut, get(3, 30, 40, 'x', 2), get(3, 50, 60, 'a', 1)]);
  });

  it('an unknown cas applies only if its expected version could match', () => {
    const lostCas = unknown(cas(1, 1, 'x', 10, 20, true));
    accepts([put(2, 'a', 0, 5, 1), lostCas, get(3, 30, 40, 'x', 2)]);
    rejects([put(2, 'a', 0, 5, 1), put(2, 'b', 6, 8, 2), lostCas, get(3, 30, 40, 'x')]);
  });

  it('an unknown delete may remove the key', () => {
    accepts([put(2, 'a', 0, 5, 1), unknown(del(1, 10, 20)), get(3, 30, 40, null)]);
    accepts([put(2, 'a', 0, 5, 1), unknown(del(1, 10, 20)), get(3, 30, 40, 'a', 1)]);
  });

  it('an unknown get constrains nothing', () => {
    accepts([put(2, 'a', 0, 5, 1), unknown(get(3, 30, 40, 'nonsense'))]);
  });

  it('a write with an unknown version pins to the version a later read reports', () => {
    const h = [put(1, 'a', 0, 5, 3), put(2, 'b', 10, 15), get(3, 20, 25, 'b', 9), put(1, 'c', 30, 35, 9)];
    rejects(h); // c's version must exceed b's (9)
    accepts([put(1, 'a', 0, 5, 3), put(2, 'b', 10, 15), get(3, 20, 25, 'b', 9), put(1, 'c', 30, 35, 10)]);
    rejects([put(1, 'a', 0, 5, 3), put(2, 'b', 10, 15), get(3, 20, 25, 'b', 3)]); // must exceed 3
  });
});

describe('linearizability checker: delete', () => {
  it('a deleted key reads as absent', () => {
    accepts([put(1, 'a', 0, 5, 1), del(1, 10, 15, true, 2), get(2, 20, 25, null)]);
  });

  it('rejects a read of the old value after a completed delete', () => {
    rejects([put(1, 'a', 0, 5, 1), del(1, 10, 15, true, 2), get(2, 20, 25, 'a', 1)]);
  });

  it('checks the found flag', () => {
    accepts([del(1, 0, 5, false), put(1, 'a', 10, 15, 1), del(1, 20, 25, true), del(2, 30, 35, false)]);
    rejects([put(1, 'a', 0, 5, 1), del(2, 10, 15, false)]);
    rejects([del(1, 0, 5, true)]);
  });

  it('versions keep increasing across a delete (default model)', () => {
    accepts([put(1, 'a', 0, 5, 1), del(1, 10, 15, true, 2), put(1, 'b', 20, 25, 3)]);
    accepts([put(1, 'a', 0, 5, 1), del(1, 10, 15, true), put(1, 'b', 20, 25, 3)]);
    rejects([put(1, 'a', 0, 5, 4), del(1, 10, 15, true), put(1, 'b', 20, 25, 2)]);
  });

  it('deleteAdvancesVersion: false leaves the version counter alone (plusOne)', () => {
    const opts: CheckOptions = { versions: { step: 'plusOne', deleteAdvancesVersion: false } };
    accepts([put(1, 'a', 0, 5, 1), del(1, 10, 15, true), put(1, 'b', 20, 25, 2)], opts);
    rejects([put(1, 'a', 0, 5, 1), del(1, 10, 15, true), put(1, 'b', 20, 25, 3)], opts);
    accepts([put(1, 'a', 0, 5, 1), del(1, 10, 15, true), put(1, 'b', 20, 25, 3)], { versions: { step: 'plusOne' } });
  });
});

describe('linearizability checker: cas (putIfVersionMatch)', () => {
  it('expected 0 succeeds iff the key is absent', () => {
    accepts([cas(1, 0, 'a', 0, 5, true, 1), cas(2, 0, 'b', 10, 15, false, 1), get(3, 20, 25, 'a', 1)]);
    rejects([cas(1, 0, 'a', 0, 5, true, 1), cas(2, 0, 'b', 10, 15, true, 2)]);
    accepts([put(1, 'a', 0, 5, 1), del(1, 6, 8, true), cas(2, 0, 'b', 10, 15, true, 3)]);
  });

  it('succeeds iff the current version equals the expected one', () => {
    accepts([put(1, 'a', 0, 5, 4), cas(2, 4, 'b', 10, 15, true, 5), cas(2, 4, 'c', 20, 25, false, 5), get(1, 30, 35, 'b', 5)]);
    rejects([put(1, 'a', 0, 5, 4), cas(2, 3, 'b', 10, 15, true)]);
    rejects([put(1, 'a', 0, 5, 4), cas(2, 4, 'b', 10, 15, false)]); // nothing else could have changed it
    rejects([put(1, 'a', 0, 5, 4), cas(2, 7, 'b', 10, 15, false, 6)]); // misreports the current version
  });

  it('a failed cas is fine when a concurrent write changed the version', () => {
    accepts([put(1, 'a', 0, 5, 4), put(3, 'z', 8, 20, 5), cas(2, 4, 'b', 10, 15, false, 5)]);
  });

  it('a successful cas with an unreported version is exact under plusOne', () => {
    const opts: CheckOptions = { versions: { step: 'plusOne' } };
    accepts([put(1, 'a', 0, 5, 1), cas(2, 1, 'b', 10, 15, true), cas(2, 2, 'c', 20, 25, true, 3)], opts);
    rejects([put(1, 'a', 0, 5, 1), cas(2, 1, 'b', 10, 15, true), cas(2, 3, 'c', 20, 25, true)], opts);
  });
});

describe('linearizability checker: options', () => {
  it('plusOne rejects version gaps that the default model allows', () => {
    const h = [put(1, 'a', 0, 5, 1), put(1, 'b', 10, 15, 3)];
    accepts(h);
    rejects(h, { versions: { step: 'plusOne' } });
  });

  it('initial state', () => {
    const h = [get(1, 0, 5, 'seed', 7), put(1, 'a', 10, 15, 8)];
    rejects(h);
    accepts(h, { initial: (k) => (k === 'k' ? { value: 'seed', version: 7 } : undefined) });
  });

  it('returns unknown, not a hang, when the state budget runs out', () => {
    // 12 overlapping writes and a final read of a value nobody wrote: all orders get explored.
    const h: Operation[] = [];
    for (let i = 0; i < 12; i++) h.push(put(i, `v${i}`, i, 1000 + i));
    h.push(get(99, 2000, 2001, 'never'));
    const r = checkHistory(h, { maxStates: 500 });
    expect(r.ok).to.equal('unknown');
    if (r.ok === 'unknown') expect(r.reason).to.match(/maxStates 500/);
    // With memoization the full search is only 2^12 subsets x 12 last values, and it is a clear failure.
    expect(checkHistory(h).ok).to.equal(false);
  });

  it('returns unknown when the deadline passes', () => {
    const h: Operation[] = [];
    for (let i = 0; i < 40; i++) h.push(put(i, `v${i}`, i, 1000 + i));
    h.push(get(99, 2000, 2001, 'never'));
    const r = checkHistory(h, { timeoutMs: 50 });
    expect(r.ok).to.equal('unknown');
    if (r.ok === 'unknown') expect(r.reason).to.match(/deadline/);
  });
});

describe('linearizability checker: explanation', () => {
  it('cuts the history to the earliest failing point and names the culprit', () => {
    const h: Operation[] = [];
    let t = 0;
    for (let i = 1; i <= 50; i++) {
      h.push(put(1, `v${i}`, t, t + 5, i));
      h.push(get(2, t + 6, t + 9, `v${i}`, i));
      t += 10;
    }
    h.push(get(3, 200, 209, 'v3', 3)); // stale: v20 completed at t=195
    const r = rejects(h);
    expect(r.ops.length).to.be.lessThan(h.length);
    expect(r.explanation).to.include('#100').and.include('"v3"').and.include('fails when cut');
    expect(r.explanation).to.include('Ops that could not be linearized');
  });
});

describe('HistoryRecorder', () => {
  it('records invoke/complete/fail/discard with a monotonic clock', async () => {
    const rec = new HistoryRecorder();
    const a = rec.invoke('c1', 'k', 'put', { value: 'a' });
    const b = rec.invoke('c2', 'k', 'get');
    rec.complete(a, { ok: true, version: 1 });
    await new Promise((r) => setTimeout(r, 2));
    rec.complete(b, { ok: true, found: true, value: 'a', version: 1 });
    const c = rec.invoke('c1', 'k', 'put', { value: 'b' });
    rec.fail(c);
    const d = rec.invoke('c1', 'k', 'put', { value: 'bogus' });
    rec.discard(d);
    rec.invoke('c3', 'k', 'delete'); // never completed: unknown
    expect(() => rec.complete(a, { ok: true })).to.throw(/not pending/);
    const h = rec.history();
    expect(h.map((o) => o.kind)).to.deep.equal(['put', 'get', 'put', 'delete']);
    expect(h[0]!.invokeTime).to.be.at.most(h[0]!.returnTime);
    expect(h[1]!.returnTime).to.be.greaterThan(h[0]!.returnTime);
    expect(h[2]!.output).to.equal('unknown');
    expect(h[2]!.returnTime).to.equal(Infinity);
    expect(h[3]!.output).to.equal('unknown');
    expect(checkHistory(h).ok).to.equal(true);
  });

  it('track() wraps async calls', async () => {
    const rec = new HistoryRecorder();
    const store = new Map<string, { value: string; version: number }>();
    let version = 0;
    const putCall = async (k: string, v: string): Promise<number> => {
      await new Promise((r) => setImmediate(r));
      store.set(k, { value: v, version: ++version });
      return version;
    };
    const getCall = async (k: string): Promise<{ value: string; version: number } | undefined> => {
      await new Promise((r) => setImmediate(r));
      return store.get(k);
    };
    await Promise.all(
      [0, 1, 2, 3].map(async (c) => {
        for (let i = 0; i < 20; i++) {
          if ((i + c) % 3 === 0) {
            await rec.track(c, 'k', 'put', { value: `${c}-${i}` }, () => putCall('k', `${c}-${i}`), (v) => ({ ok: true, version: v }));
          } else {
            await rec.track(c, 'k', 'get', {}, () => getCall('k'), (r) => (r ? { ok: true, found: true, ...r } : { ok: true, found: false }));
          }
        }
      }),
    );
    await rec
      .track(9, 'k', 'put', { value: 'boom' }, () => Promise.reject(new Error('timeout')), () => ({ ok: true }))
      .catch(() => undefined);
    const h = rec.history();
    expect(h).to.have.length(81);
    expect(h[80]!.output).to.equal('unknown');
    expect(checkHistory(h).ok).to.equal(true);
    // Corrupt one read: it must be caught.
    const i = h.findIndex((o) => o.kind === 'get' && o.output !== 'unknown' && o.output.found);
    const bad = h.map((o, j) => (j === i ? { ...o, output: { ok: true, found: true, value: 'corrupt' } } : o));
    expect(checkHistory(bad).ok).to.equal(false);
  });
});

describe('linearizability checker: unreported versions', () => {
  it('a failed cas rules out the version it expected', () => {
    // put b's version is unknown (> 1); the failed cas says it is not 2, the read says it is 2.
    const base = [put(1, 'a', 0, 5, 1), put(2, 'b', 10, 15), cas(3, 2, 'c', 20, 25, false)];
    rejects([...base, get(1, 30, 35, 'b', 2)]);
    accepts([...base, get(1, 30, 35, 'b', 3)]);
    const plus: CheckOptions = { versions: { step: 'plusOne' } };
    // Under plusOne the unreported version is exactly 2, so the cas cannot fail...
    rejects([put(1, 'a', 0, 5, 1), put(2, 'b', 10, 15), cas(3, 2, 'c', 20, 25, false)], plus);
    // ...unless the write's outcome is unknown: it may then take effect after the cas.
    accepts([put(1, 'a', 0, 5, 1), unknown(put(2, 'b', 10, 15)), cas(3, 2, 'c', 20, 25, false), get(1, 30, 35, 'b', 2)], plus);
  });
});
