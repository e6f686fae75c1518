/**
 * Seed sweeps, in this thread or spread over worker threads (`bourse sim --workers N`).
 *
 *   await sweep(jobs, { workers: 2, onOutcome: (o) => print(o) })
 *
 * A seed is one `World`, independent of every other: nothing a run reads is shared between runs, so a
 * seed's result (violations, final state hash, fault counts, stats) is the same whichever thread runs
 * it and whatever ran there before. The pool gives whole seeds to workers (`sweep-worker.ts`), the
 * next seed to the first worker that is free, and hands the outcomes to `onOutcome` in job order, not
 * completion order, so the caller prints and sums exactly as the in-process loop does.
 *
 * `workers <= 1` runs the seeds one after another in this thread, with no worker at all.
 *
 * Failures of the harness are outcomes, not hangs: a run that throws, a worker that throws or exits
 * while running a seed, all give that seed an `error` (a replacement worker takes the remaining seeds).
 * Every worker is terminated when the sweep ends, when `onOutcome` throws, and on `signal` (the CLI
 * aborts it on SIGINT); the returned promise settles only after they have exited.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { World } from './world.js';
import type { Plants, WorldResult } from './world.js';
import type { FaultKind } from './types.js';

/** One seed's run, as sent to a worker (plain data: it is structured-cloned). */
export interface SeedJob {
  readonly seed: number;
  readonly steps: number;
  readonly nodes: number;
  readonly faults: readonly FaultKind[];
  readonly long: boolean;
  /** Default true (as `World`). */
  readonly stopOnFirst?: boolean;
  /** Test-only planted bugs (the sim's test harness; never the CLI). */
  readonly plants?: Plants;
}

export interface SeedOutcome {
  readonly seed: number;
  /** Wall ms the seed took in the thread that ran it. */
  readonly ms: number;
  readonly result?: WorldResult;
  /** No result: the run threw, or its worker thread died. */
  readonly error?: string;
}

export interface SweepOptions {
  /** Worker threads; at most one per job. `<= 1`: run in this thread. */
  readonly workers: number;
  /** Each outcome, in job order. If it throws, the sweep stops (workers terminated) with that error. */
  readonly onOutcome?: (outcome: SeedOutcome) => void;
  /** Aborting stops the sweep: workers terminated, the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** The worker's entry module (tests substitute a failing one). Default `sweep-worker.js` beside this file. */
  readonly workerUrl?: URL;
  /**
   * Wall ms a seed may take: past it, its worker is terminated and the seed's outcome is an `error`
   * (a replacement worker takes the remaining seeds). Only a worker can be stopped mid-run, so with a
   * timeout even `workers: 1` runs its seeds on one worker thread. Default none.
   */
  readonly seedTimeoutMs?: number;
}

/** Runs one seed in this thread. Never rejects: a throw becomes the outcome's `error`. */
export async function runSeed(job: SeedJob): Promise<SeedOutcome> {
  const t0 = performance.now();
  try {
    const result = await new World({
      seed: job.seed,
      steps: job.steps,
      nodes: job.nodes,
      faults: new Set(job.faults),
      long: job.long,
      ...(job.stopOnFirst !== undefined && { stopOnFirst: job.stopOnFirst }),
      ...(job.plants && { plants: job.plants }),
    }).run();
    return { seed: job.seed, ms: performance.now() - t0, result };
  } catch (e) {
    return { seed: job.seed, ms: performance.now() - t0, error: `the run threw: ${oneLine(e)}` };
  }
}

/** The worker entry beside this module: `.js` when compiled, `.ts` when run from source under tsx. */
function defaultWorkerUrl(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './sweep-worker.ts' : './sweep-worker.js', import.meta.url);
}

/**
 * A worker on `url`. A `.ts` entry (tests under tsx, `pnpm test:fast`) needs tsx's loader in the
 * worker, and on Node 20 `--import tsx` in the inherited execArgv does not reach a worker's entry
 * module: a small bootstrap registers tsx's ESM hooks there first, then imports the entry.
 */
function startWorker(url: URL): Worker {
  if (url.protocol !== 'file:' || !url.pathname.endsWith('.ts')) return new Worker(url);
  // Resolved through tsx's package.json, as `import.meta.resolve` would ('import' condition): tsx may
  // have compiled this very module to CommonJS, where import.meta.resolve is missing and the
  // 'require' condition's build registers its hooks from the wrong directory when imported.
  const tsx = pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs')).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true });
}

