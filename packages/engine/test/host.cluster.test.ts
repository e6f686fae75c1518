/**
 * Cluster mode in one process: an engine node (`startEngineNode`) and an edge gateway
 * (`ClusterGateway`) on a private nats-server and a private Postgres schema. The point: commit
 * notices are core NATS publishes (at most once), and losing them loses nothing — answers are
 * recovered by asking the book, private streams by reading the journal.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { connectNats, prefixOf } from '@bourse/actors';
import type { ClusterNodeOptions } from '@bourse/actors';
import { openStore } from '@bourse/store';
import type { Store } from '@bourse/store';
import type { LedgerEvent } from '@bourse/schemas';
import { startEngineNode, ClusterGateway, commitSubjects, isRuntimeRecord, resendable } from '../src/host/index.js';
import type { EngineNode } from '../src/host/index.js';
import type { PrivateEvent } from '../src/venue/gateway.js';
import { SPOT } from './traders.js';

type Nats = ClusterNodeOptions['nc'];
const NATS_BIN = '/usr/sbin/nats-server';
interface NatsServer {
  readonly url: string;
  stop(): Promise<void>;
}
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../../../..' : '../../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ctx = { traceId: 't' };

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** `nc`, except that a publish for which `drop(subject)` says true is not sent. */
function dropping(nc: Nats, drop: (subject: string) => boolean): Nats {
  return new Proxy(nc, {
    get(t, k) {
      if (k === 'publish') {
        return (subject: string, data?: Uint8Array, o?: unknown) => {
          if (!drop(subject)) (t.publish as (s: string, d?: Uint8Array, o?: unknown) => void)(subject, data, o);
        };
      }
      const v = (t as unknown as Record<string | symbol, unknown>)[k];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** A NATS connection whose publishes on the commit subjects can be dropped (everything else passes). */
function lossy(nc: Nats, cluster: string) {
  const prefix = commitSubjects(cluster).decisions.slice(0, -1); // `bourse.<cluster>.c.`
  const drop = { decisions: false, accountEvery: 0, dropped: { decisions: 0, account: 0 } };
  let accountNotices = 0;
  const proxy = dropping(nc, (subject) => {
    if (!subject.startsWith(prefix)) return false;
    const kind = subject.slice(prefix.length, prefix.length + 1);
    if (kind === 'b' && drop.decisions) {
      drop.dropped.decisions++;
      return true;
    }
    if (kind === 'a' && drop.accountEvery > 0 && ++accountNotices % drop.accountEvery === 0) {
      drop.dropped.account++;
      return true;
    }
    return false;
  });
  return { nc: proxy, drop };
}

type TestTarget = { options: { pg: string; schema: string }; drop(): Promise<void> };

/** A private nats-server with JetStream on a free port (the actors package's harness) and a private Postgres schema. */
async function startInfra(): Promise<{ nats: NatsServer; target: TestTarget; store: Store }> {
  const harness = (await import(pathToFileURL(path.join(root, 'packages/actors/dist/test/cluster-harness.js')).href)) as { startNatsServer(): Promise<NatsServer> };
  const nats = await harness.startNatsServer();
  const testing = (await import(pathToFileURL(path.join(root, 'packages/store/dist/src/testing.js')).href)) as { createTestTarget(d: 'pg'): Promise<TestTarget> };
  try {
    const target = await testing.createTestTarget('pg');
    return { nats, target, store: await openStore({ ...target.options, poolMax: 4 }) };
  } catch (e) {
    await nats.stop(); // by its pid: nothing is left running when Postgres is missing
    throw e;
  }
}

describe('host - cluster mode (engine node + edge gateway over NATS and Postgres, in one process)', function () {
  this.timeout(60_000);
  let nats: NatsServer | undefined;
  let natsUrl: string;
  let target: TestTarget | undefined;
  let store: Store | undefined;
  let ncNode: Nats | undefined;
  let ncEdge: Nats | undefined;
  let node: EngineNode | undefined;
  let gw: ClusterGateway | undefined;
  const cluster = `h${process.pid}${Math.random().toString(36).slice(2, 6)}`;

  before(async function () {
    if (!existsSync(NATS_BIN)) this.skip();
    ({ nats, target, store } = await startInfra());
    natsUrl = nats.url;
  });

  after(async () => {
    await gw?.close();
    await node?.stop().catch(() => node?.kill());
    await ncEdge?.close().catch(() => {});
    await ncNode?.close().catch(() => {});
    await store?.close().catch(() => {});
    await target?.drop().catch(() => {});
    await nats?.stop();
  });

  it('host - lost commit notices lose nothing: answers come from the book, private streams from the journal; resent clientOrderIds get the original answer', async () => {
    const raw = await connectNats(natsUrl, 'test-node');
    ncNode = raw;
    const { nc, drop } = lossy(raw, cluster);
    node = await startEngineNode({ nodeId: 'n1', nc, cluster, instruments: [SPOT], store: store!, tickMs: 0, projectionIntervalMs: 0 });
    ncEdge = await connectNats(natsUrl, 'test-edge');
    gw = await ClusterGateway.open({ nc: ncEdge, cluster, instruments: [SPOT], journal: store!.journal, reads: store!.readModels, outcomeAskAfterMs: 200, recheckMs: 300 });
    for (const a of ['alice', 'bob']) {
      expect((await gw.openAccount(a, ctx)).ok).to.equal(true);
      expect((await gw.deposit(a, 'USD', 100_000_000, `usd-${a}`, ctx)).ok).to.equal(true);
      expect((await gw.deposit(a, 'BTC', 100_000, `btc-${a}`, ctx)).ok).to.equal(true);
    }
    const seen: PrivateEvent[] = [];
    gw.subscribePrivate('alice', 0, (e) => seen.push(e));

    // With notices flowing: an order is answered from the decision notice.
    const first = await gw.placeOrder('bob', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 40, clientOrderId: 's-1' }, ctx);
    expect(first.ok, JSON.stringify(first)).to.equal(true);

    // Now every book decision notice and every third account notice is lost.
    drop.decisions = true;
    drop.accountEvery = 3;
    const answers = [];
    for (let i = 0; i < 12; i++) {
      answers.push(await gw.placeOrder('alice', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_000, qty: 1, clientOrderId: `b-${i}` }, ctx));
    }
    expect(answers.every((r) => r.ok), JSON.stringify(answers)).to.equal(true);
    // a book reject is recovered too (post-only that would take)
    const po = await gw.placeOrder('alice', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 1, postOnly: true, clientOrderId: 'po' }, ctx);
    expect(po.ok).to.equal(false);
    // resends: the original answers, nothing executed again
    expect(await gw.placeOrder('alice', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_000, qty: 1, clientOrderId: 'b-3' }, ctx)).to.deep.equal(answers[3]);
    expect(await gw.placeOrder('alice', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 1, postOnly: true, clientOrderId: 'po' }, ctx)).to.deep.equal(po);
    expect(drop.dropped.decisions).to.be.greaterThan(0);
    expect(drop.dropped.account).to.be.greaterThan(0);

    // The private stream has every ledger event of alice once, in order: the same as the journal.
    const journal: { seq: number; event: LedgerEvent }[] = [];
    const readJournal = async () => {
      journal.length = 0;
      for await (const page of store!.journal.read('account/alice', 1)) {
        page.events.forEach((e, i) => {
          if (!isRuntimeRecord(e)) journal.push({ seq: page.fromSeq + i, event: e as LedgerEvent });
        });
      }
    };
    await until(async () => (await readJournal(), journal.filter((j) => j.event.type === 'FillSettled').length === 12 && seen.length === journal.length), 15_000, 'the private stream caught up with the journal');
    expect(seen.map((e) => e.seq)).to.deep.equal(journal.map((j) => j.seq));
    expect(seen.map((e) => e.event)).to.deep.equal(journal.map((j) => j.event));
    expect(seen.filter((e) => e.event.type === 'FillSettled')).to.have.length(12);
  });
});

