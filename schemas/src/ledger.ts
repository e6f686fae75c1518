/**
 * The account risk ledger's vocabulary. One ledger per account (`account/<id>`), plus two system
 * ledgers: `fees` collects fees, `clearing` is the counterparty of realized P&L on margin instruments.
 *
 * Conservation (DESIGN.md guarantee 2): for every asset, the sum over all ledgers (users, fees,
 * clearing) of available + held changes only by Deposit and Withdraw.
 *
 * Order ids: the ledger assigns venue order ids, `accountNo * 2^32 + orderSeq`, so they are unique
 * across the venue with no coordination and deterministic on replay. `accountNo < 2^21`.
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

/** Risk for an amend: reserves what a larger order needs before the book sees the amend. */
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
// The risk helper's implementation defines the exact event set; see packages/engine/src/risk.

export interface LedgerRejected {
  readonly type: 'LedgerRejected';
  readonly ts: number;
  readonly command: LedgerCommandType;
  /** The order id, transfer id or entry id the command named, as a string; '' if none. */
  readonly ref: string;
  readonly clientOrderId: string | undefined;
  readonly code: RejectCode;
}
