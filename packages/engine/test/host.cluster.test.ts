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
import { startEngineNode, ClusterGateway, CLUSTER_SHARDS, commitSubjects, isRuntimeRecord, resendable } from '../src/host/index.js';
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

/** A suite's private nats-server and Postgres schema (before), and the teardown of what its test started (after). */
function clusterSuite(tag: string) {
  const s = {
    nats: undefined as NatsServer | undefined,
    target: undefined as TestTarget | undefined,
    store: undefined as Store | undefined,
    ncs: [] as Nats[],
    nodes: [] as EngineNode[],
    gws: [] as ClusterGateway[],
    cluster: `${tag}${process.pid}${Math.random().toString(36).slice(2, 6)}`,
  };
  before(async function () {
    if (!existsSync(NATS_BIN)) this.skip();
    ({ nats: s.nats, target: s.target, store: s.store } = await startInfra());
  });
  after(async () => {
    for (const g of s.gws) await g.close();
    for (const n of s.nodes) await n.stop().catch(() => n.kill());
    for (const nc of s.ncs) await nc.close().catch(() => {});
    await s.store?.close().catch(() => {});
    await s.target?.drop().catch(() => {});
    await s.nats?.stop();
  });
  return s;
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
  const suite = clusterSuite('f');

  /** A node connection whose answers to asks can be withheld (the node accepts and executes, the edge hears nothing). */
  function muted(nc: Nats) {
    const replies = `${prefixOf(suite.cluster)}.r.`;
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
    for await (const page of suite.store!.journal.read(`account/${account}`, 1)) {
      for (const e of page.events) if ((e as LedgerEvent).type === 'OrderHeld' && (e as { clientOrderId?: string }).clientOrderId === clientOrderId) n++;
    }
    return n;
  };

  it('host - failover: the edge resends an order with a clientOrderId; the new owner answers it from the journal, executed once, long before the ask timeout', async () => {
    const rawA = await connectNats(suite.nats!.url, 'test-node-a');
    suite.ncs.push(rawA);
    const a = muted(rawA);
    const nodeA = await startEngineNode({ nodeId: 'a', nc: a.nc, cluster: suite.cluster, instruments: [SPOT], store: suite.store!, tickMs: 0, projectionIntervalMs: 0 });
    suite.nodes.push(nodeA);
    const ncEdge = await connectNats(suite.nats!.url, 'test-edge');
    suite.ncs.push(ncEdge);
    const gw = await ClusterGateway.open({ nc: ncEdge, cluster: suite.cluster, instruments: [SPOT], journal: suite.store!.journal, reads: suite.store!.readModels, outcomeAskAfterMs: 200, recheckMs: 300, askTimeoutMs: 30_000, resendAfterMs: 1_000 });
    suite.gws.push(gw);
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
    const rawB = await connectNats(suite.nats!.url, 'test-node-b');
    suite.ncs.push(rawB);
    suite.nodes.push(await startEngineNode({ nodeId: 'b', nc: rawB, cluster: suite.cluster, instruments: [SPOT], store: suite.store!, tickMs: 0, projectionIntervalMs: 0 }));
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
    expect(resendable({ type: 'ListInstruments' })).to.equal(true);
    // a define is answered as the first time when sent again (the registry executes nothing twice)
    expect(resendable({ type: 'DefineInstrument', ts: 1, instrument: {} })).to.equal(true);
    expect(resendable({ type: 'OpenAccount', account: 'x' })).to.equal(false);
    expect(resendable({ a: 'x', c: { type: 'CancelOrder', orderId: 1 } })).to.equal(false);
    expect(resendable(null)).to.equal(false);
    expect(resendable('List')).to.equal(false);
  });
});

