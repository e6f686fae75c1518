/**
 * The HTTP JSON API: `GET /health`, `GET /metrics`, and `/v1` (schemas/PROTOCOL.md "HTTP API" lists
 * every route). Keys go in `Authorization: Bearer <key>` (or `X-API-Key`). Errors are
 * `{ "code": <reject code>, "name": "<REJECT_NAME>", "message": "..." }` with an HTTP status derived
 * from the code (400 syntax, 401 key, 403 role/account, 404 unknown, 409 conflict, 429 throttle, 422 refused, 501
 * not supported by this gateway, 503 venue unavailable).
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { Reject, candleIntervals, rejectName, roles } from '@bourse/schemas';
import type { CandleInterval, Instrument, RejectCode, Role, RiskLimits, TradingStatus } from '@bourse/schemas';
import type { GatewayExtras, GatewayResult, OrderRequest, VenueGateway } from './gateway.js';
import { accountFor, canTrade, isAdmin, mayUseAccount, type KeyStore, type Principal } from './auth.js';
import type { EdgeMetrics } from './metrics.js';
import { isProblem, validateFrame } from './validate.js';
import { ClientMsg } from '@bourse/schemas';

export interface HttpContext {
  readonly gateway: VenueGateway & GatewayExtras;
  readonly keys: KeyStore;
  readonly metrics: EdgeMetrics;
  readonly log: Logger;
  readonly instrumentOf: (symbol: string) => Instrument | undefined;
  /** The gateway's instrument list changed (one was defined through this edge): drop cached lookups. */
  readonly instrumentsChanged?: () => void;
  readonly nextTrace: () => string;
  readonly sessionCount: () => number;
  readonly l2Depth: number;
}

const BODY_BYTES_MAX = 64 * 1024;

class HttpError extends Error {
  constructor(readonly status: number, readonly code: RejectCode, message: string) {
    super(message);
  }
}

/** HTTP status for a reject code: throttles 429, overload 503 (both tell a client to back off), bad input 4xx. */
export function statusOf(code: RejectCode): number {
  if (code === Reject.AUTH_INVALID_KEY || code === Reject.PROTO_NOT_AUTHENTICATED) return 401;
  if (code === Reject.AUTH_FORBIDDEN_ROLE || code === Reject.AUTH_ACCOUNT_NOT_PERMITTED) return 403;
  if (code === Reject.ADMIN_INSTRUMENT_EXISTS) return 409;
  if (code === Reject.THROTTLE_ORDERS || code === Reject.THROTTLE_MESSAGES) return 429;
  if (code === Reject.PROTO_FRAME_TOO_LARGE) return 413;
  if (code < 200) return 400;
  if (code === Reject.ORDER_UNKNOWN_INSTRUMENT || code === Reject.ADMIN_UNKNOWN_ACCOUNT || code === Reject.BOOK_UNKNOWN_ORDER) return 404;
  if (code === Reject.ACTOR_UNAVAILABLE || code === Reject.ACTOR_TIMEOUT || code === Reject.THROTTLE_SYSTEM_BUSY) return 503;
  return 422;
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden', 404: '404 Not Found', 409: '409 Conflict',
  405: '405 Method Not Allowed', 413: '413 Payload Too Large', 422: '422 Unprocessable Entity', 429: '429 Too Many Requests',
  500: '500 Internal Server Error', 501: '501 Not Implemented', 503: '503 Service Unavailable',
};

interface Req {
  readonly method: string;
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly body: unknown;
  readonly principal: Principal | undefined;
}

type Handler = (r: Req) => Promise<unknown> | unknown;
interface Route {
  readonly method: string;
  readonly re: RegExp;
  readonly handler: Handler;
}

const fail = (code: RejectCode, message: string, status = statusOf(code)): never => {
  throw new HttpError(status, code, message);
};

const must = (p: Principal | undefined): Principal => p ?? fail(Reject.PROTO_NOT_AUTHENTICATED, 'send an API key: Authorization: Bearer <key>');

const intParam = (q: URLSearchParams, k: string, dflt: number): number => {
  const v = q.get(k);
  if (v === null || v === '') return dflt;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : fail(Reject.PROTO_BAD_FIELD, `${k}: non-negative integer`);
};

