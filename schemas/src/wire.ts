/**
 * The binary WebSocket protocol's wire shapes: what goes on the socket, kept apart from the API types
 * (commands and events) it carries. schemas/PROTOCOL.md is the spec a market maker codes against; this
 * file is its TypeScript form. Codes are a stable API: never renumber, never reuse a retired one.
 *
 * Frame layout: one WebSocket **binary** message = one frame = one plain MessagePack **map** with
 * string keys. Its integer field `t` is the message type. No msgpackr records, no extension types, no
 * floats: every number on the wire is a MessagePack integer (any int format; the server uses the
 * smallest). Absent optional fields are left out (never `nil`, except where a field says so).
 *
 * Ranges of `t`: 1–31 client → server requests; 32–63 server → client responses to a request (they
 * echo the request's `id`); 64–95 server → client stream messages.
 *
 * @example
 *   const frame: PlaceFrame = { t: ClientMsg.Place, id: 7, symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 3, clientOrderId: 'c-7' };
 */
import type { LedgerEvent } from './ledger.js';
import type { Level, CandleInterval } from './marketdata.js';
import type { OrderType, SelfTradePrevention, Side, TimeInForce } from './book.js';
import type { RejectCode } from './rejects.js';

/** Client → server message types. */
export const ClientMsg = {
  Auth: 1,
  Ping: 2,
  Place: 3,
  Cancel: 4,
  Amend: 5,
  MassCancel: 6,
  Subscribe: 7,
  Unsubscribe: 8,
  SetCancelOnDisconnect: 9,
} as const;
export type ClientMsgName = keyof typeof ClientMsg;
export type ClientMsgCode = (typeof ClientMsg)[ClientMsgName];

/** Server → client message types. */
export const ServerMsg = {
  // responses (echo the request id)
  AuthOk: 32,
  Error: 33,
  Pong: 34,
  Placed: 35,
  Cancelled: 36,
  Amended: 37,
  MassCancelled: 38,
  Subscribed: 39,
  Unsubscribed: 40,
  CancelOnDisconnectSet: 41,
  // streams
  Heartbeat: 64,
  Private: 65,
  Quote: 66,
  L2Snapshot: 67,
  L2Delta: 68,
  Trade: 69,
  Candle: 70,
} as const;
export type ServerMsgName = keyof typeof ServerMsg;
export type ServerMsgCode = (typeof ServerMsg)[ServerMsgName];

/** Subscription channels (Subscribe.channel). */
export const Channel = {
  /** Best bid and offer of an instrument: Quote frames. */
  bbo: 1,
  /** The public trade tape: Trade frames. */
  trades: 2,
  /** OHLCV candles, every interval (1s, 1m, 1h): Candle frames. */
  candles: 3,
  /** L2 depth: one L2Snapshot, then L2Delta frames. */
  l2: 4,
  /** An account's private stream (its ledger journal): Private frames, resumable by seq. */
  private: 5,
} as const;
export type ChannelName = keyof typeof Channel;
export type ChannelCode = (typeof Channel)[ChannelName];

/** API key roles. */
export type Role = 'trader' | 'marketMaker' | 'broker' | 'analyst' | 'admin';
export const roles: readonly Role[] = ['trader', 'marketMaker', 'broker', 'analyst', 'admin'];

/** WebSocket close codes the server uses (4000–4999 is the application range). */
export const CloseCode = {
  /** Undecodable MessagePack, a frame that is not a map with an integer `t`, or a text frame. */
  protocolError: 1002,
  /** A frame longer than `frameBytesMax`. */
  frameTooLarge: 1009,
  /** Nothing received for 3 heartbeat intervals. */
  heartbeatTimeout: 4000,
  /** No successful Auth within `authTimeoutMs`, or 3 failed Auth attempts. */
  authFailed: 4001,
  /** The server is shutting down. */
  shutdown: 4002,
} as const;

/** Limits every server enforces (a server may announce smaller ones in AuthOk). */
export const wireLimits = {
  /** Largest frame the server reads, bytes. Larger: Error PROTO_FRAME_TOO_LARGE, then close 1009. */
  frameBytesMax: 64 * 1024,
  /** Longest string field (symbol, account, clientOrderId, key), UTF-16 code units. */
  stringLengthMax: 64,
  /** Largest request id. */
  requestIdMax: 2 ** 32 - 1,
  /** Default heartbeat interval, ms. */
  heartbeatMs: 5_000,
  /** Time allowed between connect and a successful Auth, ms. */
  authTimeoutMs: 10_000,
} as const;

// ---------------------------------------------------------------- client → server

interface Req {
  /** Client-chosen request id, 1 .. 2^32-1, echoed in the response. Not interpreted otherwise. */
  readonly id: number;
}

export interface AuthFrame extends Req {
  readonly t: typeof ClientMsg.Auth;
  /** The API key, `<keyId>.<secret>`. */
  readonly key: string;
  /** Cancel this session's resting orders when it disconnects. Default false. */
  readonly cancelOnDisconnect?: boolean;
}

