/**
 * bench:sim — simulator throughput. Method: one process, the real engine kinds (book, ledger, md and
 * the saga) on 3 `ActorNode`s (group commit, reliable messages, recovery) over the simulated clock,
 * network, store and KV leases (src/sim). Seeds run one after another; a run does not stop at a
 * violation (so a known bug does not cut the measurement short; violations are counted).
 * stepsPerSec = client commands issued / wall time, including cluster start-up, funding, the final
 * drain and the journal-replay checks of every seed; stepsPerCpuSec divides by process CPU time
 * instead (the figure that does not depend on how busy the shared machine is). Prints the method,
 * then one JSON line.
 *
 * Then, side by side in the same process, the same seeds as a parallel sweep (`sweep`, whole seeds on
 * `--workers W` worker threads, default one per CPU capped by the seed count; skipped when that is 1):
 * `parallel.stepsPerSec` = all steps / wall time of the sweep (worker start-up included),
 * `parallel.stepsPerSecPerWorker` = steps / the seeds' run times summed, and `parallel.sameHashes`
 * says every seed ended in the same state hash as in the single-thread run. The comparison favours the
 * single thread: it runs first and leaves this thread's JIT warm, while each worker starts cold (the
 * first 2000-step seed in a fresh thread takes ~2.5x a warm one). `bourse sim --workers 1` vs
 * `--workers 2` in separate processes is the even comparison.
 *
 *   pnpm exec tsc -b packages/engine && node packages/engine/dist/bench/sim.js [--seeds 1..3] [--steps 20000] [--nodes 3] [--faults ...|none] [--long] [--workers W]
 */
import { cpus, loadavg } from 'node:os';
import { FAULT_KINDS, defaultWorkers, parseSimArgs, runWorld, sweep } from '../src/sim/index.js';
import type { FaultCounts, FaultKind, SeedJob } from '../src/sim/index.js';

const opts = parseSimArgs(process.argv.slice(2));
const steps = opts.steps ?? 20_000;
const [a, b] = opts.seeds ?? [opts.seed ?? 1, opts.seed ?? 1];
const faults = new Set<FaultKind>((opts.faults ?? FAULT_KINDS) as FaultKind[]);
const nodes = opts.nodes ?? 3;
console.log(
  `method: runWorld seeds ${a}..${b}, ${steps} steps each, ${nodes} nodes, faults ${[...faults].join(',') || 'none'}${opts.long ? ', long' : ''}; ` +
    `real engine kinds on ActorNode, simulated I/O; ${cpus().length} cpus, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
);
const counts: FaultCounts = {};
let total = 0;
let checks = 0;
let violations = 0;
const hashes: string[] = [];
const t0 = performance.now();
const c0 = process.cpuUsage();
for (let seed = a; seed <= b; seed++) {
  const r = await runWorld({ seed, steps, nodes, faults, long: opts.long === true, stopOnFirst: false });
  total += r.steps;
  checks += r.invariantsChecked;
  violations += r.violations.length;
  hashes.push(r.finalStateHash);
  for (const [k, n] of Object.entries(r.faultsInjected)) counts[k as FaultKind] = (counts[k as FaultKind] ?? 0) + (n ?? 0);
}
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(c0);
const cpuMs = (cpu.user + cpu.system) / 1000;

// The same seeds, on worker threads.
const workers = Math.min(opts.workers ?? defaultWorkers(b - a + 1), b - a + 1);
let parallel: Record<string, unknown> | undefined;
if (workers > 1) {
  const jobs: SeedJob[] = hashes.map((_, i) => ({ seed: a + i, steps, nodes, faults: [...faults], long: opts.long === true, stopOnFirst: false }));
  const p0 = performance.now();
  const out = await sweep(jobs, { workers });
  const pWallMs = performance.now() - p0;
  const pSteps = out.reduce((n, o) => n + (o.result?.steps ?? 0), 0);
  const busyMs = out.reduce((n, o) => n + o.ms, 0);
  parallel = {
    workers, stepsPerSec: Math.round(pSteps / (pWallMs / 1000)), stepsPerSecPerWorker: Math.round(pSteps / (busyMs / 1000)), wallMs: Math.round(pWallMs),
    sameHashes: out.every((o, i) => o.result?.finalStateHash === hashes[i]), errors: out.filter((o) => o.error !== undefined).length,
  };
}
console.log(
  JSON.stringify({
    bench: 'sim', steps: total, stepsPerSec: Math.round(total / (wallMs / 1000)), stepsPerCpuSec: Math.round(total / (cpuMs / 1000)),
    wallMs: Math.round(wallMs), cpuMs: Math.round(cpuMs), load1: Number(loadavg()[0]!.toFixed(2)), faultsInjected: counts, invariantsChecked: checks, violations,
    ...(parallel && { parallel }),
  }),
);
