/**
 * The Bourse SDK: a client for the binary WebSocket protocol (schemas/PROTOCOL.md).
 *
 * - `BourseClient.connect` opens the socket and authenticates; it resolves once the server said AuthOk.
 * - Order entry returns typed results and never throws for a reject: `{ ok: true, orderId }` or
 *   `{ ok: false, code, message }`.
 * - Reconnects by itself (exponential backoff). After a reconnect it authenticates again, restores
 *   every subscription, resumes each private stream from the last seq it delivered (no gap, no
 *   duplicate: a stale seq is dropped, a gap resubscribes from the last good seq), and re-sends the
 *   Place requests that had no answer yet, with the same clientOrderId, so the venue answers them
 *   instead of executing them twice. Other requests in flight resolve with ACTOR_UNAVAILABLE.
 * - `book(symbol)` keeps a LocalBook from L2 snapshot + deltas, verifying every seq and checksum, and
 *   resyncs (asks for a new snapshot) on a gap or a checksum mismatch.
 *
 * @example
 *   const c = await BourseClient.connect({ url: 'ws://127.0.0.1:8080', key: 'mm1.s3cret' });
 *   await c.subscribePrivate((e) => console.log(e.seq, e.event.type));
 *   const r = await c.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 1 });
 *   if (r.ok) await c.cancel('BTC-USD', r.orderId);
 *   await c.close();
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { Channel, ClientMsg, LocalBook, Reject, ServerMsg } from '@bourse/schemas';
import type {
  AuthOkFrame, CandleFrame, ChannelCode, ClientFrame, ErrorFrame, L2DeltaFrame, L2SnapshotFrame, LedgerEvent, OrderType,
  PlacedFrame, PrivateFrame, QuoteFrame, RejectCode, SelfTradePrevention, ServerFrame, Side, SubscribedFrame, TimeInForce, TradeFrame,
} from '@bourse/schemas';
import { decodeFrame, encodeFrame } from './codec.js';

export type Result<T = object> = ({ readonly ok: true } & T) | { readonly ok: false; readonly code: RejectCode; readonly message: string };

export interface PlaceRequest {
  readonly symbol: string;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly tif: TimeInForce;
  readonly price: number;
  readonly qty: number;
  /** Default: one the SDK makes up, so that a re-send after a reconnect is idempotent. */
  readonly clientOrderId?: string;
  readonly account?: string;
  readonly stopPrice?: number;
  readonly expireAt?: number;
  readonly postOnly?: boolean;
  readonly reduceOnly?: boolean;
  readonly stp?: SelfTradePrevention;
  readonly leverage?: number;
}

export interface PrivateMessage {
  readonly account: string;
  readonly seq: number;
  readonly event: LedgerEvent;
}

export interface ClientOptions {
  /** `ws://host:port` */
  readonly url: string;
  readonly key: string;
  readonly cancelOnDisconnect?: boolean;
  /** Reconnect after an unexpected close (default true). */
  readonly reconnect?: boolean;
  readonly reconnectDelayMsMin?: number;
  readonly reconnectDelayMsMax?: number;
  /** A request with no answer after this long resolves with ACTOR_TIMEOUT (default 30 s). */
  readonly requestTimeoutMs?: number;
  /** Make up clientOrderIds for places that have none (default true). */
  readonly autoClientOrderId?: boolean;
}

