/**
 * A client-side L2 book rebuilt from the public feed: apply an L2Snapshot, then L2Deltas in seq order.
 * It verifies every checksum and every seq step, and says `needsResync` as soon as either fails (or the
 * input is garbage); the client then requests a fresh snapshot. Deltas that arrive before the snapshot
 * are buffered (up to `bufferMax`) and the ones newer than the snapshot are applied after it.
 *
 * Pure: lives in schemas so the SDK (client -> schemas) uses it as is.
 *
 * @example
 *   const book = new LocalBook('BTC-USD');
 *   book.applySnapshot(snapshot);            // from the L2 subscription
 *   const r = book.applyDelta(delta);        // 'ok' | 'stale' | 'buffered' | 'gap' | 'checksum' | 'invalid' | 'resyncing'
 *   if (book.needsResync) resubscribe();
 */
import type { L2Delta, L2Snapshot, Level } from '../marketdata.js';
import { checksumOfLevels } from './checksum.js';
import { Levels } from './levels.js';

export type LocalBookResult =
  /** Applied; checksum verified. */
  | 'ok'
  /** seq at or below the book's: a duplicate, dropped. */
  | 'stale'
  /** No snapshot yet: kept until one arrives. */
  | 'buffered'
  /** seq skipped one or more deltas: resync. */
  | 'gap'
  /** Applied, but the checksum differs: resync. */
  | 'checksum'
  /** Malformed message or wrong symbol: resync. */
  | 'invalid'
  /** Already waiting for a snapshot (after a failure): dropped. */
  | 'resyncing';

export class LocalBook {
  readonly symbol: string;
  readonly bufferMax: number;
  readonly bids = new Levels('buy');
  readonly asks = new Levels('sell');
  /** Seq of the last snapshot or delta applied; -1 before the first snapshot. */
  seq = -1;
  /** True after a gap, a checksum mismatch or garbage, until the next good snapshot. */
  needsResync = false;
  /** Why the last resync was asked for. */
  lastProblem: LocalBookResult | undefined = undefined;
  private pending: L2Delta[] = [];

  constructor(symbol: string, opts: { bufferMax?: number } = {}) {
    this.symbol = symbol;
    this.bufferMax = opts.bufferMax ?? 10_000;
  }

  get synced(): boolean {
    return this.seq >= 0 && !this.needsResync;
  }

  /** Replaces the book with the snapshot, verifies its checksum, then applies buffered newer deltas. */
  applySnapshot(snap: L2Snapshot): LocalBookResult {
    this.bids.clear();
    this.asks.clear();
    this.needsResync = false;
    this.lastProblem = undefined;
    const s = snap as unknown as Record<string, unknown>;
    if (
      typeof s !== 'object' || s === null || s.type !== 'L2Snapshot' || s.symbol !== this.symbol ||
      !Number.isSafeInteger(s.seq) || (s.seq as number) < 0 || !validLevels(s.bids, false) || !validLevels(s.asks, false)
    ) {
      return this.fail('invalid');
    }
    for (const [p, q] of snap.bids) this.bids.set(p, q);
    for (const [p, q] of snap.asks) this.asks.set(p, q);
    this.seq = snap.seq;
    if (this.checksum() !== snap.checksum) return this.fail('checksum');
    const pending = this.pending;
    this.pending = [];
    for (const d of pending) {
      const r = this.applyDelta(d);
      if (r !== 'ok' && r !== 'stale') return r;
    }
    return 'ok';
  }

  /** Applies the next delta; anything but 'ok', 'stale' or 'buffered' leaves `needsResync` set. */
  applyDelta(delta: L2Delta): LocalBookResult {
    const d = delta as unknown as Record<string, unknown>;
    if (
      typeof d !== 'object' || d === null || d.type !== 'L2Delta' || d.symbol !== this.symbol ||
      !Number.isSafeInteger(d.seq) || !Number.isSafeInteger(d.checksum) || !validLevels(d.bids, true) || !validLevels(d.asks, true)
    ) {
      return this.fail('invalid');
    }
    if (this.needsResync) return 'resyncing';
    if (this.seq < 0) {
      if (this.pending.length >= this.bufferMax) return this.fail('gap');
      this.pending.push(delta);
      return 'buffered';
    }
    if (delta.seq <= this.seq) return 'stale';
    if (delta.seq !== this.seq + 1) return this.fail('gap');
    for (const [p, q] of delta.bids) this.bids.set(p, q);
    for (const [p, q] of delta.asks) this.asks.set(p, q);
    this.seq = delta.seq;
    if (this.checksum() !== delta.checksum) return this.fail('checksum');
    return 'ok';
  }

  /** CRC-32 of the top 10 levels per side, as the feed computes it. */
  checksum(): number {
    return checksumOfLevels(this.bids, this.asks);
  }

  /** Up to `n` levels per side, best first. */
  depth(n = Infinity): { bids: Level[]; asks: Level[] } {
    return { bids: this.bids.top(n), asks: this.asks.top(n) };
  }

  private fail(problem: LocalBookResult): LocalBookResult {
    this.needsResync = true;
    this.lastProblem = problem;
    this.seq = -1;
    this.pending = [];
    this.bids.clear();
    this.asks.clear();
    return problem;
  }
}

/** Array of [price > 0, qty] integer pairs; qty > 0 in snapshots, >= 0 in deltas. Bounded, so a hostile frame is cheap to reject. */
function validLevels(x: unknown, zeroOk: boolean): x is Level[] {
  if (!Array.isArray(x) || x.length > 1_000_000) return false;
  for (const l of x) {
    if (!Array.isArray(l) || l.length !== 2) return false;
    const [p, q] = l as unknown[];
    if (!Number.isSafeInteger(p) || (p as number) <= 0 || !Number.isSafeInteger(q) || (q as number) < (zeroOk ? 0 : 1)) return false;
  }
  return true;
}
