/**
 * Internal data structures of the order book: orders, price levels, the GTD expiry heap.
 *
 * Layout (chosen for the hot path, see README in this folder's index.ts doc):
 * - One `Level` per price per side, holding its orders as an intrusive doubly linked FIFO list
 *   (`Order.prev/next`), plus the aggregated open quantity and order count.
 * - Each side keeps its levels in one array sorted ascending by `key`, best level last, so the best
 *   is `levels[levels.length - 1]` and removing it is a `pop()`. `key` is the price for bids and the
 *   negated price for asks; "better" is always "larger key" and a taker's limit is a key bound.
 * - Orders live in an `OrderIndex` (open addressing, below) while resting or armed; per-account intrusive lists make
 *   mass cancel proportional to the account's orders, not the book.
 */
import type { OrderType, SelfTradePrevention, Side, TimeInForce } from '@bourse/schemas';

/** Where an order is. Incoming orders are not in the book's maps yet. */
export const WHERE_INCOMING = 0;
export const WHERE_BOOK = 1;
export const WHERE_ARMED = 2;

export class Order {
  id = 0;
  account = '';
  clientOrderId: string | undefined = undefined;
  side: Side = 'buy';
  isBuy = true;
  orderType: OrderType = 'limit';
  /** True for `market`, and for a `stop` (whose trigger makes it a market order). */
  isMarket = false;
  tif: TimeInForce = 'GTC';
  /** Limit price; for market/stop the protection price or 0. */
  price = 0;
  /** Open (leaves) quantity. */
  qty = 0;
  /** Executed (cumulative filled) quantity, across amends. Total order quantity = filled + qty. */
  filled = 0;
  stopPrice = 0;
  expireAt = 0;
  postOnly = false;
  reduceOnly = false;
  stp: SelfTradePrevention = 'cancelTaker';
  /** Time-priority sequence: set on acceptance, on re-entry after an amend, and when a stop fires. */
  seq = 0;
  where = WHERE_INCOMING;
  // level FIFO
  prev: Order | null = null;
  next: Order | null = null;
  level: Level | null = null;
  // per-account list
  acc: AccountOrders | null = null;
  accPrev: Order | null = null;
  accNext: Order | null = null;
  // GTD heap position, -1 when not in the heap
  heapIdx = -1;

  /** (Re)initialises every field: a pooled order is reused through this. */
  init(
    id: number,
    account: string,
    clientOrderId: string | undefined,
    side: Side,
    orderType: OrderType,
    tif: TimeInForce,
    price: number,
    qty: number,
    stopPrice: number,
    expireAt: number,
    postOnly: boolean,
    reduceOnly: boolean,
    stp: SelfTradePrevention,
    seq: number,
  ): this {
    this.id = id;
    this.account = account;
    this.clientOrderId = clientOrderId;
    this.side = side;
    this.isBuy = side === 'buy';
    this.orderType = orderType;
    this.isMarket = orderType === 'market' || orderType === 'stop';
    this.tif = tif;
    this.price = price;
    this.qty = qty;
    this.filled = 0;
    this.stopPrice = stopPrice;
    this.expireAt = expireAt;
    this.postOnly = postOnly;
    this.reduceOnly = reduceOnly;
    this.stp = stp;
    this.seq = seq;
    this.where = WHERE_INCOMING;
    this.prev = null;
    this.next = null;
    this.level = null;
    this.acc = null;
    this.accPrev = null;
    this.accNext = null;
    this.heapIdx = -1;
    return this;
  }
}

export class Level {
  price = 0;
  /** price for bids, -price for asks: larger is better on both sides. */
  key = 0;
  qty = 0;
  count = 0;
  head: Order | null = null;
  tail: Order | null = null;
}

export class AccountOrders {
  head: Order | null = null;
  tail: Order | null = null;
  count = 0;
}

