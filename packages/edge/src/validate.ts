/**
 * Syntax checks of decoded client frames: the shape of every field, before anything else looks at it.
 * A frame that fails is answered with PROTO_BAD_FIELD naming the field; semantic checks (tick size,
 * balance, ...) stay with the engine. Unknown extra fields are ignored (forward compatibility).
 */
import { Channel, ClientMsg, Reject, wireLimits } from '@bourse/schemas';
import type { ClientFrame, RejectCode } from '@bourse/schemas';

const PROBLEM: unique symbol = Symbol('problem');

export interface Problem {
  readonly [PROBLEM]: true;
  readonly code: RejectCode;
  readonly message: string;
}

const SIDES = new Set(['buy', 'sell']);
const ORDER_TYPES = new Set(['limit', 'market', 'stop', 'stopLimit']);
const TIFS = new Set(['GTC', 'IOC', 'FOK', 'GTD']);
const STPS = new Set(['cancelTaker', 'cancelMaker', 'cancelBoth', 'decrementBoth']);
const CHANNELS = new Set<number>(Object.values(Channel));
const CODES = new Set<number>(Object.values(ClientMsg));

type Obj = Record<string, unknown>;
type Check = (o: Obj) => string | undefined;

const isStr = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= wireLimits.stringLengthMax;
const isInt = (v: unknown) => Number.isSafeInteger(v);
const isNonNegInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

const req = (k: string, ok: (v: unknown) => boolean, what: string): Check => (o) => (ok(o[k]) ? undefined : `${k}: ${what}`);
const opt = (k: string, ok: (v: unknown) => boolean, what: string): Check => (o) => (o[k] === undefined || ok(o[k]) ? undefined : `${k}: ${what}`);

const id = req('id', (v) => isInt(v) && (v as number) >= 1 && (v as number) <= wireLimits.requestIdMax, 'integer 1..2^32-1');
const str = 'string of 1..64 characters';
const int0 = 'non-negative safe integer';

const checks: { readonly [t: number]: readonly Check[] } = {
  [ClientMsg.Auth]: [id, req('key', (v) => typeof v === 'string' && v.length > 0 && v.length <= 256, 'string of 1..256 characters'), opt('cancelOnDisconnect', (v) => typeof v === 'boolean', 'boolean')],
  [ClientMsg.Ping]: [opt('id', isNonNegInt, int0), req('ts', isInt, 'safe integer')],
  [ClientMsg.Place]: [
    id, opt('account', isStr, str), req('symbol', isStr, str),
    req('side', (v) => SIDES.has(v as string), "'buy' or 'sell'"),
    req('orderType', (v) => ORDER_TYPES.has(v as string), "'limit', 'market', 'stop' or 'stopLimit'"),
    req('tif', (v) => TIFS.has(v as string), "'GTC', 'IOC', 'FOK' or 'GTD'"),
    req('price', isNonNegInt, int0), req('qty', isNonNegInt, int0),
    opt('clientOrderId', isStr, str), opt('stopPrice', isNonNegInt, int0), opt('expireAt', isNonNegInt, int0),
    opt('postOnly', (v) => typeof v === 'boolean', 'boolean'), opt('reduceOnly', (v) => typeof v === 'boolean', 'boolean'),
    opt('stp', (v) => STPS.has(v as string), "'cancelTaker', 'cancelMaker', 'cancelBoth' or 'decrementBoth'"),
    opt('leverage', (v) => isInt(v) && (v as number) >= 1, 'integer >= 1'),
  ],
  [ClientMsg.Cancel]: [id, opt('account', isStr, str), req('symbol', isStr, str), req('orderId', (v) => isInt(v) && (v as number) > 0, 'positive safe integer')],
  [ClientMsg.Amend]: [
    id, opt('account', isStr, str), req('symbol', isStr, str), req('orderId', (v) => isInt(v) && (v as number) > 0, 'positive safe integer'),
    opt('price', isNonNegInt, int0), opt('qty', isNonNegInt, int0),
    (o) => (o.price === undefined && o.qty === undefined ? 'price, qty: at least one' : undefined),
  ],
  [ClientMsg.MassCancel]: [id, opt('account', isStr, str), req('symbol', isStr, str), opt('side', (v) => SIDES.has(v as string), "'buy' or 'sell'")],
  [ClientMsg.Subscribe]: [
    id, req('channel', (v) => CHANNELS.has(v as number), 'a channel code 1..5'),
    (o) => (o.channel === Channel.private ? undefined : isStr(o.symbol) ? undefined : `symbol: ${str}`),
    opt('account', isStr, str), opt('afterSeq', isNonNegInt, int0), opt('fromNow', (v) => typeof v === 'boolean', 'boolean'),
    (o) => (o.fromNow === true && o.afterSeq !== undefined ? 'fromNow: not with afterSeq' : undefined),
  ],
  [ClientMsg.Unsubscribe]: [
    id, req('channel', (v) => CHANNELS.has(v as number), 'a channel code 1..5'),
    (o) => (o.channel === Channel.private ? undefined : isStr(o.symbol) ? undefined : `symbol: ${str}`),
    opt('account', isStr, str),
  ],
  [ClientMsg.SetCancelOnDisconnect]: [id, req('enabled', (v) => typeof v === 'boolean', 'boolean')],
};

/** A decoded value is a frame at all: a map with an integer `t`. Anything else is protocol garbage. */
export function isFrame(v: unknown): v is Obj & { t: number } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && Number.isSafeInteger((v as Obj).t);
}

export function isKnownType(t: number): boolean {
  return CODES.has(t);
}

/** The frame's request id if it has a readable one, else 0. */
export function requestIdOf(o: Obj): number {
  const v = o.id;
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= wireLimits.requestIdMax ? (v as number) : 0;
}

/** Checks every field of a frame of a known type: the typed frame, or the first problem. */
export function validateFrame(o: Obj & { t: number }): ClientFrame | Problem {
  const cs = checks[o.t];
  if (!cs) return { [PROBLEM]: true, code: Reject.PROTO_UNKNOWN_MESSAGE, message: `unknown message type ${o.t}` };
  for (const c of cs) {
    const m = c(o);
    if (m !== undefined) return { [PROBLEM]: true, code: Reject.PROTO_BAD_FIELD, message: m };
  }
  return o as unknown as ClientFrame;
}

export const isProblem = (v: ClientFrame | Problem): v is Problem => (v as { [PROBLEM]?: true })[PROBLEM] === true;
