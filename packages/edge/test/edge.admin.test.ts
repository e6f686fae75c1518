/**
 * Admin and observability over the real gateway (`EmbeddedVenue` on a memory journal): risk limits
 * set over HTTP and enforced by the account's ledger, the engine's `/metrics` lines (journal
 * appends, latency and batch histograms, live entities), and one trace id on the edge's and the
 * engine's log lines of the same order.
 */
import { expect } from 'chai';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Reject } from '@bourse/schemas';
import { startEdge, type Edge } from '../src/index.js';
import { engineLogOptions } from '../src/engine-log.js';
import { DEMO_INSTRUMENTS } from '../src/cli/demo.js';
import { KEYS } from './helpers.js';

const engineDist = new URL(import.meta.url.includes('/dist/test/') ? '../../../engine/dist/src/' : '../../engine/dist/src/', import.meta.url);
const { openEmbeddedVenue, MemoryJournal } = (await import(new URL('host/embedded.js', engineDist).href)) as typeof import('../../engine/dist/src/host/embedded.js');

describe('edge - admin risk limits, engine metrics and trace ids (EmbeddedVenue)', function () {
  this.timeout(60_000);
  let venue: Awaited<ReturnType<typeof openEmbeddedVenue>>;
  let edge: Edge;
  const lines: Record<string, unknown>[] = [];
  const admin = { authorization: `Bearer ${KEYS.admin!.key}`, 'content-type': 'application/json' };
  const alice = { authorization: `Bearer ${KEYS.alice!.key}`, 'content-type': 'application/json' };
  const http = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const r = await fetch(`${edge.httpUrl}${path}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const perp = { symbol: 'BTC-PERP', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_400_000, leverage: 5 };

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const logger = pino({ level: 'debug' }, sink);
    venue = await openEmbeddedVenue({ journal: new MemoryJournal() }, { instruments: DEMO_INSTRUMENTS, tickMs: 0, projectionIntervalMs: 0, ...engineLogOptions(logger) });
    const ctx = { traceId: 'setup' };
    expect((await venue.openAccount('alice', ctx)).ok).to.equal(true);
    expect((await venue.deposit('alice', 'USD', 10_000_000_000_000, 'usd-alice', ctx)).ok).to.equal(true);
    edge = await startEdge({ gateway: venue, port: 0, keys: Object.values(KEYS), logger });
  });
  after(async () => {
    await edge?.close();
    await venue?.close();
  });

  it('edge/admin - PUT risk-limits is enforced by the ledger: an order past maxPositionQty gets RISK_POSITION_LIMIT, a smaller one trades', async () => {
    const before = await http('POST', '/v1/orders', alice, { ...perp, qty: 8 });
    expect(before.status, JSON.stringify(before.body)).to.equal(200);

    const set = await http('PUT', '/v1/admin/accounts/alice/risk-limits', admin, { maxPositionQty: 10, maxLeverage: 10, dailyLossLimit: 0 });
    expect(set.status, JSON.stringify(set.body)).to.equal(200);
    // open orders count against the limit: 8 resting + 5 > 10
    const over = await http('POST', '/v1/orders', alice, { ...perp, qty: 5 });
    expect(over.status).to.be.within(400, 499);
    expect(over.body.code, JSON.stringify(over.body)).to.equal(Reject.RISK_POSITION_LIMIT);
    const within = await http('POST', '/v1/orders', alice, { ...perp, qty: 2 });
    expect(within.status, JSON.stringify(within.body)).to.equal(200);
    // raising the limit lets the same order through
    const room = await http('PUT', '/v1/admin/accounts/alice/risk-limits', admin, { maxPositionQty: 50, maxLeverage: 10, dailyLossLimit: 0 });
    expect(room.status, JSON.stringify(room.body)).to.equal(200);
    const again = await http('POST', '/v1/orders', alice, { ...perp, qty: 5 });
    expect(again.status, JSON.stringify(again.body)).to.equal(200);
  });

  it('edge/admin - bad risk limits, an unknown account and a non-admin key get typed rejects', async () => {
    const bad = await http('PUT', '/v1/admin/accounts/alice/risk-limits', admin, { maxPositionQty: 10, maxLeverage: 1_000_000, dailyLossLimit: 0 });
    expect(bad.body.code, JSON.stringify(bad.body)).to.equal(Reject.RISK_INVALID_LIMITS);
    const neg = await http('PUT', '/v1/admin/accounts/alice/risk-limits', admin, { maxPositionQty: -1 });
    expect(neg.body.code, JSON.stringify(neg.body)).to.equal(Reject.PROTO_BAD_FIELD);
    const unknown = await http('PUT', '/v1/admin/accounts/nobody/risk-limits', admin, { maxPositionQty: 1 });
    expect(unknown.body.code, JSON.stringify(unknown.body)).to.equal(Reject.ADMIN_UNKNOWN_ACCOUNT);
    const role = await http('PUT', '/v1/admin/accounts/alice/risk-limits', alice, { maxPositionQty: 1000 });
    expect(role.status).to.equal(403);
    expect(role.body.code).to.equal(Reject.AUTH_FORBIDDEN_ROLE);
    // the venue still trades after all of that
    const ok = await http('POST', '/v1/orders', alice, { ...perp, qty: 1 });
    expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
  });

  it('edge/metrics - /metrics carries the journal append counters, latency and batch-size histograms, and live entities by kind', async () => {
    const text = await (await fetch(`${edge.httpUrl}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/^bourse_journal_appends_total\{node="embedded"\} (\d+)$/m)).to.be.greaterThan(0);
    expect(value(/^bourse_journal_records_total\{node="embedded"\} (\d+)$/m)).to.be.greaterThan(0);
    const count = value(/^bourse_journal_append_seconds_count\{node="embedded"\} (\d+)$/m);
    expect(count).to.equal(value(/^bourse_journal_appends_total\{node="embedded"\} (\d+)$/m));
    expect(value(/^bourse_journal_append_seconds_bucket\{node="embedded",le="\+Inf"\} (\d+)$/m)).to.equal(count);
    expect(value(/^bourse_journal_batch_records_count\{node="embedded"\} (\d+)$/m)).to.equal(count);
    expect(value(/^bourse_entities_live\{node="embedded",kind="book"\} (\d+)$/m)).to.be.greaterThan(0);
    expect(value(/^bourse_entities_live\{node="embedded",kind="account"\} (\d+)$/m)).to.be.greaterThan(0);
    expect(text).to.match(/^bourse_edge_orders_total\{kind="place"\} \d+$/m);
  });

  it('edge/logs - an order carries one trace id from the edge line to the engine line', async () => {
    const r = await http('POST', '/v1/orders', alice, { ...perp, qty: 1, price: 6_300_000 });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    const traceId = r.body.traceId as string;
    expect(traceId).to.be.a('string').and.not.empty;
    const mine = lines.filter((l) => l.traceId === traceId);
    expect(mine.some((l) => l.side !== 'engine' && l.msg === 'http place'), JSON.stringify(mine)).to.equal(true);
    const engine = mine.find((l) => l.side === 'engine' && l.msg === 'order accepted');
    expect(engine, JSON.stringify(mine)).to.not.equal(undefined);
    expect(engine!.orderId).to.equal(r.body.orderId);
    // a rejected order is logged on the engine side with its code, under the edge's trace id
    const from = lines.length;
    const rej = await http('POST', '/v1/orders', alice, { ...perp, qty: 60, price: 6_300_000 });
    expect(rej.body.code).to.equal(Reject.RISK_POSITION_LIMIT);
    const fresh = lines.slice(from);
    const edgeLine = fresh.find((l) => l.side !== 'engine' && l.msg === 'http place');
    const engineLine = fresh.find((l) => l.side === 'engine' && l.msg === 'place rejected');
    expect(engineLine, JSON.stringify(fresh)).to.deep.include({ code: Reject.RISK_POSITION_LIMIT, traceId: edgeLine?.traceId });
  });
});

