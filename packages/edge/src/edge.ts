/**
 * The edge: one uWebSockets.js app serving the binary WebSocket protocol (schemas/PROTOCOL.md) on `/`
 * and `/ws`, and the HTTP JSON API (`/v1`, `/health`, `/metrics`). Everything it does to the venue
 * goes through a `VenueGateway`.
 *
 * A frame's path, in this order (DESIGN.md "Order flow"):
 *
 *   binary? → size ≤ frameBytesMax? → MessagePack decodes? → a map with integer t?   (else: Error + close)
 *   → messages/s throttle → known t? → fields well-typed? → authenticated?            (else: Error, session stays)
 *   → role and account permitted? → orders/s throttle → instrument known? → gateway   (else: Error)
 *
 * Public market data fans out through uWS topics (`<channel>/<symbol>`): each event is encoded once
 * and published to every subscriber by uWS in C++. The private stream is per session: the gateway's
 * journal subscription for an account, sent as Private frames carrying the journal seq.
 *
 * @example
 *   const edge = await startEdge({ gateway, port: 0, keys: [{ key: 'mm1.s3cret', role: 'marketMaker', accounts: ['mm-1'] }] });
 *   console.log(edge.url); // ws://127.0.0.1:PORT  (HTTP: edge.httpUrl)
 *   await edge.close();
 */
