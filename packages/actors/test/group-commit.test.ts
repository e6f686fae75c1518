import { expect } from 'chai';
import { GroupCommitter, MemoryJournal, RealClock } from '../src/index.js';
import type { CommitParticipant } from '../src/index.js';
import { sleep } from './bank.js';

class P implements CommitParticipant {
  epoch = 0;
  committedTo = 0;
  seq = 0;
  failures: unknown[] = [];
  constructor(readonly persistenceId: string) {}
  committed(_epoch: number, toSeq: number): void {
    expect(toSeq).to.be.greaterThan(this.committedTo); // in order
    this.committedTo = toSeq;
  }
  failed(_epoch: number, error: unknown): void {
    this.failures.push(error);
  }
  write(c: GroupCommitter, n: number): void {
    c.add(this, this.seq, Array.from({ length: n }, (_, i) => ({ i: this.seq + i })));
    this.seq += n;
  }
}

describe('actors - group commit pipelining', () => {
  it('actors - with two appends in flight a participant is never in both, so its writes commit in order without conflicts', async () => {
    let inFlight = 0;
    let maxSeen = 0;
    // The first append is held until a second one has started: two in flight by construction, not by
    // timing (when a loaded machine let every writer into the first batch, no second could form).
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let first = true;
    const journal = new MemoryJournal({
      faults: {
        beforeAppend: async () => {
          maxSeen = Math.max(maxSeen, ++inFlight);
          if (first) {
            first = false;
            await gate;
          } else await sleep(15);
          inFlight--;
        },
      },
    });
    const c = new GroupCommitter(journal, new RealClock(), { windowUs: 200, batchEventsMax: 50, maxInFlight: 2 });
    const ps = Array.from({ length: 20 }, (_, i) => new P(`x/${i}`));
    const until = async (cond: () => boolean, what: string) => {
      for (let i = 0; !cond(); i++) {
        if (i > 2_000) throw new Error(`timed out waiting for ${what}`);
        await sleep(1);
      }
    };
    const [a, b] = [ps.slice(0, 10), ps.slice(10)];
    for (const p of a) p.write(c, 1);
    await until(() => inFlight === 1, 'the first append');
    for (const p of a) p.write(c, 1); // in flight: these wait for the first append to finish
    for (const p of b) p.write(c, 1); // not in flight: they form the second append
    await until(() => inFlight === 2, 'a second append while the first is held');
    release();
    for (let round = 0; round < 40; round++) {
      for (const p of ps) if ((round + p.persistenceId.length) % 3 !== 0) p.write(c, 1 + (round % 3));
      await sleep(1);
    }
    await c.drained();
    expect(maxSeen).to.equal(2);
    expect(c.stats.conflicts).to.equal(0);
    for (const p of ps) {
      expect(p.failures).to.deep.equal([]);
      expect(p.committedTo).to.equal(p.seq);
      expect(journal.eventsOf(p.persistenceId).map((e) => (e as { i: number }).i)).to.deep.equal(Array.from({ length: p.seq }, (_, i) => i));
    }
  });

  it('actors - holdBack keeps a participant out of the batch being formed until it says otherwise', async () => {
    const journal = new MemoryJournal({ faults: { beforeAppend: () => sleep(2) } });
    let hold = true;
    const held = new P('x/held');
    const free = new P('x/free');
    const c = new GroupCommitter(journal, new RealClock(), { windowUs: 100, maxInFlight: 2, holdBack: (p) => hold && p === held });
    held.write(c, 1);
    free.write(c, 1);
    free.write(c, 1); // a second write while the first may be in flight
    for (let i = 0; i < 500 && free.committedTo < 2; i++) await sleep(2);
    expect(free.committedTo).to.equal(2);
    expect(held.committedTo).to.equal(0);
    hold = false;
    free.write(c, 1); // the next batch takes the held one too
    await c.drained();
    expect(held.committedTo).to.equal(1);
    expect(free.committedTo).to.equal(3);
  });
});
