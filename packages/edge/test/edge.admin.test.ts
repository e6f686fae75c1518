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
