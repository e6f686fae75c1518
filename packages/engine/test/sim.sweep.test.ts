/**
 * Seed sweeps on worker threads (src/sim/sweep.ts, `runSim({ workers })`, `bourse sim --workers N`):
 * the same lines and results whatever the worker count, planted bugs still found and reported with
 * their seed, and a worker that dies is an error for its seed, never a hang.
 *
 * Replay any seed: pnpm bourse sim --seed S --steps N --workers 1
 */
import { expect } from 'chai';
import { runSeed, runSim, sweep } from '../src/sim/index.js';
import type { SeedJob, SimSummary } from '../src/sim/index.js';

async function sim(options: Parameters<typeof runSim>[0]): Promise<{ lines: string[]; exitCode: number; summary: SimSummary }> {
  const lines: string[] = [];
  const { exitCode, summary } = await runSim({ ...options, print: (l) => lines.push(l) });
  return { lines, exitCode, summary };
}

/** The summary without what depends on the worker count or the machine. */
function comparable(s: SimSummary): Partial<SimSummary> {
  const { stepsPerSec: _a, stepsPerSecPerWorker: _b, workers: _c, wallMs: _d, ...rest } = s;
  return rest;
}

/** A worker entry that fails as `body` says, for the crash tests. */
const failing = (body: string) => new URL(`data:text/javascript,${encodeURIComponent(`import { parentPort } from 'node:worker_threads'; parentPort.on('message', (job) => { ${body} });`)}`);

/** A sweep worker whose thread exits on seed 2 (test/sim-sweep-dying-worker.ts; `.ts` under tsx). */
const dyingOnSeed2 = new URL(import.meta.url.endsWith('.ts') ? './sim-sweep-dying-worker.ts' : './sim-sweep-dying-worker.js', import.meta.url);

