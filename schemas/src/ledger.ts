/**
 * The account risk ledger's vocabulary. One ledger per account (`account/<id>`), plus two system
 * ledgers: `fees` collects fees, `clearing` is the counterparty of realized P&L on margin instruments.
 *
 * Conservation (DESIGN.md guarantee 2): for every asset, the sum over all ledgers (users, fees,
 * clearing) of available + held changes only by Deposit and Withdraw.
 *
 * Order ids: the ledger assigns venue order ids, `accountNo * 2^32 + orderSeq`, so they are unique
 * across the venue with no coordination and deterministic on replay. `accountNo < 2^21`.
 *
 * Policies (the implementation is packages/engine/src/risk/ledger.ts):
 * - A transferId or entryId seen before is refused with LEDGER_DUPLICATE_TRANSFER and never re-applied;
 *   the first answer stands. Ids share one namespace per ledger. Retention is bounded: fill entries
 *   (`fee:`/`pnl:`) forever (a high-water mark per source), other ids within the ledger's last 16,384
 *   applied (LEDGER_ID_WINDOW).
 * - Holds. Cash buy: notional at the limit price plus a worst-case fee reserved per lot,
 *   ceil(qty / lotSize) * feeOf(price * lotSize * quoteMultiplier, max(maker, taker) bps), so that the
 *   per-fill rounded-up fees of any partial fills are always covered. Cash sell: qty * baseMultiplier of
 *   the base. Margin: ceil(notional / leverage) plus the same fee reserve, in the collateral; reduce-only
 *   orders reserve only the fee. Position margin stays held until the position closes.
 * - Margin accounts can end with a negative collateral balance after a liquidation at a loss (the
 *   `clearing` ledger carries the other side); cash balances never go negative.
 */
import type { Instrument } from './instrument.js';
import type { Fill, OrderAccepted, OrderAmended, OrderCancelled, CommandRejected, OrderType, Side, TimeInForce, SelfTradePrevention } from './book.js';
import type { RejectCode } from './rejects.js';

export type LedgerKind = 'user' | 'fees' | 'clearing';

export const ORDER_SEQ_BITS = 32;
export const ACCOUNT_NO_MAX = 2 ** 21 - 1;

export interface RiskLimits {
  /** Largest absolute position per margin instrument, in qty units, counting open orders. 0 = none. */
  readonly maxPositionQty: number;
  /** Largest (position + open order) notional / equity, as a whole number. 0 = the instrument's max. */
  readonly maxLeverage: number;
  /** Largest loss (realized P&L net of fees, quote minor units) per UTC day before new risk is refused. 0 = none. */
  readonly dailyLossLimit: number;
}

// ---------------------------------------------------------------- commands

export interface Deposit {
  readonly type: 'Deposit';
  readonly ts: number;
  readonly transferId: string;
  readonly asset: string;
  readonly amount: number;
}

export interface Withdraw {
  readonly type: 'Withdraw';
  readonly ts: number;
  readonly transferId: string;
  readonly asset: string;
  readonly amount: number;
}

/** Pre-trade risk and hold. On success the ledger assigns the venue order id (OrderHeld). */
export interface PlaceOrder {
  readonly type: 'PlaceOrder';
  readonly ts: number;
  readonly instrument: Instrument;
  readonly clientOrderId?: string;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly tif: TimeInForce;
  /** Limit price; for market and stop orders the price cap the hold is computed at (required for buys in cash mode). */
  readonly price: number;
  readonly qty: number;
  readonly stopPrice?: number;
  readonly expireAt?: number;
  readonly postOnly?: boolean;
  readonly reduceOnly?: boolean;
  readonly stp?: SelfTradePrevention;
  /** Margin mode: the leverage this order uses (initial margin = notional / leverage). Default the instrument's max. */
  readonly leverage?: number;
}

