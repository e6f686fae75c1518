import { expect } from 'chai';
import { Reject } from '@bourse/schemas';
import { BourseClient } from '@bourse/client';
import { world, KEYS, type World } from './helpers.js';

describe('edge - HTTP JSON API and metrics', function () {
  this.timeout(15_000);
  let w: World;
  const call = async (method: string, path: string, key?: string, body?: unknown) => {
    const r = await fetch(`${w.edge.httpUrl}${path}`, {
      method,
      headers: { ...(key && { authorization: `Bearer ${key}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await r.text();
    return { status: r.status, body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text };
  };
  beforeEach(async () => {
    w = await world();
  });
  afterEach(() => w.close());

  it('edge - GET /health and GET /v1/instruments answer without a key', async () => {
    expect(await call('GET', '/health')).to.deep.include({ status: 200 });
    const r = await call('GET', '/v1/instruments');
    expect(r.status).to.equal(200);
    expect(r.body.map((i: { symbol: string }) => i.symbol)).to.deep.equal(['BTC-USD']);
    expect((await call('GET', '/v1/instruments/NOPE')).body.code).to.equal(Reject.ORDER_UNKNOWN_INSTRUMENT);
    expect((await call('GET', '/v1/nothing')).status).to.equal(404);
  });

  it('edge - orders over HTTP: place, depth snapshot, cancel; role and account checks', async () => {
    const placed = await call('POST', '/v1/orders', KEYS.alice!.key, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_000, qty: 2, clientOrderId: 'h-1' });
    expect(placed.status).to.equal(200);
    expect(placed.body.account).to.equal('alice');
    const depth = await call('GET', '/v1/instruments/BTC-USD/depth?levels=5');
    expect(depth.body.bids).to.deep.equal([[6_400_000, 2]]);
    const again = await call('POST', '/v1/orders', KEYS.alice!.key, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_000, qty: 2, clientOrderId: 'h-1' });
    expect(again.body.orderId).to.equal(placed.body.orderId);
    expect((await call('DELETE', `/v1/orders/${placed.body.orderId}?symbol=BTC-USD`, KEYS.alice!.key)).status).to.equal(200);
    expect((await call('GET', '/v1/instruments/BTC-USD/depth')).body.bids).to.deep.equal([]);
    // refusals
    expect(await call('POST', '/v1/orders', undefined, { symbol: 'BTC-USD' })).to.deep.include({ status: 401 });
    expect((await call('POST', '/v1/orders', 'alice.wrong', {})).body.code).to.equal(Reject.AUTH_INVALID_KEY);
    const analyst = await call('POST', '/v1/orders', KEYS.analyst!.key, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_000, qty: 2 });
    expect([analyst.status, analyst.body.code]).to.deep.equal([403, Reject.AUTH_FORBIDDEN_ROLE]);
    const other = await call('GET', '/v1/accounts/bob/balances', KEYS.alice!.key);
    expect([other.status, other.body.code]).to.deep.equal([403, Reject.AUTH_ACCOUNT_NOT_PERMITTED]);
    const bad = await call('POST', '/v1/orders', KEYS.alice!.key, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 'cheap', qty: 2 });
    expect([bad.status, bad.body.code]).to.deep.equal([400, Reject.PROTO_BAD_FIELD]);
    const garbage = await call('POST', '/v1/orders', KEYS.alice!.key, '{not json');
    expect([garbage.status, garbage.body.code]).to.deep.equal([400, Reject.PROTO_MALFORMED_FRAME]);
    const risk = await call('POST', '/v1/orders', KEYS.alice!.key, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_000, qty: 10_001 });
    expect([risk.status, risk.body.code]).to.deep.equal([422, Reject.ORDER_QTY_ABOVE_MAX]);
  });

  it('edge - admin: accounts, deposits and withdrawals, halt and resume, API keys', async () => {
    const admin = KEYS.admin!.key;
    expect((await call('POST', '/v1/admin/accounts', admin, { account: 'dave' })).status).to.equal(200);
    expect((await call('POST', '/v1/admin/accounts/dave/deposits', admin, { asset: 'USD', amount: 1_000_000, transferId: 't1' })).status).to.equal(200);
    expect((await call('POST', '/v1/admin/accounts/dave/withdrawals', admin, { asset: 'USD', amount: 400_000, transferId: 't2' })).status).to.equal(200);
    const over = await call('POST', '/v1/admin/accounts/dave/withdrawals', admin, { asset: 'USD', amount: 700_000, transferId: 't3' });
    expect([over.status, over.body.code]).to.deep.equal([422, Reject.LEDGER_INSUFFICIENT_AVAILABLE]);
    expect((await call('GET', '/v1/accounts/dave/balances', admin)).body[0]).to.deep.include({ asset: 'USD', available: 600_000 });
    expect((await call('POST', '/v1/admin/accounts', KEYS.alice!.key, { account: 'eve' })).body.code).to.equal(Reject.AUTH_FORBIDDEN_ROLE);
    // halt: orders are refused with BOOK_HALTED until resume
    expect((await call('POST', '/v1/admin/instruments/BTC-USD/halt', admin)).status).to.equal(200);
    const order = { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_000, qty: 1 };
    expect((await call('POST', '/v1/orders', KEYS.alice!.key, order)).body.code).to.equal(Reject.BOOK_HALTED);
    expect((await call('POST', '/v1/admin/instruments/BTC-USD/resume', admin)).status).to.equal(200);
    expect((await call('POST', '/v1/orders', KEYS.alice!.key, order)).status).to.equal(200);
    // risk limits: not supported by this gateway (501), and said so
    expect((await call('PUT', '/v1/admin/accounts/dave/risk-limits', admin, { maxPositionQty: 10 })).status).to.equal(501);
    // API keys: create, use over WebSocket, list (no secrets), revoke
    const created = await call('POST', '/v1/admin/keys', admin, { role: 'trader', accounts: ['dave'] });
    expect(created.status).to.equal(200);
    const c = await BourseClient.connect({ url: w.edge.url, key: created.body.key, reconnect: false });
    expect(c.session.accounts).to.deep.equal(['dave']);
    await c.close();
    const list = await call('GET', '/v1/admin/keys', admin);
    expect(JSON.stringify(list.body)).to.not.include(created.body.key.split('.')[1]);
    expect(list.body.some((k: { keyId: string }) => k.keyId === created.body.keyId)).to.equal(true);
    expect((await call('DELETE', `/v1/admin/keys/${created.body.keyId}`, admin)).status).to.equal(200);
    expect((await call('GET', '/v1/accounts/dave/balances', created.body.key)).body.code).to.equal(Reject.AUTH_INVALID_KEY);
  });

  it('edge - GET /metrics is Prometheus text with orders, rejects by code, ack latency and sessions', async () => {
    const c = await BourseClient.connect({ url: w.edge.url, key: KEYS.alice!.key, reconnect: false });
    await c.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_000, qty: 1 });
    await c.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_001, qty: 1 });
    const m = await call('GET', '/metrics');
    expect(m.status).to.equal(200);
    expect(m.body).to.include('bourse_edge_orders_total{kind="place"} 2');
    expect(m.body).to.include(`bourse_edge_rejects_total{code="${Reject.ORDER_PRICE_NOT_TICK_MULTIPLE}",name="ORDER_PRICE_NOT_TICK_MULTIPLE"} 1`);
    expect(m.body).to.include('bourse_edge_ack_latency_seconds_count 2');
    expect(m.body).to.include('bourse_edge_ws_sessions 1');
    await c.close();
  });
});

import { statusOf } from '../src/http.js';
describe('edge - HTTP status per reject code', () => {
  it('edge - throttles answer 429, overload and an unavailable engine 503, bad input 4xx', () => {
    expect(statusOf(Reject.THROTTLE_ORDERS)).to.equal(429);
    expect(statusOf(Reject.THROTTLE_MESSAGES)).to.equal(429);
    expect(statusOf(Reject.THROTTLE_SYSTEM_BUSY)).to.equal(503);
    expect(statusOf(Reject.ACTOR_UNAVAILABLE)).to.equal(503);
    expect(statusOf(Reject.AUTH_INVALID_KEY)).to.equal(401);
    expect(statusOf(Reject.AUTH_FORBIDDEN_ROLE)).to.equal(403);
    expect(statusOf(Reject.ORDER_UNKNOWN_INSTRUMENT)).to.equal(404);
    expect(statusOf(Reject.PROTO_MALFORMED_FRAME)).to.equal(400);
    expect(statusOf(Reject.RISK_INSUFFICIENT_BALANCE)).to.equal(422);
  });
});
