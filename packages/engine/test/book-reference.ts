/**
 * A naive reference order book: obviously correct and slow. Every order, resting or armed, sits in one
 * array; the best maker is found by sorting the opposite side by (price, seq) each time. It implements
 * the semantics documented in src/book/order-book.ts and emits the same events, so the model-based test
 * can compare the two event for event.
 */
import type { BookCommand, BookEvent, CancelReason, Instrument, OrderType, RejectCode, SelfTradePrevention, Side, TimeInForce, TradingStatus } from '@bourse/schemas';
import { Reject, feeOf, notionalOf } from '@bourse/schemas';

export interface RefOrder {
  id: number;
  account: string;
  clientOrderId: string | undefined;
  side: Side;
  orderType: OrderType;
  tif: TimeInForce;
  price: number;
  /** open (leaves) quantity */
  qty: number;
  /** executed quantity; the order's total is filled + qty */
  filled: number;
  stopPrice: number;
  expireAt: number;
  postOnly: boolean;
  reduceOnly: boolean;
  stp: SelfTradePrevention;
  seq: number;
  state: 'resting' | 'armed';
}

const posInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x > 0;
const ID_MAX = 64;
const STOPS_MAX = 10_000;

export class RefBook {
  status: TradingStatus = 'open';
  lastPrice = 0;
  referencePrice = 0;
  tradeId = 0;
  seq = 0;
  /** ts of the last command that produced an event other than CommandRejected */
  lastTs = 0;
  live: RefOrder[] = [];

  constructor(readonly inst: Instrument) {}

  resting(side: Side): RefOrder[] {
    // best first: bids high to low, asks low to high; then time
    return this.live
      .filter((o) => o.state === 'resting' && o.side === side)
      .sort((a, b) => (a.price !== b.price ? (side === 'buy' ? b.price - a.price : a.price - b.price) : a.seq - b.seq));
  }

  armed(): RefOrder[] {
    return this.live.filter((o) => o.state === 'armed').sort((a, b) => a.seq - b.seq);
  }

  private remove(o: RefOrder): void {
    this.live = this.live.filter((x) => x !== o);
  }

  private find(id: number): RefOrder | undefined {
    return this.live.find((o) => o.id === id);
  }

  private band(price: number): boolean {
    const ref = this.lastPrice || this.referencePrice || this.inst.referencePrice;
    if (this.inst.priceBandBps === 0 || ref === 0) return true;
    return BigInt(Math.abs(price - ref)) * 10_000n <= BigInt(ref) * BigInt(this.inst.priceBandBps);
  }

  step(cmd: BookCommand): BookEvent[] {
    const out = this.step0(cmd);
    if (out.some((e) => e.type !== 'CommandRejected')) this.lastTs = cmd.ts;
    return out;
  }