/** Index of the level with `key` in an ascending array, or -(insertion point) - 1. */
export function searchLevel(levels: Level[], key: number): number {
  let lo = 0;
  let hi = levels.length - 1;
  // Most activity is near the best (the end): probe it first.
  if (hi >= 0) {
    const k = levels[hi]!.key;
    if (k === key) return hi;
    if (k < key) return -(hi + 1) - 1;
  }
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = levels[mid]!.key;
    if (k < key) lo = mid + 1;
    else if (k > key) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

/** Min-heap of GTD orders by (expireAt, id). */
export class ExpiryHeap {
  readonly items: Order[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Order | undefined {
    return this.items[0];
  }

  push(o: Order): void {
    const a = this.items;
    a.push(o);
    o.heapIdx = a.length - 1;
    this.up(a.length - 1);
  }

  remove(o: Order): void {
    const a = this.items;
    const i = o.heapIdx;
    o.heapIdx = -1;
    const last = a.pop()!;
    if (i === a.length) return;
    a[i] = last;
    last.heapIdx = i;
    this.up(i);
    this.down(last.heapIdx);
  }

  private static less(x: Order, y: Order): boolean {
    return x.expireAt < y.expireAt || (x.expireAt === y.expireAt && x.id < y.id);
  }

  private up(i: number): void {
    const a = this.items;
    const o = a[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const po = a[p]!;
      if (!ExpiryHeap.less(o, po)) break;
      a[i] = po;
      po.heapIdx = i;
      i = p;
    }
    a[i] = o;
    o.heapIdx = i;
  }

  private down(i: number): void {
    const a = this.items;
    const n = a.length;
    const o = a[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && ExpiryHeap.less(a[r]!, a[l]!) ? r : l;
      const co = a[c]!;
      if (!ExpiryHeap.less(co, o)) break;
      a[i] = co;
      co.heapIdx = i;
      i = c;
    }
    a[i] = o;
    o.heapIdx = i;
  }
}

/**
 * Live orders by id: open addressing with linear probing and backward-shift deletion, load <= 1/2.
 * Ids are positive safe integers (up to 2^53), hashed from both 32-bit halves. Faster than a Map on
 * the hot path (no entry objects, no tombstones).
 */
export class OrderIndex {
  private keys: Float64Array;
  private vals: (Order | null)[];
  private mask: number;
  private count = 0;

  constructor(capacity = 1024) {
    this.keys = new Float64Array(capacity);
    this.vals = new Array<Order | null>(capacity).fill(null);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  private slot(id: number): number {
    const hi = (id / 4294967296) | 0;
    let h = Math.imul((id | 0) ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    return h & this.mask;
  }

  get(id: number): Order | undefined {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    for (let i = this.slot(id); ; i = (i + 1) & mask) {
      const v = vals[i]!;
      if (v === null) return undefined;
      if (keys[i] === id) return v;
    }
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Inserts or replaces. */
  set(id: number, o: Order): void {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    for (let i = this.slot(id); ; i = (i + 1) & mask) {
      const v = vals[i]!;
      if (v === null) {
        keys[i] = id;
        vals[i] = o;
        if (++this.count * 2 > mask + 1) this.grow();
        return;
      }
      if (keys[i] === id) {
        vals[i] = o;
        return;
      }
    }
  }

  delete(id: number): void {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    let i = this.slot(id);
    for (; ; i = (i + 1) & mask) {
      const v = vals[i]!;
      if (v === null) return;
      if (keys[i] === id) break;
    }
    this.count--;
    // backward shift: move later members of the probe run into the hole when their home allows it
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const v = vals[j]!;
      if (v === null) break;
      const home = this.slot(keys[j]!);
      // j's entry may move to i if its home is not in the cyclic range (i, j]
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        keys[i] = keys[j]!;
        vals[i] = v;
        i = j;
      }
    }
    vals[i] = null;
    keys[i] = 0;
  }

  /** Every live order, in no particular order (callers sort). */
  values(): Order[] {
    const out: Order[] = [];
    for (const v of this.vals) if (v !== null) out.push(v);
    return out;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const cap = (this.mask + 1) * 2;
    this.keys = new Float64Array(cap);
    this.vals = new Array<Order | null>(cap).fill(null);
    this.mask = cap - 1;
    this.count = 0;
    for (let i = 0; i < oldVals.length; i++) {
      const v = oldVals[i]!;
      if (v !== null) this.set(oldKeys[i]!, v);
    }
  }
}