/**
 * Risk for an amend: reserves what the amended order can need before the book sees the amend. Same
 * fields and meaning as the book's AmendOrder (FIX cancel/replace): `qty` is the new **total** order
 * quantity, and the open quantity becomes `qty` minus what the order executed. The reserve covers any
 * fills of the old order that land at the book before the amend (see packages/engine/src/risk/README.md).
 */
export interface AmendHold {
  readonly type: 'AmendHold';
  readonly ts: number;
  readonly orderId: number;
  readonly price?: number;
  readonly qty?: number;
}

/** What the book did with one of this account's orders (both sides of a Fill are told). */
export interface BookReport {
  readonly type: 'BookReport';
  readonly ts: number;
  readonly instrument: Instrument;
  readonly event: OrderAccepted | Fill | OrderCancelled | OrderAmended | CommandRejected;
}

/** System ledgers only: a fee or P&L posting, the other leg of a user ledger's FillSettled. */
export interface PostEntry {
  readonly type: 'PostEntry';
  readonly ts: number;
  readonly entryId: string;
  readonly asset: string;
  /** Signed: fees are positive; P&L is the negation of the user's realized P&L. */
  readonly amount: number;
}

/** A new mark price for a margin instrument: re-values positions, may raise a margin call or liquidate. */
export interface SetMarkPrice {
  readonly type: 'SetMarkPrice';
  readonly ts: number;
  readonly instrument: Instrument;
  readonly price: number;
}

export interface SetRiskLimits {
  readonly type: 'SetRiskLimits';
  readonly ts: number;
  readonly limits: RiskLimits;
}

export type LedgerCommand = Deposit | Withdraw | PlaceOrder | AmendHold | BookReport | PostEntry | SetMarkPrice | SetRiskLimits;
export type LedgerCommandType = LedgerCommand['type'];

/** Largest amount one Deposit, Withdraw or PostEntry may move, and largest balance a Deposit may create (2^50). */
export const LEDGER_AMOUNT_MAX = 2 ** 50;
/** Most open orders (including liquidation orders) one account ledger keeps. */
export const LEDGER_OPEN_ORDERS_MAX = 10_000;

export const LedgerCommandCode: { readonly [K in LedgerCommandType]: number } = {
  Deposit: 201,
  Withdraw: 202,
  PlaceOrder: 203,
  AmendHold: 204,
  BookReport: 205,
  PostEntry: 206,
  SetMarkPrice: 207,
  SetRiskLimits: 208,
};

// ---------------------------------------------------------------- events
//
// Every event that changes a balance carries the absolute balance of that asset afterwards
// (`BalanceAfter`), and every event that changes a position carries the whole position afterwards, so
// read models can project balances and positions from single events without replaying arithmetic.
// `apply` assigns these values; it never recomputes them.

/** One asset's balance after an event: `available` can be spent, `held` is reserved for orders and position margin. */
export interface BalanceAfter {
  readonly asset: string;
  readonly available: number;
  readonly held: number;
}

/** A margin position after an event. `entryCost` is signed like `qty` (quote minor units, qty*price*quoteMultiplier summed). */
export interface PositionAfter {
  readonly symbol: string;
  /** Collateral (the instrument's quote asset). */
  readonly collateral: string;
  /** Signed: positive long, negative short, in qty units. */
  readonly qty: number;
  /** Cost of the open qty, signed like qty. Average entry price = entryCost / (qty * quoteMultiplier). */
  readonly entryCost: number;
  /** Realized P&L of this position since the ledger began (quote minor units, before fees). */
  readonly realizedPnl: number;
  /** Collateral held as this position's margin (part of the collateral's `held`). */
  readonly margin: number;
}

/** Why a hold was released. */
export type HoldReleaseReason = 'cancelled' | 'expired' | 'rejected' | 'filled';

/**
 * The ledger learned (or re-learned) an instrument's definition, ahead of the first event that uses it.
 * The ledger keeps it so that mark-price revaluation and liquidation need no outside lookup.
 */
