import { expect } from 'chai';
import {
  ActorCrashedError,
  ActorNode,
  AskTimeoutError,
  InProcessTransport,
  JournalFailedError,
  ManualClock,
  MemoryJournal,
  StaleWriterError,
} from '../src/index.js';
import type { ActorNodeOptions, NodeEvent } from '../src/index.js';
import { accountKind, settle, sleep } from './bank.js';

/** A gate a journal hook can wait on. */
function gate(): { wait: () => Promise<void>; open: () => void; opened: boolean } {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  const g = {
    opened: false,
    wait: () => p,
    open: () => {
      g.opened = true;
      open();
    },
  };
  return g;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

const nodes: ActorNode[] = [];
function makeNode(opts: Partial<ActorNodeOptions> & { journal: MemoryJournal }): ActorNode {
  const n = new ActorNode({ nodeId: `n${nodes.length}`, kinds: [accountKind], reliable: { resendMs: 10 }, restart: { backoffMsMin: 5, backoffMsMax: 100 }, ...opts });
  nodes.push(n);
  return n;
}

const deposit = (id: string, amount: number) => ({ type: 'Deposit', depositId: id, amount });
const balance = { type: 'Balance' };

describe('actors - runtime', () => {
  afterEach(() => {
    for (const n of nodes.splice(0)) n.kill();
  });

  it('actors - no reply, effect or reliable message before the commit', async () => {
    const g = gate();
    const journal = new MemoryJournal();
    const effects: unknown[] = [];
    const node = makeNode({ journal, kinds: [{ ...accountKind, effects: (evs, ctx) => ctx.self === 'account/a' && effects.push(...evs) }] });
    await node.ask('account/a', deposit('d0', 100), 1000);
    journal.faults.beforeAppend = () => g.wait();
    let replied = false;
    const p = node.ask('account/a', { type: 'Transfer', transferId: 't1', to: 'b', amount: 30 }, 5000).then((r) => {
      replied = true;
      return r;
    });
    const p2 = node.ask('account/a', balance, 5000).then(() => (replied = true)); // a read waits too
    await sleep(30);
    expect(replied, 'replied before commit').to.equal(false);
    expect(effects.map((e) => (e as { type: string }).type)).to.deep.equal(['Deposited']);
    expect(node.inspect('account/b'), 'credit sent before commit').to.equal(undefined);
    g.open();
    expect(await p).to.equal('ok');
    await p2;
    await node.quiescent();
    expect(effects.map((e) => (e as { type: string }).type)).to.deep.equal(['Deposited', 'Debited']);
    expect(await node.ask('account/b', balance, 1000)).to.equal(30);
  });

  it('actors - a failing journal yields error replies, never successes, and a restart with backoff', async () => {
    const journal = new MemoryJournal();
    const events: NodeEvent[] = [];
    const node = makeNode({ journal, onEvent: (e) => events.push(e), restart: { backoffMsMin: 5, backoffMsMax: 1000 } });
    await node.ask('account/a', deposit('d0', 100), 1000);
    let failures = 3;
    journal.faults.beforeAppend = () => {
      if (failures-- > 0) throw new Error('disk on fire');
    };
    const results = await Promise.allSettled([node.ask('account/a', deposit('d1', 1), 1000), node.ask('account/a', deposit('d2', 2), 1000)]);
    for (const r of results) {
      expect(r.status).to.equal('rejected');
      expect((r as PromiseRejectedResult).reason).to.be.instanceOf(JournalFailedError);
    }
    // The next commands are stashed while the entity restarts; the journal fails twice more.
    const r3 = await rejection(node.ask('account/a', deposit('d3', 3), 1000));
    expect(r3).to.be.instanceOf(JournalFailedError);
    const r4 = await rejection(node.ask('account/a', deposit('d4', 4), 1000));
    expect(r4).to.be.instanceOf(JournalFailedError);
    expect(await node.ask('account/a', deposit('d5', 5), 1000)).to.equal('ok');
    // Only what was committed counts: the failed deposits were not applied.
    expect(await node.ask('account/a', balance, 1000)).to.equal(105);
    const delays = events.filter((e) => e.type === 'restart-scheduled').map((e) => (e as { delayMs: number }).delayMs);
    expect(delays).to.deep.equal([5, 10, 20]);
    expect(events.filter((e) => e.type === 'recovered')).to.have.length(4);
    expect(node.stats.journalFailures).to.equal(3);
  });

  it('actors - commit outcome unknown: the reply is an error and recovery finds the truth in the journal', async () => {
    const journal = new MemoryJournal();
    const node = makeNode({ journal });
    await node.ask('account/a', deposit('d0', 100), 1000);
    let once = true;
    journal.faults.afterAppend = () => {
      if (once) {
        once = false;
        throw new Error('connection lost during COMMIT');
      }
    };
    expect(await rejection(node.ask('account/a', deposit('d1', 7), 1000))).to.be.instanceOf(JournalFailedError);
    // The client retries with the same id: answered from the recovered state, not applied twice.
    expect(await node.ask('account/a', deposit('d1', 7), 1000)).to.equal('ok');
    expect(await node.ask('account/a', balance, 1000)).to.equal(107);
  });

  it('actors - recovery from the latest snapshot plus the journal tail gives the same stateHash', async () => {
    const journal = new MemoryJournal();
    const events: NodeEvent[] = [];
    const node = makeNode({ journal, snapshotEventsEvery: 10, snapshotEventsPerByte: 0, onEvent: (e) => events.push(e) });
    for (let i = 0; i < 57; i++) await node.ask('account/a', deposit(`d${i}`, i + 1), 1000);
    const live = node.stateHash('account/a');
    expect(node.passivateAll()).to.equal(1);
    await sleep(5);
    expect(await node.ask('account/a', balance, 1000)).to.equal((57 * 58) / 2);
    const rec = events.filter((e) => e.type === 'recovered').at(-1) as { seq: number; snapshotSeq: number };
    expect(rec.seq).to.equal(57);
    expect(rec.snapshotSeq).to.equal(50);
    expect(node.stateHash('account/a')).to.equal(live);
    // And a replay of the whole journal from nothing agrees.
    const m = accountKind.machine;
    const replayed = journal.eventsOf('account/a').reduce<ReturnType<typeof m.init>>((s, e) => m.apply(s, e as never), m.init());
    expect(m.stateHash(replayed)).to.equal(live);
  });

  it('actors - old snapshots are deleted as new ones are saved (snapshotsKept), events never', async () => {
    const kept = new MemoryJournal();
    const all = new MemoryJournal();
    const a = makeNode({ journal: kept, snapshotEventsEvery: 10, snapshotEventsPerByte: 0 });
    const b = makeNode({ journal: all, snapshotEventsEvery: 10, snapshotEventsPerByte: 0, snapshotsKept: 0 });
    for (let i = 0; i < 57; i++) {
      await a.ask('account/a', deposit(`d${i}`, i + 1), 1000);
      await b.ask('account/a', deposit(`d${i}`, i + 1), 1000);
    }
    await sleep(5);
    // Default: the newest two; 0 keeps every one (the behaviour before this option).
    expect(kept.snapshotSeqsOf('account/a')).to.deep.equal([40, 50]);
    expect(all.snapshotSeqsOf('account/a')).to.deep.equal([10, 20, 30, 40, 50]);
    expect(kept.eventsOf('account/a')).to.have.length(57);
    // Recovery from what is left gives the same state.
    const live = a.stateHash('account/a');
    a.kill();
    const c = makeNode({ journal: kept, snapshotEventsEvery: 10, snapshotEventsPerByte: 0 });
    expect(await c.ask('account/a', balance, 1000)).to.equal((57 * 58) / 2);
    expect(c.stateHash('account/a')).to.equal(live);
  });

  it('actors - a large snapshot is taken less often (snapshotEventsPerByte, capped), also after recovery; the state recovers the same', async () => {
    // Each deposit id stays in the state, so each snapshot is larger than the one before.
    const journal = new MemoryJournal();
    const node = makeNode({ journal, snapshotEventsEvery: 10, snapshotsKept: 0, snapshotEventsPerByte: 0.5, snapshotEventsMaxFactor: 4 });
    const id = (i: number) => `deposit-${String(i).padStart(6, '0')}`;
    for (let i = 0; i < 200; i++) await node.ask('account/a', deposit(id(i), 1), 1000);
    await sleep(5);
    const seqs = journal.snapshotSeqsOf('account/a');
    const gaps = seqs.map((q, k) => q - (seqs[k - 1] ?? 0));
    // The rule, from the stored sizes: each gap is the kind's 10, grown to half the previous snapshot's
    // bytes, at most 4 x 10.
    const sizes = journal.snapshotSizesOf('account/a');
    for (let k = 1; k < gaps.length; k++) expect(gaps[k], `gap ${k} after ${sizes[k - 1]} bytes`).to.equal(Math.min(40, Math.max(10, Math.ceil(sizes[k - 1]! * 0.5))));
    expect(gaps[0]).to.equal(10);
    expect(Math.max(...gaps), 'the cap').to.equal(40);
    expect(seqs.length, 'fewer snapshots than a fixed interval of 10 takes (20)').to.be.below(10);
    // A node recovering from the newest (large) snapshot waits as long before its next one.
    const live = node.stateHash('account/a');
    const last = seqs.at(-1)!;
    node.kill();
    const again = makeNode({ journal, snapshotEventsEvery: 10, snapshotsKept: 0, snapshotEventsPerByte: 0.5, snapshotEventsMaxFactor: 4 });
    expect(await again.ask('account/a', balance, 1000)).to.equal(200);
    expect(again.stateHash('account/a')).to.equal(live);
    for (let i = 200; i < 200 + (last + 40 - 200) - 1; i++) await again.ask('account/a', deposit(id(i), 1), 1000);
    await sleep(5);
    expect(journal.snapshotSeqsOf('account/a').at(-1), 'no snapshot before the grown interval').to.equal(last);
    await again.ask('account/a', deposit(id(999_999), 1), 1000);
    await sleep(5);
    expect(journal.snapshotSeqsOf('account/a').at(-1)).to.equal(last + 40);
  });

  it('actors - a graceful stop snapshots entities whose tail is at least the interval, so a restart replays nothing; a kill does not', async () => {
    const opts = { snapshotEventsEvery: 10, snapshotsKept: 0, snapshotEventsPerByte: 0.5, snapshotEventsMaxFactor: 4 };
    const run = async (how: 'stop' | 'kill') => {
      const journal = new MemoryJournal();
      const node = makeNode({ journal, ...opts });
      for (let i = 0; i < 75; i++) await node.ask('account/a', deposit(`deposit-${String(i).padStart(6, '0')}`, 1), 1000);
      await sleep(5);
      const before = journal.snapshotSeqsOf('account/a');
      if (how === 'stop') await node.stop();
      else node.kill();
      const events: NodeEvent[] = [];
      const again = makeNode({ journal, ...opts, onEvent: (e) => events.push(e) });
      expect(await again.ask('account/a', balance, 1000)).to.equal(75);
      const rec = events.find((e) => e.type === 'recovered') as { seq: number; snapshotSeq: number };
      return { before, after: journal.snapshotSeqsOf('account/a'), rec };
    };
    const stopped = await run('stop');
    expect(stopped.before.at(-1), 'the grown interval left a tail').to.be.below(65);
    expect(stopped.after.at(-1)).to.equal(75);
    expect(stopped.rec).to.include({ seq: 75, snapshotSeq: 75 });
    const killed = await run('kill');
    expect(killed.after).to.deep.equal(killed.before);
    expect(killed.rec.snapshotSeq).to.equal(killed.before.at(-1));
  });

  it('actors - commands that arrive during recovery are stashed, never dropped', async () => {
    const journal = new MemoryJournal();
    const writer = makeNode({ journal });
    for (let i = 0; i < 5; i++) await writer.ask('account/a', deposit(`d${i}`, 10), 1000);
    writer.kill();
    const g = gate();
    journal.faults.beforeRead = () => g.wait();
    const node = makeNode({ journal });
    const asks: Promise<unknown>[] = [];
    for (let i = 5; i < 205; i++) {
      if (i % 2 === 0) node.tell('account/a', deposit(`d${i}`, 1));
      else asks.push(node.ask('account/a', deposit(`d${i}`, 1), 5000));
    }
    await sleep(20);
    expect(node.inspect('account/a')!.status).to.equal('recovering');
    g.open();
    for (const r of await Promise.all(asks)) expect(r).to.equal('ok');
    expect(await node.ask('account/a', balance, 1000)).to.equal(50 + 200);
    // In arrival order, after the recovered tail.
    const ids = journal.eventsOf('account/a').map((e) => (e as { depositId: string }).depositId);
    expect(ids).to.deep.equal(Array.from({ length: 205 }, (_, i) => `d${i}`));
  });

  it('actors - idle passivation and LRU passivation preserve state on reactivation', async () => {
    const clock = new ManualClock(0);
    const journal = new MemoryJournal();
    const events: NodeEvent[] = [];
    const node = makeNode({ journal, clock, passivation: { idleMs: 1000, activeEntitiesMax: 3, sweepMs: 100 }, onEvent: (e) => events.push(e) });
    const pump = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        clock.advance(1);
        await settle();
      }
    };
    const askM = async (to: string, c: unknown): Promise<unknown> => {
      const p = node.ask(to, c, 60_000);
      for (let i = 0; i < 50; i++) {
        const done = await Promise.race([p.then(() => true), settle().then(() => false)]);
        if (done) return p;
        clock.advance(1);
      }
      return p;
    };
    for (let i = 0; i < 5; i++) await askM(`account/x${i}`, deposit('d', 10 + i));
    await pump();
    // The cap is 3: the two least recently used were passivated.
    expect(node.activeAddresses().length).to.be.at.most(3);
    expect(events.filter((e) => e.type === 'passivated' && e.reason === 'lru').length).to.be.at.least(2);
    clock.advance(1500);
    await pump();
    expect(node.activeAddresses()).to.deep.equal([]);
    expect(events.some((e) => e.type === 'passivated' && e.reason === 'idle')).to.equal(true);
    for (let i = 0; i < 5; i++) expect(await askM(`account/x${i}`, balance)).to.equal(10 + i);
  });

  it('actors - a stale writer (two nodes, one journal, one id) gets the conflict and stops', async () => {
    const journal = new MemoryJournal();
    const a = makeNode({ journal, transport: new InProcessTransport() });
    const events: NodeEvent[] = [];
    const b = makeNode({ journal, transport: new InProcessTransport(), onEvent: (e) => events.push(e) });
    expect(await b.ask('account/x', balance, 1000)).to.equal(0); // b recovered x at seq 0
    expect(await a.ask('account/x', deposit('d1', 5), 1000)).to.equal('ok'); // a writes seq 1
    // b writes x (stale) and y (fine) in the same group commit.
    const [rx, ry] = await Promise.allSettled([b.ask('account/x', deposit('d2', 7), 1000), b.ask('account/y', deposit('d3', 9), 1000)]);
    expect(rx.status).to.equal('rejected');
    expect((rx as PromiseRejectedResult).reason).to.be.instanceOf(StaleWriterError);
    expect(ry.status, 'the other writer of the batch still commits').to.equal('fulfilled');
    expect(events.some((e) => e.type === 'stale-writer' && e.address === 'account/x')).to.equal(true);
    expect(b.inspect('account/x'), 'stopped').to.equal(undefined);
    expect(journal.eventsOf('account/x')).to.deep.equal([{ type: 'Deposited', depositId: 'd1', amount: 5 }]);
    // Asked again, b recovers from the journal (the lease layer decides whether it should).
    expect(await b.ask('account/x', balance, 1000)).to.equal(5);
  });

  it('actors - a deposed owner (lower fence token) is stopped, writers of other shards still commit', async () => {
    const journal = new MemoryJournal();
    const shard = (id: string): string => (id.endsWith('1') ? 's1' : 's2');
    const tokens = new Map([
      ['s1', 3],
      ['s2', 3],
    ]);
    const node = makeNode({ journal, groupCommit: { fenceOf: (id) => ({ scope: shard(id), token: tokens.get(shard(id))! }) } });
    await Promise.all([node.ask('account/x1', deposit('d0', 1), 1000), node.ask('account/x2', deposit('d0', 1), 1000)]);
    // A new owner of shard s1 raised its fence to 4 before recovering.
    await journal.append([], { fences: [{ scope: 's1', token: 4 }] });
    const [r1, r2] = await Promise.allSettled([node.ask('account/x1', deposit('d1', 5), 1000), node.ask('account/x2', deposit('d1', 5), 1000)]);
    expect((r1 as PromiseRejectedResult).reason).to.be.instanceOf(StaleWriterError);
    expect((r2 as PromiseFulfilledResult<unknown>).value).to.equal('ok');
    expect(node.inspect('account/x1')).to.equal(undefined);
    expect(journal.eventsOf('account/x1')).to.have.length(1);
    expect(journal.eventsOf('account/x2')).to.have.length(2);
  });

  it('actors - a crash in the state machine answers that command, keeps the rest, and recovers', async () => {
    const journal = new MemoryJournal();
    const node = makeNode({ journal });
    const ps = [
      node.ask('account/a', deposit('d1', 1), 1000),
      node.ask('account/a', { type: 'Boom' }, 1000),
      node.ask('account/a', deposit('d2', 2), 1000),
    ];
    const [r1, r2, r3] = await Promise.allSettled(ps);
    expect((r1 as PromiseFulfilledResult<unknown>).value).to.equal('ok');
    expect((r2 as PromiseRejectedResult).reason).to.be.instanceOf(ActorCrashedError);
    expect((r3 as PromiseFulfilledResult<unknown>).value).to.equal('ok');
    expect(await node.ask('account/a', balance, 1000)).to.equal(3);
    expect(node.stats.crashes).to.equal(1);
  });

  it('actors - ask times out while the journal hangs, and the late commit is not lost', async () => {
    const g = gate();
    const journal = new MemoryJournal();
    const node = makeNode({ journal });
    journal.faults.beforeAppend = () => g.wait();
    expect(await rejection(node.ask('account/a', deposit('d1', 1), 20))).to.be.instanceOf(AskTimeoutError);
    g.open();
    await node.quiescent();
    expect(await node.ask('account/a', balance, 1000)).to.equal(1);
  });

  it('actors - backpressure: while the journal is behind, mailboxes wait instead of the buffer growing', async () => {
    const g = gate();
    const journal = new MemoryJournal();
    const node = makeNode({ journal, groupCommit: { windowUs: 100, batchEventsMax: 10, bufferedEventsMax: 20 } });
    await node.ask('account/a', deposit('d', 1), 1000);
    journal.faults.beforeAppend = () => g.wait();
    const burst = async (from: number): Promise<void> => {
      for (let i = from; i < from + 30; i++) node.tell('account/a', deposit(`d${i}`, 1));
      await sleep(10);
    };
    await burst(0); // written, the append hangs
    await burst(30); // buffered: the buffer is now full
    await burst(60); // paused in the mailbox
    expect(node.inspect('account/a')!.seq).to.equal(61);
    expect(node.stats.backpressurePauses).to.be.greaterThan(0);
    g.open();
    await node.quiescent();
    expect(await node.ask('account/a', balance, 1000)).to.equal(91);
  });

  it('actors - reliable messages to one receiver travel batched, with one recv marker per drain; acks ride on later events, and a restart before they are journaled only resends duplicates', async () => {
    const journal = new MemoryJournal();
    let dropC = true;
    const transport = new InProcessTransport({ faults: { drop: (to) => dropC && to === 'account/c' } });
    const node = makeNode({ journal, transport });
    const transfer = (id: string, to: string, amount: number) => ({ type: 'Transfer', transferId: id, to, amount });
    await node.ask('account/a', deposit('d', 1000), 1000);
    // c never hears a: a keeps an unacknowledged message, so b's acks are not journaled on their own.
    await node.ask('account/a', transfer('tc', 'c', 1), 1000);
    node.tellMany('account/a', Array.from({ length: 40 }, (_, i) => transfer(`t${i}`, 'b', 1)));
    const until = async (f: () => boolean): Promise<void> => {
      for (let i = 0; i < 500 && !f(); i++) await sleep(2);
      expect(f()).to.equal(true);
    };
    const markers = (id: string, rt: string) => journal.eventsOf(id).filter((e) => (e as { $rt?: string }).$rt === rt) as { seq?: number; upTo?: number }[];
    await until(() => journal.eventsOf('account/b').filter((e) => (e as { type?: string }).type === 'Credited').length === 40);
    expect(await node.ask('account/b', balance, 1000)).to.equal(40);
    // The 40 messages left a's drain together: one transport message, one recv marker at b.
    expect(node.stats.reliableBatches).to.be.lessThan(node.stats.reliableSent);
    expect(markers('account/b', 'recv').length).to.be.lessThan(40);
    expect(markers('account/b', 'recv').at(-1)!.seq).to.equal(40);
    await until(() => node.inspect('account/a')!.outPending === 1); // only c's message is unacked
    expect(markers('account/a', 'ack')).to.deep.equal([]); // b's acks wait for a's next events
    // A restart now rebuilds a's outbox with b's messages unacked: they are resent, b drops them.
    const dupsBefore = node.stats.duplicatesDropped;
    node.crash('account/a');
    await until(() => node.stats.duplicatesDropped >= dupsBefore + 40 && node.inspect('account/a')?.outPending === 1);
    expect(await node.ask('account/b', balance, 1000)).to.equal(40);
    dropC = false;
    await node.quiescent();
    expect(await node.ask('account/c', balance, 1000)).to.equal(1);
    expect(await node.ask('account/a', balance, 1000)).to.equal(959);
    // Nothing unacked: the acks are journaled, so the next recovery resends nothing.
    const acks = markers('account/a', 'ack');
    expect(acks.length).to.be.within(1, 2);
    node.crash('account/a');
    await until(() => node.inspect('account/a')?.status === 'active');
    expect(node.inspect('account/a')!.outPending).to.equal(0);
  });

  it('actors - a receiver that crashes inside a batch keeps what it applied before the crash and takes the rest on the resend, each once', async () => {
    const journal = new MemoryJournal();
    let boom = 1;
    const kind = {
      ...accountKind,
      inbound: (from: string, m: unknown) => {
        const c = accountKind.inbound!(from, m);
        if ((m as { amount: number }).amount === 13 && boom-- > 0) return { type: 'Boom' } as const;
        return c;
      },
    };
    const node = makeNode({ journal, kinds: [kind] });
    await node.ask('account/a', deposit('d', 100), 1000);
    node.tellMany('account/a', [1, 2, 13, 4, 5].map((amount, i) => ({ type: 'Transfer', transferId: `t${i}`, to: 'b', amount })));
    for (let i = 0; i < 500 && !(node.isQuiescent() && node.stats.crashes > 0); i++) await sleep(2);
    await node.quiescent();
    expect(node.stats.crashes).to.equal(1);
    expect(node.stats.reliableBatches).to.be.lessThan(node.stats.reliableSent);
    expect(await node.ask('account/b', balance, 1000)).to.equal(25);
    const credited = journal.eventsOf('account/b').filter((e) => (e as { type?: string }).type === 'Credited') as { transferId: string }[];
    expect(credited.map((e) => e.transferId)).to.deep.equal(['t0', 't1', 't2', 't3', 't4']);
    expect(await node.ask('account/a', balance, 1000)).to.equal(75);
  });

  it('actors - group commit writes the events of many actors in one append', async () => {
    const journal = new MemoryJournal();
    const node = makeNode({ journal, groupCommit: { windowUs: 2000, batchEventsMax: 10_000 } });
    await Promise.all(Array.from({ length: 200 }, (_, i) => node.ask(`account/g${i}`, deposit('d', 1), 2000)));
    expect(journal.eventsStored).to.equal(200);
    expect(journal.appendCalls).to.be.at.most(3);
  });
});

