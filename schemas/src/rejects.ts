/**
 * Reject codes: one ordered enum for the whole venue, grouped by subsystem prefix.
 *
 * Rules (TigerBeetle / exchange-core style):
 * - A code is a stable API: its number never changes and a retired code is never reused.
 * - New codes are appended inside their subsystem's range.
 * - Ranges: PROTO 100–199, AUTH 200–299, THROTTLE 300–399, ORDER 1000–1999 (syntax and instrument
 *   rules), BOOK 2000–2999 (matching state), RISK 3000–3999 (pre-trade checks, in check order),
 *   LEDGER 4000–4999 (cash movements), ADMIN 5000–5999, ACTOR 6000–6999 (runtime).
 *
 * @example
 *   import { Reject, rejectName } from '@bourse/schemas';
 *   rejectName(Reject.RISK_INSUFFICIENT_BALANCE) // 'RISK_INSUFFICIENT_BALANCE'
 */
export const Reject = {
  // PROTO: the wire (edge)
  PROTO_MALFORMED_FRAME: 100,
  PROTO_UNKNOWN_MESSAGE: 101,
  PROTO_BAD_FIELD: 102,
  PROTO_FRAME_TOO_LARGE: 103,
  PROTO_NOT_AUTHENTICATED: 104,
  PROTO_BAD_SEQUENCE: 105,

  // AUTH
  AUTH_INVALID_KEY: 200,
  AUTH_FORBIDDEN_ROLE: 201,
  AUTH_ACCOUNT_NOT_PERMITTED: 202,

  // THROTTLE
  THROTTLE_ORDERS: 300,
  THROTTLE_MESSAGES: 301,
  THROTTLE_SYSTEM_BUSY: 302,

  // ORDER: a field is out of range, or breaks an instrument rule
  ORDER_INVALID_ID: 1000,
  ORDER_INVALID_ACCOUNT: 1001,
  ORDER_INVALID_SIDE: 1002,
  ORDER_INVALID_TYPE: 1003,
  ORDER_INVALID_TIF: 1004,
  ORDER_INVALID_TIMESTAMP: 1005,
  ORDER_PRICE_NOT_POSITIVE: 1006,
  ORDER_PRICE_NOT_TICK_MULTIPLE: 1007,
  ORDER_QTY_NOT_POSITIVE: 1008,
  ORDER_QTY_NOT_LOT_MULTIPLE: 1009,
  ORDER_QTY_BELOW_MIN: 1010,
  ORDER_QTY_ABOVE_MAX: 1011,
  ORDER_PRICE_OUTSIDE_BAND: 1012,
  ORDER_NOTIONAL_TOO_LARGE: 1013,
  ORDER_GTD_EXPIRY_INVALID: 1014,
  ORDER_STOP_PRICE_INVALID: 1015,
  ORDER_STOP_WOULD_TRIGGER: 1016,
  ORDER_POST_ONLY_INVALID: 1017,
  ORDER_REDUCE_ONLY_NOT_MARGIN: 1018,
  ORDER_INVALID_STP: 1019,
  ORDER_INVALID_PROTECTION: 1020,
  ORDER_UNKNOWN_INSTRUMENT: 1021,
  ORDER_INVALID_FLAG: 1022,
  ORDER_INVALID_CLIENT_ORDER_ID: 1023,

  // BOOK: the order book's state says no
  BOOK_UNKNOWN_ORDER: 2000,
  BOOK_DUPLICATE_ORDER_ID: 2001,
  BOOK_HALTED: 2002,
  BOOK_CLOSED: 2003,
  BOOK_POST_ONLY_WOULD_TAKE: 2004,
  BOOK_NOT_ORDER_OWNER: 2005,
  BOOK_AMEND_NO_CHANGE: 2006,
  BOOK_AMEND_NOT_ALLOWED: 2007,
  BOOK_INVALID_STATUS: 2008,
  BOOK_TOO_MANY_STOPS: 2009,

  // RISK: pre-trade checks, numbered in the order they run
  RISK_INVALID_ORDER: 3000,
  RISK_INSUFFICIENT_BALANCE: 3001,
  RISK_POSITION_LIMIT: 3002,
  RISK_LEVERAGE_LIMIT: 3003,
  RISK_DAILY_LOSS_LIMIT: 3004,
  RISK_INSUFFICIENT_MARGIN: 3005,
  RISK_REDUCE_ONLY_WOULD_INCREASE: 3006,
  RISK_UNKNOWN_ORDER: 3007,
  RISK_DUPLICATE_ORDER: 3008,
  RISK_ACCOUNT_LIQUIDATING: 3009,
  RISK_INVALID_LIMITS: 3010,
  RISK_MARKET_NEEDS_PRICE_CAP: 3011,
  RISK_INVALID_LEVERAGE: 3012,
  RISK_TOO_MANY_OPEN_ORDERS: 3013,
  RISK_INVALID_REPORT: 3014,

  // LEDGER: deposits, withdrawals, postings
  LEDGER_AMOUNT_NOT_POSITIVE: 4000,
  LEDGER_INSUFFICIENT_AVAILABLE: 4001,
  LEDGER_UNKNOWN_ASSET: 4002,
  LEDGER_AMOUNT_OVERFLOW: 4003,
  LEDGER_DUPLICATE_TRANSFER: 4004,
  LEDGER_NOT_SYSTEM_ACCOUNT: 4005,
  LEDGER_INVALID_ACCOUNT: 4006,
  LEDGER_INVALID_TIMESTAMP: 4007,
  LEDGER_INVALID_TRANSFER_ID: 4008,

  // ADMIN
  ADMIN_INVALID_INSTRUMENT: 5000,
  ADMIN_INSTRUMENT_EXISTS: 5001,
  ADMIN_UNKNOWN_ACCOUNT: 5002,

  // ACTOR: the runtime could not deliver or persist
  ACTOR_UNAVAILABLE: 6000,
  ACTOR_TIMEOUT: 6001,
  ACTOR_UNKNOWN_COMMAND: 6002,
} as const;

export type RejectName = keyof typeof Reject;
export type RejectCode = (typeof Reject)[RejectName];

const names = new Map<number, RejectName>();
for (const [k, v] of Object.entries(Reject)) names.set(v, k as RejectName);

/** The name of a reject code, or `UNKNOWN_<n>` for a number that is not a code. */
export function rejectName(code: number): string {
  return names.get(code) ?? `UNKNOWN_${code}`;
}

/** Every reject code, ascending. */
export const rejectCodes: readonly RejectCode[] = Object.freeze([...names.keys()].sort((a, b) => a - b) as RejectCode[]);

/** The subsystem prefix of a code: 'PROTO', 'BOOK', 'RISK', ... */
export function rejectSubsystem(code: number): string {
  const n = names.get(code);
  return n ? n.slice(0, n.indexOf('_')) : 'UNKNOWN';
}