import { App, us_listen_socket_close, us_socket_local_port } from 'uWebSockets.js';
import type { TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { pino, type Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import { Channel, ClientMsg, CloseCode, LedgerEventCode, Reject, ServerMsg, rejectName, wireLimits } from '@bourse/schemas';
import type {
  AmendFrame, AuthFrame, CancelFrame, ChannelCode, ClientFrame, Instrument, MassCancelFrame, MdEvent, PlaceFrame,
  RejectCode, ServerFrame, SubscribeFrame, UnsubscribeFrame,
} from '@bourse/schemas';
import type { GatewayExtras, GatewayResult, OrderRequest, PrivateEvent, Unsubscribe, VenueGateway } from './gateway.js';
import { KeyStore, TokenBucket, accountFor, canTrade, mayUseAccount, type KeySpec, type Principal } from './auth.js';
import { EdgeMetrics } from './metrics.js';
import { decodeFrame, encodeFrame } from './codec.js';
import { isFrame, isKnownType, isProblem, requestIdOf, validateFrame } from './validate.js';
import { installHttp } from './http.js';

export interface EdgeOptions {
  readonly gateway: VenueGateway & GatewayExtras;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Key specs (hashed on start) or a ready KeyStore. */
  readonly keys?: readonly KeySpec[] | KeyStore;
  readonly heartbeatMs?: number;
  readonly frameBytesMax?: number;
  /** Levels per side in the L2 snapshot a subscriber starts from (default 10 000: exact for any sane book). */
  readonly l2SnapshotDepth?: number;
  /** Bytes a slow subscriber may have queued before it is disconnected (default 64 MiB). */
  readonly maxBackpressureBytes?: number;
  /** Unauthenticated frames per second per connection (default 20). */
  readonly preAuthMessagesPerSec?: number;
  readonly logger?: Logger;
  /** Used when no `logger` is given (default 'info'). */
  readonly logLevel?: string;
}

export interface Edge {
  /** The WebSocket URL, `ws://host:port`. */
  readonly url: string;
  /** The HTTP base URL, `http://host:port`. */
  readonly httpUrl: string;
  readonly port: number;
  readonly keys: KeyStore;
  readonly metrics: EdgeMetrics;
  /** Open sessions (for tests and diagnostics). */
  sessionCount(): number;
  close(): Promise<void>;
}

/** A resting-capable order this session placed: cancelled on disconnect when the session asked for that. */
interface SessionOrder {
  readonly account: string;
  readonly symbol: string;
}

/** Per-connection state (uWS user data). */
export class Session {
  ws!: WebSocket<{ s: Session }>;
  principal: Principal | undefined = undefined;
  authFails = 0;
  cancelOnDisconnect = false;
  closed = false;
  lastRecvMs: number;
  readonly openedMs: number;
  readonly preAuth: TokenBucket;
  readonly privateSubs = new Map<string, Unsubscribe>();
  /** Per account, a count of Subscribe/Unsubscribe requests: a `fromNow` subscribe that a later request overtook does not install. */
  readonly privateGen = new Map<string, number>();
  /** Orders that may rest, newest last; bounded (oldest forgotten first). */
  readonly orders = new Map<number, SessionOrder>();
  /** Encoded frames waiting for this turn's flush. */
  outQ: Uint8Array[] = [];
  constructor(readonly id: string, readonly remote: string, nowMs: number, preAuthRate: number) {
    this.lastRecvMs = nowMs;
    this.openedMs = nowMs;
    this.preAuth = new TokenBucket(preAuthRate, nowMs);
  }
}

const SESSION_ORDERS_MAX = 10_000;
const topicOf = (channel: ChannelCode, symbol: string) => `${channel}/${symbol}`;

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const gateway = opts.gateway;
  const host = opts.host ?? '127.0.0.1';
  const heartbeatMs = opts.heartbeatMs ?? wireLimits.heartbeatMs;
  const frameBytesMax = opts.frameBytesMax ?? wireLimits.frameBytesMax;
  const l2Depth = opts.l2SnapshotDepth ?? 10_000;
  const preAuthRate = opts.preAuthMessagesPerSec ?? 20;
  const keys = opts.keys instanceof KeyStore ? opts.keys : new KeyStore(opts.keys ?? []);
  const log = opts.logger ?? pino({ name: 'bourse-edge', level: opts.logLevel ?? 'info' });
  const metrics = new EdgeMetrics();
  const sessions = new Set<Session>();
  const tracePrefix = randomBytes(3).toString('hex');
  let traceNo = 0;
  let sessionNo = 0;
  const nextTrace = () => `${tracePrefix}-${(++traceNo).toString(36)}`;

  // ------------------------------------------------------------ instruments (cached; refreshed on a miss, at most once a second)
  let instruments = new Map<string, Instrument>();
  let instrumentsAtMs = 0;
  const refreshInstruments = () => {
    instruments = new Map(gateway.instruments().map((i) => [i.symbol, i]));
    instrumentsAtMs = Date.now();
  };
  refreshInstruments();
  const instrumentOf = (symbol: string): Instrument | undefined => {
    const i = instruments.get(symbol);
    if (i || Date.now() - instrumentsAtMs < 1000) return i;
    refreshInstruments();
    return instruments.get(symbol);
  };

  const app: TemplatedApp = App();

  // ------------------------------------------------------------ sending
  // Frames queue per session and go out once per event-loop turn, all of a session's frames in one
  // corked write: answers and private events from gateway callbacks would otherwise cost one syscall
  // each. A session's frames keep their order; before a topic subscription the queue is flushed, so
  // that published frames never overtake the frames sent before them.
  const dirty: Session[] = [];
  let flushScheduled = false;
  const flushSession = (s: Session): void => {
    const q = s.outQ;
    if (q.length === 0) return;
    s.outQ = [];
    if (s.closed) return;
    s.ws.cork(() => {
      for (const b of q) s.ws.send(b, true);
    });
  };
  const flushAll = (): void => {
    flushScheduled = false;
    for (const s of dirty.splice(0)) flushSession(s);
  };
  const send = (s: Session, frame: ServerFrame): void => {
    if (s.closed) return;
    if (s.outQ.length === 0) dirty.push(s);
    s.outQ.push(encodeFrame(frame));
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  };
  const sendError = (s: Session, id: number, req: number, code: RejectCode, message: string): void => {
    if (code < 1000) metrics.protocolError(code);
    else metrics.reject(code);
    send(s, { t: ServerMsg.Error, id, req, code, message });
  };
  /** Protocol garbage: a typed error, then this session (only) is closed. */
  const fatal = (s: Session, code: RejectCode, closeCode: number, message: string): void => {
    sendError(s, 0, 0, code, message);
    log.info({ session: s.id, remote: s.remote, code: rejectName(code), message }, 'closing session on protocol error');
    flushSession(s);
    if (!s.closed) s.ws.end(closeCode, message);
  };

  // ------------------------------------------------------------ public streams: one gateway subscription per symbol, uWS topics fan out
  const publicSubs = new Map<string, Unsubscribe>();
  const publish = (channel: ChannelCode, symbol: string, frame: () => ServerFrame) => {
    const topic = topicOf(channel, symbol);
    if (app.numSubscribers(topic) > 0) app.publish(topic, encodeFrame(frame()), true);
  };
  const onPublic = (symbol: string, e: MdEvent): void => {
    switch (e.type) {
      case 'Quote':
        publish(Channel.bbo, symbol, () => ({ t: ServerMsg.Quote, symbol, ts: e.ts, seq: e.seq, bidPrice: e.bidPrice, bidQty: e.bidQty, askPrice: e.askPrice, askQty: e.askQty }));
        break;
      case 'L2Delta':
        publish(Channel.l2, symbol, () => ({ t: ServerMsg.L2Delta, symbol, ts: e.ts, seq: e.seq, bids: e.bids, asks: e.asks, checksum: e.checksum }));
        break;
      case 'TradeTick':
        publish(Channel.trades, symbol, () => ({ t: ServerMsg.Trade, symbol, ts: e.ts, tradeId: e.tradeId, price: e.price, qty: e.qty, takerSide: e.takerSide }));
        break;
      case 'CandleUpdate':
      case 'CandleClosed':
        publish(Channel.candles, symbol, () => ({
          t: ServerMsg.Candle, symbol, ts: e.ts, interval: e.interval, start: e.start, open: e.open, high: e.high, low: e.low,
          close: e.close, volume: e.volume, trades: e.trades, closed: e.type === 'CandleClosed',
        }));
        break;
      default:
        break; // L2Snapshot is sent per subscriber; MdInputIgnored is internal
    }
  };
  const ensurePublic = (symbol: string) => {
    if (!publicSubs.has(symbol)) publicSubs.set(symbol, gateway.subscribePublic(symbol, (e) => onPublic(symbol, e.event)));
  };

  // ------------------------------------------------------------ order entry
  /** Role, account and orders/s checks shared by the order messages; the account or undefined after an Error. */
  const orderPreamble = (s: Session, f: { id: number; t: number; account?: string; symbol: string }): string | undefined => {
    const p = s.principal!;
    if (!canTrade(p)) return void sendError(s, f.id, f.t, Reject.AUTH_FORBIDDEN_ROLE, `role ${p.role} cannot enter orders`);
    const account = accountFor(p, f.account);
    if (account === undefined) return void sendError(s, f.id, f.t, Reject.AUTH_ACCOUNT_NOT_PERMITTED, 'name an account: the key has no default account');
    if (!mayUseAccount(p, account)) return void sendError(s, f.id, f.t, Reject.AUTH_ACCOUNT_NOT_PERMITTED, `key ${p.keyId} may not act for account ${account}`);
    if (!p.orders.take(Date.now())) return void sendError(s, f.id, f.t, Reject.THROTTLE_ORDERS, `more than ${p.ordersPerSec} orders/s`);
    if (!instrumentOf(f.symbol)) return void sendError(s, f.id, f.t, Reject.ORDER_UNKNOWN_INSTRUMENT, `unknown instrument ${f.symbol}`);
    return account;
  };

  /** Runs a gateway command; an infrastructure failure becomes ACTOR_UNAVAILABLE (the client may retry with the same clientOrderId). */
  const run = async <T extends object>(traceId: string, what: string, p: () => Promise<GatewayResult<T>>): Promise<GatewayResult<T>> => {
    try {
      return await p();
    } catch (err) {
      log.error({ traceId, err }, `${what} failed in the gateway`);
      return { ok: false, code: Reject.ACTOR_UNAVAILABLE, message: 'venue unavailable; retry with the same clientOrderId' };
    }
  };

  const answer = <T extends object>(s: Session, f: { id: number; t: number }, t0: number, r: GatewayResult<T>, ok: (r: { ok: true } & T) => ServerFrame) => {
    metrics.ackLatency(performance.now() - t0);
    if (r.ok) send(s, ok(r));
    else sendError(s, f.id, f.t, r.code, r.message);
  };

  const place = async (s: Session, f: PlaceFrame) => {
    const t0 = performance.now();
    metrics.order('place');
    const account = orderPreamble(s, f);
    if (account === undefined) return;
    const traceId = nextTrace();
    const req: OrderRequest = {
      symbol: f.symbol, side: f.side, orderType: f.orderType, tif: f.tif, price: f.price, qty: f.qty,
      ...(f.clientOrderId !== undefined && { clientOrderId: f.clientOrderId }),
      ...(f.stopPrice !== undefined && { stopPrice: f.stopPrice }),
      ...(f.expireAt !== undefined && { expireAt: f.expireAt }),
      ...(f.postOnly !== undefined && { postOnly: f.postOnly }),
      ...(f.reduceOnly !== undefined && { reduceOnly: f.reduceOnly }),
      ...(f.stp !== undefined && { stp: f.stp }),
      ...(f.leverage !== undefined && { leverage: f.leverage }),
    };
    if (log.isLevelEnabled('debug')) log.debug({ traceId, session: s.id, account, ...req }, 'place');
    const r = await run(traceId, 'place', () => gateway.placeOrder(account, req, { traceId }));
    if (r.ok && (f.tif === 'GTC' || f.tif === 'GTD')) {
      s.orders.set(r.orderId, { account, symbol: f.symbol });
      if (s.orders.size > SESSION_ORDERS_MAX) s.orders.delete(s.orders.keys().next().value!);
    }
    if (!r.ok && log.isLevelEnabled('debug')) log.debug({ traceId, code: rejectName(r.code) }, 'place rejected');
    answer(s, f, t0, r, (a) => ({ t: ServerMsg.Placed, id: f.id, account, orderId: a.orderId, ...(f.clientOrderId !== undefined && { clientOrderId: f.clientOrderId }) }));
  };

  const cancel = async (s: Session, f: CancelFrame) => {
    const t0 = performance.now();
    metrics.order('cancel');
    const account = orderPreamble(s, f);
    if (account === undefined) return;
    const traceId = nextTrace();
    if (log.isLevelEnabled('debug')) log.debug({ traceId, session: s.id, account, symbol: f.symbol, orderId: f.orderId }, 'cancel');
    const r = await run(traceId, 'cancel', () => gateway.cancelOrder(account, f.symbol, f.orderId, { traceId }));
    if (r.ok) s.orders.delete(f.orderId);
    answer(s, f, t0, r, () => ({ t: ServerMsg.Cancelled, id: f.id, orderId: f.orderId }));
  };

  const amend = async (s: Session, f: AmendFrame) => {
    const t0 = performance.now();
    metrics.order('amend');
    const account = orderPreamble(s, f);
    if (account === undefined) return;
    const traceId = nextTrace();
    const change = { ...(f.price !== undefined && { price: f.price }), ...(f.qty !== undefined && { qty: f.qty }) };
    if (log.isLevelEnabled('debug')) log.debug({ traceId, session: s.id, account, symbol: f.symbol, orderId: f.orderId, ...change }, 'amend');
    const r = await run(traceId, 'amend', () => gateway.amendOrder(account, f.symbol, f.orderId, change, { traceId }));
    answer(s, f, t0, r, () => ({ t: ServerMsg.Amended, id: f.id, orderId: f.orderId }));
  };

  const massCancel = async (s: Session, f: MassCancelFrame) => {
    const t0 = performance.now();
    metrics.order('massCancel');
    const account = orderPreamble(s, f);
    if (account === undefined) return;
    const traceId = nextTrace();
    if (log.isLevelEnabled('debug')) log.debug({ traceId, session: s.id, account, symbol: f.symbol, side: f.side }, 'massCancel');
    const r = await run(traceId, 'massCancel', () => gateway.massCancel(account, f.symbol, f.side, { traceId }));
    answer(s, f, t0, r, (a) => ({ t: ServerMsg.MassCancelled, id: f.id, cancelled: a.cancelled }));
  };

  // ------------------------------------------------------------ subscriptions
  const subscribe = (s: Session, f: SubscribeFrame) => {
    const p = s.principal!;
    if (f.channel === Channel.private) {
      const account = accountFor(p, f.account);
      if (account === undefined || !mayUseAccount(p, account)) {
        return sendError(s, f.id, f.t, Reject.AUTH_ACCOUNT_NOT_PERMITTED, `key ${p.keyId} may not read account ${account ?? '(none named)'}`);
      }
      const gen = (s.privateGen.get(account) ?? 0) + 1;
      s.privateGen.set(account, gen);
      const start = (afterSeq: number) => {
        if (s.closed) return;
        // A later Subscribe of this account came in while this one looked up the head: it wins.
        if (s.privateGen.get(account) !== gen) return send(s, { t: ServerMsg.Subscribed, id: f.id, channel: f.channel, account, lastSeq: afterSeq });
        s.privateSubs.get(account)?.();
        send(s, { t: ServerMsg.Subscribed, id: f.id, channel: f.channel, account, lastSeq: afterSeq });
        let prevSeq = afterSeq; // the chain a client checks for gaps: journal seqs are not contiguous
        const onEvent = (e: PrivateEvent) => {
          if (s.closed) return;
          if (e.event.type === 'HoldReleased') s.orders.delete(e.event.orderId);
          send(s, { t: ServerMsg.Private, account: e.account, seq: e.seq, prevSeq, eventCode: LedgerEventCode[e.event.type], event: e.event });
          prevSeq = e.seq;
        };
        let unsub: Unsubscribe;
        try {
          unsub = gateway.subscribePrivate(account, afterSeq, onEvent);
        } catch (err) {
          log.error({ err, account }, 'subscribePrivate failed');
          return sendError(s, f.id, f.t, Reject.ACTOR_UNAVAILABLE, 'private stream unavailable');
        }
        if (s.closed) unsub();
        else s.privateSubs.set(account, unsub);
      };
      if (f.fromNow !== true) return start(f.afterSeq ?? 0);
      // From now: start after the account's journal head as it is now; everything committed later follows.
      gateway.privateHead(account).then(start, (err: unknown) => {
        log.error({ err, account }, 'privateHead failed');
        if (!s.closed) sendError(s, f.id, f.t, Reject.ACTOR_UNAVAILABLE, 'private stream unavailable');
      });
      return;
    }
    const symbol = f.symbol!;
    if (!instrumentOf(symbol)) return sendError(s, f.id, f.t, Reject.ORDER_UNKNOWN_INSTRUMENT, `unknown instrument ${symbol}`);
    ensurePublic(symbol);
    if (f.channel === Channel.l2) {
      const snap = gateway.l2Snapshot(symbol, l2Depth);
      if (!snap) return sendError(s, f.id, f.t, Reject.ORDER_UNKNOWN_INSTRUMENT, `no book for ${symbol}`);
      // Synchronous from here: no delta can be published between the snapshot and the topic subscription.
      flushSession(s);
      s.ws.cork(() => {
        s.ws.send(encodeFrame({ t: ServerMsg.Subscribed, id: f.id, channel: f.channel, symbol }), true);
        s.ws.send(encodeFrame({ t: ServerMsg.L2Snapshot, symbol, ts: snap.ts, seq: snap.seq, depth: snap.depth, truncated: snap.truncated, bids: snap.bids, asks: snap.asks, checksum: snap.checksum }), true);
        s.ws.subscribe(topicOf(f.channel, symbol));
      });
      return;
    }
    send(s, { t: ServerMsg.Subscribed, id: f.id, channel: f.channel, symbol });
    if (f.channel === Channel.bbo) {
      // The current BBO at once, so a subscriber does not wait for the next change.
      const top = gateway.l2Snapshot(symbol, 1);
      if (top) {
        const [bid, ask] = [top.bids[0], top.asks[0]];
        send(s, { t: ServerMsg.Quote, symbol, ts: top.ts, seq: top.seq, bidPrice: bid?.[0] ?? 0, bidQty: bid?.[1] ?? 0, askPrice: ask?.[0] ?? 0, askQty: ask?.[1] ?? 0 });
      }
    }
    flushSession(s);
    s.ws.subscribe(topicOf(f.channel, symbol));
  };

  const unsubscribe = (s: Session, f: UnsubscribeFrame) => {
    if (f.channel === Channel.private) {
      const account = accountFor(s.principal!, f.account) ?? '';
      s.privateGen.set(account, (s.privateGen.get(account) ?? 0) + 1);
      s.privateSubs.get(account)?.();
      s.privateSubs.delete(account);
      return send(s, { t: ServerMsg.Unsubscribed, id: f.id, channel: f.channel, account });
    }
    s.ws.unsubscribe(topicOf(f.channel, f.symbol!));
    send(s, { t: ServerMsg.Unsubscribed, id: f.id, channel: f.channel, symbol: f.symbol! });
  };

  const auth = (s: Session, f: AuthFrame) => {
    if (s.principal) return sendError(s, f.id, f.t, Reject.PROTO_BAD_SEQUENCE, 'already authenticated');
    const p = keys.verify(f.key);
    if (!p) {
      s.authFails++;
      sendError(s, f.id, f.t, Reject.AUTH_INVALID_KEY, 'invalid API key');
      log.info({ session: s.id, remote: s.remote, fails: s.authFails }, 'auth failed');
      if (s.authFails >= 3 && !s.closed) {
        flushSession(s);
        s.ws.end(CloseCode.authFailed, 'authentication failed');
      }
      return;
    }
    s.principal = p;
    s.cancelOnDisconnect = f.cancelOnDisconnect ?? false;
    metrics.sessionsAuthenticated++;
    log.info({ session: s.id, remote: s.remote, keyId: p.keyId, role: p.role, cancelOnDisconnect: s.cancelOnDisconnect }, 'session authenticated');
    send(s, {
      t: ServerMsg.AuthOk, id: f.id, keyId: p.keyId, role: p.role, accounts: p.accounts, sessionId: s.id, heartbeatMs, frameBytesMax,
      ordersPerSec: p.ordersPerSec, messagesPerSec: p.messagesPerSec, cancelOnDisconnect: s.cancelOnDisconnect,
    });
    flushSession(s);
    s.ws.subscribe('hb');
  };

  const dispatch = (s: Session, f: ClientFrame): void => {
    switch (f.t) {
      case ClientMsg.Auth: return auth(s, f);
      case ClientMsg.Ping: return send(s, { t: ServerMsg.Pong, ...(f.id !== undefined && { id: f.id }), ts: f.ts, serverTs: Date.now() });
      case ClientMsg.Place: return void place(s, f);
      case ClientMsg.Cancel: return void cancel(s, f);
      case ClientMsg.Amend: return void amend(s, f);
      case ClientMsg.MassCancel: return void massCancel(s, f);
      case ClientMsg.Subscribe: return subscribe(s, f);
      case ClientMsg.Unsubscribe: return unsubscribe(s, f);
      case ClientMsg.SetCancelOnDisconnect:
        s.cancelOnDisconnect = f.enabled;
        return send(s, { t: ServerMsg.CancelOnDisconnectSet, id: f.id, enabled: f.enabled });
    }
  };

  const onMessage = (s: Session, message: ArrayBuffer, isBinary: boolean): void => {
    metrics.framesIn++;
    const now = Date.now();
    s.lastRecvMs = now;
    if (!isBinary) return fatal(s, Reject.PROTO_MALFORMED_FRAME, CloseCode.protocolError, 'text frames are not part of the protocol; send binary MessagePack');
    if (message.byteLength > frameBytesMax) return fatal(s, Reject.PROTO_FRAME_TOO_LARGE, CloseCode.frameTooLarge, `frame of ${message.byteLength} bytes; the limit is ${frameBytesMax}`);
    let v: unknown;
    try {
      v = decodeFrame(new Uint8Array(message));
    } catch {
      return fatal(s, Reject.PROTO_MALFORMED_FRAME, CloseCode.protocolError, 'not one MessagePack value');
    }
    if (!isFrame(v)) return fatal(s, Reject.PROTO_MALFORMED_FRAME, CloseCode.protocolError, 'a frame is a MessagePack map with an integer field t');
    const id = requestIdOf(v);
    if (!(s.principal?.messages ?? s.preAuth).take(now)) {
      return sendError(s, id, v.t, Reject.THROTTLE_MESSAGES, `more than ${s.principal?.messagesPerSec ?? preAuthRate} messages/s`);
    }
    if (!isKnownType(v.t)) return sendError(s, id, v.t, Reject.PROTO_UNKNOWN_MESSAGE, `unknown message type ${v.t}`);
    const f = validateFrame(v);
    if (isProblem(f)) return sendError(s, id, v.t, f.code, f.message);
    if (!s.principal && f.t !== ClientMsg.Auth && f.t !== ClientMsg.Ping) return sendError(s, id, f.t, Reject.PROTO_NOT_AUTHENTICATED, 'authenticate first (Auth, t=1)');
    dispatch(s, f);
  };

  const onClose = (s: Session, code: number): void => {
    s.closed = true;
    sessions.delete(s);
    metrics.sessions--;
    if (s.principal) metrics.sessionsAuthenticated--;
    for (const u of s.privateSubs.values()) u();
    s.privateSubs.clear();
    log.info({ session: s.id, remote: s.remote, code }, 'session closed');
    if (s.cancelOnDisconnect && s.principal && s.orders.size > 0) {
      const orders = [...s.orders];
      s.orders.clear();
      const traceId = nextTrace();
      log.info({ session: s.id, traceId, orders: orders.length }, 'cancel-on-disconnect');
      for (const [orderId, o] of orders) {
        void run(traceId, 'cancel-on-disconnect', () => gateway.cancelOrder(o.account, o.symbol, orderId, { traceId })).then((r) => {
          if (r.ok) metrics.cancelOnDisconnectOrders++;
        });
      }
    }
  };

  const behavior = {
    maxPayloadLength: Math.max(frameBytesMax * 16, 1 << 20),
    maxBackpressure: opts.maxBackpressureBytes ?? 64 * 1024 * 1024,
    closeOnBackpressureLimit: true,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    upgrade: (res: import('uWebSockets.js').HttpResponse, req: import('uWebSockets.js').HttpRequest, context: import('uWebSockets.js').us_socket_context_t) => {
      const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
      const s = new Session(`${tracePrefix}-s${(++sessionNo).toString(36)}`, remote, Date.now(), preAuthRate);
      res.upgrade({ s }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws: WebSocket<{ s: Session }>) => {
      const s = ws.getUserData().s;
      s.ws = ws;
      sessions.add(s);
      metrics.sessions++;
    },
    message: (ws: WebSocket<{ s: Session }>, message: ArrayBuffer, isBinary: boolean) => onMessage(ws.getUserData().s, message, isBinary),
    close: (ws: WebSocket<{ s: Session }>, code: number) => onClose(ws.getUserData().s, code),
  };
  app.ws('/', behavior);
  app.ws('/ws', behavior);

  installHttp(app, { gateway, keys, metrics, log, instrumentOf, instrumentsChanged: refreshInstruments, nextTrace, sessionCount: () => sessions.size, l2Depth });

  // ------------------------------------------------------------ timers: heartbeats, idle and auth deadlines, metrics
  const hbTimer = setInterval(() => {
    const now = Date.now();
    app.publish('hb', encodeFrame({ t: ServerMsg.Heartbeat, ts: now }), true);
    for (const s of sessions) {
      if (s.closed) continue;
      if (!s.principal && now - s.openedMs > wireLimits.authTimeoutMs) s.ws.end(CloseCode.authFailed, 'no Auth in time');
      else if (now - s.lastRecvMs > 3 * heartbeatMs) s.ws.end(CloseCode.heartbeatTimeout, 'heartbeat timeout');
    }
  }, heartbeatMs);
  const metricsTimer = setInterval(() => metrics.tick(), 1000);
  hbTimer.unref();
  metricsTimer.unref();

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(host, opts.port ?? 0, (ls) => (ls ? resolve(ls) : reject(new Error(`edge: cannot listen on ${host}:${opts.port ?? 0}`))));
  });
  const port = us_socket_local_port(listenSocket as unknown as import('uWebSockets.js').us_socket);
  log.info({ host, port }, 'edge listening');

  let closed = false;
  return {
    url: `ws://${host}:${port}`,
    httpUrl: `http://${host}:${port}`,
    port,
    keys,
    metrics,
    sessionCount: () => sessions.size,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(hbTimer);
      clearInterval(metricsTimer);
      us_listen_socket_close(listenSocket);
      for (const s of [...sessions]) if (!s.closed) s.ws.end(CloseCode.shutdown, 'edge shutting down');
      for (const u of publicSubs.values()) u();
      publicSubs.clear();
      app.close();
      log.info({ port }, 'edge closed');
    },
  };
}
