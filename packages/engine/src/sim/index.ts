/**
 * `bourse sim`: the deterministic, fault-injecting cluster simulator (issue 6).
 *
 *   runSim({ seed: 7, steps: 20_000, nodes: 3, faults: new Set(['crash', 'partition', 'drop', 'dup', 'delay', 'store']) })
 *
 * Prints one JSON line last (seed or seeds, steps, faultsInjected, invariantsChecked, violations,
 * finalStateHash for one seed, stepsPerSec, stepsPerSecPerWorker, workers) and returns the exit code
 * (1 on any violation or seed error). A failing seed prints the command that replays it; with `shrink`
 * (default on for a failure) the fault set and step count are shrunk with fast-check to a smaller run
 * that still fails.
 *
 * A sweep of several seeds runs on worker threads (`workers`, default the machine's available
 * parallelism capped by the seed count; 1 = one after another in this thread), whole seeds per worker
 * (`sweep.ts`). Lines and the summary come out in seed order and are the same whatever the worker
 * count, except the timings and `workers`.
 */
import { availableParallelism } from 'node:os';
import { World } from './world.js';
import type { Plants, WorldOptions, WorldResult } from './world.js';
import { FAULT_KINDS } from './types.js';
import type { FaultCounts, FaultKind, Violation } from './types.js';
import { sweep } from './sweep.js';
import type { SeedJob, SeedOutcome } from './sweep.js';

export type { FaultKind, Violation, FaultCounts } from './types.js';
export { FAULT_KINDS } from './types.js';
export { sweep, runSeed } from './sweep.js';
export type { SeedJob, SeedOutcome, SweepOptions } from './sweep.js';

export interface SimOptions {
  readonly seed?: number;
  /** Inclusive range [a, b]. */
  readonly seeds?: readonly [number, number];
  readonly steps?: number;
  readonly nodes?: number;
  readonly faults?: ReadonlySet<FaultKind> | readonly FaultKind[];
  readonly long?: boolean;
  readonly json?: boolean;
  /** Shrink a failure with fast-check (default true). */
  readonly shrink?: boolean;
  /** Where lines go (default console.log). */
  readonly print?: (line: string) => void;
  /** Worker threads for a sweep (default `defaultWorkers(seed count)`; 1 = in this thread). */
  readonly workers?: number;
  /** Stops a sweep: its workers are terminated and runSim rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Test-only planted bugs, passed to every seed's `World` (the sim's tests; never the CLI). */
  readonly plants?: Plants;
  /** Test-only: the worker entry (see `SweepOptions.workerUrl`). */
  readonly workerUrl?: URL;
  /**
   * Wall seconds a seed may run before it is stopped and reported as an error with its replay command
   * (`SweepOptions.seedTimeoutMs`; forces a worker thread). 0 = none. Default: none in this thread; with
   * workers, max(120, steps / 100) — about 25x a seed's usual time here, so only a hang reaches it.
   */
  readonly seedTimeoutS?: number;
}

/** One worker thread per available CPU, at most one per seed. */
export function defaultWorkers(seedCount: number): number {
  return Math.max(1, Math.min(availableParallelism(), seedCount));
}

/** A seed whose run produced no result (it threw, or its worker thread died). */
export interface SeedError {
  readonly seed: number;
  readonly error: string;
}

export interface SimSummary {
  readonly seed?: number;
  readonly seeds?: [number, number];
  readonly steps: number;
  readonly nodes: number;
  readonly faults: FaultKind[];
  readonly faultsInjected: FaultCounts;
  readonly invariantsChecked: number;
  readonly violations: Violation[];
  readonly finalStateHash?: string;
  /** Steps of every seed / wall seconds of the whole sweep (worker start-up included). */
  readonly stepsPerSec: number;
  /** Steps / the seconds the seeds took in their threads, summed: the speed of one busy worker. */
  readonly stepsPerSecPerWorker: number;
  readonly workers: number;
  readonly wallMs: number;
  readonly errors?: SeedError[];
  readonly replay?: string[];
  readonly shrunk?: { steps: number; faults: FaultKind[]; invariant: string; command: string };
}

