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
import { connectNats } from '@bourse/actors';
import type { ClusterNodeOptions } from '@bourse/actors';
import { openStore } from '@bourse/store';
import type { Store } from '@bourse/store';
import type { LedgerEvent } from '@bourse/schemas';
import { startEngineNode, ClusterGateway, commitSubjects, isRuntimeRecord } from '../src/host/index.js';
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

/** A NATS connection whose publishes on the commit subjects can be dropped (everything else passes). */
function lossy(nc: Nats, cluster: string) {
  const prefix = commitSubjects(cluster).decisions.slice(0, -1); // `bourse.<cluster>.c.`
  const drop = { decisions: false, accountEvery: 0, dropped: { decisions: 0, account: 0 } };
  let accountNotices = 0;
  const proxy = new Proxy(nc, {
    get(t, k) {
      if (k === 'publish') {
        return (subject: string, data?: Uint8Array) => {
          if (subject.startsWith(prefix)) {
            const kind = subject.slice(prefix.length, prefix.length + 1);
            if (kind === 'b' && drop.decisions) return void drop.dropped.decisions++;
            if (kind === 'a' && drop.accountEvery > 0 && ++accountNotices % drop.accountEvery === 0) return void drop.dropped.account++;
          }
          return t.publish(subject, data);
        };
      }
      const v = (t as unknown as Record<string | symbol, unknown>)[k];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
  return { nc: proxy as Nats, drop };
}

describe('host - cluster mode (engine node + edge gateway over NATS and Postgres, in one process)', function () {
  this.timeout(60_000);
  let nats: NatsServer | undefined;
  let natsUrl: string;
  let target: { options: { pg: string; schema: string }; drop(): Promise<void> } | undefined;
  let store: Store | undefined;
  let ncNode: Nats | undefined;
  let ncEdge: Nats | undefined;
  let node: EngineNode | undefined;
  let gw: ClusterGateway | undefined;
  const cluster = `h${process.pid}${Math.random().toString(36).slice(2, 6)}`;

  before(async function () {
    if (!existsSync(NATS_BIN)) this.skip();
    // The actors package's harness: a private nats-server with JetStream on a free port.
    const harness = (await import(pathToFileURL(path.join(root, 'packages/actors/dist/test/cluster-harness.js')).href)) as { startNatsServer(): Promise<NatsServer> };
    nats = await harness.startNatsServer();
    natsUrl = nats.url;
    const testing = (await import(pathToFileURL(path.join(root, 'packages/store/dist/src/testing.js')).href)) as {
      createTestTarget(d: 'pg'): Promise<{ options: { pg: string; schema: string }; drop(): Promise<void> }>;
    };
    target = await testing.createTestTarget('pg');
    store = await openStore({ ...target.options, poolMax: 4 });
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
