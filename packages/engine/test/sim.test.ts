/**
 * The simulator (src/sim) in the normal suite: a bounded seed sweep under every fault, determinism
 * (each seed twice, same final state hash), and planted bugs it must find within a stated number of
 * seeds. Planted bugs are switched on through `World`'s `plants` option, which only the sim's tests
 * construct (the CLI never passes it; runSim forwards it to every seed only when a test gives it,
 * see sim.sweep.test.ts).
 *
 * Replay any seed: pnpm bourse sim --seed S --steps N --nodes 3 --faults crash,partition,drop,dup,delay,store
 */
import { expect } from 'chai';
import { World } from '../src/sim/world.js';
import type { Plants, WorldResult } from '../src/sim/world.js';
import { FAULT_KINDS, runSim } from '../src/sim/index.js';
import type { FaultKind, Violation } from '../src/sim/index.js';

const ALL = new Set<FaultKind>(FAULT_KINDS);

function run(seed: number, steps: number, faults: ReadonlySet<FaultKind> = ALL, plants?: Plants, stopOnFirst = true): Promise<WorldResult> {
  return new World({ seed, steps, nodes: 3, faults, stopOnFirst, ...(plants ? { plants } : {}) }).run();
}

/**
 * Bugs the simulator found in Bourse itself that are not fixed yet (owners: see the sim report).
 * A violation matching one is reported by the sweep but does not fail it; when the owner fixes it,
 * the pinned test below starts failing and the entry must go.
 */
const KNOWN: { readonly id: string; readonly match: (v: Violation) => boolean }[] = [];

const known = (v: Violation) => KNOWN.find((k) => k.match(v))?.id;

describe('sim - deterministic fault-injecting cluster simulator', function () {
  this.timeout(240_000);

  it('sim - a sweep of 20 seeds under crash, partition, drop, dup, delay and store faults keeps every invariant', async () => {
    const unknown: Violation[] = [];
    const seen = new Map<string, number[]>();
    let checks = 0;
    const faults: Record<string, number> = {};
    for (let seed = 1; seed <= 20; seed++) {
      // Past a known bug the run goes on, so it cannot hide another finding on the same seed.
      const r = await run(seed, 1_500, ALL, undefined, false);
      checks += r.invariantsChecked;
      for (const [k, n] of Object.entries(r.faultsInjected)) faults[k] = (faults[k] ?? 0) + (n ?? 0);
      for (const v of r.violations) {
        const id = known(v);
        if (id) (seen.get(id) ?? seen.set(id, []).get(id)!).push(seed);
        else unknown.push(v);
      }
    }
    if (seen.size) console.log(`      known Bourse bugs hit: ${[...seen].map(([id, s]) => `${id} (seeds ${s.join(',')})`).join('; ')}`);
    expect(unknown, JSON.stringify(unknown, null, 1)).to.deep.equal([]);
    expect(checks).to.be.greaterThan(100_000);
    for (const k of FAULT_KINDS) expect(faults[k] ?? 0, `faults of kind ${k}`).to.be.greaterThan(0);
  });

  it('sim - the same seed twice gives the same final state hash; different seeds differ', async () => {
    for (const seed of [101, 102]) {
      const a = await run(seed, 1_000);
      const b = await run(seed, 1_000);
      expect(b.finalStateHash, `seed ${seed}`).to.equal(a.finalStateHash);
      expect(b.faultsInjected).to.deep.equal(a.faultsInjected);
      expect(b.stats).to.deep.equal(a.stats);
    }
    expect((await run(103, 500)).finalStateHash).to.not.equal((await run(104, 500)).finalStateHash);
  });

  it('sim - runSim prints one JSON line last with the summary and returns exit code 0 on a clean run', async () => {
    const lines: string[] = [];
    const { exitCode, summary } = await runSim({ seed: 7, steps: 300, nodes: 2, faults: ['drop', 'delay'], json: true, print: (l) => lines.push(l) });
    const last = JSON.parse(lines.at(-1)!);
    expect(exitCode).to.equal(0);
    expect(last.seed).to.equal(7);
    expect(last).to.include.keys('steps', 'faultsInjected', 'invariantsChecked', 'violations', 'finalStateHash', 'stepsPerSec');
    expect(summary.violations).to.deep.equal([]);
  });

  // ---------------------------------------------------------------- planted bugs

  /** Seeds tried before giving up; the stated bound for each plant. */
  async function firstFinding(plants: Plants, maxSeeds: number, steps: number, invariants: string[], faults: ReadonlySet<FaultKind> = ALL): Promise<{ seed: number; v: Violation }> {
    for (let seed = 1; seed <= maxSeeds; seed++) {
      const r = await run(seed, steps, faults, plants);
      const v = r.violations.find((x) => invariants.includes(x.invariant));
      if (v) return { seed, v };
    }
    throw new Error(`planted bug ${JSON.stringify(plants)} not found within ${maxSeeds} seeds`);
  }

  it('sim - planted: acknowledging before the journal commits is found within 2 seeds', async () => {
    const { seed, v } = await firstFinding({ ackBeforeCommit: true }, 2, 1_500, ['ack-after-commit', 'acked-order-lost', 'transfer-lost-or-duplicated']);
    console.log(`      found at seed ${seed} step ${v.step}: ${v.invariant}: ${v.detail.slice(0, 120)}`);
  });

  it('sim - planted: settling a fill twice (redelivery past the dedupe) is found within 3 seeds', async () => {
    const { seed, v } = await firstFinding({ settleFillTwice: true }, 3, 1_500, ['conservation', 'book-ledger-agree']);
    console.log(`      found at seed ${seed} step ${v.step}: ${v.invariant}: ${v.detail.slice(0, 120)}`);
  });

  it('sim - planted: renewing a lease without a fencing check is found within 10 seeds', async () => {
    const { seed, v } = await firstFinding({ renewWithoutFence: true }, 10, 2_000, ['single-writer'], new Set<FaultKind>(['crash', 'partition', 'delay']));
    console.log(`      found at seed ${seed} step ${v.step}: ${v.invariant}: ${v.detail.slice(0, 120)}`);
  });

  it('sim - planted: an edge that waits for answers without a timeout is found within 2 seeds, as a liveness violation that ends the run', async () => {
    const t0 = performance.now();
    const { seed, v } = await firstFinding({ askWithoutTimeout: true }, 2, 2_000, ['liveness'], new Set<FaultKind>(['drop']));
    console.log(`      found at seed ${seed} step ${v.step}: ${v.invariant}: ${v.detail.slice(0, 120)}`);
    expect(v.detail).to.match(/no command issued for \d+ simulated ms/);
    expect(performance.now() - t0).to.be.below(60_000);
  });

  it('sim - without plants the same planted-bug seeds are clean (the findings are the plants, not noise)', async () => {
    for (const seed of [1, 2]) {
      const r = await run(seed, 1_500);
      expect(r.violations.filter((v) => !known(v)), `seed ${seed}`).to.deep.equal([]);
    }
  });
});
