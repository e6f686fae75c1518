/**
 * Exact integer arithmetic for the risk ledger. Every input is a non-negative safe integer; results are
 * exact (no float rounding), falling back to BigInt only where a product could leave the safe range.
 */

/** floor(a / b), exact for safe integers a >= 0, b > 0. */
export function divFloor(a: number, b: number): number {
  let q = Math.floor(a / b);
  // Float division can be off by one near 2^53; correct it with exact integer products.
  while (q > 0 && q * b > a) q--;
  while ((q + 1) * b <= a) q++;
  return q;
}

/** ceil(a / b), exact for safe integers a >= 0, b > 0. */
export function divCeil(a: number, b: number): number {
  const q = divFloor(a, b);
  return q * b < a ? q + 1 : q;
}

/** floor(a * b / c), exact for safe integers a, b >= 0, c > 0, even when a * b is not safe. */
export function mulDivFloor(a: number, b: number, c: number): number {
  const p = a * b;
  if (Number.isSafeInteger(p)) return divFloor(p, c);
  return Number((BigInt(a) * BigInt(b)) / BigInt(c));
}

export const isSafeNonNeg = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
export const isSafePos = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) > 0;
