import { expect } from 'chai';
import fc from 'fast-check';
import { ActorNode, InProcessTransport, MemoryJournal } from '../src/index.js';
import type { AccountEvent } from './bank.js';
import { accountKind, sleep } from './bank.js';

const ACCOUNTS = ['a', 'b', 'c', 'd', 'e'];
const OPENING = 1_000;

/** Mulberry32: a tiny seeded PRNG for the faults, so a fast-check seed replays the whole run. */
function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

type Fault = { type: 'crash'; who: number } | { type: 'kill' } | { type: 'none' };

interface Scenario {
  faultSeed: number;
  /** `reliable.earlyLocal`: receivers on the node take messages before the sender's commit. */
  earlyLocal: boolean;
  /** Some appends fail (nothing stored): what rested on them must fail with them. */
  failingAppends: boolean;
  waves: { transfers: { from: number; to: number; amount: number }[]; fault: Fault; faultDelayMs: number }[];
}

const scenario: fc.Arbitrary<Scenario> = fc.record({
  faultSeed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  earlyLocal: fc.boolean(),
  failingAppends: fc.boolean(),
  waves: fc.array(
    fc.record({
      transfers: fc.array(
        fc.record({ from: fc.nat(ACCOUNTS.length - 1), to: fc.nat(ACCOUNTS.length - 1), amount: fc.integer({ min: 1, max: 600 }) }),
        { minLength: 1, maxLength: 12 },
      ),
      fault: fc.oneof(
        fc.record({ type: fc.constant('crash' as const), who: fc.nat(ACCOUNTS.length - 1) }),
        fc.constant({ type: 'kill' as const }),
        fc.constant({ type: 'none' as const }),
      ),
      faultDelayMs: fc.integer({ min: 0, max: 4 }),
    }),
    { minLength: 2, maxLength: 8 },
  ),
});

/**
 * Run a scenario: transfers in concurrent waves, each with retries until answered, while a fault
 * hits mid-wave (an actor crash, or the whole node killed and a new one started over the same
 * journal). The transport drops and duplicates reliable messages; the journal is slow, so kills
 * land with appends in flight.
 */
async function run(s: Scenario): Promise<void> {
  const rnd = prng(s.faultSeed);
  const journal = new MemoryJournal({
    faults: {
      beforeAppend: async () => {
        if (rnd() < 0.5) await sleep(Math.floor(rnd() * 3));
        if (s.failingAppends && rnd() < 0.2) throw new Error('injected append failure');
      },
    },
  });
  const transport = new InProcessTransport({ faults: { drop: () => rnd() < 0.1, duplicate: () => rnd() < 0.1 } });
  let generation = 0;
  const newNode = (): ActorNode =>
    new ActorNode({
      nodeId: `n${generation++}`,
      journal,
      transport,
      kinds: [accountKind],
      snapshotEventsEvery: 7,
      reliable: { resendMs: 5, earlyLocal: s.earlyLocal },
      groupCommit: { maxInFlight: 2 },
      restart: { backoffMsMin: 1, backoffMsMax: 20 },
    });
  let node = newNode();
  const askRetry = async (to: string, cmd: unknown): Promise<unknown> => {
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        return await node.ask(to, cmd, 200);
      } catch {
        await sleep(1);
      }
    }
    throw new Error(`no answer from ${to}`);
  };
  try {
    await Promise.all(ACCOUNTS.map((a) => askRetry(`account/${a}`, { type: 'Deposit', depositId: 'open', amount: OPENING })));
    const outcomes = new Map<string, unknown>();
    let n = 0;
    for (const wave of s.waves) {
      const inflight = wave.transfers.map((t) => {
        const transferId = `t${n++}`;
        return askRetry(`account/${ACCOUNTS[t.from]}`, { type: 'Transfer', transferId, to: ACCOUNTS[t.to], amount: t.amount }).then((r) =>
          outcomes.set(transferId, r),
        );
      });
      await sleep(wave.faultDelayMs);
      if (wave.fault.type === 'crash') node.crash(`account/${ACCOUNTS[wave.fault.who]}`);
      else if (wave.fault.type === 'kill') {
        node.kill();
        node = newNode();
        node.wake(ACCOUNTS.map((a) => `account/${a}`)); // as a shard takeover would
      }
      await Promise.all(inflight);
    }
    node.wake(ACCOUNTS.map((a) => `account/${a}`));
    await node.quiescent(10_000);

    // Money is conserved.
    let total = 0;
    for (const a of ACCOUNTS) total += (await askRetry(`account/${a}`, { type: 'Balance' })) as number;
    expect(total, 'total money').to.equal(OPENING * ACCOUNTS.length);

    // Each answered transfer is applied exactly once on both sides; a rejected one not at all.
    const debits = new Map<string, number>();
    const credits = new Map<string, number>();
    for (const a of ACCOUNTS) {
      for (const e of journal.eventsOf(`account/${a}`) as AccountEvent[]) {
        if (e.type === 'Debited') debits.set(e.transferId, (debits.get(e.transferId) ?? 0) + 1);
        if (e.type === 'Credited') credits.set(e.transferId, (credits.get(e.transferId) ?? 0) + 1);
      }
    }
    expect(outcomes.size).to.equal(n);
    for (const [id, outcome] of outcomes) {
      const want = outcome === 'ok' ? 1 : 0;
      expect(debits.get(id) ?? 0, `debits of ${id} (${String(outcome)})`).to.equal(want);
      expect(credits.get(id) ?? 0, `credits of ${id} (${String(outcome)})`).to.equal(want);
    }
  } finally {
    node.kill();
  }
}

describe('actors - reliable transfers', () => {
  it('actors - transfers under injected crashes conserve money and apply each transfer exactly once', async function () {
    this.timeout(60_000);
    const seed = Number(process.env.ACTORS_SEED ?? Date.now() % 2 ** 31);
    const numRuns = Number(process.env.ACTORS_RUNS ?? 30);
    console.log(`      fast-check seed ${seed} (replay: ACTORS_SEED=${seed})`);
    await fc.assert(fc.asyncProperty(scenario, run), { seed, numRuns, endOnFailure: true });
  });
});
