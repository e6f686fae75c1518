/**
 * The account risk ledger: one deterministic state machine per account, plus the two system ledgers
 * `fees` and `clearing` (see schemas/src/ledger.ts for the vocabulary and the policies).
 *
 * Shape: `step` decides, then applies its own events through `apply`, so replaying the journal is the
 * same code path as running live. Events carry absolute balances and positions; `apply` only assigns.
 *
 * Pre-trade checks for PlaceOrder, in order (DESIGN.md "Order flow"):
 *   1 valid order  — fields and instrument rules (ORDER_*), leverage, market price cap, open-order cap,
 *                    duplicate clientOrderId, liquidation, reduce-only direction
 *   2 sufficient balance   RISK_INSUFFICIENT_BALANCE   available of the hold asset >= hold
 *   3 position limit       RISK_POSITION_LIMIT         margin; |position + open orders + order| <= maxPositionQty
 *   4 leverage limit       RISK_LEVERAGE_LIMIT         margin; gross notional / equity <= maxLeverage
 *   5 daily loss limit     RISK_DAILY_LOSS_LIMIT       today's realized P&L net of fees > -dailyLossLimit
 *   6 margin               RISK_INSUFFICIENT_MARGIN    margin; available + unrealized P&L >= hold
 * Reduce-only orders skip 3–6: they cannot add risk.
 *
 * @example
 *   const m = ledgerMachine({ account: 'acc-1', accountNo: 1, kind: 'user' });
 *   const out: LedgerEvent[] = [];
 *   let s = m.init();
 *   s = m.step(s, { type: 'Deposit', ts: 1, transferId: 't1', asset: 'USD', amount: 1_000 }, out);
 *   // out[0]: { type: 'Deposited', ..., balance: { asset: 'USD', available: 1000, held: 0 } }
 */
import type {
  BalanceAfter,
  BookReport,
  Deposit,
  Fill,
  HeldOrderFields,
  Instrument,
  LedgerCommand,
  LedgerCommandType,
  LedgerEvent,
  LedgerKind,
  OrderType,
  PlaceOrder,
  PositionAfter,
  RejectCode,
  RiskLimits,
  SelfTradePrevention,
  Side,
  StateMachine,
  TimeInForce,
  Withdraw,
  AmendHold,
  PostEntry,
  SetMarkPrice,
  SetRiskLimits,
  HoldReleaseReason,
} from '@bourse/schemas';
import { ACCOUNT_NO_MAX, LEDGER_AMOUNT_MAX, LEDGER_OPEN_ORDERS_MAX, ORDER_SEQ_BITS, Reject, canonicalInstrument, feeOf, instrumentFromRow, instrumentRow, sameInstrument, validateInstrument } from '@bourse/schemas';
import { hashOf } from '../util/hash.js';
import { divCeil, isSafeNonNeg, isSafePos, mulDivFloor } from './arith.js';

export interface LedgerConfig {
  readonly account: string;
  readonly accountNo: number;
  readonly kind: LedgerKind;
}

export interface Balance {
  available: number;
  held: number;
}

/** An order the ledger holds for. `qty` is the open (leaves) quantity as the book has it. */
export interface OpenOrder {
  orderId: number;
  orderSeq: number;
  clientOrderId: string | undefined;
  symbol: string;
  side: Side;
  orderType: OrderType;
  tif: TimeInForce;
  price: number;
  qty: number;
  stopPrice: number;
  expireAt: number;
  postOnly: boolean;
  reduceOnly: boolean;
  stp: SelfTradePrevention;
  leverage: number;
  holdAsset: string;
  hold: number;
  /** Executed quantity settled so far (sum of this order's FillSettled qty); the order's total is filled + qty. */
  filled: number;
  /** A pending amend reserved by AmendHold, not yet answered by the book; 0 = none. `pendingQty` is the total asked for. */
  pendingPrice: number;
  pendingQty: number;
  liquidation: boolean;
}

export interface Position {
  symbol: string;
  collateral: string;
  qty: number;
  entryCost: number;
  realizedPnl: number;
  margin: number;
}

export interface LedgerState {
  readonly account: string;
  readonly accountNo: number;
  readonly kind: LedgerKind;
  orderSeq: number;
  readonly balances: Map<string, Balance>;
  /**
   * Idempotency of Deposit, Withdraw and PostEntry ids (one namespace), in bounded state:
   * `ids` is the window of the last LEDGER_ID_WINDOW ids applied; the saga's fill entries are not in
   * it but in `fills`, one high-water mark per source. See "Idempotency" below.
   */
  readonly ids: IdWindow;
  /** Per fill-entry source `${prefix}:${symbol}:${account}`: the last entry applied (see `fillEntryOf`). */
  readonly fills: Map<string, FillMark>;
  readonly orders: Map<number, OpenOrder>;
  /** clientOrderId -> orderId for open orders; derived from `orders`. */
  readonly clientIds: Map<string, number>;
  readonly positions: Map<string, Position>;
  readonly marks: Map<string, number>;
  readonly instruments: Map<string, Instrument>;
  limits: RiskLimits;
  day: number;
  dayPnl: number;
  liquidating: boolean;
}

export interface FillMark {
  tradeId: number;
  /** 0 taker, 1 maker: one account's two legs of a self-trade arrive taker first. */
  role: number;
}

export const DAY_MS = 86_400_000;
const ORDER_SEQ_MAX = 2 ** ORDER_SEQ_BITS - 1;
const LEVERAGE_LIMIT_MAX = 1_000;
const ID_RE = /^[\x21-\x7e]{1,64}$/;
/**
 * Entry ids are the venue's own (`fee:`/`pnl:` + symbol ≤ 32 + trade id ≤ 16 digits + account ≤ 64 + role:
 * at most 124 characters), longer than a client's 64: a 64-character account must not lose its fees.
 */
const ENTRY_ID_RE = /^[\x21-\x7e]{1,128}$/;
const ASSET_RE = /^[A-Z0-9]{1,16}$/;
const SIDES: ReadonlySet<unknown> = new Set(['buy', 'sell']);
const ORDER_TYPES: ReadonlySet<unknown> = new Set(['limit', 'market', 'stop', 'stopLimit']);
const TIFS: ReadonlySet<unknown> = new Set(['GTC', 'IOC', 'FOK', 'GTD']);
const STPS: ReadonlySet<unknown> = new Set(['cancelTaker', 'cancelMaker', 'cancelBoth', 'decrementBoth']);
const NO_LIMITS: RiskLimits = Object.freeze({ maxPositionQty: 0, maxLeverage: 0, dailyLossLimit: 0 });

/** Instruments already found valid: a memo only (never part of state), so validation runs once per object. */
const validInstruments = new WeakSet<object>();

// ---------------------------------------------------------------- holds (pure)

/** What an order with `qty` open at `price` reserves, in its hold asset. See schemas/src/ledger.ts "Holds". */
export function holdFor(i: Instrument, side: Side, price: number, qty: number, reduceOnly: boolean, leverage: number): number {
  if (qty === 0) return 0;
  const feeReserve = price > 0 ? Math.ceil(qty / i.lotSize) * feeOf(price * i.lotSize * i.quoteMultiplier, Math.max(i.makerFeeBps, i.takerFeeBps)) : 0;
  if (i.mode === 'cash') return side === 'buy' ? price * qty * i.quoteMultiplier + feeReserve : qty * i.baseMultiplier;
  return (reduceOnly ? 0 : divCeil(price * qty * i.quoteMultiplier, leverage)) + feeReserve;
}