export function replayCommand(seed: number, steps: number, nodes: number, faults: Iterable<FaultKind>, long: boolean): string {
  const f = [...faults];
  return `pnpm bourse sim --seed ${seed} --steps ${steps} --nodes ${nodes} --faults ${f.length ? f.join(',') : 'none'}${long ? ' --long' : ''}`;
}

/** One world, one seed. */
export function runWorld(options: WorldOptions): Promise<WorldResult> {
  return new World(options).run();
}

function parseFaults(f: SimOptions['faults']): Set<FaultKind> {
  if (f === undefined) return new Set(FAULT_KINDS);
  return new Set([...f].filter((k): k is FaultKind => (FAULT_KINDS as readonly string[]).includes(k)));
}

/**
 * Shrinks a failing run with fast-check: the arbitrary is (steps ≤ failing, subset of fault kinds)
 * for the same seed; fast-check's shrinker walks it towards fewer steps and fewer fault kinds while
 * the same invariant still fails. The seed fixes everything else, so each candidate replays exactly.
 */
export async function shrinkFailure(
  seed: number,
  steps: number,
  nodes: number,
  faults: ReadonlySet<FaultKind>,
  long: boolean,
  invariant: string,
  budgetRuns = 40,
  plants?: Plants,
): Promise<{ steps: number; faults: FaultKind[] } | undefined> {
  const fc = (await import('fast-check')).default;
  const kinds = [...faults];
  let best: { steps: number; faults: FaultKind[] } | undefined;
  const prop = fc.asyncProperty(fc.integer({ min: 1, max: steps }), fc.subarray(kinds), async (n, fs) => {
    const r = await runWorld({ seed, steps: n, nodes, faults: new Set(fs), long, ...(plants && { plants }) });
    const fails = r.violations.some((v) => v.invariant === invariant);
    if (fails && (best === undefined || n + fs.length * 1000 < best.steps + best.faults.length * 1000)) best = { steps: n, faults: fs };
    return !fails;
  });
  // Start the search at the failing run itself (fc.examples), then let the shrinker minimise it.
  await fc.check(prop, { examples: [[steps, kinds]], numRuns: 1, endOnFailure: false, interruptAfterTimeLimit: 60_000, seed, markInterruptAsFailure: false });
  if (best === undefined) return undefined;
  // fast-check cannot shrink a constant-built subarray example without context: drop fault kinds
  // greedily (each kind draws from its own stream, so the rest of the schedule stays the same).
  let cur: { steps: number; faults: FaultKind[] } = best;
  let runs = 0;
  for (const k of [...cur.faults]) {
    if (runs++ >= budgetRuns) break;
    const fs = cur.faults.filter((x) => x !== k);
    const r = await runWorld({ seed, steps: cur.steps, nodes, faults: new Set(fs), long, ...(plants && { plants }) });
    const v = r.violations.find((x) => x.invariant === invariant);
    if (v) cur = { steps: Math.min(cur.steps, v.step), faults: fs };
  }
  return cur;
}