export interface InstrumentRegistered {
  readonly type: 'InstrumentRegistered';
  readonly ts: number;
  readonly instrument: Instrument;
}

export interface Deposited {
  readonly type: 'Deposited';
  readonly ts: number;
  readonly transferId: string;
  readonly asset: string;
  readonly amount: number;
  readonly balance: BalanceAfter;
}

export interface Withdrawn {
  readonly type: 'Withdrawn';
  readonly ts: number;
  readonly transferId: string;
  readonly asset: string;
  readonly amount: number;
  readonly balance: BalanceAfter;
}

/** A command was refused; nothing changed. `command` is 'Unknown' when the command is not a ledger command at all. */
export interface LedgerRejected {
  readonly type: 'LedgerRejected';
  readonly ts: number;
  readonly command: LedgerCommandType | 'Unknown';
  /** The order id, transfer id or entry id the command named, as a string; '' if none. */
  readonly ref: string;
  readonly clientOrderId: string | undefined;
  readonly code: RejectCode;
}

/**
 * The fields of an order the ledger has reserved for and numbered: exactly what the saga forwards to the
 * book as a NewOrder (`type: 'NewOrder'` plus these fields, `symbol` choosing the book).
 */
export interface HeldOrderFields {
  readonly ts: number;
  /** `accountNo * 2^32 + orderSeq`. */
  readonly orderId: number;
  readonly orderSeq: number;
  readonly account: string;
  readonly symbol: string;
  readonly clientOrderId: string | undefined;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly tif: TimeInForce;
  readonly price: number;
  readonly qty: number;
  /** 0 when the order has none. */
  readonly stopPrice: number;
  /** 0 when the order has none. */
  readonly expireAt: number;
  readonly postOnly: boolean;
  readonly reduceOnly: boolean;
  readonly stp: SelfTradePrevention;
  /** Margin: leverage used for the order's initial margin; 1 in cash mode. */
  readonly leverage: number;
  /** What the order reserves: `hold` units of `holdAsset`. */
  readonly holdAsset: string;
  readonly hold: number;
  readonly balance: BalanceAfter;
}

/** Pre-trade risk passed; the hold is placed and the order numbered. The saga sends it to the book. */
export interface OrderHeld extends HeldOrderFields {
  readonly type: 'OrderHeld';
}

/**
 * An order's hold was recomputed: AmendHold reserved for a pending amend (`pendingPrice`/`pendingQty`
 * non-zero; `pendingQty` is the total order quantity asked for, as in AmendHold), or the book's
 * OrderAmended / amend rejection reconciled it to the order's real `price`/open `qty` (pending fields 0).
 */
export interface HoldChanged {
  readonly type: 'HoldChanged';
  readonly ts: number;
  readonly orderId: number;
  /** The order's price and open qty as the book has them. */
  readonly price: number;
  readonly qty: number;
  readonly pendingPrice: number;
  readonly pendingQty: number;
  readonly hold: number;
  readonly balance: BalanceAfter;
}

/** The order is gone from the ledger; what it still held returned to available. */
export interface HoldReleased {
  readonly type: 'HoldReleased';
  readonly ts: number;
  readonly orderId: number;
  readonly clientOrderId: string | undefined;
  readonly reason: HoldReleaseReason;
  /** Amount released (the order's whole remaining hold). */
  readonly released: number;
  readonly balance: BalanceAfter;
}

/**
 * One side of a Fill settled on this ledger. The saga posts the other legs: `fee` to the `fees` ledger and,
 * when `realizedPnl` is not 0, `-realizedPnl` to the `clearing` ledger, both as PostEntry in `feeAsset`
 * (cash: the quote; margin: the collateral) with entry ids derived from (symbol, tradeId, account, role).
 */
