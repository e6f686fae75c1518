/**
 * End to end over the real, durable gateway: the edge in front of `EmbeddedVenue` (engine actors on
 * the in-process transport, PGlite journal in a temp dir), driven by the SDK over real WebSockets.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BourseClient, type PrivateMessage } from '@bourse/client';
import { checksumOf } from '@bourse/schemas';
import { startEdge, type Edge } from '../src/index.js';
import { BTC, KEYS, ACCOUNTS, until, sleep } from './helpers.js';

const engineDist = new URL(import.meta.url.includes('/dist/test/') ? '../../../engine/dist/src/' : '../../engine/dist/src/', import.meta.url);
const { openEmbeddedVenue } = (await import(new URL('host/index.js', engineDist).href)) as typeof import('../../engine/dist/src/host/index.js');
type EmbeddedVenue = Awaited<ReturnType<typeof openEmbeddedVenue>>;

/** The broker buys `n` single lots for alice (IOC at 6,500,000); alice's connection drops after order `dropAt`. */
async function buyOneLotEach(broker: BourseClient, alice: BourseClient, n: number, dropAt: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const f = await broker.place({ account: 'alice', symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 6_500_000, qty: 1 });
    expect(f.ok, JSON.stringify(f)).to.equal(true);
    if (i === dropAt) alice.dropConnection();
  }
}
const takerFills = (seen: readonly PrivateMessage[]) => seen.filter((m) => m.event.type === 'FillSettled' && m.event.role === 'taker' && m.event.qty === 1).length;