/** Thrown by `connect` when the first authentication fails (bad key): nothing to retry. */
export class AuthError extends Error {
  constructor(readonly code: RejectCode, message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

interface Pending {
  readonly frame: ClientFrame;
  readonly resolve: (f: ServerFrame) => void;
  readonly sentMs: number;
}

interface PrivateSub {
  readonly account: string;
  lastSeq: number;
  /** Subscribed with `fromNow` and no Subscribed has said where the stream starts yet. */
  fromNow: boolean;
  readonly onEvent: (m: PrivateMessage) => void;
  /** Request id of the Subscribe whose Subscribed has not arrived; frames before it are from an older subscription. */
  awaiting: number;
}

interface PublicSub {
  readonly channel: ChannelCode;
  readonly symbol: string;
  readonly handlers: Set<(f: ServerFrame) => void>;
}

/** A local L2 book kept in sync with the feed. */
export interface BookHandle {
  readonly book: LocalBook;
  /** Number of snapshots applied (1 + resyncs). */
  readonly snapshots: number;
  /** Resolves once the first snapshot is applied. */
  readonly ready: Promise<void>;
  close(): void;
}

const disconnected = { ok: false, code: Reject.ACTOR_UNAVAILABLE, message: 'disconnected before the answer arrived; the outcome is unknown' } as const;

export class BourseClient extends EventEmitter {
  readonly opts: ClientOptions;
  #ws: WebSocket | undefined;
  #session: AuthOkFrame | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #private = new Map<string, PrivateSub>();
  readonly #public = new Map<string, PublicSub>();
  readonly #books = new Map<string, { book: LocalBook; snapshots: number; resyncing: boolean; onUpdate: ((b: LocalBook) => void) | undefined; ready: () => void }>();
  #closing = false;
  #attempt = 0;
  #lastRecvMs = 0;
  #lastSentMs = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #coidPrefix = randomBytes(4).toString('hex');
  #coidNo = 0;
  /** Resolves when the current connection is authenticated. */
  #ready: Promise<void> = Promise.resolve();

  private constructor(opts: ClientOptions) {
    super();
    this.opts = opts;
  }

  /** Connects and authenticates. Rejects with AuthError on a bad key, or Error if the server cannot be reached. */
  static async connect(opts: ClientOptions): Promise<BourseClient> {
    const c = new BourseClient(opts);
    await c.#open(true);
    c.#timer = setInterval(() => c.#tick(), 250);
    c.#timer.unref();
    return c;
  }

  /** What the server said in AuthOk (role, accounts, limits, heartbeat interval). */
  get session(): AuthOkFrame {
    return this.#session!;
  }

  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN && this.#session !== undefined;
  }

  // ---------------------------------------------------------------- order entry

  async place(req: PlaceRequest): Promise<Result<{ orderId: number; account: string; clientOrderId: string | undefined }>> {
    const clientOrderId = req.clientOrderId ?? (this.opts.autoClientOrderId === false ? undefined : `${this.#coidPrefix}-${(++this.#coidNo).toString(36)}`);
    const f = await this.#request({ t: ClientMsg.Place, id: 0, ...req, ...(clientOrderId !== undefined && { clientOrderId }) });
    if (f.t === ServerMsg.Placed) return { ok: true, orderId: (f as PlacedFrame).orderId, account: (f as PlacedFrame).account, clientOrderId };
    return this.#reject(f);
  }

  async cancel(symbol: string, orderId: number, account?: string): Promise<Result> {
    const f = await this.#request({ t: ClientMsg.Cancel, id: 0, symbol, orderId, ...(account !== undefined && { account }) });
    return f.t === ServerMsg.Cancelled ? { ok: true } : this.#reject(f);
  }

  /** FIX semantics: `qty` is the new total order quantity. */
  async amend(symbol: string, orderId: number, change: { price?: number; qty?: number }, account?: string): Promise<Result> {
    const f = await this.#request({ t: ClientMsg.Amend, id: 0, symbol, orderId, ...change, ...(account !== undefined && { account }) });
    return f.t === ServerMsg.Amended ? { ok: true } : this.#reject(f);
  }

  async massCancel(symbol: string, side?: Side, account?: string): Promise<Result<{ cancelled: number }>> {
    const f = await this.#request({ t: ClientMsg.MassCancel, id: 0, symbol, ...(side !== undefined && { side }), ...(account !== undefined && { account }) });
    return f.t === ServerMsg.MassCancelled ? { ok: true, cancelled: (f as { cancelled: number }).cancelled } : this.#reject(f);
  }

  async setCancelOnDisconnect(enabled: boolean): Promise<Result> {
    const f = await this.#request({ t: ClientMsg.SetCancelOnDisconnect, id: 0, enabled });
    return f.t === ServerMsg.CancelOnDisconnectSet ? { ok: true } : this.#reject(f);
  }

  /** Round trip time in ms. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.#request({ t: ClientMsg.Ping, id: 0, ts: Date.now() });
    return performance.now() - t0;
  }

  // ---------------------------------------------------------------- streams

  /**
   * The private stream of an account (default the key's first), delivered in seq order with no gap and
   * no duplicate, across reconnects. `afterSeq` 0 replays the account's whole journal first;
   * `fromNow: true` skips the history and starts with what is committed from now on (then
   * `lastSeq(account)` is where it started, and reconnects resume from there as usual).
   */
  async subscribePrivate(onEvent: (m: PrivateMessage) => void, opts: { account?: string; afterSeq?: number; fromNow?: boolean } = {}): Promise<Result<{ account: string }>> {
    const account = opts.account ?? this.#session!.accounts[0];
    if (account === undefined || account === '*') return { ok: false, code: Reject.AUTH_ACCOUNT_NOT_PERMITTED, message: 'name an account' };
    if (opts.fromNow === true && opts.afterSeq !== undefined) return { ok: false, code: Reject.PROTO_BAD_FIELD, message: 'fromNow: not with afterSeq' };
    const sub: PrivateSub = { account, lastSeq: opts.afterSeq ?? 0, fromNow: opts.fromNow === true, onEvent, awaiting: 0 };
    this.#private.set(account, sub);
    const f = await this.#subscribePrivate(sub);
    if (f.t === ServerMsg.Subscribed) return { ok: true, account };
    this.#private.delete(account);
    return this.#reject(f);
  }

  /** The last seq delivered on an account's private stream (0 before any). */
  lastSeq(account: string): number {
    return this.#private.get(account)?.lastSeq ?? 0;
  }

  onQuote(symbol: string, fn: (q: QuoteFrame) => void): Promise<Result> {
    return this.#subscribePublic(Channel.bbo, symbol, fn as (f: ServerFrame) => void);
  }

  onTrade(symbol: string, fn: (t: TradeFrame) => void): Promise<Result> {
    return this.#subscribePublic(Channel.trades, symbol, fn as (f: ServerFrame) => void);
  }

  onCandle(symbol: string, fn: (c: CandleFrame) => void): Promise<Result> {
    return this.#subscribePublic(Channel.candles, symbol, fn as (f: ServerFrame) => void);
  }

  /** A local L2 book of `symbol`, kept from snapshot + deltas with checksums verified. */
  async book(symbol: string, onUpdate?: (b: LocalBook) => void): Promise<Result<BookHandle>> {
    let ready!: () => void;
    const readyP = new Promise<void>((r) => (ready = r));
    const state = { book: new LocalBook(symbol), snapshots: 0, resyncing: false, onUpdate, ready };
    this.#books.set(symbol, state);
    const r = await this.#subscribePublic(Channel.l2, symbol, () => {});
    if (!r.ok) {
      this.#books.delete(symbol);
      return r;
    }
    const self = this;
    return {
      ok: true,
      book: state.book,
      get snapshots() {
        return state.snapshots;
      },
      ready: readyP,
      close: () => {
        self.#books.delete(symbol);
        self.#public.delete(`${Channel.l2}/${symbol}`);
        self.#sendNoAnswer({ t: ClientMsg.Unsubscribe, id: self.#nextId++, channel: Channel.l2, symbol });
      },
    };
  }

  /** Closes for good (no reconnect). Requests without an answer resolve with ACTOR_UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#timer) clearInterval(this.#timer);
    const ws = this.#ws;
    this.#failPending();
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000);
      setTimeout(() => (ws.terminate(), resolve()), 1000).unref();
    });
  }

  /** Drops the connection as if the network failed (tests; reconnect follows if enabled). */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  // ---------------------------------------------------------------- internals

  /** 'error' is emitted only when someone listens (an EventEmitter throws an unheard 'error'). */
  #emitError(err: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #reject(f: ServerFrame): { ok: false; code: RejectCode; message: string } {
    if (f.t === ServerMsg.Error) return { ok: false, code: (f as ErrorFrame).code, message: (f as ErrorFrame).message };
    return { ok: false, code: Reject.PROTO_UNKNOWN_MESSAGE, message: `unexpected answer t=${f.t}` };
  }