// ---------------------------------------------------------------- idempotency (bounded)
//
// A Deposit, Withdraw or PostEntry whose id was applied before is refused (LEDGER_DUPLICATE_TRANSFER),
// and the state that decides it is bounded, not the venue's history:
//
// - Fill entries, the ids the saga derives from a FillSettled (venue/routing.ts `routeLedgerEvent`):
//   `fee:` or `pnl:` + `${symbol}:${tradeId}:${account}:${role}`. One source (prefix, symbol, account)
//   posts them in increasing (tradeId, taker before maker): a book numbers its fills ++tradeId in
//   journal order (the counter is in its snapshot); the runtime delivers one sender's reliable messages
//   in order, exactly once (the receiver steps only seq = high-water mark + 1, and a resend after a
//   crash is re-derived from the journal in the same order), so the account settles one book's fills
//   in tradeId order, both legs of one fill taker first, and its FillSettled reach `fees`/`clearing` in
//   that order; the synchronous Venue's work queue is FIFO, which gives the same order. So a mark per
//   source, the last (tradeId, role) applied, refuses every duplicate, however old: state is one mark
//   per (symbol, account) that ever paid a fee or realized P&L, not one id per fill.
// - Every other id (transfer ids from outside, any other entry id): a window of the last
//   LEDGER_ID_WINDOW ids applied, in apply order. A duplicate is refused while its first application
//   is among the last LEDGER_ID_WINDOW ids this ledger applied; older ids are forgotten (the
//   idempotency-key retention of payment APIs, counted in transfers instead of hours). Snapshots keep
//   the window in apply order, so replay, and snapshot + tail, give the same state and hash.

/** How many transfer and entry ids (other than fill entries) a ledger remembers, in apply order. */
export const LEDGER_ID_WINDOW = 16_384;

/** The last `cap` ids added, oldest first: a ring over an array, and a set to look them up. */
export class IdWindow {
  private readonly ring: string[] = [];
  private readonly set = new Set<string>();
  /** Where the oldest id is, once the ring is full. */
  private head = 0;
  constructor(readonly cap: number) {
    if (!(Number.isSafeInteger(cap) && cap > 0)) throw new RangeError(`id window size out of range: ${cap}`);
  }
  get size(): number {
    return this.set.size;
  }
  has(id: string): boolean {
    return this.set.has(id);
  }
  /** Adds `id` as the newest (a no-op when it is in the window), forgetting the oldest when full. */
  add(id: string): void {
    if (this.set.has(id)) return;
    if (this.ring.length < this.cap) this.ring.push(id);
    else {
      this.set.delete(this.ring[this.head]!);
      this.ring[this.head] = id;
      this.head = this.head + 1 === this.cap ? 0 : this.head + 1;
    }
    this.set.add(id);
  }
  /** The ids, oldest first. */
  toArray(): string[] {
    return this.head === 0 ? this.ring.slice() : this.ring.slice(this.head).concat(this.ring.slice(0, this.head));
  }
}

const FILL_ENTRY_RE = /^(fee|pnl):([A-Z0-9][A-Z0-9._-]{0,31}):([1-9][0-9]{0,15}):(.+):(taker|maker)$/;

/**
 * A fill entry's source and place in it, or undefined for any other id. Unambiguous: symbols have no
 * `:`, the trade id is digits and the role is the last field, so an account id may contain `:`.
 */
export function fillEntryOf(id: string): { source: string; tradeId: number; role: number } | undefined {
  const m = FILL_ENTRY_RE.exec(id);
  if (m === null) return undefined;
  const tradeId = Number(m[3]);
  if (!Number.isSafeInteger(tradeId)) return undefined;
  return { source: `${m[1]}:${m[2]}:${m[4]}`, tradeId, role: m[5] === 'taker' ? 0 : 1 };
}

type FillEntry = NonNullable<ReturnType<typeof fillEntryOf>>;

const isAfter = (f: FillEntry, m: FillMark): boolean => f.tradeId > m.tradeId || (f.tradeId === m.tradeId && f.role > m.role);

function isDuplicateEntry(s: LedgerState, id: string): boolean {
  const f = fillEntryOf(id);
  if (f === undefined) return s.ids.has(id);
  const m = s.fills.get(f.source);
  return m !== undefined && !isAfter(f, m);
}

/** The source's mark becomes `f` if `f` is later (a fill entry was applied). */
function raiseMark(s: LedgerState, f: FillEntry): void {
  const m = s.fills.get(f.source);
  if (m === undefined) s.fills.set(f.source, { tradeId: f.tradeId, role: f.role });
  else if (isAfter(f, m)) {
    m.tradeId = f.tradeId;
    m.role = f.role;
  }
}

// ---------------------------------------------------------------- machine

export function ledgerMachine(config: LedgerConfig): StateMachine<LedgerState, LedgerCommand, LedgerEvent> {
  const { account, accountNo, kind } = config;
  if (!(Number.isSafeInteger(accountNo) && accountNo >= 0 && accountNo <= ACCOUNT_NO_MAX)) throw new RangeError(`accountNo out of range: ${accountNo}`);
  if (kind !== 'user' && kind !== 'fees' && kind !== 'clearing') throw new RangeError(`unknown ledger kind: ${String(kind)}`);

  const init = (): LedgerState => ({
    account, accountNo, kind, orderSeq: 0,
    balances: new Map(), ids: new IdWindow(LEDGER_ID_WINDOW), fills: new Map(), orders: new Map(), clientIds: new Map(),
    positions: new Map(), marks: new Map(), instruments: new Map(),
    limits: NO_LIMITS, day: 0, dayPnl: 0, liquidating: false,
  });

  return {
    kind: 'ledger',
    init,
    step: (s, c, out) => step(s, c, out),
    apply,
    snapshot,
    restore: (snap) => restore(snap),
    stateHash: (s) => hashOf(snapshot(s)),
  };
}

// ---------------------------------------------------------------- apply (replay one event)

function setBalance(s: LedgerState, b: BalanceAfter): void {
  const cur = s.balances.get(b.asset);
  if (cur) {
    cur.available = b.available;
    cur.held = b.held;
  } else s.balances.set(b.asset, { available: b.available, held: b.held });
}

