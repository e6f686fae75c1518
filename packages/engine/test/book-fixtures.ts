/**
 * Shared pieces of the book tests: command builders, random command templates, and the invariant
 * checker that runs after every step.
 */
import fc from 'fast-check';
import type { BookCommand, BookEvent, Instrument, NewOrder, OrderType, SelfTradePrevention, Side, TimeInForce } from '@bourse/schemas';
import { defineInstrument } from '@bourse/schemas';
import type { OrderBook } from '../src/book/index.js';

export const inst = defineInstrument({ symbol: 'BTC-USD' });

let tsClock = 0;
/** A NewOrder with sensible defaults: GTC limit buy of 1 at 100 for account 'a'. */
export function order(fields: Partial<NewOrder> & { orderId: number }): NewOrder {
  return { type: 'NewOrder', ts: fields.ts ?? ++tsClock, account: 'a', side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 1, ...fields };
}
export const buy = (orderId: number, account: string, price: number, qty: number, extra: Partial<NewOrder> = {}): NewOrder =>
  order({ orderId, account, side: 'buy', price, qty, ...extra });
export const sell = (orderId: number, account: string, price: number, qty: number, extra: Partial<NewOrder> = {}): NewOrder =>
  order({ orderId, account, side: 'sell', price, qty, ...extra });

/** Steps every command and returns the events of the last one (or all, with `all`). */
export function run(book: OrderBook, cmds: BookCommand[], all = false): BookEvent[] {
  const every: BookEvent[] = [];
  let last: BookEvent[] = [];
  for (const c of cmds) {
    last = [];
    book.step(c, last);
    every.push(...last);
  }
  return all ? every : last;
}

/** Short, readable form of events for table tests. */
export function brief(events: BookEvent[]): string[] {
  return events.map((e) => {
    switch (e.type) {
      case 'OrderAccepted':
        return `accepted ${e.orderId}`;
      case 'CommandRejected':
        return `rejected ${e.orderId} ${e.code}`;
      case 'Fill':
        return `fill ${e.takerOrderId}x${e.makerOrderId} ${e.qty}@${e.price}`;
      case 'OrderRested':
        return `rested ${e.orderId} ${e.qty}@${e.price}`;
      case 'OrderCancelled':
        return `cancelled ${e.orderId} ${e.qty} ${e.reason}${e.rested ? ' rested' : ''}`;
      case 'OrderAmended':
        return `amended ${e.orderId} ${e.oldQty}@${e.oldPrice}->${e.qty}@${e.price}${e.priorityKept ? ' kept' : ''}${e.rested ? '' : ' incoming'}`;
      case 'StopArmed':
        return `armed ${e.orderId}`;
      case 'StopTriggered':
        return `triggered ${e.orderId} at ${e.lastPrice}`;
      case 'TradingStatusChanged':
        return `status ${e.status}`;
      case 'ReferencePriceChanged':
        return `reference ${e.price}`;
    }
  });
}

// ---------------------------------------------------------------- random commands

/** An abstract command; `build` turns it into a BookCommand for an instrument at a clock. */
export type Template =
  | {
      k: 'new';
      dt: number;
      /** reuse a live order's id (a duplicate) instead of a fresh one */
      dupe: boolean;
      pick: number;
      account: string;
      side: Side;
      orderType: OrderType;
      tif: TimeInForce;
      /** price offset from 100 ticks, in ticks; null = 0 (market without protection) */
      dp: number | null;
      lots: number;
      dstop: number;
      expireIn: number;
      postOnly: boolean;
      stp: SelfTradePrevention | undefined;
      garble: number;
    }
  | { k: 'cancel'; dt: number; pick: number; account: string; own: boolean }
  | { k: 'amend'; dt: number; pick: number; account: string; own: boolean; dp: number | null; lots: number | null }
  | { k: 'mass'; dt: number; account: string; side: Side | undefined }
  | { k: 'status'; dt: number; status: 'open' | 'halted' | 'closed' }
  | { k: 'reference'; dt: number; dp: number }
  | { k: 'tick'; dt: number; /** the tick's ts is this much earlier than the clock (0 mostly) */ back: number };

const accountArb = fc.constantFrom('a', 'b', 'c');
const sideArb = fc.constantFrom<Side>('buy', 'sell');
const dtArb = fc.integer({ min: 0, max: 3 });
const pickArb = fc.nat(9999);
const ownArb = fc.constantFrom(true, true, true, true, true, true, true, true, true, false);