describe('host - cluster: an instrument defined at run time through one edge trades on a book another node hosts', function () {
  this.timeout(60_000);
  const suite = clusterSuite('i');
  const { ncs, nodes, gws, cluster } = suite;

  /** While on, the registry's definition notices are lost: nodes and edges learn by their periodic re-read. */
  const lose = { definitions: false };
  const startNode = async (id: string) => {
    const nc = await connectNats(suite.nats!.url, `test-node-${id}`);
    ncs.push(nc);
    const lossyNc = dropping(nc, (subject) => lose.definitions && subject === commitSubjects(cluster).instruments);
    const n = await startEngineNode({ nodeId: id, nc: lossyNc, cluster, instruments: [SPOT], store: suite.store!, tickMs: 0, projectionIntervalMs: 50, instrumentsRefreshMs: 500 });
    nodes.push(n);
    return n;
  };
  const startEdge = async (id: string) => {
    const nc = await connectNats(suite.nats!.url, `test-edge-${id}`);
    ncs.push(nc);
    const g = await ClusterGateway.open({ nc, cluster, instruments: [SPOT], journal: suite.store!.journal, reads: suite.store!.readModels, outcomeAskAfterMs: 500, instrumentsRefreshMs: 500 });
    gws.push(g);
    return g;
  };
  const fillsOf = async (account: string): Promise<number> => {
    let qty = 0;
    for await (const page of suite.store!.journal.read(`account/${account}`, 1)) {
      for (const e of page.events) if ((e as LedgerEvent).type === 'FillSettled' && (e as { symbol?: string }).symbol !== 'BTC-USD') qty += (e as { qty: number }).qty;
    }
    return qty;
  };

  it('host/instruments - define through edge 1 (registry on one node), the book on the other node learns it; both edges trade it, fills settle, L2 and read models follow; a restarted cluster still has it', async () => {
    const [n1, n2] = await Promise.all([startNode('n1'), startNode('n2')]);
    const owns = (n: EngineNode, pid: string) => n.cluster.servedShards().includes(n.cluster.shards.shardOf(pid).key);
    const total = Object.values(CLUSTER_SHARDS).reduce((a, b) => a + b, 0);
    await until(() => n1.cluster.servedShards().length > 0 && n2.cluster.servedShards().length > 0 && n1.cluster.servedShards().length + n2.cluster.servedShards().length === total, 15_000, 'two nodes sharing the shards');
    const registryNode = owns(n1, 'venue/registry') ? n1 : n2;
    const other = registryNode === n1 ? n2 : n1;
    // A symbol whose book (and market data) the node without the registry hosts.
    const [symbol, symbol2] = ['ETH-USD', 'SOL-USD', 'ADA-USD', 'XRP-USD', 'DOT-USD', 'LTC-USD', 'BCH-USD', 'LINK-USD', 'AVAX-USD', 'ATOM-USD', 'NEAR-USD', 'UNI-USD', 'ETC-USD', 'FIL-USD', 'XLM-USD', 'TRX-USD']
      .filter((s) => owns(other, `book/${s}`) && owns(other, `md/${s}`)) as [string, string];
    expect(symbol2, 'two symbols hosted by the other node').to.be.a('string');
    const base = symbol.split('-')[0]!;

    const [gw1, gw2] = await Promise.all([startEdge('e1'), startEdge('e2')]);
    const def = { symbol, mode: 'cash', base, quote: 'USD', tickSize: 5, lotSize: 1, takerFeeBps: 10 };
    const added = await gw1.addInstrument(def, ctx);
    expect(added.ok, JSON.stringify(added)).to.equal(true);
    expect(gw1.instruments().map((i) => i.symbol)).to.include(symbol);
    expect(registryNode.instruments.has(symbol)).to.equal(true);
    // The other edge and the book's node hear of it from the registry's commit notice.
    await until(() => gw2.instruments().some((i) => i.symbol === symbol) && other.instruments.has(symbol), 5_000, 'edge 2 and the book node to learn the instrument');
    expect(await gw2.addInstrument(def, ctx)).to.deep.equal(added);
    expect((await gw2.addInstrument({ ...def, tickSize: 1 }, ctx)) as { code?: number }).to.deep.include({ ok: false, code: 5001 });

    for (const a of ['m', 't']) expect((await gw1.openAccount(a, ctx)).ok).to.equal(true);
    expect((await gw1.deposit('m', base, 1_000, 'd1', ctx)).ok).to.equal(true);
    expect((await gw2.deposit('t', 'USD', 1_000_000, 'd2', ctx)).ok).to.equal(true);
    const sell = await gw1.placeOrder('m', { symbol, side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 10, clientOrderId: 's1' }, ctx);
    expect(sell.ok, JSON.stringify(sell)).to.equal(true);
    const buy = await gw2.placeOrder('t', { symbol, side: 'buy', orderType: 'limit', tif: 'IOC', price: 100, qty: 4, clientOrderId: 'b1' }, ctx);
    expect(buy.ok, JSON.stringify(buy)).to.equal(true);
    expect(other.cluster.node.inspect(`book/${symbol}`), 'the book lives on the other node').to.not.equal(undefined);
    await until(async () => (await fillsOf('t')) === 4 && (await fillsOf('m')) === 4, 10_000, 'both sides settled');
    await until(async () => gw2.l2Snapshot(symbol, 10)?.asks[0]?.[1] === 6 && gw1.l2Snapshot(symbol, 10)?.asks[0]?.[1] === 6, 5_000, 'L2 on both edges');
    await until(async () => (await gw2.reads.trades({ instrument: symbol }, 0, Date.now() + 1, { limit: 10 })).items.length === 1, 10_000, 'the trade in the read model');
    await until(async () => (await gw2.reads.balancesByAccount('t')).some((b) => b.asset === base && b.available === 4), 10_000, 'the balance in the read model');

    // A definition whose notice is lost: the other edge and the book's node learn it by their re-read (500 ms here).
    lose.definitions = true;
    const t0 = Date.now();
    expect((await gw1.addInstrument({ ...def, symbol: symbol2, base: symbol2.split('-')[0] }, ctx)).ok).to.equal(true);
    await until(() => gw2.instruments().some((i) => i.symbol === symbol2) && other.instruments.has(symbol2), 5_000, 'the re-reads to find the second instrument');
    expect(Date.now() - t0).to.be.below(2_000);
    lose.definitions = false;
    const rest = await gw2.placeOrder('t', { symbol: symbol2, side: 'buy', orderType: 'limit', tif: 'GTC', price: 50, qty: 1, clientOrderId: 'b3' }, ctx);
    expect(rest.ok, JSON.stringify(rest)).to.equal(true);
    expect(other.cluster.node.inspect(`book/${symbol2}`)).to.not.equal(undefined);

    // Every process restarts: a new node and a new edge know the instrument from the journal.
    for (const g of gws.splice(0)) await g.close();
    for (const n of nodes.splice(0)) await n.stop();
    const n3 = await startNode('n3');
    await until(() => n3.cluster.servedShards().length === total, 15_000, 'n3 serving every shard');
    const gw3 = await startEdge('e3');
    expect(gw3.instruments().map((i) => i.symbol).sort()).to.deep.equal(['BTC-USD', symbol, symbol2].sort());
    expect(gw3.l2Snapshot(symbol, 10)?.asks).to.deep.equal([[100, 6]]);
    const again = await gw3.placeOrder('t', { symbol, side: 'buy', orderType: 'limit', tif: 'IOC', price: 100, qty: 6, clientOrderId: 'b2' }, ctx);
    expect(again.ok, JSON.stringify(again)).to.equal(true);
    await until(async () => (await fillsOf('t')) === 10, 10_000, 'the second buy settled');
  });
});
