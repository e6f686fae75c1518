/**
 * The worker-thread entry of a seed sweep (`sweep.ts`): takes one `SeedJob` at a time, runs the seed,
 * posts its `SeedOutcome` back. The pool sends the next job only after the outcome, and terminates
 * the thread when there is none left.
 */
import { parentPort } from 'node:worker_threads';
import { runSeed } from './sweep.js';
import type { SeedJob } from './sweep.js';

const port = parentPort;
if (!port) throw new Error('sweep-worker runs as a worker thread of sweep() (src/sim/sweep.ts)');
port.on('message', (job: SeedJob) => {
  void runSeed(job).then((outcome) => port.postMessage(outcome));
});