export async function runSim(options: SimOptions): Promise<{ exitCode: number; summary: SimSummary }> {
  const print = options.print ?? ((l: string) => console.log(l));
  const steps = options.steps ?? 10_000;
  const nodes = Math.max(1, options.nodes ?? 3);
  const faults = parseFaults(options.faults);
  const long = options.long === true;
  const [a, b] = options.seeds ?? [options.seed ?? 1, options.seed ?? 1];
  const counts: FaultCounts = {};
  const violations: Violation[] = [];
  const errors: SeedError[] = [];
  let invariantsChecked = 0;
  let totalSteps = 0;
  let busyMs = 0;
  let hash: string | undefined;
  const replay: string[] = [];
  const jobs: SeedJob[] = [];
  for (let seed = a; seed <= b; seed++) jobs.push({ seed, steps, nodes, faults: [...faults], long, ...(options.plants && { plants: options.plants }) });
  const workers = Math.max(1, Math.min(options.workers ?? defaultWorkers(jobs.length), jobs.length));
  // Called in seed order whatever the worker count, so lines, sums and key orders are the same.
  const onOutcome = ({ seed, ms, result: r, error }: SeedOutcome): void => {
    busyMs += ms;
    if (r === undefined) {
      const cmd = replayCommand(seed, steps, nodes, faults, long);
      errors.push({ seed, error: error ?? 'no result' });
      replay.push(cmd);
      print(`ERROR seed ${seed}: ${error ?? 'no result'}`);
      print(`replay: ${cmd}`);
      return;
    }
    totalSteps += r.steps;
    invariantsChecked += r.invariantsChecked;
    for (const [k, n] of Object.entries(r.faultsInjected)) counts[k as FaultKind] = (counts[k as FaultKind] ?? 0) + (n ?? 0);
    if (a === b) hash = r.finalStateHash;
    if (r.violations.length > 0) {
      violations.push(...r.violations);
      const cmd = replayCommand(seed, steps, nodes, faults, long);
      replay.push(cmd);
      for (const v of r.violations) print(`VIOLATION seed ${seed} step ${v.step} ${v.invariant}: ${v.detail}`);
      print(`replay: ${cmd}`);
    } else if (!options.json && a !== b) print(`seed ${seed}: ok (${r.steps} steps, ${r.invariantsChecked} checks, hash ${r.finalStateHash})`);
  };
  const t0 = performance.now();
  const seedTimeoutS = options.seedTimeoutS ?? (workers > 1 ? Math.max(120, Math.ceil(steps / 100)) : 0);
  await sweep(jobs, {
    workers,
    onOutcome,
    ...(seedTimeoutS > 0 && { seedTimeoutMs: seedTimeoutS * 1000 }),
    ...(options.signal && { signal: options.signal }),
    ...(options.workerUrl && { workerUrl: options.workerUrl }),
  });
  const wallMs = performance.now() - t0;
  let shrunk: SimSummary['shrunk'];
  if (violations.length > 0 && options.shrink !== false) {
    const v = violations[0]!;
    const s = await shrinkFailure(v.seed, Math.min(steps, v.step + 1), nodes, faults, long, v.invariant, 40, options.plants);
    if (s) {
      shrunk = { steps: s.steps, faults: s.faults, invariant: v.invariant, command: replayCommand(v.seed, s.steps, nodes, s.faults, long) };
      print(`shrunk: ${shrunk.command}`);
    }
  }
  const summary: SimSummary = {
    ...(a === b ? { seed: a } : { seeds: [a, b] as [number, number] }),
    steps: totalSteps,
    nodes,
    faults: [...faults],
    faultsInjected: counts,
    invariantsChecked,
    violations,
    ...(hash !== undefined ? { finalStateHash: hash } : {}),
    stepsPerSec: Math.round(totalSteps / (wallMs / 1000)),
    stepsPerSecPerWorker: busyMs > 0 ? Math.round(totalSteps / (busyMs / 1000)) : 0,
    workers,
    wallMs: Math.round(wallMs),
    ...(errors.length ? { errors } : {}),
    ...(replay.length ? { replay } : {}),
    ...(shrunk ? { shrunk } : {}),
  };
  print(JSON.stringify(summary));
  return { exitCode: violations.length > 0 || errors.length > 0 ? 1 : 0, summary };
}

/** Parses `--seed S | --seeds A..B --steps N --nodes K --faults a,b [--workers W] [--json] [--long]` (for the benchmark). */
export function parseSimArgs(argv: readonly string[]): SimOptions {
  const o: { -readonly [K in keyof SimOptions]: SimOptions[K] } = {};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--seed') (o.seed = Number(v)), i++;
    else if (k === '--seeds') {
      const [x, y] = String(v).split('..').map(Number);
      o.seeds = [x!, y ?? x!];
      i++;
    } else if (k === '--steps') (o.steps = Number(v)), i++;
    else if (k === '--nodes') (o.nodes = Number(v)), i++;
    else if (k === '--workers') (o.workers = Number(v)), i++;
    else if (k === '--seed-timeout') (o.seedTimeoutS = Number(v)), i++;
    else if (k === '--faults') (o.faults = v === 'none' ? [] : (String(v).split(',') as FaultKind[])), i++;
    else if (k === '--json') o.json = true;
    else if (k === '--long') o.long = true;
    else if (k === '--no-shrink') o.shrink = false;
  }
  return o;
}
