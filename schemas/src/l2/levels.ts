/**
 * One side of an aggregated L2 book: total quantity per price, with the prices kept sorted.
 *
 * Prices live in a plain array ordered worst → best, so the best level is the last element and the
 * levels that change most (near the top) are inserted and removed with a short `splice` near the end.
 * Quantities live in a Map keyed by price. Pure: the engine's market-data machine and the SDK's LocalBook share it.
 *
 * @example
 *   const bids = new Levels('buy');
 *   bids.set(100, 5); bids.set(101, 2);
 *   bids.top(10) // [[101, 2], [100, 5]]
 */
import type { Level } from '../marketdata.js';
import type { Side } from '../book.js';

export class Levels {
  readonly side: Side;
  private readonly qtyByPrice = new Map<number, number>();
  /** Sort keys, ascending, best last: price for bids, -price for asks. */
  private readonly keys: number[] = [];
  private readonly sign: 1 | -1;

  constructor(side: Side) {
    this.side = side;
    this.sign = side === 'buy' ? 1 : -1;
  }

  get size(): number {
    return this.keys.length;
  }

  /** Total quantity at `price`, 0 if no level. */
  get(price: number): number {
    return this.qtyByPrice.get(price) ?? 0;
  }

  /** Sets the level's total; 0 removes it. */
  set(price: number, qty: number): void {
    if (qty === 0) {
      if (!this.qtyByPrice.delete(price)) return;
      const i = this.indexOf(this.sign * price);
      this.keys.splice(i, 1);
      return;
    }
    if (!this.qtyByPrice.has(price)) {
      const key = this.sign * price;
      const i = this.indexOf(key);
      if (i === this.keys.length) this.keys.push(key);
      else this.keys.splice(i, 0, key);
    }
    this.qtyByPrice.set(price, qty);
  }

  /** Best price, 0 if the side is empty. */
  bestPrice(): number {
    const n = this.keys.length;
    return n === 0 ? 0 : this.sign * this.keys[n - 1]!;
  }

  bestQty(): number {
    const n = this.keys.length;
    return n === 0 ? 0 : this.qtyByPrice.get(this.sign * this.keys[n - 1]!)!;
  }

  /** The `i`-th best price (0 = best), or 0 past the end. */
  priceAt(i: number): number {
    const j = this.keys.length - 1 - i;
    return j < 0 ? 0 : this.sign * this.keys[j]!;
  }

  /** Up to `n` levels, best first. */
  top(n = Infinity): Level[] {
    const out: Level[] = [];
    for (let j = this.keys.length - 1; j >= 0 && out.length < n; j--) {
      const price = this.sign * this.keys[j]!;
      out.push([price, this.qtyByPrice.get(price)!]);
    }
    return out;
  }

  clear(): void {
    this.qtyByPrice.clear();
    this.keys.length = 0;
  }

  /** First index whose key is >= `key` (binary search; the top of the book is found in O(log n)). */
  private indexOf(key: number): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