function oneLine(e: unknown): string {
  const err = e as Error | undefined;
  return (err?.stack ?? String(e)).split('\n').slice(0, 3).map((l) => l.trim()).join(' | ');
}

function isOutcome(m: unknown, seed: number): m is SeedOutcome {
  const o = m as SeedOutcome | null;
  return typeof o === 'object' && o !== null && o.seed === seed && typeof o.ms === 'number' && (typeof o.error === 'string' || (typeof o.result === 'object' && o.result !== null));
}

/** Runs every job; resolves with the outcomes in job order. */
export async function sweep(jobs: readonly SeedJob[], options: SweepOptions): Promise<SeedOutcome[]> {
  const { signal } = options;
  signal?.throwIfAborted();
  const timed = options.seedTimeoutMs !== undefined && options.seedTimeoutMs > 0;
  if (!timed && (options.workers <= 1 || jobs.length <= 1)) {
    const out: SeedOutcome[] = [];
    for (const job of jobs) {
      const o = await runSeed(job);
      signal?.throwIfAborted();
      out.push(o);
      options.onOutcome?.(o);
    }
    return out;
  }
  return pool(jobs, Math.max(1, Math.min(options.workers, jobs.length)), options);
}

function pool(jobs: readonly SeedJob[], size: number, options: SweepOptions): Promise<SeedOutcome[]> {
  const url = options.workerUrl ?? defaultWorkerUrl();
  const outcomes: (SeedOutcome | undefined)[] = new Array(jobs.length);
  /** Every worker that has not exited yet (finish waits for them). */
  const alive = new Set<Worker>();
  let nextJob = 0;
  let nextOut = 0;
  let done = false;
  return new Promise<SeedOutcome[]>((resolve, reject) => {
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      options.signal?.removeEventListener('abort', onAbort);
      void Promise.allSettled([...alive].map((w) => w.terminate())).then(() => (err === undefined ? resolve(outcomes as SeedOutcome[]) : reject(err)));
    };
    const onAbort = (): void => finish(options.signal!.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const deliver = (i: number, o: SeedOutcome): void => {
      if (done || outcomes[i]) return;
      outcomes[i] = o;
      for (; nextOut < jobs.length && outcomes[nextOut]; nextOut++) {
        try {
          options.onOutcome?.(outcomes[nextOut]!);
        } catch (e) {
          finish(e);
          return;
        }
      }
      if (nextOut === jobs.length) finish();
    };

    const spawn = (): void => {
      const w = startWorker(url);
      alive.add(w);
      let current: number | undefined;
      let t0 = 0;
      let watchdog: NodeJS.Timeout | undefined;
      const give = (): void => {
        current = undefined;
        clearTimeout(watchdog);
        if (done || nextJob >= jobs.length) {
          void w.terminate();
          return;
        }
        current = nextJob++;
        t0 = performance.now();
        const limit = options.seedTimeoutMs;
        if (limit !== undefined && limit > 0) {
          watchdog = setTimeout(() => {
            fail(`timed out: no result after ${Math.round(limit / 1000)} s of wall time (worker terminated)`);
            void w.terminate();
          }, limit);
        }
        w.postMessage(jobs[current]);
      };
      const fail = (detail: string): void => {
        clearTimeout(watchdog);
        if (current === undefined) return;
        const i = current;
        current = undefined;
        deliver(i, { seed: jobs[i]!.seed, ms: performance.now() - t0, error: detail });
        if (!done && nextJob < jobs.length) spawn();
      };
      w.on('message', (m: unknown) => {
        if (current === undefined) return;
        const i = current;
        if (!isOutcome(m, jobs[i]!.seed)) {
          fail(`worker thread answered seed ${jobs[i]!.seed} with something that is not an outcome`);
          void w.terminate();
          return;
        }
        give();
        deliver(i, m);
      });
      w.on('messageerror', (e) => {
        fail(`worker thread's answer could not be deserialized: ${oneLine(e)}`);
        void w.terminate();
      });
      w.on('error', (e) => fail(`worker thread crashed: ${oneLine(e)}`));
      w.on('exit', (code) => {
        alive.delete(w);
        fail(`worker thread exited (code ${code}) before finishing the seed`);
      });
      give();
    };

    for (let k = 0; k < size; k++) spawn();
  });
}