const newArb: fc.Arbitrary<Template> = fc
  .record({
    dt: dtArb,
    dupe: fc.constantFrom(false, false, false, false, false, false, false, false, false, true),
    pick: pickArb,
    account: accountArb,
    side: sideArb,
    orderType: fc.constantFrom<OrderType>('limit', 'limit', 'limit', 'limit', 'limit', 'limit', 'limit', 'market', 'market', 'stop', 'stopLimit'),
    tif: fc.constantFrom<TimeInForce>('GTC', 'GTC', 'GTC', 'IOC', 'FOK', 'GTD'),
    dp: fc.integer({ min: -4, max: 4 }),
    protect: fc.boolean(),
    lots: fc.integer({ min: 1, max: 8 }),
    dstop: fc.integer({ min: -4, max: 4 }),
    expireIn: fc.integer({ min: 1, max: 12 }),
    postOnly: fc.constantFrom(false, false, false, true),
    stp: fc.constantFrom<SelfTradePrevention | undefined>(undefined, 'cancelTaker', 'cancelMaker', 'cancelBoth', 'decrementBoth'),
    garble: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7),
  })
  .map(({ protect, ...t }) => {
    const market = t.orderType === 'market' || t.orderType === 'stop';
    const tif = market && t.tif !== 'FOK' ? 'IOC' : t.tif;
    return { k: 'new' as const, ...t, tif, dp: market && !protect ? null : t.dp, postOnly: t.postOnly && t.orderType === 'limit' && (tif === 'GTC' || tif === 'GTD') };
  });

export const templateArb: fc.Arbitrary<Template> = fc.oneof(
  { weight: 30, arbitrary: newArb },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('cancel' as const), dt: dtArb, pick: pickArb, account: accountArb, own: ownArb }) },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('amend' as const),
      dt: dtArb,
      pick: pickArb,
      account: accountArb,
      own: ownArb,
      dp: fc.option(fc.integer({ min: -4, max: 4 }), { nil: null }),
      lots: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('mass' as const), dt: dtArb, account: accountArb, side: fc.constantFrom<Side | undefined>(undefined, 'buy', 'sell') }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('status' as const), dt: dtArb, status: fc.constantFrom<'open' | 'halted' | 'closed'>('open', 'open', 'open', 'halted', 'closed') }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reference' as const), dt: dtArb, dp: fc.integer({ min: -4, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('tick' as const), dt: fc.integer({ min: 0, max: 10 }), back: fc.constantFrom(0, 0, 0, 1, 3) }) },
);

/** Instruments the random runs use: plain, and one with tick/lot sizes, band, protections, fees, margin. */
export const instrumentArb: fc.Arbitrary<Instrument> = fc
  .record({
    tickSize: fc.constantFrom(1, 5),
    lotSize: fc.constantFrom(1, 2),
    priceBandBps: fc.constantFrom(0, 0, 300),
    marketMaxLevels: fc.constantFrom(0, 2),
    marketMaxSlippageBps: fc.constantFrom(0, 250),
    makerFeeBps: fc.constantFrom(0, 7),
    takerFeeBps: fc.constantFrom(0, 25),
    mode: fc.constantFrom<'cash' | 'margin'>('cash', 'margin'),
  })
  .map((f) =>
    defineInstrument({ symbol: 'TST-USD', ...f, minQty: f.lotSize, maxQty: 10 * f.lotSize, referencePrice: 100 * f.tickSize, maintenanceMarginBps: f.mode === 'margin' ? 500 : 0, maxLeverage: f.mode === 'margin' ? 10 : 1 }),
  );

/** What `build` needs from the run: the clock, fresh ids, and the live orders (id, account) to aim at. */
export interface BuildContext {
  ts: number;
  nextId: number;
  live: ReadonlyArray<readonly [number, string]>;
}

