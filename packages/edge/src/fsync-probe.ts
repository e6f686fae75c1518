/**
 * The disk's own commit latency, measured beside a load run: the physical reference for `bourse
 * load`'s ack percentiles on a node that acknowledges only after an fdatasync (every Bourse node: the
 * journal's WAL is synced before an append resolves).
 *
 * A worker thread (so the load generator's event loop does not colour it) writes 8 KiB into a scratch
 * file in `dir` and fdatasyncs it, every `intervalMs` (default 10), until stopped. Put `dir` on the
 * node's data file system. An order is answered after at least two appends in sequence, each waiting
 * for a sync, so a sync that stalls for S ms delays every order in flight meanwhile by up to S: the
 * probe's p99 is a floor under the venue's ack p99 that no code change in Bourse can lower.
 *
 * It is a floor, not the whole tail: other pauses (checkpoints, snapshot saves, a busy store thread)
 * add to it. Measured here (2-core VM, ext4): idle, p50 0.19 ms, p99 0.54 ms, but p999 32 ms and
 * stalls up to 94 ms; beside an embedded node at 2000-5000 orders/s, a worst sync of 8-136 ms in four
 * 20 s runs (one of the node's own WAL syncs once took 1056 ms).
 *
 * @example
 *   const probe = startFsyncProbe('./data');
 *   // ... the load run ...
 *   const r = await probe.stop(); // { n, p50Ms, p99Ms, p999Ms, maxMs, over20Ms }
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

export interface FsyncProbeResult {
  /** Syncs measured. */
  readonly n: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  /** Syncs that took over 20 ms. */
  readonly over20Ms: number;
  readonly intervalMs: number;
}

export interface FsyncProbe {
  /** Stops the probe, removes its scratch directory and returns the figures. */
  stop(): Promise<FsyncProbeResult>;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** The probe's figures from its sync times (ms, any order). */
export function summarizeSyncs(ms: readonly number[], intervalMs: number): FsyncProbeResult {
  const s = Float64Array.from(ms).sort();
  const pct = (p: number) => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!);
  let over20Ms = 0;
  for (const x of s) if (x > 20) over20Ms++;
  return { n: s.length, p50Ms: round3(pct(0.5)), p99Ms: round3(pct(0.99)), p999Ms: round3(pct(0.999)), maxMs: round3(s.length ? s[s.length - 1]! : 0), over20Ms, intervalMs };
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const file = path.join(workerData.scratch, 'probe');
const fd = fs.openSync(file, 'w');
const buf = Buffer.alloc(8192, 0x5a);
// A preallocated, synced file: the probe then measures data syncs, not file growth.
for (let i = 0; i < 128; i++) fs.writeSync(fd, buf, 0, buf.length, i * buf.length);
fs.fsyncSync(fd);
const ms = [];
let stop = false;
let i = 0;
parentPort.on('message', () => { stop = true; });
const step = () => {
  if (stop) {
    fs.closeSync(fd);
    parentPort.postMessage(ms);
    return;
  }
  fs.writeSync(fd, buf, 0, buf.length, (i++ % 128) * buf.length);
  const t = performance.now();
  fs.fdatasyncSync(fd);
  ms.push(performance.now() - t);
  setTimeout(step, workerData.intervalMs);
};
parentPort.postMessage('ready');
step();
`;

/**
 * Starts the probe in `dir` (which must exist and be writable: checked now, so a bad directory fails
 * before a load run, not after it). Resolves once the first sync is about to run.
 */
export async function startFsyncProbe(dir: string, opts: { intervalMs?: number } = {}): Promise<FsyncProbe> {
  const intervalMs = Math.max(1, Math.floor(opts.intervalMs ?? 10));
  let scratch: string;
  try {
    scratch = mkdtempSync(path.join(dir, '.bourse-fsync-probe-'));
  } catch (e) {
    throw new Error(`fsync probe: cannot create a scratch directory in ${dir}: ${(e as Error).message}`);
  }
  const w = new Worker(WORKER, { eval: true, workerData: { scratch, intervalMs } });
  const cleanup = () => rmSync(scratch, { recursive: true, force: true });
  // A failure in the worker (a full disk, say) is kept for stop(), never an unhandled 'error'.
  let failure: Error | undefined;
  let onFailure: ((e: Error) => void) | undefined;
  w.on('error', (e) => {
    failure = e;
    onFailure?.(e);
  });
  const failed = (e: Error) => new Error(`fsync probe: ${e.message}`);
  try {
    await new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      onFailure = reject;
    });
  } catch (e) {
    await w.terminate();
    cleanup();
    throw failed(e as Error);
  }
  // Never what keeps a process alive: if the caller fails before stop(), the process can still exit,
  // and the scratch directory goes with it.
  w.unref();
  process.once('exit', cleanup);
  return {
    stop: () =>
      new Promise<FsyncProbeResult>((resolve, reject) => {
        w.ref(); // until its answer has arrived
        process.off('exit', cleanup);
        // Resolves after the worker has ended and the scratch directory is gone.
        const end = () => w.terminate().catch(() => 0).then(cleanup);
        const fail = (e: Error) => void end().then(() => reject(failed(e)), reject);
        if (failure) return fail(failure);
        onFailure = fail;
        w.once('message', (ms: number[]) => void end().then(() => resolve(summarizeSyncs(ms, intervalMs)), reject));
        w.postMessage('stop');
      }),
  };
}