  #subscribePrivate(sub: PrivateSub): Promise<ServerFrame> {
    const id = this.#nextId++;
    sub.awaiting = id;
    const from = sub.fromNow ? { fromNow: true } : { afterSeq: sub.lastSeq };
    return this.#request({ t: ClientMsg.Subscribe, id, channel: Channel.private, account: sub.account, ...from }, id);
  }

  async #subscribePublic(channel: ChannelCode, symbol: string, fn: (f: ServerFrame) => void): Promise<Result> {
    const key = `${channel}/${symbol}`;
    let sub = this.#public.get(key);
    if (sub) {
      sub.handlers.add(fn);
      return { ok: true };
    }
    sub = { channel, symbol, handlers: new Set([fn]) };
    this.#public.set(key, sub);
    const f = await this.#request({ t: ClientMsg.Subscribe, id: 0, channel, symbol });
    if (f.t === ServerMsg.Subscribed) return { ok: true };
    this.#public.delete(key);
    return this.#reject(f);
  }

  #request(frame: ClientFrame, presetId?: number): Promise<ServerFrame> {
    const id = presetId ?? this.#nextId++;
    const f = { ...frame, id } as ClientFrame;
    return new Promise<ServerFrame>((resolve) => {
      // Not connected: only a Place or Subscribe waits, and only for a reconnect that will come. With
      // reconnect off, or after close(), it would wait forever (nothing else keeps a process alive).
      if (!this.connected && ((f.t !== ClientMsg.Place && f.t !== ClientMsg.Subscribe) || this.#closing || this.opts.reconnect === false)) {
        resolve({ t: ServerMsg.Error, id, req: f.t, code: disconnected.code, message: 'not connected' });
        return;
      }
      this.#pending.set(id, { frame: f, resolve, sentMs: Date.now() });
      if (this.connected) this.#send(f);
      // Not connected: a Place or Subscribe goes out when the connection is back; see #onAuthenticated.
    });
  }

  #sendNoAnswer(f: ClientFrame): void {
    if (this.connected) this.#send(f);
  }

  #send(f: ClientFrame): void {
    this.#lastSentMs = Date.now();
    this.#ws!.send(encodeFrame(f));
  }

  #failPending(keepPlaces = false): void {
    for (const [id, p] of this.#pending) {
      if (keepPlaces && p.frame.t === ClientMsg.Place && p.frame.clientOrderId !== undefined) continue;
      if (keepPlaces && p.frame.t === ClientMsg.Subscribe) continue; // restored on reconnect
      this.#pending.delete(id);
      p.resolve({ t: ServerMsg.Error, id, req: p.frame.t, code: disconnected.code, message: disconnected.message });
    }
  }

  #open(first: boolean): Promise<void> {
    const ws = new WebSocket(this.opts.url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    this.#ws = ws;
    this.#session = undefined;
    this.#ready = new Promise<void>((resolve, reject) => {
      ws.on('open', () => {
        this.#lastRecvMs = Date.now();
        const id = this.#nextId++;
        this.#pending.set(id, {
          frame: { t: ClientMsg.Auth, id, key: this.opts.key },
          sentMs: Date.now(),
          resolve: (f) => {
            if (f.t === ServerMsg.AuthOk) {
              this.#session = f as AuthOkFrame;
              this.#attempt = 0;
              this.#onAuthenticated(first);
              resolve();
            } else {
              const e = f as ErrorFrame;
              const err = new AuthError(e.code, e.message);
              this.#closing = first || e.code === Reject.AUTH_INVALID_KEY;
              ws.close();
              reject(err);
              this.#emitError(err);
            }
          },
        });
        this.#send({ t: ClientMsg.Auth, id, key: this.opts.key, ...(this.opts.cancelOnDisconnect !== undefined && { cancelOnDisconnect: this.opts.cancelOnDisconnect }) });
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        this.#lastRecvMs = Date.now();
        if (!isBinary) return;
        let f: ServerFrame;
        try {
          f = decodeFrame(data) as ServerFrame;
        } catch (err) {
          this.#emitError(err);
          return;
        }
        this.#onFrame(f);
      });
      ws.on('error', (err) => {
        if (first && this.#session === undefined) reject(err);
        this.#emitError(err);
      });
      ws.on('close', (code: number, reason: Buffer) => {
        if (this.#ws !== ws) return;
        this.#session = undefined;
        this.emit('disconnect', { code, reason: reason.toString() });
        const reconnect = !this.#closing && this.opts.reconnect !== false;
        this.#failPending(reconnect);
        if (reconnect) this.#scheduleReconnect();
      });
    });
    // An unhandled rejection of a background reconnect attempt is reported through 'error' instead.
    if (!first) this.#ready.catch(() => {});
    return this.#ready;
  }

  #scheduleReconnect(): void {
    const min = this.opts.reconnectDelayMsMin ?? 50;
    const max = this.opts.reconnectDelayMsMax ?? 5_000;
    const delay = Math.min(max, min * 2 ** Math.min(this.#attempt++, 16)) * (0.5 + Math.random() / 2);
    setTimeout(() => {
      if (this.#closing) return;
      this.#open(false).catch(() => {});
    }, delay).unref();
  }

  /** After Auth: restore subscriptions, resend what had no answer. */
  #onAuthenticated(first: boolean): void {
    if (first) return;
    // Waiting requests (places kept for re-send, subscribes) go out again, in their original order.
    for (const p of [...this.#pending.values()]) {
      if (p.frame.t === ClientMsg.Auth) continue;
      if (p.frame.t !== ClientMsg.Place && p.frame.t !== ClientMsg.Subscribe) continue;
      if (p.frame.t === ClientMsg.Subscribe) continue; // re-issued below from the subscription tables
      this.#send(p.frame);
    }
    for (const [id, p] of this.#pending) if (p.frame.t === ClientMsg.Subscribe) this.#pending.delete(id) && p.resolve({ t: ServerMsg.Subscribed, id, channel: p.frame.channel });
    for (const sub of this.#private.values()) void this.#subscribePrivate(sub);
    for (const sub of this.#public.values()) {
      const b = sub.channel === Channel.l2 ? this.#books.get(sub.symbol) : undefined;
      if (b) b.resyncing = true;
      void this.#request({ t: ClientMsg.Subscribe, id: 0, channel: sub.channel, symbol: sub.symbol });
    }
    this.emit('reconnect', this.#session);
  }

  #onFrame(f: ServerFrame): void {
    switch (f.t) {
      case ServerMsg.Private:
        return this.#onPrivate(f);
      case ServerMsg.L2Delta:
      case ServerMsg.L2Snapshot:
        return this.#onL2(f);
      case ServerMsg.Quote:
      case ServerMsg.Trade:
      case ServerMsg.Candle: {
        const ch = f.t === ServerMsg.Quote ? Channel.bbo : f.t === ServerMsg.Trade ? Channel.trades : Channel.candles;
        const sub = this.#public.get(`${ch}/${f.symbol}`);
        if (sub) for (const h of sub.handlers) h(f);
        return;
      }
      case ServerMsg.Heartbeat:
        this.emit('heartbeat', f.ts);
        return;
      default: {
        const id = (f as { id?: number }).id ?? 0;
        if (f.t === ServerMsg.Subscribed) {
          for (const sub of this.#private.values()) {
            if (sub.awaiting !== id) continue;
            sub.awaiting = 0;
            const lastSeq = (f as SubscribedFrame).lastSeq;
            if (sub.fromNow && typeof lastSeq === 'number') {
              sub.lastSeq = lastSeq;
              sub.fromNow = false;
            }
          }
        }
        const p = id ? this.#pending.get(id) : undefined;
        if (p) {
          this.#pending.delete(id);
          p.resolve(f);
        } else if (f.t === ServerMsg.Error) {
          this.emit('serverError', f);
        }
      }
    }
  }

  #onPrivate(f: PrivateFrame): void {
    const sub = this.#private.get(f.account);
    if (!sub || sub.awaiting !== 0) return; // not subscribed, or frames of a subscription being replaced
    if (f.seq <= sub.lastSeq) return; // duplicate
    // seqs are increasing but not contiguous: the frame names its predecessor, which must be ours
    if (f.prevSeq !== sub.lastSeq) {
      this.emit('gap', { account: f.account, expected: sub.lastSeq, got: f.prevSeq, seq: f.seq });
      void this.#subscribePrivate(sub);
      return;
    }
    sub.lastSeq = f.seq;
    sub.onEvent({ account: f.account, seq: f.seq, event: f.event });
  }

  #onL2(f: L2SnapshotFrame | L2DeltaFrame): void {
    const b = this.#books.get(f.symbol);
    if (!b) return;
    if (f.t === ServerMsg.L2Snapshot) {
      const r = b.book.applySnapshot({ type: 'L2Snapshot', ts: f.ts, symbol: f.symbol, seq: f.seq, depth: f.depth, truncated: f.truncated, bids: f.bids, asks: f.asks, checksum: f.checksum });
      b.resyncing = false;
      b.snapshots++;
      if (r === 'ok') {
        b.ready();
        b.onUpdate?.(b.book);
        return;
      }
    } else {
      if (b.resyncing) return;
      const r = b.book.applyDelta({ type: 'L2Delta', ts: f.ts, symbol: f.symbol, seq: f.seq, bids: f.bids, asks: f.asks, checksum: f.checksum });
      if (r === 'ok') {
        b.onUpdate?.(b.book);
        return;
      }
      if (r === 'stale' || r === 'buffered') return;
    }
    // gap, checksum or garbage: ask for a fresh snapshot (the server keeps the topic; deltas until then are dropped)
    this.emit('resync', { symbol: f.symbol, problem: b.book.lastProblem });
    b.resyncing = true;
    this.#sendNoAnswer({ t: ClientMsg.Subscribe, id: this.#nextId++, channel: Channel.l2, symbol: f.symbol });
  }

  #tick(): void {
    const ws = this.#ws;
    if (!ws || !this.#session || ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    const hb = this.#session.heartbeatMs;
    if (now - this.#lastRecvMs > 3 * hb) {
      this.#emitError(new Error(`no frame from the server for ${now - this.#lastRecvMs} ms; reconnecting`));
      ws.terminate();
      return;
    }
    if (now - this.#lastSentMs >= hb / 2) this.#send({ t: ClientMsg.Ping, ts: now });
    const timeout = this.opts.requestTimeoutMs ?? 30_000;
    for (const [id, p] of this.#pending) {
      if (now - p.sentMs > timeout && p.frame.t !== ClientMsg.Auth) {
        this.#pending.delete(id);
        p.resolve({ t: ServerMsg.Error, id, req: p.frame.t, code: Reject.ACTOR_TIMEOUT, message: `no answer in ${timeout} ms` });
      }
    }
  }
}