export function apply(s: LedgerState, e: LedgerEvent): LedgerState {
  switch (e.type) {
    case 'InstrumentRegistered':
      s.instruments.set(e.instrument.symbol, e.instrument);
      break;
    case 'Deposited':
    case 'Withdrawn':
      s.ids.add(e.transferId);
      setBalance(s, e.balance);
      break;
    case 'EntryPosted': {
      const f = fillEntryOf(e.entryId);
      if (f === undefined) s.ids.add(e.entryId);
      else raiseMark(s, f);
      setBalance(s, e.balance);
      break;
    }
    case 'LedgerRejected':
      break;
    case 'OrderHeld':
    case 'LiquidationOrder': {
      s.orderSeq = e.orderSeq;
      s.orders.set(e.orderId, {
        orderId: e.orderId, orderSeq: e.orderSeq, clientOrderId: e.clientOrderId, symbol: e.symbol, side: e.side,
        orderType: e.orderType, tif: e.tif, price: e.price, qty: e.qty, stopPrice: e.stopPrice, expireAt: e.expireAt,
        postOnly: e.postOnly, reduceOnly: e.reduceOnly, stp: e.stp, leverage: e.leverage, holdAsset: e.holdAsset,
        hold: e.hold, filled: 0, pendingPrice: 0, pendingQty: 0, liquidation: e.type === 'LiquidationOrder',
      });
      if (e.clientOrderId !== undefined) s.clientIds.set(e.clientOrderId, e.orderId);
      setBalance(s, e.balance);
      break;
    }
    case 'HoldChanged': {
      const o = s.orders.get(e.orderId)!;
      o.price = e.price;
      o.qty = e.qty;
      o.pendingPrice = e.pendingPrice;
      o.pendingQty = e.pendingQty;
      o.hold = e.hold;
      setBalance(s, e.balance);
      break;
    }
    case 'HoldReleased': {
      const o = s.orders.get(e.orderId)!;
      s.orders.delete(e.orderId);
      if (o.clientOrderId !== undefined) s.clientIds.delete(o.clientOrderId);
      setBalance(s, e.balance);
      break;
    }
    case 'FillSettled': {
      const o = s.orders.get(e.orderId)!;
      o.qty = e.remaining;
      o.filled += e.qty; // the one sum in apply: FillSettled's shape is shared with read models, so it stays as is
      o.hold = e.orderHold;
      for (const b of e.balances) setBalance(s, b);
      if (e.position) s.positions.set(e.position.symbol, { ...e.position });
      s.day = e.day;
      s.dayPnl = e.dayPnl;
      break;
    }
    case 'MarkPriceSet':
      s.marks.set(e.symbol, e.price);
      break;
    case 'RiskLimitsSet':
      s.limits = e.limits;
      break;
    case 'MarginCall':
      s.liquidating = true;
      break;
    case 'LiquidationEnded':
      s.liquidating = false;
      break;
    default:
      return assertNeverEvent(e);
  }
  return s;
}

function assertNeverEvent(e: never): never {
  throw new Error(`ledger: unhandled event ${JSON.stringify(e)}`);
}

// ---------------------------------------------------------------- step (decide, then apply)

function emit(s: LedgerState, out: LedgerEvent[], e: LedgerEvent): void {
  out.push(e);
  apply(s, e);
}

const COMMAND_TYPES: ReadonlySet<unknown> = new Set<LedgerCommandType>([
  'Deposit', 'Withdraw', 'PlaceOrder', 'AmendHold', 'BookReport', 'PostEntry', 'SetMarkPrice', 'SetRiskLimits',
]);

function step(s: LedgerState, c: LedgerCommand, out: LedgerEvent[]): LedgerState {
  if (typeof c !== 'object' || c === null || !COMMAND_TYPES.has((c as { type?: unknown }).type)) {
    const ts = typeof c === 'object' && c !== null && isSafeNonNeg((c as { ts?: unknown }).ts) ? (c as { ts: number }).ts : 0;
    out.push({ type: 'LedgerRejected', ts, command: 'Unknown', ref: '', clientOrderId: undefined, code: Reject.ACTOR_UNKNOWN_COMMAND });
    return s;
  }
  switch (c.type) {
    case 'Deposit':
    case 'Withdraw':
      transfer(s, c, out);
      break;
    case 'PlaceOrder':
      placeOrder(s, c, out);
      break;
    case 'AmendHold':
      amendHold(s, c, out);
      break;
    case 'BookReport':
      bookReport(s, c, out);
      break;
    case 'PostEntry':
      postEntry(s, c, out);
      break;
    case 'SetMarkPrice':
      setMarkPrice(s, c, out);
      break;
    case 'SetRiskLimits':
      setRiskLimits(s, c, out);
      break;
    default:
      return assertNeverEvent(c);
  }
  return s;
}

function reject(out: LedgerEvent[], c: { type: LedgerCommandType; ts: unknown }, ref: string, code: RejectCode, clientOrderId?: unknown): void {
  out.push({
    type: 'LedgerRejected',
    ts: isSafeNonNeg(c.ts) ? c.ts : 0,
    command: c.type,
    ref,
    clientOrderId: typeof clientOrderId === 'string' ? clientOrderId : undefined,
    code,
  });
}

const refOf = (x: unknown): string => (typeof x === 'string' ? x.slice(0, 64) : typeof x === 'number' && Number.isFinite(x) ? String(x) : '');

function balanceOf(s: LedgerState, asset: string): Balance {
  return s.balances.get(asset) ?? { available: 0, held: 0 };
}

function balanceAfter(s: LedgerState, asset: string, availableDelta: number, heldDelta: number): BalanceAfter {
  const b = balanceOf(s, asset);
  return { asset, available: b.available + availableDelta, held: b.held + heldDelta };
}

// ---- Deposit / Withdraw / PostEntry

function transfer(s: LedgerState, c: Deposit | Withdraw, out: LedgerEvent[]): void {
  const ref = refOf(c.transferId);
  if (!isSafeNonNeg(c.ts)) return reject(out, c, ref, Reject.LEDGER_INVALID_TIMESTAMP);
  if (typeof c.transferId !== 'string' || !ID_RE.test(c.transferId)) return reject(out, c, ref, Reject.LEDGER_INVALID_TRANSFER_ID);
  if (typeof c.asset !== 'string' || !ASSET_RE.test(c.asset)) return reject(out, c, ref, Reject.LEDGER_UNKNOWN_ASSET);
  if (!(Number.isInteger(c.amount) && c.amount > 0)) return reject(out, c, ref, Reject.LEDGER_AMOUNT_NOT_POSITIVE);
  if (c.amount > LEDGER_AMOUNT_MAX) return reject(out, c, ref, Reject.LEDGER_AMOUNT_OVERFLOW);
  if (s.ids.has(c.transferId)) return reject(out, c, ref, Reject.LEDGER_DUPLICATE_TRANSFER);
  const b = balanceOf(s, c.asset);
  if (c.type === 'Deposit') {
    if (b.available + b.held + c.amount > LEDGER_AMOUNT_MAX) return reject(out, c, ref, Reject.LEDGER_AMOUNT_OVERFLOW);
    emit(s, out, { type: 'Deposited', ts: c.ts, transferId: c.transferId, asset: c.asset, amount: c.amount, balance: balanceAfter(s, c.asset, c.amount, 0) });
  } else {
    // Unrealized losses of positions settled in this asset are not withdrawable either.
    const free = b.available + Math.min(0, unrealizedOf(s, c.asset));
    if (c.amount > free) return reject(out, c, ref, Reject.LEDGER_INSUFFICIENT_AVAILABLE);
    emit(s, out, { type: 'Withdrawn', ts: c.ts, transferId: c.transferId, asset: c.asset, amount: c.amount, balance: balanceAfter(s, c.asset, -c.amount, 0) });
  }
}

function postEntry(s: LedgerState, c: PostEntry, out: LedgerEvent[]): void {
  const ref = refOf(c.entryId);
  if (!isSafeNonNeg(c.ts)) return reject(out, c, ref, Reject.LEDGER_INVALID_TIMESTAMP);
  if (s.kind === 'user') return reject(out, c, ref, Reject.LEDGER_NOT_SYSTEM_ACCOUNT);
  if (typeof c.entryId !== 'string' || !ENTRY_ID_RE.test(c.entryId)) return reject(out, c, ref, Reject.LEDGER_INVALID_TRANSFER_ID);
  if (typeof c.asset !== 'string' || !ASSET_RE.test(c.asset)) return reject(out, c, ref, Reject.LEDGER_UNKNOWN_ASSET);
  // Fees are never negative; P&L legs on `clearing` have either sign but are never 0.
  if (!Number.isInteger(c.amount) || c.amount === 0 || (s.kind === 'fees' && c.amount < 0)) return reject(out, c, ref, Reject.LEDGER_AMOUNT_NOT_POSITIVE);
  if (Math.abs(c.amount) > LEDGER_AMOUNT_MAX) return reject(out, c, ref, Reject.LEDGER_AMOUNT_OVERFLOW);
  if (isDuplicateEntry(s, c.entryId)) return reject(out, c, ref, Reject.LEDGER_DUPLICATE_TRANSFER);
  const b = balanceAfter(s, c.asset, c.amount, 0);
  if (!Number.isSafeInteger(b.available)) return reject(out, c, ref, Reject.LEDGER_AMOUNT_OVERFLOW);
  emit(s, out, { type: 'EntryPosted', ts: c.ts, entryId: c.entryId, asset: c.asset, amount: c.amount, balance: b });
}