  private step0(cmd: BookCommand): BookEvent[] {
    const out: BookEvent[] = [];
    const c = cmd as unknown as Record<string, unknown>;
    const rej = (command: BookEvent & { type: 'CommandRejected' } extends { command: infer K } ? K : never, ts: number, code: RejectCode) => {
      out.push({
        type: 'CommandRejected',
        ts,
        command,
        orderId: posInt(c.orderId) ? c.orderId : 0,
        account: typeof c.account === 'string' && c.account.length <= ID_MAX ? c.account : '',
        clientOrderId: typeof c.clientOrderId === 'string' && c.clientOrderId.length <= ID_MAX ? c.clientOrderId : undefined,
        code,
      });
      return out;
    };
    const types = ['NewOrder', 'CancelOrder', 'AmendOrder', 'MassCancel', 'SetTradingStatus', 'SetReferencePrice', 'BookTick'];
    const tsOk = typeof c.ts === 'number' && Number.isSafeInteger(c.ts) && (c.ts as number) >= 0;
    if (!types.includes(c.type as string)) return rej('unknown', tsOk ? (c.ts as number) : 0, Reject.PROTO_UNKNOWN_MESSAGE);
    const type = cmd.type;
    if (!tsOk) return rej(type, 0, Reject.ORDER_INVALID_TIMESTAMP);
    const ts = cmd.ts;
    if (ts < this.lastTs) return rej(type, ts, Reject.ORDER_INVALID_TIMESTAMP);
    // expiry
    for (;;) {
      const due = this.live.filter((o) => o.tif === 'GTD' && o.expireAt <= ts).sort((a, b) => a.expireAt - b.expireAt || a.id - b.id);
      if (due.length === 0) break;
      this.cancelLive(due[0]!, ts, 'expired', out);
    }
    const account = (x: unknown) => typeof x === 'string' && x.length > 0 && x.length <= ID_MAX;
    const i = this.inst;
    switch (cmd.type) {
      case 'BookTick':
        return out;
      case 'SetReferencePrice':
        if (!posInt(cmd.price)) return rej(type, ts, Reject.ORDER_PRICE_NOT_POSITIVE);
        if (cmd.price % i.tickSize) return rej(type, ts, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE);
        this.referencePrice = cmd.price;
        out.push({ type: 'ReferencePriceChanged', ts, price: cmd.price });
        return out;
      case 'SetTradingStatus':
        if (!['open', 'halted', 'closed'].includes(cmd.status)) return rej(type, ts, Reject.BOOK_INVALID_STATUS);
        this.status = cmd.status;
        out.push({ type: 'TradingStatusChanged', ts, status: cmd.status });
        if (cmd.status === 'closed') for (const o of [...this.live].sort((a, b) => a.seq - b.seq)) this.cancelLive(o, ts, 'closed', out);
        return out;
      case 'MassCancel': {
        if (!account(cmd.account)) return rej(type, ts, Reject.ORDER_INVALID_ACCOUNT);
        if (cmd.side !== undefined && cmd.side !== 'buy' && cmd.side !== 'sell') return rej(type, ts, Reject.ORDER_INVALID_SIDE);
        const mine = this.live.filter((o) => o.account === cmd.account && (cmd.side === undefined || o.side === cmd.side)).sort((a, b) => a.seq - b.seq);
        for (const o of mine) this.cancelLive(o, ts, 'massCancel', out);
        return out;
      }
      case 'CancelOrder': {
        if (!posInt(cmd.orderId)) return rej(type, ts, Reject.ORDER_INVALID_ID);
        if (!account(cmd.account)) return rej(type, ts, Reject.ORDER_INVALID_ACCOUNT);
        const o = this.find(cmd.orderId);
        if (!o) return rej(type, ts, Reject.BOOK_UNKNOWN_ORDER);
        if (o.account !== cmd.account) return rej(type, ts, Reject.BOOK_NOT_ORDER_OWNER);
        this.cancelLive(o, ts, 'user', out);
        return out;
      }
      case 'AmendOrder': {
        if (!posInt(cmd.orderId)) return rej(type, ts, Reject.ORDER_INVALID_ID);
        if (!account(cmd.account)) return rej(type, ts, Reject.ORDER_INVALID_ACCOUNT);
        if (cmd.price !== undefined && !posInt(cmd.price)) return rej(type, ts, Reject.ORDER_PRICE_NOT_POSITIVE);
        if (cmd.price !== undefined && cmd.price % i.tickSize) return rej(type, ts, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE);
        if (cmd.qty !== undefined && !posInt(cmd.qty)) return rej(type, ts, Reject.ORDER_QTY_NOT_POSITIVE);
        if (cmd.qty !== undefined && cmd.qty % i.lotSize) return rej(type, ts, Reject.ORDER_QTY_NOT_LOT_MULTIPLE);
        if (cmd.qty !== undefined && cmd.qty > i.maxQty) return rej(type, ts, Reject.ORDER_QTY_ABOVE_MAX);
        if (cmd.price === undefined && cmd.qty === undefined) return rej(type, ts, Reject.BOOK_AMEND_NO_CHANGE);
        if (this.status === 'closed') return rej(type, ts, Reject.BOOK_CLOSED);
        const o = this.find(cmd.orderId);
        if (!o) return rej(type, ts, Reject.BOOK_UNKNOWN_ORDER);
        if (o.account !== cmd.account) return rej(type, ts, Reject.BOOK_NOT_ORDER_OWNER);
        if (o.state !== 'resting') return rej(type, ts, Reject.BOOK_AMEND_NOT_ALLOWED);
        // FIX cancel/replace: cmd.qty is the new total quantity; open = total - executed
        const total = cmd.qty ?? o.filled + o.qty;
        const qty = total - o.filled;
        if (qty <= 0) {
          this.cancelLive(o, ts, 'amendedBelowFilled', out);
          return out;
        }
        const price = cmd.price ?? o.price;
        if (price === o.price && qty === o.qty) return rej(type, ts, Reject.BOOK_AMEND_NO_CHANGE);
        const keep = price === o.price && qty < o.qty;
        if (!keep && this.status === 'halted') return rej(type, ts, Reject.BOOK_HALTED);
        if (price !== o.price && !this.band(price)) return rej(type, ts, Reject.ORDER_PRICE_OUTSIDE_BAND);
        if (notionalOf(i, price, total) > i.maxNotional) return rej(type, ts, Reject.ORDER_NOTIONAL_TOO_LARGE);
        if (o.postOnly && price !== o.price && this.crosses(o.side, price)) return rej(type, ts, Reject.BOOK_POST_ONLY_WOULD_TAKE);
        out.push({ type: 'OrderAmended', ts, orderId: o.id, account: o.account, side: o.side, oldPrice: o.price, oldQty: o.qty, price, qty, priorityKept: keep, rested: true });
        o.price = price;
        o.qty = qty;
        if (keep) return out;
        this.remove(o);
        o.seq = ++this.seq;
        const tid = this.tradeId;
        this.run(o, ts, out);
        if (this.tradeId !== tid) this.stops(ts, out);
        return out;
      }
      case 'NewOrder':
        return this.newOrder(cmd, ts, out, rej);
    }
  }

