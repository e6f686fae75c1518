/**
 * The L2 checksum: CRC-32 (IEEE, unsigned) of an ASCII string built from the top 10 levels per side.
 *
 * The string interleaves bids and asks, best first, each level as `price:qty` in decimal, joined by ':'
 * (`bid1Price:bid1Qty:ask1Price:ask1Qty:bid2Price:...`). When one side runs out before the other, its
 * entries are simply skipped; an empty book hashes the empty string (checksum 0).
 * schemas/MARKETDATA.md has the spec and worked examples. Pure: the SDK reuses it.
 *
 * @example
 *   checksumString([[100, 5]], [[101, 7], [102, 1]]) // '100:5:101:7:102:1'
 */
import { L2_CHECKSUM_DEPTH, type Level } from '@bourse/schemas';
import { crc32Ascii } from '../util/crc32.js';
import type { Levels } from './levels.js';

/** The exact string the checksum covers, from best-first level lists (only the first 10 of each count). */
export function checksumString(bids: readonly Level[], asks: readonly Level[]): string {
  let s = '';
  for (let i = 0; i < L2_CHECKSUM_DEPTH; i++) {
    const b = bids[i];
    const a = asks[i];
    if (b === undefined && a === undefined) break;
    if (b !== undefined) s += (s.length === 0 ? '' : ':') + b[0] + ':' + b[1];
    if (a !== undefined) s += (s.length === 0 ? '' : ':') + a[0] + ':' + a[1];
  }
  return s;
}

export function checksumOf(bids: readonly Level[], asks: readonly Level[]): number {
  return crc32Ascii(checksumString(bids, asks));
}

/** The same checksum straight from the live sides, without building level arrays. */
export function checksumOfLevels(bids: Levels, asks: Levels): number {
  let s = '';
  const nb = Math.min(bids.size, L2_CHECKSUM_DEPTH);
  const na = Math.min(asks.size, L2_CHECKSUM_DEPTH);
  const n = Math.max(nb, na);
  for (let i = 0; i < n; i++) {
    if (i < nb) {
      const p = bids.priceAt(i);
      s += (s.length === 0 ? '' : ':') + p + ':' + bids.get(p);
    }
    if (i < na) {
      const p = asks.priceAt(i);
      s += (s.length === 0 ? '' : ':') + p + ':' + asks.get(p);
    }
  }
  return crc32Ascii(s);
}
