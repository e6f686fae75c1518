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