  private crosses(side: Side, price: number): boolean {
    const opp = this.resting(side === 'buy' ? 'sell' : 'buy')[0];
    return opp !== undefined && (side === 'buy' ? opp.price <= price : opp.price >= price);
  }

  private newOrder(cmd: BookCommand & { type: 'NewOrder' }, ts: number, out: BookEvent[], rej: (k: 'NewOrder', ts: number, code: RejectCode) => BookEvent[]): BookEvent[] {
    const i = this.inst;
    const c = cmd;
    const market = c.orderType === 'market' || c.orderType === 'stop';
    const stop = c.orderType === 'stop' || c.orderType === 'stopLimit';
    const checks: [boolean, RejectCode][] = [
      [posInt(c.orderId), Reject.ORDER_INVALID_ID],
      [typeof c.account === 'string' && c.account.length > 0 && c.account.length <= ID_MAX, Reject.ORDER_INVALID_ACCOUNT],
      [c.clientOrderId === undefined || (typeof c.clientOrderId === 'string' && c.clientOrderId.length <= ID_MAX), Reject.ORDER_INVALID_CLIENT_ORDER_ID],
      [c.side === 'buy' || c.side === 'sell', Reject.ORDER_INVALID_SIDE],
      [['limit', 'market', 'stop', 'stopLimit'].includes(c.orderType), Reject.ORDER_INVALID_TYPE],
      [['GTC', 'IOC', 'FOK', 'GTD'].includes(c.tif), Reject.ORDER_INVALID_TIF],
      [!market || c.tif === 'IOC' || c.tif === 'FOK', Reject.ORDER_INVALID_TIF],
      [!market || c.price === 0 || (posInt(c.price) && c.price % i.tickSize === 0), Reject.ORDER_INVALID_PROTECTION],
      [market || posInt(c.price), Reject.ORDER_PRICE_NOT_POSITIVE],
      [market || c.price % i.tickSize === 0, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE],
      [posInt(c.qty), Reject.ORDER_QTY_NOT_POSITIVE],
      [c.qty % i.lotSize === 0, Reject.ORDER_QTY_NOT_LOT_MULTIPLE],
      [c.qty >= i.minQty, Reject.ORDER_QTY_BELOW_MIN],
      [c.qty <= i.maxQty, Reject.ORDER_QTY_ABOVE_MAX],
      [stop ? posInt(c.stopPrice) && c.stopPrice % i.tickSize === 0 : c.stopPrice === undefined || c.stopPrice === 0, Reject.ORDER_STOP_PRICE_INVALID],
      [
        c.tif === 'GTD' ? typeof c.expireAt === 'number' && Number.isSafeInteger(c.expireAt) && c.expireAt > ts : c.expireAt === undefined || c.expireAt === 0,
        Reject.ORDER_GTD_EXPIRY_INVALID,
      ],
      [c.postOnly === undefined || typeof c.postOnly === 'boolean', Reject.ORDER_INVALID_FLAG],
      [c.postOnly !== true || (c.orderType === 'limit' && (c.tif === 'GTC' || c.tif === 'GTD')), Reject.ORDER_POST_ONLY_INVALID],
      [c.reduceOnly === undefined || typeof c.reduceOnly === 'boolean', Reject.ORDER_INVALID_FLAG],
      [c.reduceOnly !== true || i.mode === 'margin', Reject.ORDER_REDUCE_ONLY_NOT_MARGIN],
      [c.stp === undefined || ['cancelTaker', 'cancelMaker', 'cancelBoth', 'decrementBoth'].includes(c.stp), Reject.ORDER_INVALID_STP],
      [c.price === 0 || market || this.band(c.price), Reject.ORDER_PRICE_OUTSIDE_BAND],
      [c.price === 0 || notionalOf(i, c.price, c.qty) <= i.maxNotional, Reject.ORDER_NOTIONAL_TOO_LARGE],
      [this.status !== 'halted', Reject.BOOK_HALTED],
      [this.status !== 'closed', Reject.BOOK_CLOSED],
      [this.find(c.orderId) === undefined, Reject.BOOK_DUPLICATE_ORDER_ID],
    ];
    for (const [ok, code] of checks) if (!ok) return rej('NewOrder', ts, code);
    if (stop) {
      const l = this.lastPrice;
      if (l > 0 && (c.side === 'buy' ? l >= c.stopPrice! : l <= c.stopPrice!)) return rej('NewOrder', ts, Reject.ORDER_STOP_WOULD_TRIGGER);
      if (this.armed().length >= STOPS_MAX) return rej('NewOrder', ts, Reject.BOOK_TOO_MANY_STOPS);
    } else if (c.postOnly && this.crosses(c.side, c.price)) return rej('NewOrder', ts, Reject.BOOK_POST_ONLY_WOULD_TAKE);
    const o: RefOrder = {
      id: c.orderId,
      account: c.account,
      clientOrderId: c.clientOrderId,
      side: c.side,
      orderType: c.orderType,
      tif: c.tif,
      price: c.price,
      qty: c.qty,
      filled: 0,
      stopPrice: stop ? c.stopPrice! : 0,
      expireAt: c.tif === 'GTD' ? c.expireAt! : 0,
      postOnly: c.postOnly === true,
      reduceOnly: c.reduceOnly === true,
      stp: c.stp ?? 'cancelTaker',
      seq: ++this.seq,
      state: 'resting',
    };
    const { state: _s, seq: _q, filled: _f, id, ...rest } = o;
    out.push({ type: 'OrderAccepted', ts, orderId: id, ...rest });
    if (stop) {
      o.state = 'armed';
      this.live.push(o);
      out.push({ type: 'StopArmed', ts, orderId: o.id, side: o.side, stopPrice: o.stopPrice });
      return out;
    }
    const tid = this.tradeId;
    this.run(o, ts, out);
    if (this.tradeId !== tid) this.stops(ts, out);
    return out;
  }