// ---- instruments

/** Whether a command's instrument is a valid definition (memoized per object; the memo is not state). */
function isValidInstrument(i: unknown): i is Instrument {
  if (typeof i !== 'object' || i === null) return false;
  if (validInstruments.has(i)) return true;
  let ok: boolean;
  try {
    ok = validateInstrument(i as Instrument).length === 0;
  } catch {
    ok = false;
  }
  if (ok) validInstruments.add(i);
  return ok;
}

/**
 * Records a (valid) instrument definition if it is new or changed, as an event. Called only once a command
 * is accepted, so a refused command emits nothing but its LedgerRejected.
 */
function register(s: LedgerState, inst: Instrument, ts: number, out: LedgerEvent[]): void {
  const known = s.instruments.get(inst.symbol);
  if (known !== undefined && sameInstrument(known, inst)) return;
  const frozen = canonicalInstrument(inst);
  validInstruments.add(frozen);
  emit(s, out, { type: 'InstrumentRegistered', ts, instrument: frozen });
}

// ---- margin arithmetic

function markValue(s: LedgerState, p: Position): number {
  const i = s.instruments.get(p.symbol)!;
  const mark = s.marks.get(p.symbol);
  return mark === undefined ? Math.abs(p.entryCost) : Math.abs(p.qty) * mark * i.quoteMultiplier;
}

function unrealizedPos(s: LedgerState, p: Position): number {
  if (p.qty === 0) return 0;
  const mark = s.marks.get(p.symbol);
  if (mark === undefined) return 0;
  return p.qty * mark * s.instruments.get(p.symbol)!.quoteMultiplier - p.entryCost;
}

function unrealizedOf(s: LedgerState, collateral: string): number {
  let u = 0;
  for (const p of s.positions.values()) if (p.collateral === collateral && p.qty !== 0) u += unrealizedPos(s, p);
  return u;
}

function equityOf(s: LedgerState, collateral: string): number {
  const b = balanceOf(s, collateral);
  return b.available + b.held + unrealizedOf(s, collateral);
}

function maintenanceOf(s: LedgerState, collateral: string): number {
  let m = 0;
  for (const p of s.positions.values()) {
    if (p.collateral !== collateral || p.qty === 0) continue;
    m += feeOf(markValue(s, p), s.instruments.get(p.symbol)!.maintenanceMarginBps);
  }
  return m;
}

function openQty(s: LedgerState, symbol: string, side: Side, reduceOnly: boolean): number {
  let q = 0;
  for (const o of s.orders.values()) if (o.symbol === symbol && o.side === side && o.reduceOnly === reduceOnly) q += o.qty;
  return q;
}

/** Checks 2–6. Returns 0 when the added risk is acceptable. */
function riskChecks(
  s: LedgerState, i: Instrument, ts: number, side: Side, reduceOnly: boolean,
  holdAsset: string, holdAdd: number, qtyAdd: number, notionalAdd: number,
): RejectCode | 0 {
  const b = balanceOf(s, holdAsset);
  if (holdAdd > b.available) return Reject.RISK_INSUFFICIENT_BALANCE; // 2
  if (reduceOnly) return 0;
  const margin = i.mode === 'margin';
  const lim = s.limits;
  if (margin && lim.maxPositionQty > 0 && qtyAdd > 0) { // 3
    const pos = s.positions.get(i.symbol)?.qty ?? 0;
    const worst = side === 'buy' ? pos + openQty(s, i.symbol, 'buy', false) + qtyAdd : -(pos - openQty(s, i.symbol, 'sell', false) - qtyAdd);
    if (worst > lim.maxPositionQty) return Reject.RISK_POSITION_LIMIT;
  }
  if (margin && notionalAdd > 0) { // 4
    const collateral = i.quote;
    const maxLev = lim.maxLeverage > 0 ? lim.maxLeverage : i.maxLeverage;
    let gross = BigInt(notionalAdd);
    for (const p of s.positions.values()) if (p.collateral === collateral && p.qty !== 0) gross += BigInt(markValue(s, p));
    for (const o of s.orders.values()) {
      if (o.reduceOnly) continue;
      const oi = s.instruments.get(o.symbol)!;
      if (oi.mode === 'margin' && oi.quote === collateral) gross += BigInt(o.price) * BigInt(o.qty) * BigInt(oi.quoteMultiplier);
    }
    const equity = equityOf(s, collateral);
    if (equity <= 0 || gross > BigInt(maxLev) * BigInt(equity)) return Reject.RISK_LEVERAGE_LIMIT;
  }
  if (lim.dailyLossLimit > 0 && (holdAdd > 0 || qtyAdd > 0)) { // 5
    const today = Math.floor(ts / DAY_MS);
    const pnl = s.day === today ? s.dayPnl : 0;
    if (pnl <= -lim.dailyLossLimit) return Reject.RISK_DAILY_LOSS_LIMIT;
  }
  if (margin && holdAdd > b.available + unrealizedOf(s, i.quote)) return Reject.RISK_INSUFFICIENT_MARGIN; // 6
  return 0;
}

// ---- PlaceOrder

