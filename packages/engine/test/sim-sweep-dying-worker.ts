/**
 * Fixture for sim.sweep.test.ts (not a test): a sweep worker (as src/sim/sweep-worker.ts) whose
 * thread exits with code 7 when given seed 2, and runs every other seed normally.
 */
import { parentPort } from 'node:worker_threads';
import { runSeed } from '../src/sim/sweep.js';
import type { SeedJob } from '../src/sim/sweep.js';

const port = parentPort!;
port.on('message', (job: SeedJob) => {
  if (job.seed === 2) process.exit(7);
  void runSeed(job).then((o) => port.postMessage(o));
});