describe('sim sweep - seeds on worker threads', function () {
  this.timeout(240_000);

  it('sim sweep - workers 1 and 2 print the same per-seed lines (hashes) and the same summary, in seed order', async () => {
    const one = await sim({ seeds: [1, 4], steps: 500, workers: 1 });
    const two = await sim({ seeds: [1, 4], steps: 500, workers: 2 });
    expect(one.exitCode).to.equal(0);
    expect(two.exitCode).to.equal(0);
    const perSeed = (ls: string[]) => ls.slice(0, -1);
    expect(perSeed(one.lines)).to.have.length(4);
    expect(perSeed(one.lines).map((l) => /^seed (\d+): ok .*hash [0-9a-f]+\)$/.exec(l)?.[1])).to.deep.equal(['1', '2', '3', '4']);
    expect(perSeed(two.lines)).to.deep.equal(perSeed(one.lines));
    expect(comparable(two.summary)).to.deep.equal(comparable(one.summary));
    expect(JSON.stringify(comparable(JSON.parse(two.lines.at(-1)!)))).to.equal(JSON.stringify(comparable(JSON.parse(one.lines.at(-1)!))));
    expect(one.summary.workers).to.equal(1);
    expect(two.summary.workers).to.equal(2);
  });

  it('sim sweep - the JSON summary carries workers, stepsPerSec (aggregate) and stepsPerSecPerWorker; workers are capped by the seed count', async () => {
    const { lines, summary } = await sim({ seeds: [5, 6], steps: 200, workers: 8, json: true });
    expect(lines).to.have.length(1);
    const last = JSON.parse(lines[0]!);
    expect(last).to.include({ workers: 2, steps: 400 });
    expect(last.seeds).to.deep.equal([5, 6]);
    expect(last.stepsPerSec).to.be.a('number').above(0);
    expect(last.stepsPerSecPerWorker).to.be.a('number').above(0);
    expect(last).to.include.keys('faultsInjected', 'invariantsChecked', 'violations', 'wallMs');
    expect(summary.stepsPerSec, 'total steps / wall seconds').to.be.closeTo(summary.steps / (summary.wallMs / 1000), summary.stepsPerSec * 0.02 + 1);
    expect((await sim({ seed: 5, steps: 100, json: true })).summary.workers, 'one seed runs in this thread').to.equal(1);
  });

  it('sim sweep - a planted bug is found and reported with its seed and replay command under 2 workers, as under 1', async () => {
    // Found mid-run (sim.test.ts: within 3 seeds of 1500 steps), not during the funding.
    const plants = { settleFillTwice: true };
    const two = await sim({ seeds: [1, 3], steps: 1_500, workers: 2, plants, shrink: false });
    const one = await sim({ seeds: [1, 3], steps: 1_500, workers: 1, plants, shrink: false });
    expect(two.exitCode).to.equal(1);
    expect(two.summary.violations.length).to.be.greaterThan(0);
    expect(two.summary.violations.map((v) => v.invariant)).to.include.oneOf(['conservation', 'book-ledger-agree']);
    const seeds = [...new Set(two.summary.violations.map((v) => v.seed))];
    for (const s of seeds) {
      expect(two.lines.some((l) => l.startsWith(`VIOLATION seed ${s} step `))).to.equal(true);
      expect(two.lines).to.include(`replay: pnpm bourse sim --seed ${s} --steps 1500 --nodes 3 --faults crash,partition,drop,dup,delay,store`);
    }
    expect(two.summary.replay).to.have.length(seeds.length);
    expect(two.lines.slice(0, -1)).to.deep.equal(one.lines.slice(0, -1));
    expect(comparable(two.summary)).to.deep.equal(comparable(one.summary));
  });

  it('sim sweep - a failure found on a worker is still shrunk', async () => {
    const { exitCode, lines, summary } = await sim({ seeds: [1, 2], steps: 600, workers: 2, plants: { ackBeforeCommit: true } });
    expect(exitCode).to.equal(1);
    expect(summary.shrunk, lines.join('\n')).to.not.equal(undefined);
    expect(summary.shrunk!.steps).to.be.at.most(600);
    expect(summary.shrunk!.command).to.match(new RegExp(`^pnpm bourse sim --seed ${summary.violations[0]!.seed} `));
    expect(lines.some((l) => l.startsWith('shrunk: pnpm bourse sim --seed '))).to.equal(true);
  });

  it('sim sweep - a worker that throws, exits or answers garbage is an error for that seed (exit code 1), never a hang', async () => {
    for (const [body, expected] of [
      ['throw new Error("boom " + job.seed)', /^worker thread crashed: Error: boom \d/],
      ['process.exit(3)', /^worker thread exited \(code 3\) before finishing the seed$/],
      ['parentPort.postMessage({ nonsense: true })', /not an outcome/],
    ] as const) {
      const { exitCode, lines, summary } = await sim({ seeds: [1, 3], steps: 100, workers: 2, workerUrl: failing(body), shrink: false });
      expect(exitCode, body).to.equal(1);
      expect(summary.errors?.map((e) => e.seed), body).to.deep.equal([1, 2, 3]);
      for (const e of summary.errors!) expect(e.error, body).to.match(expected);
      expect(lines.filter((l) => l.startsWith('ERROR seed ')).map((l) => Number(/^ERROR seed (\d+)/.exec(l)![1])), body).to.deep.equal([1, 2, 3]);
      expect(lines, body).to.include('replay: pnpm bourse sim --seed 2 --steps 100 --nodes 3 --faults crash,partition,drop,dup,delay,store');
      expect(summary.violations).to.deep.equal([]);
    }
  });

  it('sim sweep - only the seed whose worker died is an error; a replacement worker runs the rest', async () => {
    const jobs: SeedJob[] = [1, 2, 3, 4].map((seed) => ({ seed, steps: 50, nodes: 2, faults: [], long: false }));
    const seen: number[] = [];
    const out = await sweep(jobs, { workers: 2, workerUrl: dyingOnSeed2, onOutcome: (o) => seen.push(o.seed) });
    expect(seen).to.deep.equal([1, 2, 3, 4]);
    expect(out.map((o) => o.seed)).to.deep.equal([1, 2, 3, 4]);
    expect(out[1]!.error).to.match(/^worker thread exited \(code 7\)/);
    for (const i of [0, 2, 3]) expect(out[i]!.result?.finalStateHash, `seed ${i + 1}`).to.equal((await runSeed(jobs[i]!)).result!.finalStateHash);
  });

  /** A worker whose thread spins forever (a synchronous hang) on seed 2 and answers every other seed at once. */
  const spinningOnSeed2 = failing(
    'if (job.seed === 2) { for (;;) {} } parentPort.postMessage({ seed: job.seed, ms: 1, result: { seed: job.seed, steps: job.steps, faultsInjected: {}, invariantsChecked: 1, violations: [], finalStateHash: "00", simMs: 1, stats: {} } });',
  );

  it('sim sweep - a seed past the wall timeout is stopped and is an error for that seed only, also with workers 1', async () => {
    const jobs: SeedJob[] = [1, 2, 3].map((seed) => ({ seed, steps: 50, nodes: 2, faults: [], long: false }));
    for (const workers of [1, 2]) {
      const t0 = performance.now();
      const out = await sweep(jobs, { workers, workerUrl: spinningOnSeed2, seedTimeoutMs: 1_000 });
      expect(out.map((o) => o.seed), `workers ${workers}`).to.deep.equal([1, 2, 3]);
      expect(out[1]!.error, `workers ${workers}`).to.match(/^timed out: no result after 1 s of wall time/);
      expect(out[0]!.result?.seed, `workers ${workers}`).to.equal(1);
      expect(out[2]!.result?.seed, `workers ${workers}`).to.equal(3);
      expect(performance.now() - t0).to.be.below(15_000);
    }
  });

  it('sim sweep - runSim reports a timed-out seed with its replay command and exit code 1', async () => {
    const { lines, exitCode, summary } = await sim({ seeds: [1, 3], steps: 50, nodes: 2, faults: [], workers: 2, workerUrl: spinningOnSeed2, seedTimeoutS: 1, json: true });
    expect(exitCode).to.equal(1);
    expect(summary.errors?.map((e) => e.seed)).to.deep.equal([2]);
    expect(lines).to.include('replay: pnpm bourse sim --seed 2 --steps 50 --nodes 2 --faults none');
    expect(lines.find((l) => l.startsWith('ERROR seed 2:'))).to.match(/timed out/);
  });

  it('sim sweep - aborting stops the sweep: it rejects with the reason and does not wait for the seeds', async () => {
    const jobs: SeedJob[] = [1, 2, 3].map((seed) => ({ seed, steps: 50, nodes: 2, faults: [], long: false }));
    const ac = new AbortController();
    const t0 = performance.now();
    const hanging = failing('setInterval(() => {}, 1000)');
    setTimeout(() => ac.abort(new Error('stop now')), 200);
    const err = await sweep(jobs, { workers: 2, workerUrl: hanging, signal: ac.signal }).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.equal('stop now');
    expect(performance.now() - t0).to.be.below(10_000);
  });
});