function validateOrder(s: LedgerState, c: PlaceOrder, i: Instrument): RejectCode | 0 {
  // Field checks mirror the book's (packages/engine/src/book), so an order the ledger holds is one the book can take.
  if (c.clientOrderId !== undefined && (typeof c.clientOrderId !== 'string' || !ID_RE.test(c.clientOrderId))) return Reject.ORDER_INVALID_CLIENT_ORDER_ID;
  if (!SIDES.has(c.side)) return Reject.ORDER_INVALID_SIDE;
  if (!ORDER_TYPES.has(c.orderType)) return Reject.ORDER_INVALID_TYPE;
  if (!TIFS.has(c.tif)) return Reject.ORDER_INVALID_TIF;
  const marketLike = c.orderType === 'market' || c.orderType === 'stop';
  if (marketLike && c.tif !== 'IOC' && c.tif !== 'FOK') return Reject.ORDER_INVALID_TIF;
  if (marketLike) {
    // For market and stop orders `price` is the protection price (0 = none), which is also the hold's price cap.
    if (!isSafeNonNeg(c.price) || c.price % i.tickSize !== 0) return Reject.ORDER_INVALID_PROTECTION;
  } else {
    if (!isSafePos(c.price)) return Reject.ORDER_PRICE_NOT_POSITIVE;
    if (c.price % i.tickSize !== 0) return Reject.ORDER_PRICE_NOT_TICK_MULTIPLE;
  }
  if (!isSafePos(c.qty)) return Reject.ORDER_QTY_NOT_POSITIVE;
  if (c.qty % i.lotSize !== 0) return Reject.ORDER_QTY_NOT_LOT_MULTIPLE;
  if (c.qty < i.minQty) return Reject.ORDER_QTY_BELOW_MIN;
  if (c.qty > i.maxQty) return Reject.ORDER_QTY_ABOVE_MAX;
  if (c.price * c.qty * i.quoteMultiplier > i.maxNotional || c.qty * i.baseMultiplier > LEDGER_AMOUNT_MAX) return Reject.ORDER_NOTIONAL_TOO_LARGE;
  const stop = c.orderType === 'stop' || c.orderType === 'stopLimit';
  if (stop ? !(isSafePos(c.stopPrice) && c.stopPrice % i.tickSize === 0) : !(c.stopPrice === undefined || c.stopPrice === 0)) return Reject.ORDER_STOP_PRICE_INVALID;
  if (c.tif === 'GTD' ? !(isSafePos(c.expireAt) && c.expireAt > c.ts) : !(c.expireAt === undefined || c.expireAt === 0)) return Reject.ORDER_GTD_EXPIRY_INVALID;
  if (c.postOnly !== undefined && typeof c.postOnly !== 'boolean') return Reject.ORDER_INVALID_FLAG;
  if (c.reduceOnly !== undefined && typeof c.reduceOnly !== 'boolean') return Reject.ORDER_INVALID_FLAG;
  if (c.postOnly && (c.orderType !== 'limit' || (c.tif !== 'GTC' && c.tif !== 'GTD'))) return Reject.ORDER_POST_ONLY_INVALID;
  if (c.reduceOnly && i.mode !== 'margin') return Reject.ORDER_REDUCE_ONLY_NOT_MARGIN;
  if (c.stp !== undefined && !STPS.has(c.stp)) return Reject.ORDER_INVALID_STP;
  if (c.leverage !== undefined && !(isSafePos(c.leverage) && c.leverage <= i.maxLeverage)) return Reject.RISK_INVALID_LEVERAGE;
  const reduceOnly = c.reduceOnly === true;
  if (c.price === 0 && ((i.mode === 'cash' && c.side === 'buy') || (i.mode === 'margin' && !reduceOnly))) return Reject.RISK_MARKET_NEEDS_PRICE_CAP;
  if (s.orders.size >= LEDGER_OPEN_ORDERS_MAX) return Reject.RISK_TOO_MANY_OPEN_ORDERS;
  if (s.orderSeq >= ORDER_SEQ_MAX) return Reject.RISK_INVALID_ORDER;
  if (c.clientOrderId !== undefined && s.clientIds.has(c.clientOrderId)) return Reject.RISK_DUPLICATE_ORDER;
  if (s.liquidating && !reduceOnly) return Reject.RISK_ACCOUNT_LIQUIDATING;
  if (reduceOnly) {
    const pos = s.positions.get(i.symbol)?.qty ?? 0;
    const room = c.side === 'buy' ? -pos : pos;
    if (c.qty + openQty(s, i.symbol, c.side, true) > room) return Reject.RISK_REDUCE_ONLY_WOULD_INCREASE;
  }
  return 0;
}

function placeOrder(s: LedgerState, c: PlaceOrder, out: LedgerEvent[]): void {
  const coid = c.clientOrderId;
  if (!isSafeNonNeg(c.ts)) return reject(out, c, '', Reject.ORDER_INVALID_TIMESTAMP, coid);
  if (s.kind !== 'user') return reject(out, c, '', Reject.LEDGER_INVALID_ACCOUNT, coid);
  if (!isValidInstrument(c.instrument)) return reject(out, c, '', Reject.ORDER_UNKNOWN_INSTRUMENT, coid);
  const i = c.instrument;
  let code = validateOrder(s, c, i);
  const reduceOnly = c.reduceOnly === true;
  const leverage = i.mode === 'margin' ? (c.leverage ?? i.maxLeverage) : 1;
  const holdAsset = i.mode === 'cash' && c.side === 'sell' ? i.base : i.quote;
  const hold = code === 0 ? holdFor(i, c.side, c.price, c.qty, reduceOnly, leverage) : 0;
  if (code === 0) code = riskChecks(s, i, c.ts, c.side, reduceOnly, holdAsset, hold, c.qty, c.price * c.qty * i.quoteMultiplier);
  if (code !== 0) return reject(out, c, '', code, coid);
  register(s, i, c.ts, out);
  const orderSeq = s.orderSeq + 1;
  emit(s, out, {
    type: 'OrderHeld', ...heldFields(s, c.ts, orderSeq, i.symbol, coid, c.side, c.orderType, c.tif, c.price, c.qty,
      c.stopPrice ?? 0, c.expireAt ?? 0, c.postOnly === true, reduceOnly, c.stp ?? 'cancelTaker', leverage, holdAsset, hold),
  });
}

function heldFields(
  s: LedgerState, ts: number, orderSeq: number, symbol: string, clientOrderId: string | undefined, side: Side, orderType: OrderType,
  tif: TimeInForce, price: number, qty: number, stopPrice: number, expireAt: number, postOnly: boolean, reduceOnly: boolean,
  stp: SelfTradePrevention, leverage: number, holdAsset: string, hold: number,
): HeldOrderFields {
  return {
    ts, orderId: s.accountNo * 2 ** ORDER_SEQ_BITS + orderSeq, orderSeq, account: s.account, symbol, clientOrderId, side,
    orderType, tif, price, qty, stopPrice, expireAt, postOnly, reduceOnly, stp, leverage, holdAsset, hold,
    balance: balanceAfter(s, holdAsset, -hold, hold),
  };
}

// ---- AmendHold

function amendHold(s: LedgerState, c: AmendHold, out: LedgerEvent[]): void {
  const ref = refOf(c.orderId);
  if (!isSafeNonNeg(c.ts)) return reject(out, c, ref, Reject.ORDER_INVALID_TIMESTAMP);
  if (s.kind !== 'user') return reject(out, c, ref, Reject.LEDGER_INVALID_ACCOUNT);
  if (!isSafePos(c.orderId)) return reject(out, c, ref, Reject.ORDER_INVALID_ID);
  const o = s.orders.get(c.orderId);
  if (!o) return reject(out, c, ref, Reject.RISK_UNKNOWN_ORDER);
  const coid = o.clientOrderId;
  const i = s.instruments.get(o.symbol)!;
  if (c.price !== undefined) {
    if (!isSafePos(c.price)) return reject(out, c, ref, Reject.ORDER_PRICE_NOT_POSITIVE, coid);
    if (c.price % i.tickSize !== 0) return reject(out, c, ref, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE, coid);
  }
  if (c.qty !== undefined) {
    if (!isSafePos(c.qty)) return reject(out, c, ref, Reject.ORDER_QTY_NOT_POSITIVE, coid);
    if (c.qty % i.lotSize !== 0) return reject(out, c, ref, Reject.ORDER_QTY_NOT_LOT_MULTIPLE, coid);
    if (c.qty < i.minQty) return reject(out, c, ref, Reject.ORDER_QTY_BELOW_MIN, coid);
    if (c.qty > i.maxQty) return reject(out, c, ref, Reject.ORDER_QTY_ABOVE_MAX, coid);
  }
  // FIX cancel/replace: `c.qty` is the new total order quantity; the book makes the open quantity
  // total - executed. The book may have executed more than this ledger has settled yet (fills in flight),
  // so `open` below (total - what the ledger knows executed) is an upper bound of what the book will leave.
  const price = c.price ?? o.price;
  const total = c.qty ?? o.filled + o.qty;
  const open = total - o.filled;
  // Nothing to amend, a second amend before the book answered the first, or a liquidation order: refused.
  if ((c.price === undefined && c.qty === undefined) || o.pendingQty !== 0 || o.liquidation) return reject(out, c, ref, Reject.RISK_INVALID_ORDER, coid);
  if (price * total * i.quoteMultiplier > i.maxNotional || total * i.baseMultiplier > LEDGER_AMOUNT_MAX) return reject(out, c, ref, Reject.ORDER_NOTIONAL_TOO_LARGE, coid);
  if (o.reduceOnly && open > o.qty) {
    const pos = s.positions.get(o.symbol)?.qty ?? 0;
    const room = o.side === 'buy' ? -pos : pos;
    if (open - o.qty + openQty(s, o.symbol, o.side, true) > room) return reject(out, c, ref, Reject.RISK_REDUCE_ONLY_WOULD_INCREASE, coid);
  }
  const newHold = open <= 0 ? o.hold : amendReserve(i, o, price, open);
  const extra = newHold - o.hold;
  const notionalAdd = Math.max(0, price * open - o.price * o.qty) * i.quoteMultiplier;
  if (extra > 0 || open > o.qty) {
    if (s.liquidating && !o.reduceOnly) return reject(out, c, ref, Reject.RISK_ACCOUNT_LIQUIDATING, coid);
    const code = riskChecks(s, i, c.ts, o.side, o.reduceOnly, o.holdAsset, extra, Math.max(0, open - o.qty), notionalAdd);
    if (code !== 0) return reject(out, c, ref, code, coid);
  }
  emit(s, out, {
    type: 'HoldChanged', ts: c.ts, orderId: o.orderId, price: o.price, qty: o.qty, pendingPrice: price, pendingQty: total,
    hold: newHold, balance: balanceAfter(s, o.holdAsset, -extra, extra),
  });
}