describe('edge - POST /v1/admin/instruments (EmbeddedVenue)', function () {
  this.timeout(60_000);
  let venue: Awaited<ReturnType<typeof openEmbeddedVenue>>;
  let edge: Edge;
  const admin = { authorization: `Bearer ${KEYS.admin!.key}`, 'content-type': 'application/json' };
  const alice = { authorization: `Bearer ${KEYS.alice!.key}`, 'content-type': 'application/json' };
  const bob = { authorization: `Bearer ${KEYS.bob!.key}`, 'content-type': 'application/json' };
  const http = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const r = await fetch(`${edge.httpUrl}${path}`, { method, headers, ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> & unknown[] };
  };
  const SOL = { symbol: 'SOL-USD', mode: 'cash', base: 'SOL', quote: 'USD', tickSize: 10, lotSize: 1, makerFeeBps: 0, takerFeeBps: 20 };

  before(async () => {
    venue = await openEmbeddedVenue({ journal: new MemoryJournal() }, { instruments: DEMO_INSTRUMENTS, tickMs: 0, projectionIntervalMs: 0 });
    const ctx = { traceId: 'setup' };
    for (const a of ['alice', 'bob']) expect((await venue.openAccount(a, ctx)).ok).to.equal(true);
    expect((await venue.deposit('alice', 'USD', 1_000_000, 'usd-alice', ctx)).ok).to.equal(true);
    expect((await venue.deposit('bob', 'SOL', 1_000, 'sol-bob', ctx)).ok).to.equal(true);
    edge = await startEdge({ gateway: venue, port: 0, keys: Object.values(KEYS), logLevel: 'silent' });
  });
  after(async () => {
    await edge?.close();
    await venue?.close();
  });

  it('edge/admin - an admin adds an instrument: listed, tradable over HTTP at once (fills settle), its depth served; the identical definition again gets the same answer', async () => {
    expect((await http('POST', '/v1/orders', alice, { symbol: 'SOL-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 1 })).body.code).to.equal(Reject.ORDER_UNKNOWN_INSTRUMENT);
    const added = await http('POST', '/v1/admin/instruments', admin, SOL);
    expect(added.status, JSON.stringify(added.body)).to.equal(200);
    expect(added.body.instrument).to.deep.include({ ...SOL, minQty: 1, maxLeverage: 1 });
    expect((await http('GET', '/v1/instruments', alice)).body.map((i) => (i as { symbol: string }).symbol)).to.include('SOL-USD');
    expect((await http('GET', '/v1/instruments/SOL-USD', alice)).body).to.deep.equal(added.body.instrument);
    expect((await http('POST', '/v1/admin/instruments', admin, SOL)).body).to.deep.equal(added.body);

    const sell = await http('POST', '/v1/orders', bob, { symbol: 'SOL-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 500, qty: 10 });
    expect(sell.status, JSON.stringify(sell.body)).to.equal(200);
    const buy = await http('POST', '/v1/orders', alice, { symbol: 'SOL-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 500, qty: 4 });
    expect(buy.status, JSON.stringify(buy.body)).to.equal(200);
    await venue.settle();
    const held = (a: string) => Object.fromEntries([...(venue.node.inspect(`account/${a}`)?.state as { s: { balances: Map<string, { available: number; held: number }> } }).s.balances].map(([k, b]) => [k, b.available + b.held]));
    // 4 SOL at 500: alice pays 2000 + 4 fee (20 bps)
    expect(held('alice')).to.deep.equal({ USD: 1_000_000 - 2_004, SOL: 4 });
    expect(held('bob')).to.deep.equal({ SOL: 996, USD: 2_000 });
    const depth = await http('GET', '/v1/instruments/SOL-USD/depth?levels=5', alice);
    expect(depth.status).to.equal(200);
    expect(depth.body).to.deep.include({ asks: [[500, 6]], bids: [] });
  });

  it('edge/admin - bad definitions get ADMIN_INVALID_INSTRUMENT (422), another spec for a known symbol ADMIN_INSTRUMENT_EXISTS (409), a non-admin key 403, no key 401', async () => {
    const bad: unknown[] = [
      { ...SOL, symbol: 'sol usd' }, { ...SOL, tickSize: 0 }, { ...SOL, lotSize: -1 }, { ...SOL, tickSize: '10' }, { ...SOL, mode: 'option' },
      { symbol: 'SOL2-USD' }, { ...SOL, symbol: 'SOL2-USD', tickSzie: 1 }, { ...SOL, symbol: 'SOL2-USD', quote: 'SOL' },
    ];
    for (const b of bad) {
      const r = await http('POST', '/v1/admin/instruments', admin, b);
      expect(r.status, JSON.stringify(b)).to.equal(422);
      expect(r.body.code, JSON.stringify(r.body)).to.equal(Reject.ADMIN_INVALID_INSTRUMENT);
      expect(r.body.name).to.equal('ADMIN_INVALID_INSTRUMENT');
    }
    for (const body of ['[1]', '"x"', 'null']) expect((await http('POST', '/v1/admin/instruments', admin, body)).body.code).to.equal(Reject.PROTO_BAD_FIELD);
    const clash = await http('POST', '/v1/admin/instruments', admin, { ...SOL, symbol: 'BTC-USD', base: 'BTC' });
    expect(clash.status).to.equal(409);
    expect(clash.body.code).to.equal(Reject.ADMIN_INSTRUMENT_EXISTS);
    await http('POST', '/v1/admin/instruments', admin, SOL);
    const changed = await http('POST', '/v1/admin/instruments', admin, { ...SOL, takerFeeBps: 30 });
    expect(changed.status).to.equal(409);
    expect(changed.body.code).to.equal(Reject.ADMIN_INSTRUMENT_EXISTS);
    const role = await http('POST', '/v1/admin/instruments', alice, { ...SOL, symbol: 'SOL3-USD' });
    expect(role.status).to.equal(403);
    expect(role.body.code).to.equal(Reject.AUTH_FORBIDDEN_ROLE);
    const anon = await http('POST', '/v1/admin/instruments', { 'content-type': 'application/json' }, { ...SOL, symbol: 'SOL3-USD' });
    expect(anon.status).to.equal(401);
    const symbols = venue.instruments().map((i) => i.symbol);
    expect(symbols).to.not.include('SOL2-USD');
    expect(symbols).to.not.include('SOL3-USD');
    expect(venue.instruments().find((i) => i.symbol === 'SOL-USD')?.takerFeeBps).to.equal(20);
  });
});
