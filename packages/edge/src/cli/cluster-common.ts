/**
 * What `bourse node` and `bourse edge` share: the configured instrument list (the same on every
 * process of a cluster; more are defined at run time through the admin API and journaled), the
 * Postgres target, and waiting for a stop signal.
 */
import { readFileSync } from 'node:fs';
import { defineInstrument } from '@bourse/schemas';
import type { Instrument } from '@bourse/schemas';
import { DEMO_INSTRUMENTS } from './demo.js';

/** `--instruments FILE`: a JSON array of `defineInstrument` arguments; default the demo's BTC-USD and BTC-PERP. */
export function loadInstruments(file: string | undefined): readonly Instrument[] {
  if (file === undefined) return DEMO_INSTRUMENTS;
  const raw = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(raw) || raw.length === 0) throw new RangeError(`${file}: expected a non-empty JSON array of instruments`);
  return raw.map((x) => defineInstrument(x as Parameters<typeof defineInstrument>[0]));
}

/** Resolves on SIGINT/SIGTERM, after `seconds`, or when `signal` aborts. */
export function untilStopped(seconds: number | undefined, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (seconds !== undefined) setTimeout(done, seconds * 1000).unref();
    if (signal?.aborted) done();
    signal?.addEventListener('abort', done, { once: true });
  });
}
