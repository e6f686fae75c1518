/**
 * The venue in one process: every book, ledger and market-data machine of an exchange, wired by the
 * order saga, with no I/O. It is the engine's reference composition. The embedded demo runs it, the
 * integration tests check the guarantees on it, and the actor host (`src/host`) runs the same saga
 * with each machine in its own entity; the host tests compare the two state for state.
 *
 * The saga, stage by stage (DESIGN.md "Order flow"):
 *
 *   client ── PlaceOrder ──> ledger(account)   pre-trade risk, hold, order id      → OrderHeld | LedgerRejected
 *   OrderHeld ── NewOrder ──> book(symbol)      validate, match, rest               → OrderAccepted, Fill*, ...
 *   each L2-relevant book event ──> marketdata  BBO, L2 + checksum, tape, candles   → Quote, L2Delta, ...
 *   order events ─ BookReport ─> ledger         settle (both sides of a Fill), release holds
 *   FillSettled ── PostEntry ──> fees, clearing the other legs of fees and realized P&L
 *   MarginCall ── MassCancel ──> margin books   stop adding risk (the books the ledger has registered)
 *   LiquidationOrder ── NewOrder ──> book       reduce-only market orders that close positions
 *
 * Who sends what is in `routing.ts` (pure functions of one event), shared with the actor host in
 * `src/host`, so the saga is written once. Work is a FIFO queue, so a cascade (fills → settlement → liquidation → fills) runs breadth-first,
 * deterministically, with no recursion. Every call takes the command clock `ts`.
 *
 * @example
 *   const v = new Venue([defineInstrument({ symbol: 'BTC-USD' })]);
 *   v.openAccount('alice'); v.deposit(1, 'alice', 'USD', 1_000_000, 'd1');
 *   v.place(2, 'alice', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 5 });
 *   v.conservation(); // [] when every asset is conserved
 */
import type {
  BookCommand,
  BookEvent,
  Instrument,
  LedgerCommand,
  LedgerEvent,
  MdEvent,
  PlaceOrder,
  RejectCode,
  Side,
  StateMachine,
  MdCommand,
} from '@bourse/schemas';
import { ACCOUNT_NO_MAX, Reject, validateInstrument } from '@bourse/schemas';
import { bookMachine } from '../book/index.js';
import type { BookState } from '../book/index.js';
import { ledgerMachine } from '../risk/index.js';
import type { LedgerState } from '../risk/index.js';
import { marketDataMachine } from '../marketdata/index.js';
import type { MdState } from '../marketdata/index.js';
import { FEES_ACCOUNT, CLEARING_ACCOUNT, routeBookEvent, routeLedgerEvent, streamOf } from './routing.js';
import type { Routed } from './routing.js';

export { FEES_ACCOUNT, CLEARING_ACCOUNT, streamOf } from './routing.js';

/** What a client sends to place an order: PlaceOrder without the routing fields, plus the symbol. */
export type OrderRequest = Omit<PlaceOrder, 'type' | 'ts' | 'instrument'> & { readonly symbol: string };

/** Every event the venue produced, tagged with its stream (the persistence id an actor host would journal it under). */
export type VenueEvent =
  | { readonly stream: string; readonly kind: 'book'; readonly event: BookEvent }
  | { readonly stream: string; readonly kind: 'ledger'; readonly event: LedgerEvent }
  | { readonly stream: string; readonly kind: 'md'; readonly event: MdEvent };

export interface PlaceResult {
  /** The venue order id, when the ledger accepted the order. */
  readonly orderId: number | undefined;
  /** The first reject on the order's path (ledger or book), if any. */
  readonly rejected: RejectCode | undefined;
  readonly events: readonly VenueEvent[];
}

interface Hosted<S, C, E> {
  readonly machine: StateMachine<S, C, E>;
  state: S;
}

type Work = Exclude<Routed, { to: 'md' }>;

export class Venue {
  readonly instruments = new Map<string, Instrument>();
  readonly books = new Map<string, Hosted<BookState, BookCommand, BookEvent>>();
  readonly marketData = new Map<string, Hosted<MdState, MdCommand, MdEvent>>();
  readonly ledgers = new Map<string, Hosted<LedgerState, LedgerCommand, LedgerEvent>>();
  /** Deposits minus withdrawals per asset: what conservation compares against. */
  readonly netDeposits = new Map<string, number>();
  #nextAccountNo = 3; // 1 = fees, 2 = clearing
  readonly #queue: Work[] = [];
  #log: VenueEvent[] = [];
  readonly #listeners: ((e: VenueEvent) => void)[] = [];