/**
 * What an order must hold while an amend to (`price`, `open` by this ledger's count) is pending, so that
 * no interleaving of fills and the amend can need more. Before the book sees the amend, up to `o.qty` more
 * may fill at the old price (each fill frees what it had reserved at `o.price`); then the amend leaves
 * `open - f` at `price`. The need after f filled, hold(o.price, o.qty) - hold(o.price, o.qty - f) +
 * hold(price, max(0, open - f)), is piecewise linear in whole lots and convex (its slope only rises), so its
 * maximum is at f = 0 or f = o.qty: max(hold(price, open), o.hold + hold(price, open - o.qty)). Margin
 * holds round initial margin up per computation (divCeil), which can add up to 3 units between the
 * endpoints; an amend that can raise the need reserves those 3 as well.
 */
function amendReserve(i: Instrument, o: OpenOrder, price: number, open: number): number {
  const atNew = holdFor(i, o.side, price, open, o.reduceOnly, o.leverage);
  const afterOldFills = open > o.qty ? o.hold + holdFor(i, o.side, price, open - o.qty, o.reduceOnly, o.leverage) : o.hold;
  const need = Math.max(o.hold, atNew, afterOldFills);
  const rounding = i.mode === 'margin' && !o.reduceOnly && (open > o.qty || price > o.price) ? 3 : 0;
  return need + rounding;
}

// ---- BookReport

function bookReport(s: LedgerState, c: BookReport, out: LedgerEvent[]): void {
  const ev = c.event as BookReport['event'] | undefined;
  const ref = typeof ev === 'object' && ev !== null ? refOf((ev as { orderId?: unknown; takerOrderId?: unknown }).orderId ?? (ev as { takerOrderId?: unknown }).takerOrderId) : '';
  if (!isSafeNonNeg(c.ts)) return reject(out, c, ref, Reject.RISK_INVALID_REPORT);
  if (s.kind !== 'user') return reject(out, c, ref, Reject.LEDGER_INVALID_ACCOUNT);
  if (typeof ev !== 'object' || ev === null) return reject(out, c, ref, Reject.RISK_INVALID_REPORT);
  if (!isValidInstrument(c.instrument)) return reject(out, c, ref, Reject.ORDER_UNKNOWN_INSTRUMENT);
  const code = bookReportEvent(s, c, ev, out);
  if (code !== 0) reject(out, c, ref, code);
}

/** Returns a reject code, or 0 after emitting the events. Emits nothing unless it returns 0. */
function bookReportEvent(s: LedgerState, c: BookReport, ev: BookReport['event'], out: LedgerEvent[]): RejectCode | 0 {
  const ts = c.ts;
  const symbol = c.instrument.symbol;
  switch (ev.type) {
    case 'Fill':
      return settleFill(s, c.instrument, ts, ev, out);
    case 'OrderAccepted':
    case 'OrderCancelled':
    case 'OrderAmended':
    case 'CommandRejected': {
      if (!isSafePos(ev.orderId)) return Reject.RISK_INVALID_REPORT;
      const o = s.orders.get(ev.orderId);
      if (!o) return Reject.RISK_UNKNOWN_ORDER;
      if (o.symbol !== symbol) return Reject.RISK_INVALID_REPORT;
      const i = c.instrument;
      if (ev.type === 'OrderAccepted') return 0; // the hold stands as placed
      if (ev.type === 'OrderAmended' && !(isSafePos(ev.price) && isSafePos(ev.qty) && ev.price * ev.qty * i.quoteMultiplier <= i.maxNotional)) return Reject.RISK_INVALID_REPORT;
      register(s, i, ts, out);
      if (ev.type === 'OrderCancelled') {
        release(s, o, ts, ev.reason === 'expired' ? 'expired' : 'cancelled', out);
        return 0;
      }
      if (ev.type === 'OrderAmended') {
        reconcile(s, o, i, ts, ev.price, ev.qty, out);
        return 0;
      }
      if (ev.command === 'NewOrder') release(s, o, ts, 'rejected', out);
      else if (ev.command === 'AmendOrder') reconcile(s, o, i, ts, o.price, o.qty, out);
      return 0; // a refused cancel changes nothing here
    }
    default:
      return Reject.RISK_INVALID_REPORT;
  }
}

function release(s: LedgerState, o: OpenOrder, ts: number, reason: HoldReleaseReason, out: LedgerEvent[]): void {
  emit(s, out, {
    type: 'HoldReleased', ts, orderId: o.orderId, clientOrderId: o.clientOrderId, reason, released: o.hold,
    balance: balanceAfter(s, o.holdAsset, o.hold, -o.hold),
  });
}

/** The order's real price/qty are now known: its hold becomes exactly what that needs. */
function reconcile(s: LedgerState, o: OpenOrder, i: Instrument, ts: number, price: number, qty: number, out: LedgerEvent[]): void {
  const hold = holdFor(i, o.side, price, qty, o.reduceOnly, o.leverage);
  const delta = hold - o.hold;
  emit(s, out, {
    type: 'HoldChanged', ts, orderId: o.orderId, price, qty, pendingPrice: 0, pendingQty: 0, hold,
    balance: balanceAfter(s, o.holdAsset, -delta, delta),
  });
}

