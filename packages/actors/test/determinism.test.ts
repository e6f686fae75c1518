import { expect } from 'chai';
import { ActorNode, InProcessTransport, ManualClock, MemoryJournal, hashOf } from '../src/index.js';
import type { Clock } from '../src/index.js';
import { accountKind, settle } from './bank.js';

function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const ACCOUNTS = ['a', 'b', 'c', 'd'];
const later = (clock: Clock, ms: number): Promise<void> => new Promise((r) => clock.schedule(ms, r));

/**
 * One run on simulated time: random transfers, a slow journal, a lossy and reordering network, and
 * crashes, all drawn from one seed. Returns a hash of the whole journal and the client's answers.
 */
async function simulate(seed: number): Promise<string> {
  const rnd = prng(seed);
  const clock = new ManualClock(0);
  const journal = new MemoryJournal({ faults: { beforeAppend: () => later(clock, Math.floor(rnd() * 3)) } });
  const transport = new InProcessTransport({
    clock,
    faults: { drop: () => rnd() < 0.1, duplicate: () => rnd() < 0.1, delayMs: () => Math.floor(rnd() * 4) },
  });
  const node = new ActorNode({
    nodeId: 'sim',
    clock,
    journal,
    transport,
    kinds: [accountKind],
    snapshotEventsEvery: 5,
    reliable: { resendMs: 10 },
    restart: { backoffMsMin: 2, backoffMsMax: 20 },
  });
  const answers: unknown[] = [];
  for (const a of ACCOUNTS) node.tell(`account/${a}`, { type: 'Deposit', depositId: 'open', amount: 100 });
  for (let step = 0; step < 400; step++) {
    const r = rnd();
    if (r < 0.2) {
      const from = ACCOUNTS[Math.floor(rnd() * ACCOUNTS.length)]!;
      const to = ACCOUNTS[Math.floor(rnd() * ACCOUNTS.length)]!;
      const i = step;
      node
        .ask(`account/${from}`, { type: 'Transfer', transferId: `t${i}`, to, amount: 1 + Math.floor(rnd() * 60) }, 50)
        .then((v) => answers.push([i, v]), (e: Error) => answers.push([i, e.name]));
    } else if (r < 0.23) node.crash(`account/${ACCOUNTS[Math.floor(rnd() * ACCOUNTS.length)]!}`);
    clock.advance(1);
    await settle(3);
  }
  for (let i = 0; i < 500 && !node.isQuiescent(); i++) {
    clock.advance(1);
    await settle(3);
  }
  expect(node.isQuiescent(), 'quiescent').to.equal(true);
  let total = 0;
  for (const a of ACCOUNTS) total += (node.inspect(`account/${a}`)!.state as { balance: number }).balance;
  expect(total).to.equal(400);
  node.kill();
  return hashOf({ journal: ACCOUNTS.map((a) => journal.eventsOf(`account/${a}`)), answers });
}

describe('actors - simulation', () => {
  it('actors - a run on the manual clock with a seeded faulty network and journal replays exactly', async function () {
    this.timeout(30_000);
    for (const seed of [1, 2, 3]) {
      const h1 = await simulate(seed);
      const h2 = await simulate(seed);
      expect(h2, `seed ${seed}`).to.equal(h1);
    }
    expect(await simulate(4)).to.not.equal(await simulate(5));
  });
});
