/**
 * The L2 checksum: CRC-32 (IEEE, unsigned) of an ASCII string built from the top 10 levels per side.
 *
 * The string interleaves bids and asks, best first, each level as `price:qty` in decimal, joined by ':'
 * (`bid1Price:bid1Qty:ask1Price:ask1Qty:bid2Price:...`). When one side runs out before the other, its
 * entries are simply skipped; an empty book hashes the empty string (checksum 0).
 * schemas/MARKETDATA.md and schemas/PROTOCOL.md ("The checksum") specify the bytes, with worked examples. Pure: engine and SDK share it.
 *
 * @example
 *   checksumString([[100, 5]], [[101, 7], [102, 1]]) // '100:5:101:7:102:1'
 */
import { L2_CHECKSUM_DEPTH, type Level } from '../marketdata.js';
import { crc32, crc32Ascii } from './crc32.js';
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

/** Scratch for checksumOfLevels: 20 levels of two safe integers and separators fit in 20 * 2 * 17 bytes. */
const scratch = new Uint8Array(L2_CHECKSUM_DEPTH * 2 * 2 * 17);

/** Writes `n` (a non-negative safe integer) in decimal at `pos`; returns the end. */
function putInt(pos: number, n: number): number {
  if (n >= 1e9) {
    const t = String(n);
    for (let i = 0; i < t.length; i++) scratch[pos++] = t.charCodeAt(i);
    return pos;
  }
  let digits = 1;
  for (let t = n; t >= 10; t = (t / 10) | 0) digits++;
  const end = pos + digits;
  let p = end;
  do {
    const q = (n / 10) | 0;
    scratch[--p] = 48 + n - q * 10;
    n = q;
  } while (n > 0);
  return end;
}

/**
 * The same checksum straight from the live sides: the same bytes, written into a reused buffer instead
 * of a string (no allocation). The property tests check it against `checksumOf` on every step.
 */
export function checksumOfLevels(bids: Levels, asks: Levels): number {
  const nb = Math.min(bids.size, L2_CHECKSUM_DEPTH);
  const na = Math.min(asks.size, L2_CHECKSUM_DEPTH);
  const n = Math.max(nb, na);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (i < nb) {
      const p = bids.priceAt(i);
      if (pos > 0) scratch[pos++] = 58; // ':'
      pos = putInt(pos, p);
      scratch[pos++] = 58;
      pos = putInt(pos, bids.get(p));
    }
    if (i < na) {
      const p = asks.priceAt(i);
      if (pos > 0) scratch[pos++] = 58;
      pos = putInt(pos, p);
      scratch[pos++] = 58;
      pos = putInt(pos, asks.get(p));
    }
  }
  return crc32(scratch, 0, pos);
}