/** Turns a template into a command on `i`. */
export function build(t: Template, i: Instrument, ctx: BuildContext): BookCommand {
  const px = (dp: number) => (100 + dp) * i.tickSize;
  const ts = ctx.ts;
  const target = (pick: number, own: boolean, account: string): [number, string] => {
    const n = ctx.live.length;
    if (n === 0) return [9999, account];
    const [id, owner] = ctx.live[pick % n]!;
    return [id, own ? owner : account];
  };
  switch (t.k) {
    case 'new': {
      const c: Record<string, unknown> = {
        type: 'NewOrder',
        ts,
        orderId: t.dupe && ctx.live.length > 0 ? ctx.live[t.pick % ctx.live.length]![0] : ++ctx.nextId,
        account: t.account,
        side: t.side,
        orderType: t.orderType,
        tif: t.tif,
        price: t.dp === null ? 0 : px(t.dp),
        qty: t.lots * i.lotSize,
      };
      if (t.orderType === 'stop' || t.orderType === 'stopLimit') c.stopPrice = px(t.dstop);
      if (t.tif === 'GTD') c.expireAt = ts + t.expireIn;
      if (t.postOnly) c.postOnly = true;
      if (t.stp !== undefined) c.stp = t.stp;
      switch (t.garble) {
        case 1:
          c.qty = i.lotSize > 1 ? (c.qty as number) + 1 : 0;
          break;
        case 2:
          c.price = (c.price as number) + (i.tickSize > 1 ? 1 : -1e9);
          break;
        case 3:
          c.qty = 11 * i.lotSize;
          break;
        case 4:
          c.reduceOnly = true;
          break;
        case 5:
          c.side = 'both';
          break;
        case 6:
          c.price = t.dp === null ? 0 : px(40);
          break;
        case 7:
          c.ts = Math.max(0, ts - 2); // stamped earlier than the clock: refused if the book has seen a later event
          break;
      }
      return c as unknown as BookCommand;
    }
    case 'cancel': {
      const [orderId, account] = target(t.pick, t.own, t.account);
      return { type: 'CancelOrder', ts, orderId, account };
    }
    case 'amend': {
      const [orderId, account] = target(t.pick, t.own, t.account);
      const c: Record<string, unknown> = { type: 'AmendOrder', ts, orderId, account };
      if (t.dp !== null) c.price = px(t.dp);
      if (t.lots !== null) c.qty = t.lots * i.lotSize;
      return c as unknown as BookCommand;
    }
    case 'mass':
      return t.side === undefined ? { type: 'MassCancel', ts, account: t.account } : { type: 'MassCancel', ts, account: t.account, side: t.side };
    case 'status':
      return { type: 'SetTradingStatus', ts, status: t.status };
    case 'reference':
      return { type: 'SetReferencePrice', ts, price: px(t.dp) };
    case 'tick':
      return { type: 'BookTick', ts: Math.max(0, ts - t.back) };
  }
}

// ---------------------------------------------------------------- invariants

interface Tracked {
  side: Side;
  account: string;
  price: number;
  market: boolean;
  in: number;
  out: number;
}

/**
 * Follows every order's quantity through the events (accepted + amended = filled + cancelled + open)
 * and checks each event against what it knows; `checkBook` then compares with the book itself.
 */
export class Ledger {
  readonly orders = new Map<number, Tracked>();
  taker = 0;

  private fail(msg: string, e: BookEvent): never {
    throw new Error(`invariant: ${msg}: ${JSON.stringify(e)}`);
  }

  private open(id: number): number {
    const t = this.orders.get(id);
    return t === undefined ? 0 : t.in - t.out;
  }