  constructor(instruments: readonly Instrument[]) {
    for (const i of instruments) {
      const problems = validateInstrument(i);
      if (problems.length) throw new RangeError(`instrument ${i.symbol}: ${problems.join('; ')}`);
      if (this.instruments.has(i.symbol)) throw new RangeError(`instrument ${i.symbol} defined twice`);
      this.instruments.set(i.symbol, i);
      const bm = bookMachine(i);
      this.books.set(i.symbol, { machine: bm, state: bm.init() });
      const mm = marketDataMachine(i.symbol);
      this.marketData.set(i.symbol, { machine: mm, state: mm.init() });
    }
    this.#addLedger(FEES_ACCOUNT, 1, 'fees');
    this.#addLedger(CLEARING_ACCOUNT, 2, 'clearing');
  }

  /** Calls `fn` with every event, in order, as it is produced. */
  subscribe(fn: (e: VenueEvent) => void): void {
    this.#listeners.push(fn);
  }

  openAccount(account: string): void {
    if (this.ledgers.has(account)) throw new RangeError(`account ${account} exists`);
    if (this.#nextAccountNo > ACCOUNT_NO_MAX) throw new RangeError('no account numbers left');
    this.#addLedger(account, this.#nextAccountNo++, 'user');
  }

  deposit(ts: number, account: string, asset: string, amount: number, transferId: string): readonly VenueEvent[] {
    return this.#run({ to: 'ledger', account, cmd: { type: 'Deposit', ts, transferId, asset, amount } });
  }

  withdraw(ts: number, account: string, asset: string, amount: number, transferId: string): readonly VenueEvent[] {
    return this.#run({ to: 'ledger', account, cmd: { type: 'Withdraw', ts, transferId, asset, amount } });
  }

  place(ts: number, account: string, req: OrderRequest): PlaceResult {
    const instrument = this.instruments.get(req.symbol);
    if (!instrument || !this.ledgers.has(account)) {
      return { orderId: undefined, rejected: instrument ? Reject.ADMIN_UNKNOWN_ACCOUNT : Reject.ORDER_UNKNOWN_INSTRUMENT, events: [] };
    }
    const { symbol: _symbol, ...fields } = req;
    const events = this.#run({ to: 'ledger', account, cmd: { ...fields, type: 'PlaceOrder', ts, instrument } });
    let orderId: number | undefined;
    let rejected: RejectCode | undefined;
    for (const e of events) {
      if (e.kind === 'ledger' && e.stream === streamOf.account(account)) {
        if (e.event.type === 'OrderHeld' && orderId === undefined) orderId = e.event.orderId;
        if (e.event.type === 'LedgerRejected' && rejected === undefined && orderId === undefined) rejected = e.event.code;
      }
      if (e.kind === 'book' && e.event.type === 'CommandRejected' && orderId !== undefined && e.event.orderId === orderId) rejected ??= e.event.code;
    }
    return { orderId, rejected, events };
  }

  cancel(ts: number, account: string, symbol: string, orderId: number): readonly VenueEvent[] {
    if (!this.books.has(symbol)) return [];
    return this.#run({ to: 'book', symbol, cmd: { type: 'CancelOrder', ts, orderId, account } });
  }

  /** Risk first (AmendHold reserves what a larger order needs), then the book. */
  amend(ts: number, account: string, symbol: string, orderId: number, change: { price?: number; qty?: number }): readonly VenueEvent[] {
    if (!this.books.has(symbol) || !this.ledgers.has(account)) return [];
    const held = this.#run({ to: 'ledger', account, cmd: { type: 'AmendHold', ts, orderId, ...change } });
    if (held.some((e) => e.kind === 'ledger' && e.event.type === 'LedgerRejected')) return held;
    return [...held, ...this.#run({ to: 'book', symbol, cmd: { type: 'AmendOrder', ts, orderId, account, ...change } })];
  }

  massCancel(ts: number, account: string, symbol: string, side?: Side): readonly VenueEvent[] {
    if (!this.books.has(symbol)) return [];
    return this.#run({ to: 'book', symbol, cmd: side ? { type: 'MassCancel', ts, account, side } : { type: 'MassCancel', ts, account } });
  }

  /** A new mark price for a margin instrument: every user ledger re-values (may call margin and liquidate). */
  mark(ts: number, symbol: string, price: number): readonly VenueEvent[] {
    const instrument = this.instruments.get(symbol);
    if (!instrument || instrument.mode !== 'margin') return [];
    const all: VenueEvent[] = [];
    for (const [account, l] of this.ledgers) {
      if (l.state.kind === 'user') all.push(...this.#run({ to: 'ledger', account, cmd: { type: 'SetMarkPrice', ts, instrument, price } }));
    }
    return all;
  }

  /** Advances the clock everywhere: GTD expiry in books, candle closes in market data. */
  tick(ts: number): readonly VenueEvent[] {
    const all: VenueEvent[] = [];
    for (const symbol of this.books.keys()) {
      all.push(...this.#run({ to: 'book', symbol, cmd: { type: 'BookTick', ts } }));
      all.push(...this.#md(symbol, { type: 'MarketDataTick', ts }));
    }
    return all;
  }

  /** Admin: trading status of one instrument. */
  setStatus(ts: number, symbol: string, status: 'open' | 'halted' | 'closed'): readonly VenueEvent[] {
    if (!this.books.has(symbol)) return [];
    return this.#run({ to: 'book', symbol, cmd: { type: 'SetTradingStatus', ts, status } });
  }

  /**
   * Guarantee 2, checked: for every asset, the sum over all ledgers of available + held equals deposits
   * minus withdrawals. Returns the violations (empty when conserved).
   */
  conservation(): { asset: string; expected: number; actual: number }[] {
    const totals = new Map<string, number>();
    for (const l of this.ledgers.values()) {
      for (const [asset, b] of l.state.balances) totals.set(asset, (totals.get(asset) ?? 0) + b.available + b.held);
    }
    const bad: { asset: string; expected: number; actual: number }[] = [];
    for (const asset of new Set([...totals.keys(), ...this.netDeposits.keys()])) {
      const expected = this.netDeposits.get(asset) ?? 0;
      const actual = totals.get(asset) ?? 0;
      if (expected !== actual) bad.push({ asset, expected, actual });
    }
    return bad;
  }

  // ---------------------------------------------------------------- the saga

  #addLedger(account: string, accountNo: number, kind: 'user' | 'fees' | 'clearing'): void {
    const m = ledgerMachine({ account, accountNo, kind });
    this.ledgers.set(account, { machine: m, state: m.init() });
  }

  #run(first: Work): VenueEvent[] {
    this.#log = [];
    this.#queue.push(first);
    for (let i = 0; i < this.#queue.length; i++) {
      const w = this.#queue[i]!;
      if (w.to === 'book') this.#book(w.symbol, w.cmd);
      else this.#ledger(w.account, w.cmd);
    }
    this.#queue.length = 0;
    return this.#log;
  }

  #emit(e: VenueEvent): void {
    this.#log.push(e);
    for (const fn of this.#listeners) fn(e);
  }

  #book(symbol: string, cmd: BookCommand): void {
    const b = this.books.get(symbol)!;
    const out: BookEvent[] = [];
    b.state = b.machine.step(b.state, cmd, out);
    const stream = streamOf.book(symbol);
    for (const event of out) this.#emit({ stream, kind: 'book', event });
    const instrument = this.instruments.get(symbol)!;
    const routed: Routed[] = [];
    for (const e of out) routeBookEvent(instrument, e, routed);
    this.#dispatch(routed);
  }

  #md(symbol: string, cmd: MdCommand): VenueEvent[] {
    const m = this.marketData.get(symbol)!;
    const out: MdEvent[] = [];
    m.state = m.machine.step(m.state, cmd, out);
    const stream = streamOf.md(symbol);
    const tagged = out.map((event) => ({ stream, kind: 'md' as const, event }));
    for (const e of tagged) this.#emit(e);
    return tagged;
  }

  #ledger(account: string, cmd: LedgerCommand): void {
    const l = this.ledgers.get(account);
    if (!l) return;
    const out: LedgerEvent[] = [];
    l.state = l.machine.step(l.state, cmd, out);
    const stream = streamOf.account(account);
    for (const event of out) this.#emit({ stream, kind: 'ledger', event });
    const routed: Routed[] = [];
    for (const e of out) {
      if (e.type === 'Deposited') this.netDeposits.set(e.asset, (this.netDeposits.get(e.asset) ?? 0) + e.amount);
      else if (e.type === 'Withdrawn') this.netDeposits.set(e.asset, (this.netDeposits.get(e.asset) ?? 0) - e.amount);
      routeLedgerEvent(account, e, l.state.instruments, routed);
    }
    this.#dispatch(routed);
  }

  /** Market data is a sink: it runs at once. Books and ledgers queue (breadth-first); unknown ledgers are skipped. */
  #dispatch(routed: readonly Routed[]): void {
    for (const r of routed) {
      if (r.to === 'md') this.#md(r.symbol, r.cmd);
      else if (r.to === 'book') this.#queue.push(r);
      else if (this.ledgers.has(r.account)) this.#queue.push(r);
    }
  }
}