describe('edge - end to end over EmbeddedVenue (PGlite journal)', function () {
  this.timeout(120_000);
  let dir: string;
  let venue: EmbeddedVenue;
  let edge: Edge;
  const clients: BourseClient[] = [];
  const connect = async (key: string, extra: Partial<Parameters<typeof BourseClient.connect>[0]> = {}) => {
    const c = await BourseClient.connect({ url: edge.url, key, ...extra });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bourse-edge-e2e-'));
    venue = await openEmbeddedVenue({ pglite: dir }, { instruments: [BTC], tickMs: 0, projectionIntervalMs: 20 });
    const ctx = { traceId: 'setup' };
    for (const a of ACCOUNTS) {
      expect((await venue.openAccount(a, ctx)).ok).to.equal(true);
      expect((await venue.deposit(a, 'USD', 10_000_000_000_000, `usd-${a}`, ctx)).ok).to.equal(true);
      expect((await venue.deposit(a, 'BTC', 100_000_000_000, `btc-${a}`, ctx)).ok).to.equal(true);
    }
    edge = await startEdge({ gateway: venue, port: 0, keys: Object.values(KEYS), logLevel: 'silent' });
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await edge?.close();
    await venue?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('edge - two accounts trade through the SDK; fills on both private streams; balances settle; the L2 book rebuilds with matching checksums', async () => {
    const alice = await connect(KEYS.alice!.key);
    const bob = await connect(KEYS.bob!.key);
    const viewer = await connect(KEYS.analyst!.key);
    const aEvents: PrivateMessage[] = [];
    const bEvents: PrivateMessage[] = [];
    await alice.subscribePrivate((m) => aEvents.push(m));
    await bob.subscribePrivate((m) => bEvents.push(m));
    const h = await viewer.book('BTC-USD');
    if (!h.ok) throw new Error(h.message);
    await h.ready;

    const ask = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 10 });
    expect(ask.ok, JSON.stringify(ask)).to.equal(true);
    for (let i = 1; i <= 5; i++) await bob.place({ symbol: 'BTC-USD', side: i % 2 ? 'sell' : 'buy', orderType: 'limit', tif: 'GTC', price: i % 2 ? 6_500_000 + i * 50 : 6_400_000 - i * 50, qty: i });
    const buy = await alice.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 6_500_000, qty: 4 });
    expect(buy.ok, JSON.stringify(buy)).to.equal(true);

    await until(() => aEvents.some((m) => m.event.type === 'FillSettled') && bEvents.some((m) => m.event.type === 'FillSettled'), 10_000, 'fills on both streams');
    const aFill = aEvents.find((m) => m.event.type === 'FillSettled')!.event;
    const bFill = bEvents.find((m) => m.event.type === 'FillSettled')!.event;
    expect(aFill).to.deep.include({ role: 'taker', side: 'buy', qty: 4, price: 6_500_000 });
    expect(bFill).to.deep.include({ role: 'maker', side: 'sell', qty: 4, price: 6_500_000 });
    for (const evs of [aEvents, bEvents]) for (let i = 1; i < evs.length; i++) expect(evs[i]!.seq).to.be.greaterThan(evs[i - 1]!.seq);

    // balances settle (read models project from the journal; poll until they have)
    const fee = (n: number, bps: number) => Math.ceil((n * bps) / 10_000);
    const notional = 4 * 6_500_000;
    const usd = async (account: string, key: string) => {
      const r = await fetch(`${edge.httpUrl}/v1/accounts/${account}/balances`, { headers: { authorization: `Bearer ${key}` } });
      const rows = (await r.json()) as { asset: string; available: number; held: number }[];
      return rows.find((b) => b.asset === 'USD');
    };
    const aliceUsd = 10_000_000_000_000 - notional - fee(notional, 5);
    const end = Date.now() + 10_000;
    let a = await usd('alice', KEYS.alice!.key);
    while ((a?.available ?? 0) + (a?.held ?? 0) !== aliceUsd && Date.now() < end) {
      await sleep(50);
      a = await usd('alice', KEYS.alice!.key);
    }
    expect(a!.available + a!.held).to.equal(aliceUsd);
    const b = await usd('bob', KEYS.bob!.key);
    expect(b!.available + b!.held).to.equal(10_000_000_000_000 + notional - fee(notional, 2));

    const truth = venue.l2Snapshot('BTC-USD', 10_000)!;
    await until(() => h.book.seq === truth.seq, 5_000, 'book caught up');
    expect(h.book.depth()).to.deep.equal({ bids: truth.bids, asks: truth.asks });
    expect(h.book.checksum()).to.equal(truth.checksum);
    expect(checksumOf(truth.bids, truth.asks)).to.equal(truth.checksum);
    expect(h.snapshots).to.equal(1);
  });

  it('edge - cancel-on-disconnect and private-stream resume after reconnect (no gap, no duplicate)', async () => {
    const bob = await connect(KEYS.bob!.key, { cancelOnDisconnect: true, reconnect: false });
    const r = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_900_000, qty: 2 });
    expect(r.ok).to.equal(true);
    await until(() => venue.l2Snapshot('BTC-USD', 100)!.asks.some(([p]) => p === 6_900_000), 5_000, 'the order in the committed L2'); // md commits after the ack
    bob.dropConnection();
    await until(() => !venue.l2Snapshot('BTC-USD', 100)!.asks.some(([p]) => p === 6_900_000), 10_000, 'cancel-on-disconnect');

    const alice = await connect(KEYS.alice!.key, { reconnectDelayMsMin: 20 });
    const seen: PrivateMessage[] = [];
    await alice.subscribePrivate((m) => seen.push(m));
    let reconnects = 0;
    alice.on('reconnect', () => reconnects++);
    const broker = await connect(KEYS.broker!.key);
    await broker.place({ account: 'bob', symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 100 });
    await buyOneLotEach(broker, alice, 30, 10);
    const fills = () => takerFills(seen);
    await until(() => reconnects >= 1 && fills() >= 30, 15_000, 'alice resumed');
    await sleep(200);
    const seqs = seen.map((m) => m.seq);
    expect(new Set(seqs).size).to.equal(seqs.length); // no duplicate
    expect(seqs).to.deep.equal([...seqs].sort((x, y) => x - y)); // in order
    expect(fills()).to.equal(30); // none missed, none twice
    // and the same as a fresh replay of the journal
    const replay: PrivateMessage[] = [];
    const unsub = venue.subscribePrivate('alice', 0, (e) => replay.push(e));
    await until(() => replay.length >= seen.length, 5_000, 'replay');
    unsub();
    expect(seen.map((m) => m.seq)).to.deep.equal(replay.slice(0, seen.length).map((m) => m.seq));
  });

  it('edge - a private subscription from now skips the history, then resumes across a reconnect like any other', async () => {
    const head = await venue.privateHead('alice');
    expect(head, 'alice has history from the tests before').to.be.greaterThan(0);
    const alice = await connect(KEYS.alice!.key, { reconnectDelayMsMin: 20 });
    const seen: PrivateMessage[] = [];
    expect((await alice.subscribePrivate((m) => seen.push(m), { fromNow: true })).ok).to.equal(true);
    const start = alice.lastSeq('alice');
    expect(start, 'the stream starts at the journal head').to.equal(head);
    let reconnects = 0;
    alice.on('reconnect', () => reconnects++);
    const broker = await connect(KEYS.broker!.key);
    await broker.place({ account: 'bob', symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 20 });
    await sleep(100);
    expect(seen, 'nothing from before the subscription').to.deep.equal([]);
    await buyOneLotEach(broker, alice, 12, 5);
    const fills = () => takerFills(seen);
    await until(() => reconnects >= 1 && fills() >= 12, 15_000, 'alice resumed from now');
    await sleep(200);
    expect(fills(), 'none missed, none twice').to.equal(12);
    // Exactly the journal after the start: no gap, no duplicate, no history.
    const replay: PrivateMessage[] = [];
    const unsub = venue.subscribePrivate('alice', start, (e) => replay.push(e));
    await until(() => replay.length >= seen.length, 5_000, 'replay');
    unsub();
    expect(seen.map((m) => m.seq)).to.deep.equal(replay.slice(0, seen.length).map((m) => m.seq));
    await alice.close();
    await broker.close();
  });
});