describe('actors - early local delivery (reliable.earlyLocal)', () => {
  afterEach(() => {
    for (const n of nodes.splice(0)) n.kill();
  });
  const transfer = (id: string, to: string, amount: number) => ({ type: 'Transfer', transferId: id, to, amount });
  /** Appends wait for `g`; the first to pass it fails (nothing stored), the rest succeed. */
  const failFirstAppendAfter = (journal: MemoryJournal, g: { wait: () => Promise<void> }): void => {
    let fail = true;
    journal.faults.beforeAppend = async () => {
      await g.wait();
      if (fail) {
        fail = false;
        throw new Error('disk on fire');
      }
    };
  };
  /** The (persistence id, event type, transfer id) of each append's writes, in append order. */
  const recordAppends = (journal: MemoryJournal): string[][] => {
    const appends: string[][] = [];
    journal.faults.afterAppend = (writes) => {
      appends.push(writes.flatMap((w) => w.events.map((e) => `${w.persistenceId}:${(e as { type?: string; $rt?: string }).type ?? (e as { $rt: string }).$rt}:${(e as { transferId?: string }).transferId ?? ''}`)));
    };
    return appends;
  };

  it('actors - a sender\'s event and what a local receiver made of its message commit in one append (two in a row without it)', async () => {
    for (const earlyLocal of [true, false]) {
      const journal = new MemoryJournal();
      // A window long enough that b's drain surely falls inside it (500 µs is the default).
      const node = makeNode({ journal, reliable: { resendMs: 10, earlyLocal }, groupCommit: { windowUs: 20_000 } });
      await node.ask('account/a', deposit('d0', 100), 1000);
      await node.ask('account/b', deposit('d0', 1), 1000); // b is active: no recovery in the way
      const appends = recordAppends(journal);
      expect(await node.ask('account/a', transfer('t1', 'b', 30), 1000)).to.equal('ok');
      await node.quiescent();
      expect(await node.ask('account/b', balance, 1000)).to.equal(31);
      const together = appends.some((a) => a.includes('account/a:Debited:t1') && a.includes('account/b:Credited:t1'));
      expect(together, `earlyLocal ${earlyLocal}: ${JSON.stringify(appends)}`).to.equal(earlyLocal);
      expect(node.stats.localBatches > 0, 'delivered locally').to.equal(earlyLocal);
    }
  });

  it('actors - the receiver takes the message before the sender commits, but its replies, effects and journal write wait for the sender\'s commit', async () => {
    const g = gate();
    const journal = new MemoryJournal();
    const effects: string[] = [];
    const node = makeNode({ journal, reliable: { resendMs: 10, earlyLocal: true }, groupCommit: { maxInFlight: 2 }, kinds: [{ ...accountKind, effects: (evs, ctx) => ctx.self === 'account/b' && effects.push(...evs.map((e) => (e as { type: string }).type)) }] });
    await node.ask('account/a', deposit('d0', 100), 1000);
    await node.ask('account/b', deposit('d0', 1), 1000);
    expect(effects).to.deep.equal(['Deposited']);
    const appends = recordAppends(journal);
    journal.faults.beforeAppend = () => g.wait(); // a's Debited stays in flight
    const p = node.ask('account/a', transfer('t1', 'b', 30), 5000);
    await sleep(30);
    const b = node.inspect('account/b')!;
    expect(b.seq, 'b consumed the credit').to.be.greaterThan(b.committedSeq);
    let bAnswered = false;
    const pb = node.ask('account/b', balance, 5000).then((v) => ((bAnswered = true), v));
    await sleep(30);
    expect(bAnswered, 'b answered a read resting on an uncommitted credit').to.equal(false);
    expect(effects, 'b ran effects before the commit').to.deep.equal(['Deposited']);
    g.open();
    expect(await p).to.equal('ok');
    expect(await pb).to.equal(31);
    await node.quiescent();
    expect(effects).to.deep.equal(['Deposited', 'Credited']);
    // b's write rested on a's append in flight: it went into a later append, never beside it or before.
    const ia = appends.findIndex((a) => a.includes('account/a:Debited:t1'));
    const ib = appends.findIndex((a) => a.includes('account/b:Credited:t1'));
    expect(ia, JSON.stringify(appends)).to.be.at.least(0);
    expect(ib, JSON.stringify(appends)).to.be.greaterThan(ia);
  });

  it('actors - when the sender\'s events fail to commit, the receiver that consumed its message fails too: no credit without its debit', async () => {
    const g = gate();
    const journal = new MemoryJournal();
    const events: NodeEvent[] = [];
    // Two appends may be in flight: b's write must still not go out beside a's failing one.
    const node = makeNode({ journal, reliable: { resendMs: 10, earlyLocal: true }, groupCommit: { maxInFlight: 2 }, onEvent: (e) => events.push(e) });
    await node.ask('account/a', deposit('d0', 100), 1000);
    await node.ask('account/b', deposit('d0', 1), 1000);
    failFirstAppendAfter(journal, g);
    const p = rejection(node.ask('account/a', transfer('t1', 'b', 30), 5000));
    await sleep(30);
    expect(node.inspect('account/b')!.seq, 'b consumed the credit').to.be.greaterThan(node.inspect('account/b')!.committedSeq);
    g.open();
    expect(await p).to.be.instanceOf(JournalFailedError);
    expect(node.stats.dependentFailures).to.equal(1);
    expect(events.filter((e) => e.type === 'journal-failed').map((e) => (e as { address: string }).address).sort()).to.deep.equal(['account/a', 'account/b']);
    await node.quiescent();
    // Rebuilt from the journal: the debit never happened, and neither did the credit.
    expect(await node.ask('account/a', balance, 1000)).to.equal(100);
    expect(await node.ask('account/b', balance, 1000)).to.equal(1);
    expect(journal.eventsOf('account/b').some((e) => (e as { type?: string }).type === 'Credited')).to.equal(false);
    // And the next transfer goes through once.
    expect(await node.ask('account/a', transfer('t2', 'b', 30), 1000)).to.equal('ok');
    await node.quiescent();
    expect(await node.ask('account/b', balance, 1000)).to.equal(31);
    expect(await node.ask('account/a', balance, 1000)).to.equal(70);
  });

  // The receiver may still hold the message unconsumed (here: stashed while it recovers) when the
  // sender's events fail. Consumed later, it would rest on sequences the sender reuses for new events:
  // the credit would commit with them, and the sender's real next message would be dropped as a duplicate.
  it('actors - a message whose sender failed before the receiver took it is refused: the sender\'s next transfer lands, the failed one does not', async () => {
    const appendGate = gate();
    const readGate = gate();
    const journal = new MemoryJournal();
    const node = makeNode({ journal, reliable: { resendMs: 10, earlyLocal: true } });
    await node.ask('account/a', deposit('d0', 100), 1000);
    failFirstAppendAfter(journal, appendGate);
    journal.faults.beforeRead = (id) => (id === 'account/b' ? readGate.wait() : undefined); // b stays in recovery
    const p = rejection(node.ask('account/a', transfer('t1', 'b', 30), 5000));
    await sleep(30);
    expect(node.inspect('account/b')?.status, 'b is recovering with the credit stashed').to.equal('recovering');
    appendGate.open();
    expect(await p).to.be.instanceOf(JournalFailedError);
    readGate.open();
    await node.quiescent();
    expect(await node.ask('account/a', transfer('t2', 'b', 20), 1000)).to.equal('ok');
    await node.quiescent();
    expect(await node.ask('account/a', balance, 1000)).to.equal(80);
    expect(await node.ask('account/b', balance, 1000)).to.equal(20);
    expect(journal.eventsOf('account/b').filter((e) => (e as { type?: string }).type === 'Credited').map((e) => (e as { transferId: string }).transferId)).to.deep.equal(['t2']);
  });
});
