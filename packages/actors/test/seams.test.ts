import { expect } from 'chai';
import { InProcessTransport, ManualClock, MemoryJournal, JournalConflictError, JournalFencedError, JournalUsageError, AskTimeoutError, fromDecideApply } from '../src/index.js';

describe('actors - seams', () => {
  it('actors - manual clock fires timers in due order and only when advanced', () => {
    const clock = new ManualClock(100);
    const seen: string[] = [];
    clock.schedule(10, () => seen.push('b'));
    clock.schedule(5, () => {
      seen.push('a');
      clock.schedule(5, () => seen.push('b2')); // due at 110 too, after b
    });
    const c = clock.schedule(7, () => seen.push('cancelled'));
    clock.cancel(c);
    clock.advance(4);
    expect(seen).to.deep.equal([]);
    clock.advance(6);
    expect(seen).to.deep.equal(['a', 'b', 'b2']);
    expect(clock.now()).to.equal(110);
  });

  it('actors - memory journal rejects a stale expected sequence for the whole append, naming every stale id', async () => {
    const j = new MemoryJournal();
    await j.append([{ persistenceId: 'a', expectedSeq: 0, events: [1, 2] }]);
    let err: unknown;
    try {
      await j.append([
        { persistenceId: 'b', expectedSeq: 0, events: [1] },
        { persistenceId: 'a', expectedSeq: 1, events: [3] },
        { persistenceId: 'c', expectedSeq: 4, events: [1] },
      ]);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(JournalConflictError);
    expect((err as JournalConflictError).conflicts.map((c) => [c.persistenceId, c.actualSeq])).to.deep.equal([
      ['a', 2],
      ['c', 0],
    ]);
    expect(await j.highestSeq('b')).to.equal(0); // all or nothing
    await j.append([{ persistenceId: 'a', expectedSeq: 2, events: [3] }]);
    const pages = [];
    for await (const p of j.read('a', 2, { pageEventsMax: 1 })) pages.push([p.fromSeq, p.events]);
    expect(pages).to.deep.equal([
      [2, [2]],
      [3, [3]],
    ]);
  });

  it('actors - memory journal checks and raises fence tokens, and refuses usage errors', async () => {
    const j = new MemoryJournal();
    await j.append([], { fences: [{ scope: 's1', token: 5 }] });
    let err: unknown;
    try {
      await j.append([{ persistenceId: 'a', expectedSeq: 0, events: [1] }], { fences: [{ scope: 's1', token: 4 }] });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(JournalFencedError);
    expect(await j.highestSeq('a')).to.equal(0);
    await j.append([{ persistenceId: 'a', expectedSeq: 0, events: [1] }], { fences: [{ scope: 's1', token: 5 }] });
    for (const bad of [
      () => j.append([{ persistenceId: 'a', expectedSeq: 1, events: [] }]),
      () => j.append([{ persistenceId: 'x', expectedSeq: 0, events: [1] }, { persistenceId: 'x', expectedSeq: 2, events: [2] }]),
    ]) {
      let e2: unknown;
      try {
        await bad();
      } catch (e) {
        e2 = e;
      }
      expect(e2).to.be.instanceOf(JournalUsageError);
    }
  });

  it('actors - memory journal resolves an append whose outcome was lost', async () => {
    const j = new MemoryJournal();
    const w = [{ persistenceId: 'a', expectedSeq: 0, events: [{ x: 1 }] }];
    expect(await j.resolveAppend(w)).to.equal('absent');
    await j.append(w);
    expect(await j.resolveAppend(w)).to.equal('committed');
    let err: unknown;
    try {
      await j.resolveAppend([{ persistenceId: 'a', expectedSeq: 0, events: [{ x: 2 }] }]);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(JournalConflictError);
  });

  it('actors - memory journal stores one row per write: pages cross rows, deletion takes whole rows, resolve compares bytes', async () => {
    const j = new MemoryJournal();
    const ev = (i: number) => ({ i, big: 2 ** 40 + i });
    // Rows: 1-3, 4-4, 5-9 (two contiguous writes of one id in one append are merged into one row).
    await j.append([{ persistenceId: 'a', expectedSeq: 0, events: [ev(1), ev(2), ev(3)] }]);
    await j.append([{ persistenceId: 'a', expectedSeq: 3, events: [ev(4)] }]);
    await j.append([
      { persistenceId: 'a', expectedSeq: 4, events: [ev(5), ev(6)] },
      { persistenceId: 'a', expectedSeq: 6, events: [ev(7), ev(8), ev(9)] },
    ]);
    const pages: [number, number, number[]][] = [];
    for await (const p of j.read('a', 2, { pageEventsMax: 2 })) pages.push([p.fromSeq, p.toSeq, p.events.map((e) => (e as { i: number }).i)]);
    expect(pages).to.deep.equal([[2, 3, [2, 3]], [4, 5, [4, 5]], [6, 7, [6, 7]], [8, 9, [8, 9]]]);
    expect(j.eventsOf('a')).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9].map(ev));
    expect(await j.highestSeq('a')).to.equal(9);
    // Both halves of the merged row, and the whole row, resolve as committed; other bytes conflict.
    expect(await j.resolveAppend([{ persistenceId: 'a', expectedSeq: 4, events: [ev(5), ev(6)] }])).to.equal('committed');
    expect(await j.resolveAppend([{ persistenceId: 'a', expectedSeq: 6, events: [ev(7), ev(8), ev(9)] }])).to.equal('committed');
    expect(await j.resolveAppend([{ persistenceId: 'a', expectedSeq: 3, events: [ev(4)] }])).to.equal('committed');
    let err: unknown;
    try {
      await j.resolveAppend([{ persistenceId: 'a', expectedSeq: 4, events: [ev(5), { i: 6, big: 0 }] }]);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(JournalConflictError);
    // Deleting up to 5 removes rows 1-3 and 4 only (5 sits in row 5-9); the newest row always stays.
    expect(await j.deleteEventsTo('a', 5)).to.equal(4);
    expect(await j.deleteEventsTo('a', 100)).to.equal(0);
    expect(j.eventsOf('a').map((e) => (e as { i: number }).i)).to.deep.equal([5, 6, 7, 8, 9]);
    let gap: unknown;
    try {
      for await (const _ of j.read('a', 4)) void _;
    } catch (e) {
      gap = e;
    }
    expect((gap as Error).name).to.equal('JournalGapError');
    const tail: number[] = [];
    for await (const p of j.read('a', 7)) for (const e of p.events) tail.push((e as { i: number }).i);
    expect(tail).to.deep.equal([7, 8, 9]);
  });

  it('actors - in-process transport times out a dropped request on its clock', async () => {
    const clock = new ManualClock();
    const t = new InProcessTransport({ clock, faults: { drop: () => true } });
    t.bind({ nodeId: 'n', serves: () => true, onDeliver: () => undefined, onRequest: async () => 'pong' });
    const p = t.request('x/1', 'ping', 50);
    clock.advance(50);
    let err: unknown;
    try {
      await p;
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(AskTimeoutError);
  });

  it('actors - decide/apply pairs adapt to a StateMachine', () => {
    const m = fromDecideApply<{ n: number }, number, number>({
      kind: 'c',
      init: () => ({ n: 0 }),
      decide: (_s, c) => (c > 0 ? [c, c] : []),
      apply: (s, e) => ({ n: s.n + e }),
    });
    const out: number[] = [];
    const s = m.step(m.init(), 3, out);
    expect(s.n).to.equal(6);
    expect(out).to.deep.equal([3, 3]);
    const replayed = out.reduce((x, e) => m.apply(x, e), m.restore(m.snapshot(m.init())));
    expect(m.stateHash(replayed)).to.equal(m.stateHash(s));
  });
});