  private cancelLive(o: RefOrder, ts: number, reason: CancelReason, out: BookEvent[]): void {
    out.push({ type: 'OrderCancelled', ts, orderId: o.id, account: o.account, side: o.side, price: o.price, qty: o.qty, reason, rested: o.state === 'resting' });
    this.remove(o);
  }

  private cancelTaker(t: RefOrder, ts: number, reason: CancelReason, out: BookEvent[]): void {
    out.push({ type: 'OrderCancelled', ts, orderId: t.id, account: t.account, side: t.side, price: t.price, qty: t.qty, reason, rested: false });
    t.qty = 0;
  }

  /** Runs incoming order `t` to its end. */
  private run(t: RefOrder, ts: number, out: BookEvent[]): void {
    const market = t.orderType === 'market' || t.orderType === 'stop';
    const oppSide: Side = t.side === 'buy' ? 'sell' : 'buy';
    if (market && this.resting(oppSide).length === 0) return this.cancelTaker(t, ts, 'noLiquidity', out);
    if (t.tif === 'FOK') {
      // dry run on a copy: it must fill completely with no self-trade prevention touching the taker
      const copy = new RefBook(this.inst);
      copy.live = this.live.map((o) => ({ ...o }));
      copy.tradeId = this.tradeId;
      const tt = { ...t };
      const ev: BookEvent[] = [];
      copy.sweep(tt, ts, ev);
      const touched = ev.some((e) => (e.type === 'OrderCancelled' || e.type === 'OrderAmended') && e.orderId === t.id);
      if (tt.qty !== 0 || touched) return this.cancelTaker(t, ts, 'fok', out);
    }
    const why = this.sweep(t, ts, out);
    if (t.qty === 0) return;
    if (market) return this.cancelTaker(t, ts, why === 'protection' ? 'marketProtection' : 'ioc', out);
    if (t.tif === 'IOC' || t.tif === 'FOK') return this.cancelTaker(t, ts, 'ioc', out);
    out.push({ type: 'OrderRested', ts, orderId: t.id, side: t.side, price: t.price, qty: t.qty });
    t.state = 'resting';
    this.live.push(t);
  }