describe('host - cluster failover: an order accepted by a node that dies is answered by the next owner', function () {
  this.timeout(60_000);
  let nats: NatsServer | undefined;
  let target: TestTarget | undefined;
  let store: Store | undefined;
  const ncs: Nats[] = [];
  const nodes: EngineNode[] = [];
  let gw: ClusterGateway | undefined;
  const cluster = `f${process.pid}${Math.random().toString(36).slice(2, 6)}`;

  before(async function () {
    if (!existsSync(NATS_BIN)) this.skip();
    ({ nats, target, store } = await startInfra());
  });

  after(async () => {
    await gw?.close();
    for (const n of nodes) await n.stop().catch(() => n.kill());
    for (const nc of ncs) await nc.close().catch(() => {});
    await store?.close().catch(() => {});
    await target?.drop().catch(() => {});
    await nats?.stop();
  });

  /** A node connection whose answers to asks can be withheld (the node accepts and executes, the edge hears nothing). */
  function muted(nc: Nats) {
    const replies = `${prefixOf(cluster)}.r.`;
    const state = { mute: false, withheld: 0 };
    const nc2 = dropping(nc, (subject) => {
      if (!state.mute || !subject.startsWith(replies)) return false;
      state.withheld++;
      return true;
    });
    return { nc: nc2, state };
  }

  const heldFor = async (account: string, clientOrderId: string): Promise<number> => {
    let n = 0;
    for await (const page of store!.journal.read(`account/${account}`, 1)) {
      for (const e of page.events) if ((e as LedgerEvent).type === 'OrderHeld' && (e as { clientOrderId?: string }).clientOrderId === clientOrderId) n++;
    }
    return n;
  };

  it('host - failover: the edge resends an order with a clientOrderId; the new owner answers it from the journal, executed once, long before the ask timeout', async () => {
    const rawA = await connectNats(nats!.url, 'test-node-a');
    ncs.push(rawA);
    const a = muted(rawA);
    const nodeA = await startEngineNode({ nodeId: 'a', nc: a.nc, cluster, instruments: [SPOT], store: store!, tickMs: 0, projectionIntervalMs: 0 });
    nodes.push(nodeA);
    const ncEdge = await connectNats(nats!.url, 'test-edge');
    ncs.push(ncEdge);
    gw = await ClusterGateway.open({ nc: ncEdge, cluster, instruments: [SPOT], journal: store!.journal, reads: store!.readModels, outcomeAskAfterMs: 200, recheckMs: 300, askTimeoutMs: 30_000, resendAfterMs: 1_000 });
    expect((await gw.openAccount('carol', ctx)).ok).to.equal(true);
    expect((await gw.deposit('carol', 'USD', 100_000_000, 'usd-carol', ctx)).ok).to.equal(true);
    const order = { symbol: 'BTC-USD', side: 'buy' as const, orderType: 'limit' as const, tif: 'GTC' as const, price: 900, qty: 2, clientOrderId: 'fo-1' };

    // Node a accepts the order and commits the hold, but its answer never reaches the edge; then it dies.
    a.state.mute = true;
    const t0 = performance.now();
    const answer = gw.placeOrder('carol', order, ctx);
    await until(async () => (await heldFor('carol', 'fo-1')) === 1, 15_000, 'node a to commit the hold');
    expect(a.state.withheld).to.be.greaterThan(0);
    nodeA.kill();

    // Node b takes the shards over once a's leases expire and recovers the ledger from the journal.
    const rawB = await connectNats(nats!.url, 'test-node-b');
    ncs.push(rawB);
    nodes.push(await startEngineNode({ nodeId: 'b', nc: rawB, cluster, instruments: [SPOT], store: store!, tickMs: 0, projectionIntervalMs: 0 }));
    const r = await answer;
    const elapsed = performance.now() - t0;
    expect(r.ok, JSON.stringify(r)).to.equal(true);
    expect(elapsed, 'answered by a resend, not after the 30 s ask timeout').to.be.below(20_000);
    expect(gw.stats.resends).to.be.greaterThan(0);
    expect(await heldFor('carol', 'fo-1'), 'held once: the resend was answered, not executed again').to.equal(1);
    // The client's own resend gets the same answer, and the order rests once in the book.
    expect(await gw.placeOrder('carol', order, ctx)).to.deep.equal(r);
    expect(await heldFor('carol', 'fo-1')).to.equal(1);
    expect(gw.metricsText()).to.match(/bourse_cluster_ask_resends_total [1-9]/);
  });

  it('host - resendable: orders only with a clientOrderId, reads always, other commands never', () => {
    expect(resendable({ a: 'x', c: { type: '$place', cmd: { type: 'PlaceOrder', clientOrderId: 'c1' } } })).to.equal(true);
    expect(resendable({ a: 'x', c: { type: '$place', cmd: { type: 'PlaceOrder' } } })).to.equal(false);
    expect(resendable({ a: 'x', c: { type: '$outcome', orderId: 1 } })).to.equal(true);
    expect(resendable({ a: 'x', c: { type: '$state' } })).to.equal(true);
    expect(resendable({ type: 'List' })).to.equal(true);
    expect(resendable({ type: 'OpenAccount', account: 'x' })).to.equal(false);
    expect(resendable({ a: 'x', c: { type: 'CancelOrder', orderId: 1 } })).to.equal(false);
    expect(resendable(null)).to.equal(false);
    expect(resendable('List')).to.equal(false);
  });
});