export interface PingFrame {
  readonly t: typeof ClientMsg.Ping;
  readonly id?: number;
  /** Any integer (client clock, ms); echoed in Pong. */
  readonly ts: number;
}

/** Order fields as in schemas PlaceOrder; `account` defaults to the key's first account. */
export interface PlaceFrame extends Req {
  readonly t: typeof ClientMsg.Place;
  readonly account?: string;
  readonly symbol: string;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly tif: TimeInForce;
  readonly price: number;
  readonly qty: number;
  readonly clientOrderId?: string;
  readonly stopPrice?: number;
  readonly expireAt?: number;
  readonly postOnly?: boolean;
  readonly reduceOnly?: boolean;
  readonly stp?: SelfTradePrevention;
  readonly leverage?: number;
}

export interface CancelFrame extends Req {
  readonly t: typeof ClientMsg.Cancel;
  readonly account?: string;
  readonly symbol: string;
  readonly orderId: number;
}

/** FIX cancel/replace: `qty` is the new total order quantity. At least one of price, qty. */
export interface AmendFrame extends Req {
  readonly t: typeof ClientMsg.Amend;
  readonly account?: string;
  readonly symbol: string;
  readonly orderId: number;
  readonly price?: number;
  readonly qty?: number;
}

export interface MassCancelFrame extends Req {
  readonly t: typeof ClientMsg.MassCancel;
  readonly account?: string;
  readonly symbol: string;
  readonly side?: Side;
}

export interface SubscribeFrame extends Req {
  readonly t: typeof ClientMsg.Subscribe;
  readonly channel: ChannelCode;
  /** Public channels. */
  readonly symbol?: string;
  /** Private channel: the account (default the key's first). */
  readonly account?: string;
  /** Private channel: deliver events with seq > afterSeq (0 = from the start of the journal). */
  readonly afterSeq?: number;
  /**
   * Private channel: deliver only events committed from now on (no replay). The Subscribed answer's
   * `lastSeq` is where the stream starts; resume from it after a reconnect. Not with `afterSeq`.
   */
  readonly fromNow?: boolean;
}

export interface UnsubscribeFrame extends Req {
  readonly t: typeof ClientMsg.Unsubscribe;
  readonly channel: ChannelCode;
  readonly symbol?: string;
  readonly account?: string;
}

export interface SetCancelOnDisconnectFrame extends Req {
  readonly t: typeof ClientMsg.SetCancelOnDisconnect;
  readonly enabled: boolean;
}

export type ClientFrame =
  | AuthFrame
  | PingFrame
  | PlaceFrame
  | CancelFrame
  | AmendFrame
  | MassCancelFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | SetCancelOnDisconnectFrame;

// ---------------------------------------------------------------- server → client: responses

export interface AuthOkFrame {
  readonly t: typeof ServerMsg.AuthOk;
  readonly id: number;
  readonly keyId: string;
  readonly role: Role;
  /** Accounts this key may act for ('*' = any, admin). The first is the default. */
  readonly accounts: readonly string[];
  readonly sessionId: string;
  readonly heartbeatMs: number;
  readonly frameBytesMax: number;
  readonly ordersPerSec: number;
  readonly messagesPerSec: number;
  readonly cancelOnDisconnect: boolean;
}

/**
 * A typed error: a reject of a request (`id` its id), or a protocol error (`id` 0 when the request id
 * could not be read). `req` is the request's `t` (0 if unknown).
 */
export interface ErrorFrame {
  readonly t: typeof ServerMsg.Error;
  readonly id: number;
  readonly req: number;
  readonly code: RejectCode;
  readonly message: string;
}

export interface PongFrame {
  readonly t: typeof ServerMsg.Pong;
  readonly id?: number;
  /** The Ping's ts. */
  readonly ts: number;
  /** Server clock, ms since the epoch. */
  readonly serverTs: number;
}

/** The order is committed: acknowledged by the venue. */
export interface PlacedFrame {
  readonly t: typeof ServerMsg.Placed;
  readonly id: number;
  readonly account: string;
  readonly orderId: number;
  readonly clientOrderId?: string;
}

export interface CancelledFrame {
  readonly t: typeof ServerMsg.Cancelled;
  readonly id: number;
  readonly orderId: number;
}

export interface AmendedFrame {
  readonly t: typeof ServerMsg.Amended;
  readonly id: number;
  readonly orderId: number;
}

export interface MassCancelledFrame {
  readonly t: typeof ServerMsg.MassCancelled;
  readonly id: number;
  readonly cancelled: number;
}

export interface SubscribedFrame {
  readonly t: typeof ServerMsg.Subscribed;
  readonly id: number;
  readonly channel: ChannelCode;
  readonly symbol?: string;
  readonly account?: string;
  /** Private channel: the `afterSeq` the stream starts after (with `fromNow`: the account's journal head then). */
  readonly lastSeq?: number;
}