  private sweep(t: RefOrder, ts: number, out: BookEvent[]): 'done' | 'limit' | 'protection' {
    const i = this.inst;
    const market = t.orderType === 'market' || t.orderType === 'stop';
    const buy = t.side === 'buy';
    const oppSide: Side = buy ? 'sell' : 'buy';
    const p0 = this.resting(oppSide)[0]?.price ?? 0;
    const slip = Number((BigInt(p0) * BigInt(i.marketMaxSlippageBps)) / 10_000n);
    let levels = 0;
    let cur = -1;
    while (t.qty > 0) {
      const m = this.resting(oppSide)[0];
      if (!m) return 'limit';
      if (m.price !== cur) {
        if (market) {
          if (i.marketMaxLevels && levels >= i.marketMaxLevels) return 'protection';
          if (i.marketMaxSlippageBps && (buy ? m.price > p0 + slip : m.price < p0 - slip)) return 'protection';
          if (t.price !== 0 && (buy ? m.price > t.price : m.price < t.price)) return 'limit';
        } else if (buy ? m.price > t.price : m.price < t.price) return 'limit';
        levels++;
        cur = m.price;
      }
      if (m.account === t.account) {
        const d = Math.min(m.qty, t.qty);
        switch (t.stp) {
          case 'cancelTaker':
            this.cancelTaker(t, ts, 'selfTrade', out);
            return 'done';
          case 'cancelMaker':
            this.cancelLive(m, ts, 'selfTrade', out);
            continue;
          case 'cancelBoth':
            this.cancelLive(m, ts, 'selfTrade', out);
            this.cancelTaker(t, ts, 'selfTrade', out);
            return 'done';
          case 'decrementBoth':
            if (m.qty === d) this.cancelLive(m, ts, 'selfTrade', out);
            else {
              out.push({ type: 'OrderAmended', ts, orderId: m.id, account: m.account, side: m.side, oldPrice: m.price, oldQty: m.qty, price: m.price, qty: m.qty - d, priorityKept: true, rested: true });
              m.qty -= d;
            }
            if (t.qty === d) {
              this.cancelTaker(t, ts, 'selfTrade', out);
              return 'done';
            }
            out.push({ type: 'OrderAmended', ts, orderId: t.id, account: t.account, side: t.side, oldPrice: t.price, oldQty: t.qty, price: t.price, qty: t.qty - d, priorityKept: true, rested: false });
            t.qty -= d;
            continue;
        }
      }
      const q = Math.min(m.qty, t.qty);
      m.qty -= q;
      t.qty -= q;
      m.filled += q;
      t.filled += q;
      const n = notionalOf(i, m.price, q);
      out.push({
        type: 'Fill',
        ts,
        tradeId: ++this.tradeId,
        price: m.price,
        qty: q,
        takerOrderId: t.id,
        takerAccount: t.account,
        takerSide: t.side,
        makerOrderId: m.id,
        makerAccount: m.account,
        takerFee: feeOf(n, i.takerFeeBps),
        makerFee: feeOf(n, i.makerFeeBps),
        takerRemaining: t.qty,
        makerRemaining: m.qty,
      });
      this.lastPrice = m.price;
      if (m.qty === 0) this.remove(m);
    }
    return 'done';
  }

  private stops(ts: number, out: BookEvent[]): void {
    while (this.status === 'open' && this.lastPrice > 0) {
      const last = this.lastPrice;
      const armed = this.armed();
      const buys = armed.filter((o) => o.side === 'buy' && last >= o.stopPrice).sort((a, b) => a.stopPrice - b.stopPrice || a.seq - b.seq);
      const sells = armed.filter((o) => o.side === 'sell' && last <= o.stopPrice).sort((a, b) => b.stopPrice - a.stopPrice || a.seq - b.seq);
      const b = buys[0];
      const s = sells[0];
      const o = b && s ? (b.seq < s.seq ? b : s) : (b ?? s);
      if (!o) return;
      this.remove(o);
      o.seq = ++this.seq;
      out.push({ type: 'StopTriggered', ts, orderId: o.id, lastPrice: last });
      this.run(o, ts, out);
    }
  }
}