function settleFill(s: LedgerState, i: Instrument, ts: number, f: Fill, out: LedgerEvent[]): RejectCode | 0 {
  if (!isSafePos(f.price) || !isSafePos(f.qty) || !isSafePos(f.tradeId) || !SIDES.has(f.takerSide)) return Reject.RISK_INVALID_REPORT;
  if (!isSafeNonNeg(f.takerFee) || !isSafeNonNeg(f.makerFee) || !isSafeNonNeg(f.takerRemaining) || !isSafeNonNeg(f.makerRemaining)) return Reject.RISK_INVALID_REPORT;
  const notional = f.price * f.qty * i.quoteMultiplier;
  if (notional > i.maxNotional || f.takerFee > notional || f.makerFee > notional) return Reject.RISK_INVALID_REPORT;
  const makerSide: Side = f.takerSide === 'buy' ? 'sell' : 'buy';
  const legs: { role: 'taker' | 'maker'; o: OpenOrder; side: Side; fee: number; remaining: number }[] = [];
  for (const role of ['taker', 'maker'] as const) {
    const acc = role === 'taker' ? f.takerAccount : f.makerAccount;
    const id = role === 'taker' ? f.takerOrderId : f.makerOrderId;
    if (acc !== s.account) continue;
    const o = s.orders.get(id);
    if (!o) continue;
    const side = role === 'taker' ? f.takerSide : makerSide;
    const remaining = role === 'taker' ? f.takerRemaining : f.makerRemaining;
    if (o.symbol !== i.symbol || o.side !== side || f.qty > o.qty || remaining !== o.qty - f.qty) return Reject.RISK_INVALID_REPORT;
    // A fill beyond the order's limit would break the hold's coverage (and price-time rules): refuse it.
    if (o.price > 0 && (side === 'buy' ? f.price > o.price : f.price < o.price)) return Reject.RISK_INVALID_REPORT;
    legs.push({ role, o, side, fee: role === 'taker' ? f.takerFee : f.makerFee, remaining });
  }
  if (legs.length === 0) return Reject.RISK_UNKNOWN_ORDER;
  register(s, i, ts, out);
  for (const l of legs) settleLeg(s, i, ts, f, l.o, l.role, l.side, l.fee, l.remaining, notional, out);
  if (i.mode === 'margin') marginCheck(s, ts, out, false);
  return 0;
}

function settleLeg(
  s: LedgerState, i: Instrument, ts: number, f: Fill, o: OpenOrder, role: 'taker' | 'maker', side: Side, fee: number,
  remaining: number, notional: number, out: LedgerEvent[],
): void {
  const bals = new Map<string, Balance>();
  const get = (asset: string): Balance => {
    let b = bals.get(asset);
    if (!b) {
      const cur = balanceOf(s, asset);
      b = { available: cur.available, held: cur.held };
      bals.set(asset, b);
    }
    return b;
  };
  // What this fill's qty had reserved at the order's price. A pending amend's extra reserve stays with the
  // order until the book answers the amend.
  const freed = holdFor(i, o.side, o.price, o.qty, o.reduceOnly, o.leverage) - holdFor(i, o.side, o.price, remaining, o.reduceOnly, o.leverage);
  const newHold = o.hold - freed;
  const h = get(o.holdAsset);
  h.held -= freed;
  h.available += freed;
  let realized = 0;
  let position: PositionAfter | null = null;
  const q = get(i.quote);
  if (i.mode === 'cash') {
    if (side === 'buy') {
      q.available -= notional + fee;
      get(i.base).available += f.qty * i.baseMultiplier;
    } else {
      get(i.base).available -= f.qty * i.baseMultiplier;
      q.available += notional - fee;
    }
  } else {
    const prev = s.positions.get(i.symbol);
    const p: Position = prev ? { ...prev } : { symbol: i.symbol, collateral: i.quote, qty: 0, entryCost: 0, realizedPnl: 0, margin: 0 };
    const sgn = side === 'buy' ? 1 : -1;
    let closeQty = 0;
    if (p.qty !== 0 && Math.sign(p.qty) !== sgn) closeQty = Math.min(f.qty, Math.abs(p.qty));
    const openQ = f.qty - closeQty;
    if (closeQty > 0) {
      const abs = Math.abs(p.qty);
      const posSign = Math.sign(p.qty);
      const full = closeQty === abs;
      const costRemoved = full ? p.entryCost : posSign * mulDivFloor(Math.abs(p.entryCost), closeQty, abs);
      const marginRel = full ? p.margin : mulDivFloor(p.margin, closeQty, abs);
      realized = posSign * f.price * closeQty * i.quoteMultiplier - costRemoved;
      p.qty += sgn * closeQty;
      p.entryCost -= costRemoved;
      p.margin -= marginRel;
      p.realizedPnl += realized;
      q.held -= marginRel;
      q.available += marginRel;
    }
    q.available += realized - fee;
    if (openQ > 0) {
      const im = divCeil(f.price * openQ * i.quoteMultiplier, o.leverage);
      const take = Math.min(im, Math.max(0, q.available));
      q.available -= take;
      q.held += take;
      p.margin += take;
      p.qty += sgn * openQ;
      p.entryCost += sgn * f.price * openQ * i.quoteMultiplier;
    }
    position = { symbol: p.symbol, collateral: p.collateral, qty: p.qty, entryCost: p.entryCost, realizedPnl: p.realizedPnl, margin: p.margin };
  }
  const day = Math.floor(ts / DAY_MS);
  const dayPnl = (s.day === day ? s.dayPnl : 0) + realized - fee;
  const balances = [...bals.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([asset, b]) => ({ asset, available: b.available, held: b.held }));
  emit(s, out, {
    type: 'FillSettled', ts, symbol: i.symbol, tradeId: f.tradeId, orderId: o.orderId, clientOrderId: o.clientOrderId, role, side,
    mode: i.mode, price: f.price, qty: f.qty, notional, fee, feeAsset: i.quote, realizedPnl: realized, remaining, orderHold: newHold,
    balances, position, day, dayPnl,
  });
  if (remaining === 0) release(s, o, ts, 'filled', out);
}

// ---- mark prices, margin calls, liquidation

function setMarkPrice(s: LedgerState, c: SetMarkPrice, out: LedgerEvent[]): void {
  if (!isSafeNonNeg(c.ts)) return reject(out, c, '', Reject.LEDGER_INVALID_TIMESTAMP);
  if (s.kind !== 'user') return reject(out, c, '', Reject.LEDGER_INVALID_ACCOUNT);
  if (!isValidInstrument(c.instrument)) return reject(out, c, '', Reject.ORDER_UNKNOWN_INSTRUMENT);
  const i = c.instrument;
  if (!isSafePos(c.price)) return reject(out, c, i.symbol, Reject.ORDER_PRICE_NOT_POSITIVE);
  if (c.price % i.tickSize !== 0) return reject(out, c, i.symbol, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE);
  if (c.price > i.maxNotional) return reject(out, c, i.symbol, Reject.ORDER_NOTIONAL_TOO_LARGE);
  register(s, i, c.ts, out);
  const collateral = i.quote;
  const prev = s.marks.get(i.symbol);
  s.marks.set(i.symbol, c.price); // to compute the figures below; MarkPriceSet's apply assigns the same
  const equity = equityOf(s, collateral);
  const unrealizedPnl = unrealizedOf(s, collateral);
  const maintenanceMargin = maintenanceOf(s, collateral);
  if (prev === undefined) s.marks.delete(i.symbol);
  else s.marks.set(i.symbol, prev);
  emit(s, out, { type: 'MarkPriceSet', ts: c.ts, symbol: i.symbol, price: c.price, collateral, equity, unrealizedPnl, maintenanceMargin });
  marginCheck(s, c.ts, out, true);
}

/**
 * Post-trade monitoring. Not liquidating: any collateral whose equity is below maintenance raises a
 * MarginCall and every open position is closed by liquidation orders. Liquidating: when every position
 * is flat, LiquidationEnded; else (on a mark price) positions that open reduce-only orders no longer
 * cover get new liquidation orders.
 */
