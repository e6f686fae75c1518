/**
 * bench:sim — simulator throughput. Method: one process, the real engine kinds on `ActorNode`s over
 * the simulated clock/network/store (src/sim), N seeds run one after another, no output per seed;
 * stepsPerSec = client commands issued / wall time (including cluster start-up, funding, the final
 * drain and the journal replay checks of every seed). Prints the method, then one JSON line.
 *
 *   pnpm exec tsc -b packages/engine && node packages/engine/dist/bench/sim.js [--seeds 1..3] [--steps 20000] [--nodes 3] [--faults ...]
 */
import { cpus, loadavg } from 'node:os';
import { parseSimArgs, runSim } from '../src/sim/index.js';

const opts = parseSimArgs(process.argv.slice(2));
const steps = opts.steps ?? 20_000;
const seeds = opts.seeds ?? [opts.seed ?? 1, opts.seed ?? 1];
console.log(
  `method: runSim seeds ${seeds[0]}..${seeds[1]}, ${steps} steps each, ${opts.nodes ?? 3} nodes, faults ${[...(opts.faults ?? ['crash', 'partition', 'drop', 'dup', 'delay', 'store'])].join(',')}; ` +
    `real book/ledger/md kinds on ActorNode (group commit, reliable messages), simulated I/O; ${cpus().length} cpus, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
);
let last = '';
const c0 = process.cpuUsage();
const { exitCode, summary } = await runSim({ ...opts, steps, seeds, json: true, shrink: false, print: (l) => (last = l) });
void last;
const cpu = process.cpuUsage(c0);
const cpuMs = (cpu.user + cpu.system) / 1000;
console.log(JSON.stringify({ bench: 'sim', steps: summary.steps, stepsPerSec: summary.stepsPerSec, stepsPerCpuSec: Math.round(summary.steps / (cpuMs / 1000)), cpuMs: Math.round(cpuMs), load1: Number(loadavg()[0]!.toFixed(2)), wallMs: summary.wallMs, faultsInjected: summary.faultsInjected, invariantsChecked: summary.invariantsChecked, violations: summary.violations.length }));
process.exitCode = exitCode;