export interface UnsubscribedFrame {
  readonly t: typeof ServerMsg.Unsubscribed;
  readonly id: number;
  readonly channel: ChannelCode;
  readonly symbol?: string;
  readonly account?: string;
}

export interface CancelOnDisconnectSetFrame {
  readonly t: typeof ServerMsg.CancelOnDisconnectSet;
  readonly id: number;
  readonly enabled: boolean;
}

// ---------------------------------------------------------------- server → client: streams

export interface HeartbeatFrame {
  readonly t: typeof ServerMsg.Heartbeat;
  readonly ts: number;
}

/**
 * One event of an account's ledger journal. `seq` is the event's journal sequence in that account's
 * stream: strictly increasing, the same for every session and across reconnects, but not contiguous
 * (the venue's runtime journals records of its own in the same stream, and their numbers are skipped).
 * `prevSeq` is the `seq` of the previous ledger event delivered by this subscription (for the first
 * one: the subscription's `afterSeq`), so a client checks `prevSeq === lastSeq` to know it missed
 * nothing. `event` is the ledger event with all its fields (schemas/src/ledger.ts), its `type` a
 * string; `eventCode` is LedgerEventCode[event.type].
 */
export interface PrivateFrame {
  readonly t: typeof ServerMsg.Private;
  readonly account: string;
  readonly seq: number;
  readonly prevSeq: number;
  readonly eventCode: number;
  readonly event: LedgerEvent;
}

export interface QuoteFrame {
  readonly t: typeof ServerMsg.Quote;
  readonly symbol: string;
  readonly ts: number;
  readonly seq: number;
  readonly bidPrice: number;
  readonly bidQty: number;
  readonly askPrice: number;
  readonly askQty: number;
}

export interface L2SnapshotFrame {
  readonly t: typeof ServerMsg.L2Snapshot;
  readonly symbol: string;
  readonly ts: number;
  readonly seq: number;
  readonly depth: number;
  readonly truncated: boolean;
  readonly bids: readonly Level[];
  readonly asks: readonly Level[];
  readonly checksum: number;
}

export interface L2DeltaFrame {
  readonly t: typeof ServerMsg.L2Delta;
  readonly symbol: string;
  readonly ts: number;
  readonly seq: number;
  readonly bids: readonly Level[];
  readonly asks: readonly Level[];
  readonly checksum: number;
}

export interface TradeFrame {
  readonly t: typeof ServerMsg.Trade;
  readonly symbol: string;
  readonly ts: number;
  readonly tradeId: number;
  readonly price: number;
  readonly qty: number;
  readonly takerSide: Side;
}

export interface CandleFrame {
  readonly t: typeof ServerMsg.Candle;
  readonly symbol: string;
  readonly ts: number;
  readonly interval: CandleInterval;
  readonly start: number;
  readonly open: number;
  readonly high: number;
  readonly low: number;
  readonly close: number;
  readonly volume: number;
  readonly trades: number;
  /** false: the open bucket so far (CandleUpdate); true: the bucket is final (CandleClosed). */
  readonly closed: boolean;
}

export type ServerFrame =
  | AuthOkFrame
  | ErrorFrame
  | PongFrame
  | PlacedFrame
  | CancelledFrame
  | AmendedFrame
  | MassCancelledFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | CancelOnDisconnectSetFrame
  | HeartbeatFrame
  | PrivateFrame
  | QuoteFrame
  | L2SnapshotFrame
  | L2DeltaFrame
  | TradeFrame
  | CandleFrame;

/**
 * Prepares a value for a generic MessagePack encoder so that it follows the frame rules: object keys
 * whose value is `undefined` are left out, and integers outside the 32-bit range become BigInt (which
 * msgpackr writes as int64/uint64; plain numbers that large it would write as float64). Everything on
 * the wire is an integer, so nothing else needs care. Returns a new value; the input is not changed.
 *
 * @example wireValue({ orderId: 2 ** 33, note: undefined }) // { orderId: 8589934592n }
 */
export function wireValue(v: unknown): unknown {
  if (typeof v === 'number') return (v > 0xffffffff || v < -0x80000000) && Number.isInteger(v) ? BigInt(v) : v;
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = wireValue(v[i]);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const k in v as Record<string, unknown>) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== undefined) out[k] = wireValue(x);
  }
  return out;
}

/** The name of a client message type, or `UNKNOWN_<n>`. */
export function clientMsgName(t: number): string {
  for (const [k, v] of Object.entries(ClientMsg)) if (v === t) return k;
  return `UNKNOWN_${t}`;
}

/** The name of a server message type, or `UNKNOWN_<n>`. */
export function serverMsgName(t: number): string {
  for (const [k, v] of Object.entries(ServerMsg)) if (v === t) return k;
  return `UNKNOWN_${t}`;
}