const obj = (b: unknown): Record<string, unknown> =>
  typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>) : fail(Reject.PROTO_BAD_FIELD, 'body: a JSON object');

const unwrap = <T extends object>(r: GatewayResult<T>): { ok: true } & T => (r.ok ? r : fail(r.code, r.message));

export function installHttp(app: TemplatedApp, ctx: HttpContext): void {
  const { gateway, keys, metrics, log } = ctx;
  const reads = () => gateway.reads ?? fail(Reject.ACTOR_UNAVAILABLE, 'no read models behind this gateway');
  const extras = gateway as GatewayExtras;

  const readable = (p: Principal | undefined, account: string): Principal => {
    const k = must(p);
    if (!mayUseAccount(k, account)) fail(Reject.AUTH_ACCOUNT_NOT_PERMITTED, `key ${k.keyId} may not read account ${account}`);
    return k;
  };
  const trader = (p: Principal | undefined, named: unknown): { k: Principal; account: string } => {
    const k = must(p);
    if (!canTrade(k)) fail(Reject.AUTH_FORBIDDEN_ROLE, `role ${k.role} cannot enter orders`);
    if (named !== undefined && typeof named !== 'string') fail(Reject.PROTO_BAD_FIELD, 'account: string');
    const account = accountFor(k, named as string | undefined) ?? fail(Reject.AUTH_ACCOUNT_NOT_PERMITTED, 'name an account: the key has no default account');
    if (!mayUseAccount(k, account)) fail(Reject.AUTH_ACCOUNT_NOT_PERMITTED, `key ${k.keyId} may not act for account ${account}`);
    if (!k.orders.take(Date.now())) fail(Reject.THROTTLE_ORDERS, `more than ${k.ordersPerSec} orders/s`);
    return { k, account };
  };
  const admin = (p: Principal | undefined): Principal => {
    const k = must(p);
    return isAdmin(k) ? k : fail(Reject.AUTH_FORBIDDEN_ROLE, `role ${k.role} is not admin`);
  };
  const instrument = (symbol: string): Instrument => ctx.instrumentOf(symbol) ?? fail(Reject.ORDER_UNKNOWN_INSTRUMENT, `unknown instrument ${symbol}`);
  const timed = async <T extends object>(p: Promise<GatewayResult<T>>) => {
    const t0 = performance.now();
    try {
      const r = await p;
      metrics.ackLatency(performance.now() - t0);
      return unwrap(r);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      log.error({ err }, 'gateway command failed');
      return fail(Reject.ACTOR_UNAVAILABLE, 'venue unavailable; retry with the same clientOrderId');
    }
  };
  const range = (q: URLSearchParams) => ({ from: intParam(q, 'from', 0), to: intParam(q, 'to', Date.now() + 1), limit: intParam(q, 'limit', 100) });
  const str = (o: Record<string, unknown>, k: string): string =>
    typeof o[k] === 'string' && (o[k] as string).length > 0 && (o[k] as string).length <= 64 ? (o[k] as string) : fail(Reject.PROTO_BAD_FIELD, `${k}: string of 1..64 characters`);
  const posInt = (o: Record<string, unknown>, k: string): number =>
    Number.isSafeInteger(o[k]) && (o[k] as number) > 0 ? (o[k] as number) : fail(Reject.PROTO_BAD_FIELD, `${k}: positive safe integer`);

  const routes: Route[] = [];
  const route = (method: string, path: string, handler: Handler) => {
    routes.push({ method, re: new RegExp('^' + path.replace(/:[a-zA-Z]+/g, '([^/]+)') + '/?$'), handler });
  };

  // ---- public
  route('get', '/health', () => ({ status: 'ok', sessions: ctx.sessionCount(), instruments: gateway.instruments().length }));
  route('get', '/v1/instruments', () => gateway.instruments());
  route('get', '/v1/instruments/:symbol', (r) => instrument(r.params[0]!));
  route('get', '/v1/instruments/:symbol/depth', (r) => {
    const symbol = instrument(r.params[0]!).symbol;
    return gateway.l2Snapshot(symbol, Math.min(intParam(r.query, 'levels', 50), ctx.l2Depth)) ?? fail(Reject.ORDER_UNKNOWN_INSTRUMENT, `no book for ${symbol}`);
  });
  route('get', '/v1/instruments/:symbol/trades', async (r) => {
    const symbol = instrument(r.params[0]!).symbol;
    const { from, to, limit } = range(r.query);
    return (await reads().trades({ instrument: symbol }, from, to, { limit })).items.map(({ takerAccount: _t, makerAccount: _m, takerOrderId: _to, makerOrderId: _mo, takerFee: _tf, makerFee: _mf, ...pub }) => pub);
  });
  route('get', '/v1/instruments/:symbol/candles', async (r) => {
    const symbol = instrument(r.params[0]!).symbol;
    const interval = (r.query.get('interval') ?? '1m') as CandleInterval;
    if (!candleIntervals.includes(interval)) fail(Reject.PROTO_BAD_FIELD, `interval: one of ${candleIntervals.join(', ')}`);
    const { from, to } = range(r.query);
    return reads().candles(symbol, interval, from, to);
  });

  // ---- accounts (the key must cover the account)
  route('get', '/v1/accounts/:account/balances', (r) => (readable(r.principal, r.params[0]!), reads().balancesByAccount(r.params[0]!)));
  route('get', '/v1/accounts/:account/positions', (r) => (readable(r.principal, r.params[0]!), reads().positionsByAccount(r.params[0]!, { open: r.query.get('open') === 'true' })));
  route('get', '/v1/accounts/:account/pnl', async (r) => {
    readable(r.principal, r.params[0]!);
    const positions = await reads().positionsByAccount(r.params[0]!);
    const realizedPnl: Record<string, number> = {};
    for (const p of positions) realizedPnl[p.collateral] = (realizedPnl[p.collateral] ?? 0) + p.realizedPnl;
    return { account: r.params[0]!, realizedPnl, positions: positions.map((p) => ({ instrument: p.instrument, qty: p.qty, entryCost: p.entryCost, realizedPnl: p.realizedPnl })) };
  });
  route('get', '/v1/accounts/:account/orders', async (r) => {
    readable(r.principal, r.params[0]!);
    return (await reads().ordersByAccount(r.params[0]!, { open: r.query.get('open') === 'true', limit: intParam(r.query, 'limit', 100) })).items;
  });
  route('get', '/v1/accounts/:account/trades', async (r) => {
    readable(r.principal, r.params[0]!);
    const { from, to, limit } = range(r.query);
    return (await reads().trades({ account: r.params[0]! }, from, to, { limit })).items;
  });

  // ---- orders, for simple users (the same checks as the WebSocket Place)
  route('post', '/v1/orders', async (r) => {
    must(r.principal);
    const b = obj(r.body);
    const f = validateFrame({ ...b, t: ClientMsg.Place, id: 1 });
    if (isProblem(f)) fail(f.code, f.message);
    const { account } = trader(r.principal, b.account);
    const symbol = instrument(b.symbol as string).symbol;
    const { t: _t, id: _id, account: _a, ...req } = f as unknown as Record<string, unknown>;
    metrics.order('place');
    const traceId = ctx.nextTrace();
    log.debug({ traceId, account, ...req }, 'http place');
    const res = await timed(gateway.placeOrder(account, { ...(req as unknown as OrderRequest), symbol }, { traceId }));
    return { account, orderId: res.orderId, ...(typeof b.clientOrderId === 'string' && { clientOrderId: b.clientOrderId }), traceId };
  });
  route('delete', '/v1/orders/:orderId', async (r) => {
    const orderId = Number(r.params[0]);
    if (!Number.isSafeInteger(orderId) || orderId <= 0) fail(Reject.PROTO_BAD_FIELD, 'orderId: positive safe integer');
    const symbol = instrument(r.query.get('symbol') ?? '').symbol;
    const { account } = trader(r.principal, r.query.get('account') ?? undefined);
    metrics.order('cancel');
    const traceId = ctx.nextTrace();
    await timed(gateway.cancelOrder(account, symbol, orderId, { traceId }));
    return { account, orderId, cancelled: true, traceId };
  });

  // ---- admin
  route('get', '/v1/admin/instruments', (r) => (admin(r.principal), gateway.instruments()));
  route('post', '/v1/admin/instruments', async (r) => {
    admin(r.principal);
    if (!extras.addInstrument) fail(Reject.ADMIN_INVALID_INSTRUMENT, 'this gateway cannot add instruments at run time', 501);
    const { instrument } = await timed(extras.addInstrument!(obj(r.body), { traceId: ctx.nextTrace() }));
    ctx.instrumentsChanged?.();
    return { instrument };
  });
  const status = (st: TradingStatus) => async (r: Req) => {
    admin(r.principal);
    const symbol = instrument(r.params[0]!).symbol;
    await timed(gateway.setTradingStatus(symbol, st, { traceId: ctx.nextTrace() }));
    return { symbol, status: st };
  };
  route('post', '/v1/admin/instruments/:symbol/halt', status('halted'));
  route('post', '/v1/admin/instruments/:symbol/resume', status('open'));
  route('post', '/v1/admin/instruments/:symbol/close', status('closed'));
  route('post', '/v1/admin/accounts', async (r) => {
    admin(r.principal);
    const account = str(obj(r.body), 'account');
    await timed(gateway.openAccount(account, { traceId: ctx.nextTrace() }));
    return { account };
  });
  const transfer = (kind: 'deposit' | 'withdraw') => async (r: Req) => {
    admin(r.principal);
    const b = obj(r.body);
    const account = r.params[0]!;
    const asset = str(b, 'asset');
    const amount = posInt(b, 'amount');
    const transferId = str(b, 'transferId');
    const traceId = ctx.nextTrace();
    await timed(kind === 'deposit' ? gateway.deposit(account, asset, amount, transferId, { traceId }) : gateway.withdraw(account, asset, amount, transferId, { traceId }));
    return { account, asset, amount, transferId };
  };
  route('post', '/v1/admin/accounts/:account/deposits', transfer('deposit'));
  route('post', '/v1/admin/accounts/:account/withdrawals', transfer('withdraw'));
  route('put', '/v1/admin/accounts/:account/risk-limits', async (r) => {
    admin(r.principal);
    const b = obj(r.body);
    const limits: RiskLimits = { maxPositionQty: Number(b.maxPositionQty ?? 0), maxLeverage: Number(b.maxLeverage ?? 0), dailyLossLimit: Number(b.dailyLossLimit ?? 0) };
    for (const [k, v] of Object.entries(limits)) if (!Number.isSafeInteger(v) || v < 0) fail(Reject.PROTO_BAD_FIELD, `${k}: non-negative integer`);
    if (!extras.setRiskLimits) fail(Reject.RISK_INVALID_LIMITS, 'this gateway cannot set risk limits yet', 501);
    await timed(extras.setRiskLimits!(r.params[0]!, limits, { traceId: ctx.nextTrace() }));
    return { account: r.params[0]!, limits };
  });
  route('get', '/v1/admin/keys', (r) => (admin(r.principal), keys.list()));
  route('post', '/v1/admin/keys', (r) => {
    admin(r.principal);
    const b = obj(r.body);
    if (!roles.includes(b.role as Role)) fail(Reject.PROTO_BAD_FIELD, `role: one of ${roles.join(', ')}`);
    const accounts = b.accounts ?? [];
    if (!Array.isArray(accounts) || !accounts.every((a) => typeof a === 'string' && a.length > 0 && a.length <= 64)) fail(Reject.PROTO_BAD_FIELD, 'accounts: array of strings');
    const rate = (k: string) => (b[k] === undefined ? undefined : Number.isSafeInteger(b[k]) && (b[k] as number) >= 0 ? (b[k] as number) : fail(Reject.PROTO_BAD_FIELD, `${k}: non-negative integer`));
    const ordersPerSec = rate('ordersPerSec');
    const messagesPerSec = rate('messagesPerSec');
    const created = keys.create({
      role: b.role as Role, accounts: accounts as string[],
      ...(ordersPerSec !== undefined && { ordersPerSec }), ...(messagesPerSec !== undefined && { messagesPerSec }),
      ...(typeof b.label === 'string' && { label: b.label }),
    });
    log.info({ keyId: created.keyId, role: b.role }, 'api key created');
    return created;
  });
  route('delete', '/v1/admin/keys/:keyId', (r) => {
    admin(r.principal);
    if (!keys.revoke(decodeURIComponent(r.params[0]!))) fail(Reject.AUTH_INVALID_KEY, 'no such key', 404);
    return { revoked: r.params[0]! };
  });

  // ---- the dispatcher
  const respond = (res: HttpResponse, aborted: { v: boolean }, status: number, body: string, contentType = 'application/json') => {
    if (aborted.v) return;
    res.cork(() => res.writeStatus(STATUS_TEXT[status] ?? `${status}`).writeHeader('content-type', contentType).end(body));
  };

  const handle = async (res: HttpResponse, aborted: { v: boolean }, method: string, url: string, query: string, key: string, rawBody: Buffer | undefined) => {
    try {
      const principal = key ? keys.verify(key) ?? fail(Reject.AUTH_INVALID_KEY, 'invalid API key') : undefined;
      if (principal && !principal.messages.take(Date.now())) fail(Reject.THROTTLE_MESSAGES, `more than ${principal.messagesPerSec} requests/s`);
      let matchedPath = false;
      for (const rt of routes) {
        const m = rt.re.exec(url);
        if (!m) continue;
        matchedPath = true;
        if (rt.method !== method) continue;
        let body: unknown = undefined;
        if (rawBody && rawBody.length > 0) {
          try {
            body = JSON.parse(rawBody.toString('utf8'));
          } catch {
            fail(Reject.PROTO_MALFORMED_FRAME, 'body: not JSON');
          }
        }
        const params = m.slice(1).map((p) => decodeURIComponent(p));
        const out = await rt.handler({ method, params, query: new URLSearchParams(query), body, principal });
        return respond(res, aborted, 200, JSON.stringify(out));
      }
      return matchedPath ? fail(Reject.PROTO_UNKNOWN_MESSAGE, `${method.toUpperCase()} not allowed on ${url}`, 405) : fail(Reject.PROTO_UNKNOWN_MESSAGE, `no route ${url}`, 404);
    } catch (err) {
      if (err instanceof HttpError) {
        metrics.reject(err.code);
        return respond(res, aborted, err.status, JSON.stringify({ code: err.code, name: rejectName(err.code), message: err.message }));
      }
      log.error({ err, url }, 'http handler failed');
      return respond(res, aborted, 500, JSON.stringify({ code: 0, name: 'INTERNAL', message: 'internal error' }));
    }
  };

  app.get('/metrics', (res) => {
    metrics.httpRequests++;
    let extra = '';
    try {
      extra = extras.metricsText?.() ?? '';
    } catch (err) {
      log.warn({ err }, 'gateway metricsText failed');
    }
    res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', 'text/plain; version=0.0.4').end(metrics.render(extra)));
  });

  app.any('/*', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++;
    // Everything from `req` must be read now: it is only valid until this callback returns.
    const method = req.getMethod();
    const url = req.getUrl();
    const query = req.getQuery() ?? '';
    const authz = req.getHeader('authorization');
    const key = authz.startsWith('Bearer ') ? authz.slice(7).trim() : req.getHeader('x-api-key');
    const aborted = { v: false };
    res.onAborted(() => {
      aborted.v = true;
    });
    if (method === 'get' || method === 'head' || method === 'options') return void handle(res, aborted, method, url, query, key, undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    res.onData((chunk, isLast) => {
      size += chunk.byteLength;
      if (size > BODY_BYTES_MAX) tooBig = true;
      else chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      if (tooBig) {
        metrics.reject(Reject.PROTO_FRAME_TOO_LARGE);
        return respond(res, aborted, 413, JSON.stringify({ code: Reject.PROTO_FRAME_TOO_LARGE, name: 'PROTO_FRAME_TOO_LARGE', message: `body over ${BODY_BYTES_MAX} bytes` }));
      }
      void handle(res, aborted, method, url, query, key, Buffer.concat(chunks));
    });
  });
}