function marginCheck(s: LedgerState, ts: number, out: LedgerEvent[], reissue: boolean): void {
  const positions = [...s.positions.values()].filter((p) => p.qty !== 0).sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
  if (s.liquidating) {
    if (positions.length === 0) emit(s, out, { type: 'LiquidationEnded', ts });
    else if (reissue) liquidate(s, ts, positions, out);
    return;
  }
  const collaterals = [...new Set(positions.map((p) => p.collateral))].sort();
  for (const col of collaterals) {
    const equity = equityOf(s, col);
    const mm = maintenanceOf(s, col);
    if (equity < mm) {
      emit(s, out, { type: 'MarginCall', ts, collateral: col, equity, maintenanceMargin: mm });
      liquidate(s, ts, positions, out);
      return;
    }
  }
}

function liquidate(s: LedgerState, ts: number, positions: Position[], out: LedgerEvent[]): void {
  for (const p of positions) {
    const i = s.instruments.get(p.symbol)!;
    const side: Side = p.qty > 0 ? 'sell' : 'buy';
    let left = Math.abs(p.qty) - openQty(s, p.symbol, side, true);
    const chunk = i.maxQty - (i.maxQty % i.lotSize);
    while (left > 0 && s.orderSeq < ORDER_SEQ_MAX) {
      const qty = Math.min(left, chunk);
      left -= qty;
      emit(s, out, {
        type: 'LiquidationOrder', ...heldFields(s, ts, s.orderSeq + 1, p.symbol, undefined, side, 'market', 'IOC', 0, qty,
          0, 0, false, true, 'cancelTaker', i.maxLeverage, p.collateral, 0),
      });
    }
  }
}

// ---- SetRiskLimits

function setRiskLimits(s: LedgerState, c: SetRiskLimits, out: LedgerEvent[]): void {
  if (!isSafeNonNeg(c.ts)) return reject(out, c, '', Reject.LEDGER_INVALID_TIMESTAMP);
  if (s.kind !== 'user') return reject(out, c, '', Reject.LEDGER_INVALID_ACCOUNT);
  const l = c.limits as Partial<RiskLimits> | null | undefined;
  if (typeof l !== 'object' || l === null || !isSafeNonNeg(l.maxPositionQty) || !isSafeNonNeg(l.maxLeverage) || !isSafeNonNeg(l.dailyLossLimit) || l.maxLeverage > LEVERAGE_LIMIT_MAX) {
    return reject(out, c, '', Reject.RISK_INVALID_LIMITS);
  }
  emit(s, out, { type: 'RiskLimitsSet', ts: c.ts, limits: { maxPositionQty: l.maxPositionQty, maxLeverage: l.maxLeverage, dailyLossLimit: l.dailyLossLimit } });
}

// ---------------------------------------------------------------- snapshot / restore

const byKey = <T>(m: Map<string, T>): [string, T][] => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

export function snapshot(s: LedgerState): unknown {
  return {
    v: 3,
    account: s.account,
    accountNo: s.accountNo,
    kind: s.kind,
    orderSeq: s.orderSeq,
    balances: byKey(s.balances).map(([a, b]) => [a, b.available, b.held]),
    ids: s.ids.toArray(),
    fills: byKey(s.fills).map(([k, m]) => [k, m.tradeId, m.role]),
    orders: [...s.orders.values()].sort((a, b) => a.orderId - b.orderId).map((o) => [
      o.orderId, o.orderSeq, o.clientOrderId ?? null, o.symbol, o.side, o.orderType, o.tif, o.price, o.qty, o.stopPrice,
      o.expireAt, o.postOnly, o.reduceOnly, o.stp, o.leverage, o.holdAsset, o.hold, o.pendingPrice, o.pendingQty, o.liquidation, o.filled,
    ]),
    positions: byKey(s.positions).map(([, p]) => [p.symbol, p.collateral, p.qty, p.entryCost, p.realizedPnl, p.margin]),
    marks: byKey(s.marks),
    instruments: byKey(s.instruments).map(([, i]) => instrumentRow(i)),
    limits: [s.limits.maxPositionQty, s.limits.maxLeverage, s.limits.dailyLossLimit],
    day: s.day,
    dayPnl: s.dayPnl,
    liquidating: s.liquidating,
  };
}

/**
 * Version 3 keeps the idempotency window (`ids`, oldest first) and the fill-entry marks (`fills`, by
 * source). Version 2 had `transfers`, every id ever applied, sorted; it still loads (see `restore`).
 */
type Snap = {
  v: 2 | 3; account: string; accountNo: number; kind: LedgerKind; orderSeq: number;
  balances: [string, number, number][];
  ids?: string[]; fills?: [string, number, number][]; transfers?: string[];
  orders: [number, number, string | null, string, Side, OrderType, TimeInForce, number, number, number, number, boolean, boolean, SelfTradePrevention, number, string, number, number, number, boolean, number][];
  positions: [string, string, number, number, number, number][];
  marks: [string, number][];
  instruments: unknown[][];
  limits: [number, number, number];
  day: number; dayPnl: number; liquidating: boolean;
};

export function restore(snap: unknown): LedgerState {
  const x = snap as Snap;
  if (x.v !== 2 && x.v !== 3) throw new Error(`ledger: unknown snapshot version ${String(x.v)}`);
  const s: LedgerState = {
    account: x.account, accountNo: x.accountNo, kind: x.kind, orderSeq: x.orderSeq,
    balances: new Map(x.balances.map(([a, av, h]) => [a, { available: av, held: h }])),
    ids: new IdWindow(LEDGER_ID_WINDOW), fills: new Map(),
    orders: new Map(), clientIds: new Map(),
    positions: new Map(x.positions.map(([symbol, collateral, qty, entryCost, realizedPnl, margin]) => [symbol, { symbol, collateral, qty, entryCost, realizedPnl, margin }])),
    marks: new Map(x.marks),
    instruments: new Map(),
    limits: { maxPositionQty: x.limits[0], maxLeverage: x.limits[1], dailyLossLimit: x.limits[2] },
    day: x.day, dayPnl: x.dayPnl, liquidating: x.liquidating,
  };
  if (x.v === 3) {
    for (const id of x.ids!) s.ids.add(id);
    for (const [k, tradeId, role] of x.fills!) s.fills.set(k, { tradeId, role });
  } else restoreV2Ids(s, x.transfers!);
  for (const r of x.orders) {
    const [orderId, orderSeq, coid, symbol, side, orderType, tif, price, qty, stopPrice, expireAt, postOnly, reduceOnly, stp, leverage, holdAsset, hold, pendingPrice, pendingQty, liquidation, filled] = r;
    const clientOrderId = coid ?? undefined;
    s.orders.set(orderId, { orderId, orderSeq, clientOrderId, symbol, side, orderType, tif, price, qty, stopPrice, expireAt, postOnly, reduceOnly, stp, leverage, holdAsset, hold, filled, pendingPrice, pendingQty, liquidation });
    if (clientOrderId !== undefined) s.clientIds.set(clientOrderId, orderId);
  }
  for (const row of x.instruments) {
    const i = instrumentFromRow(row);
    validInstruments.add(i);
    s.instruments.set(i.symbol, i);
  }
  return s;
}

/**
 * A version-2 snapshot's `transfers` (every id applied, sorted): fill entries become their sources'
 * marks (the largest per source, which is exact: a source's entries arrive in order); the other ids
 * become the window, the last LEDGER_ID_WINDOW of them in sorted order (their apply order is not in
 * the snapshot). Deterministic, so every host restores the same state from the same old snapshot.
 */
function restoreV2Ids(s: LedgerState, transfers: readonly string[]): void {
  const others: string[] = [];
  for (const id of transfers) {
    const f = fillEntryOf(id);
    if (f === undefined) {
      others.push(id);
      continue;
    }
    raiseMark(s, f);
  }
  for (const id of others.slice(-LEDGER_ID_WINDOW)) s.ids.add(id);
}