  event(e: BookEvent): void {
    switch (e.type) {
      case 'OrderAccepted':
        if (this.open(e.orderId) !== 0) this.fail('accepted an order id that is live', e);
        this.orders.set(e.orderId, { side: e.side, account: e.account, price: e.price, market: e.orderType === 'market' || e.orderType === 'stop', in: e.qty, out: 0 });
        this.taker = e.orderId;
        return;
      case 'StopTriggered':
        this.taker = e.orderId;
        return;
      case 'Fill': {
        const t = this.orders.get(e.takerOrderId);
        const m = this.orders.get(e.makerOrderId);
        if (!t || !m) return this.fail('fill names an unknown order', e);
        if (e.takerOrderId !== this.taker) this.fail('fill taker is not the incoming order', e);
        if (e.takerAccount === e.makerAccount) this.fail('self trade', e);
        if (t.account !== e.takerAccount || m.account !== e.makerAccount) this.fail('fill accounts', e);
        if (t.side === m.side || t.side !== e.takerSide) this.fail('fill sides', e);
        if (e.qty <= 0 || e.qty > this.open(e.takerOrderId) || e.qty > this.open(e.makerOrderId)) this.fail('fill qty beyond an open quantity (dead order?)', e);
        if (e.price !== m.price) this.fail('fill not at the maker price', e);
        if (t.price !== 0 && (t.side === 'buy' ? e.price > t.price : e.price < t.price)) this.fail('fill beyond the taker limit', e);
        t.out += e.qty;
        m.out += e.qty;
        if (this.open(e.takerOrderId) !== e.takerRemaining || this.open(e.makerOrderId) !== e.makerRemaining) this.fail('remaining quantities', e);
        return;
      }
      case 'OrderCancelled': {
        const t = this.orders.get(e.orderId);
        if (!t) return this.fail('cancel of unknown order', e);
        if (e.qty !== this.open(e.orderId) || e.qty <= 0) this.fail('cancelled qty is not the open qty', e);
        t.out += e.qty;
        return;
      }
      case 'OrderAmended': {
        const t = this.orders.get(e.orderId);
        if (!t) return this.fail('amend of unknown order', e);
        if (e.oldQty !== this.open(e.orderId) || e.oldPrice !== t.price) this.fail('amend old values', e);
        t.in += e.qty - e.oldQty;
        t.price = e.price;
        if (!e.priorityKept) this.taker = e.orderId;
        return;
      }
      case 'OrderRested':
        if (e.qty !== this.open(e.orderId) || e.orderId !== this.taker) this.fail('rested qty', e);
        return;
      default:
        return;
    }
  }

  /** After a command: every order's open quantity by the events equals the book's. */
  checkBook(book: OrderBook): void {
    for (const [id, t] of this.orders) {
      const open = t.in - t.out;
      const live = book.order(id);
      if (open < 0) throw new Error(`invariant: order ${id} has negative open qty`);
      if ((live?.qty ?? 0) !== open) throw new Error(`invariant: order ${id} open ${open} by events, ${live?.qty ?? 0} on the book`);
      if (open === 0) this.orders.delete(id);
    }
  }
}

/** Structural invariants of the fast book: sorted uncrossed levels, FIFO by seq, aggregates, indexes. */
export function checkStructure(book: OrderBook): void {
  const fail = (m: string): never => {
    throw new Error(`invariant: ${m}`);
  };
  const bb = book.bestBid();
  const ba = book.bestAsk();
  if (bb !== 0 && ba !== 0 && bb >= ba) fail(`crossed at rest: bid ${bb} >= ask ${ba}`);
  let live = 0;
  for (const [levels, isBuy] of [
    [book.bids, true],
    [book.asks, false],
  ] as const) {
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      if (l.key !== (isBuy ? l.price : -l.price)) fail('level key');
      if (i > 0 && levels[i - 1]!.key >= l.key) fail('levels not strictly sorted');
      let qty = 0;
      let count = 0;
      let seq = 0;
      let prev = null;
      for (let o = l.head; o !== null; o = o.next) {
        if (o.prev !== prev || o.level !== l || o.price !== l.price || o.isBuy !== isBuy) fail(`order ${o.id} links`);
        if (o.seq <= seq) fail(`time priority broken at ${l.price}: seq ${o.seq} after ${seq}`);
        if (o.qty <= 0) fail(`order ${o.id} rests with qty ${o.qty}`);
        if (!(o.filled >= 0)) fail(`order ${o.id} has filled ${o.filled}`);
        if (book.orders.get(o.id) !== o) fail(`order ${o.id} not indexed`);
        seq = o.seq;
        qty += o.qty;
        count++;
        prev = o;
      }
      if (l.tail !== prev) fail('level tail');
      if (count === 0 || count !== l.count || qty !== l.qty) fail(`level ${l.price} aggregates`);
      live += count;
    }
  }
  live += book.buyStops.length + book.sellStops.length;
  if (live !== book.orders.size) fail(`index holds ${book.orders.size} orders, book ${live}`);
  let acc = 0;
  for (const rec of book.accounts.values()) acc += rec.count;
  if (acc !== live) fail('account index size');
  const gtd = [...book.orders.values()].filter((o) => o.tif === 'GTD').length;
  if (gtd !== book.expiries.size) fail('expiry heap size');
}