export interface FillSettled {
  readonly type: 'FillSettled';
  readonly ts: number;
  readonly symbol: string;
  readonly tradeId: number;
  readonly orderId: number;
  readonly clientOrderId: string | undefined;
  readonly role: 'taker' | 'maker';
  readonly side: Side;
  readonly mode: 'cash' | 'margin';
  readonly price: number;
  readonly qty: number;
  /** price * qty * quoteMultiplier. */
  readonly notional: number;
  readonly fee: number;
  readonly feeAsset: string;
  /** Margin only (0 in cash mode): P&L realized by the closing part of this fill, before fees. */
  readonly realizedPnl: number;
  /** The order's open qty and hold after the fill; a HoldReleased('filled') follows when `remaining` is 0. */
  readonly remaining: number;
  readonly orderHold: number;
  /** Every balance this fill touched, after it, in asset order. */
  readonly balances: readonly BalanceAfter[];
  /** Margin only: the position after the fill; null in cash mode. */
  readonly position: PositionAfter | null;
  /** Realized P&L net of fees for the UTC day of `ts` (day = floor(ts / 86_400_000)), after this fill. */
  readonly day: number;
  readonly dayPnl: number;
}

/** A system ledger booked the other leg of a fee or P&L. */
export interface EntryPosted {
  readonly type: 'EntryPosted';
  readonly ts: number;
  readonly entryId: string;
  readonly asset: string;
  readonly amount: number;
  readonly balance: BalanceAfter;
}

/** A new mark price, with the account's margin picture for that instrument's collateral afterwards. */
export interface MarkPriceSet {
  readonly type: 'MarkPriceSet';
  readonly ts: number;
  readonly symbol: string;
  readonly price: number;
  readonly collateral: string;
  /** available + held of the collateral, plus unrealized P&L of every position settled in it. */
  readonly equity: number;
  readonly unrealizedPnl: number;
  /** Sum over positions in this collateral of ceil(|qty| * mark * quoteMultiplier * maintenanceMarginBps / 10000). */
  readonly maintenanceMargin: number;
}

export interface RiskLimitsSet {
  readonly type: 'RiskLimitsSet';
  readonly ts: number;
  readonly limits: RiskLimits;
}

/** Equity in `collateral` fell below maintenance margin: the account is liquidating from here on. */
export interface MarginCall {
  readonly type: 'MarginCall';
  readonly ts: number;
  readonly collateral: string;
  readonly equity: number;
  readonly maintenanceMargin: number;
}

/**
 * A reduce-only market IOC order (price 0, no hold) that closes one position; forwarded to the book
 * like OrderHeld. Emitted by symbol order on MarginCall, and again on SetMarkPrice for any position
 * that open reduce-only orders no longer cover while the account is liquidating.
 */
export interface LiquidationOrder extends HeldOrderFields {
  readonly type: 'LiquidationOrder';
}

/** Every position is flat again: new risk is accepted again. */
export interface LiquidationEnded {
  readonly type: 'LiquidationEnded';
  readonly ts: number;
}

export type LedgerEvent =
  | InstrumentRegistered
  | Deposited
  | Withdrawn
  | LedgerRejected
  | OrderHeld
  | HoldChanged
  | HoldReleased
  | FillSettled
  | EntryPosted
  | MarkPriceSet
  | RiskLimitsSet
  | MarginCall
  | LiquidationOrder
  | LiquidationEnded;
export type LedgerEventType = LedgerEvent['type'];

/** Stable wire codes (301+, unique against the book's and the ledger commands'). Never reuse a retired one. */
export const LedgerEventCode: { readonly [K in LedgerEventType]: number } = {
  InstrumentRegistered: 301,
  Deposited: 302,
  Withdrawn: 303,
  LedgerRejected: 304,
  OrderHeld: 305,
  HoldChanged: 306,
  HoldReleased: 307,
  FillSettled: 308,
  EntryPosted: 309,
  MarkPriceSet: 310,
  RiskLimitsSet: 311,
  MarginCall: 312,
  LiquidationOrder: 313,
  LiquidationEnded: 314,
};
