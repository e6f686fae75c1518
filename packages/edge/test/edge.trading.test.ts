import { expect } from 'chai';
import { BourseClient, type PrivateMessage } from '@bourse/client';
import { checksumOf, Reject } from '@bourse/schemas';
import { world, KEYS, until, sleep, type World } from './helpers.js';

describe('edge - trading over real WebSockets (fake in-memory gateway)', function () {
  this.timeout(20_000);
  let w: World;
  const clients: BourseClient[] = [];
  const connect = async (key: string, extra: Partial<Parameters<typeof BourseClient.connect>[0]> = {}) => {
    const c = await BourseClient.connect({ url: w.edge.url, key, ...extra });
    clients.push(c);
    return c;
  };
  beforeEach(async () => {
    w = await world();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await w.close();
  });

  it('edge - two accounts trade through the SDK: fills on both private streams, balances settle', async () => {
    const alice = await connect(KEYS.alice!.key);
    const bob = await connect(KEYS.bob!.key);
    expect(alice.session.role).to.equal('trader');
    expect(bob.session.accounts).to.deep.equal(['bob']);
    const aEvents: PrivateMessage[] = [];
    const bEvents: PrivateMessage[] = [];
    await alice.subscribePrivate((m) => aEvents.push(m));
    await bob.subscribePrivate((m) => bEvents.push(m));

    const ask = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 10, clientOrderId: 'b-1' });
    expect(ask.ok).to.equal(true);
    const buy = await alice.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 4 });
    expect(buy.ok).to.equal(true);

    await until(() => aEvents.some((m) => m.event.type === 'FillSettled') && bEvents.some((m) => m.event.type === 'FillSettled'), 5_000, 'fills on both streams');
    const aFill = aEvents.find((m) => m.event.type === 'FillSettled')!.event;
    const bFill = bEvents.find((m) => m.event.type === 'FillSettled')!.event;
    if (aFill.type !== 'FillSettled' || bFill.type !== 'FillSettled') throw new Error('unreachable');
    expect([aFill.role, aFill.side, aFill.qty, aFill.price]).to.deep.equal(['taker', 'buy', 4, 6_500_000]);
    expect([bFill.role, bFill.side, bFill.qty, bFill.price, bFill.clientOrderId]).to.deep.equal(['maker', 'sell', 4, 6_500_000, 'b-1']);
    if (buy.ok && ask.ok) {
      expect(aFill.orderId).to.equal(buy.orderId);
      expect(bFill.orderId).to.equal(ask.orderId);
      expect(buy.orderId).to.be.greaterThan(2 ** 32); // > 32-bit ids survive the wire as integers
    }

    // Private seqs are the journal's (increasing, not contiguous), every ledger event exactly once.
    await until(() => aEvents.length === w.gw.journals.get('alice')!.length, 2_000, 'alice stream caught up');
    expect(aEvents.map((m) => m.seq)).to.deep.equal(w.gw.seqs.get('alice'));
    expect(new Set(aEvents.map((m, i) => m.seq - i)).size).to.be.greaterThan(1); // there are gaps in the numbering
    expect(aEvents.map((m) => m.event)).to.deep.equal(w.gw.journals.get('alice'));

    // Balances settle: alice paid 4 * 6_500_000 quote units plus the taker fee; bob received the notional minus his maker fee.
    const fee = (n: number, bps: number) => Math.ceil((n * bps) / 10_000);
    const notional = 4 * 6_500_000;
    const bal = async (account: string, key: string) => {
      const r = await fetch(`${w.edge.httpUrl}/v1/accounts/${account}/balances`, { headers: { authorization: `Bearer ${key}` } });
      expect(r.status).to.equal(200);
      return Object.fromEntries(((await r.json()) as { asset: string; available: number; held: number }[]).map((b) => [b.asset, b]));
    };
    const a = await bal('alice', KEYS.alice!.key);
    const b = await bal('bob', KEYS.bob!.key);
    expect(a.USD!.available + a.USD!.held).to.equal(10_000_000_000_000 - notional - fee(notional, 5));
    expect(a.BTC!.available).to.equal(100_000_000_000 + 4 * 100_000);
    expect(b.USD!.available).to.equal(10_000_000_000_000 + notional - fee(notional, 2));
    expect(b.BTC!.available + b.BTC!.held).to.equal(100_000_000_000 - 4 * 100_000);
    expect(w.gw.venue.conservation()).to.deep.equal([]);
    // every command carried a trace id from the edge
    expect(w.gw.traces.filter((t) => t !== 'setup').every((t) => /^[0-9a-f]{6}-[0-9a-z]+$/.test(t))).to.equal(true);
  });

  it('edge - amend (qty = total) and mass cancel through the SDK', async () => {
    const bob = await connect(KEYS.bob!.key);
    const o1 = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_600_000, qty: 10 });
    const o2 = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_650_000, qty: 10 });
    if (!o1.ok || !o2.ok) throw new Error('place failed');
    expect((await bob.amend('BTC-USD', o1.orderId, { qty: 7 })).ok).to.equal(true);
    const snap = w.gw.l2Snapshot('BTC-USD', 10)!;
    expect(snap.asks).to.deep.equal([[6_600_000, 7], [6_650_000, 10]]);
    const noChange = await bob.amend('BTC-USD', o1.orderId, { qty: 7 });
    expect(noChange).to.deep.include({ ok: false, code: Reject.BOOK_AMEND_NO_CHANGE });
    const mc = await bob.massCancel('BTC-USD');
    expect(mc).to.deep.equal({ ok: true, cancelled: 2 });
    expect(w.gw.l2Snapshot('BTC-USD', 10)!.asks).to.deep.equal([]);
    const gone = await bob.cancel('BTC-USD', o1.orderId);
    expect(gone).to.deep.include({ ok: false, code: Reject.BOOK_UNKNOWN_ORDER });
  });

  it('edge - a resent clientOrderId gets the original answer, not a second order', async () => {
    const alice = await connect(KEYS.alice!.key);
    const req = { symbol: 'BTC-USD', side: 'buy' as const, orderType: 'limit' as const, tif: 'GTC' as const, price: 6_000_000, qty: 2, clientOrderId: 'same-1' };
    const [r1, r2] = await Promise.all([alice.place(req), alice.place(req)]);
    const r3 = await alice.place(req);
    expect(r1.ok).to.equal(true);
    expect(r2).to.deep.equal(r1);
    expect(r3).to.deep.equal(r1);
    expect(w.gw.l2Snapshot('BTC-USD', 10)!.bids).to.deep.equal([[6_000_000, 2]]);
  });

  it('edge - L2 snapshot plus deltas rebuild the book with matching checksums', async () => {
    const bob = await connect(KEYS.bob!.key);
    const alice = await connect(KEYS.alice!.key);
    // some book before the subscription
    for (let i = 0; i < 5; i++) await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000 + i * 50, qty: 3 + i });
    const viewer = await connect(KEYS.analyst!.key);
    let updates = 0;
    const h = await viewer.book('BTC-USD', () => updates++);
    if (!h.ok) throw new Error('book subscription failed');
    await h.ready;
    expect(h.book.depth().asks.length).to.equal(5);
    // churn: rests, fills, cancels, amends on both sides (deep books: more than 10 levels per side)
    const live: number[] = [];
    for (let i = 0; i < 60; i++) {
      const side = i % 2 === 0 ? 'buy' : 'sell';
      const price = side === 'buy' ? 6_400_000 - (i % 15) * 50 : 6_500_000 + (i % 17) * 50;
      const r = await bob.place({ symbol: 'BTC-USD', side, orderType: 'limit', tif: 'GTC', price, qty: 1 + (i % 4) });
      if (r.ok) live.push(r.orderId);
      if (i % 7 === 0) await alice.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 6_500_100, qty: 3 });
      if (i % 5 === 0 && live.length > 3) await bob.cancel('BTC-USD', live.splice(1, 1)[0]!);
      if (i % 9 === 0 && live.length > 2) await bob.amend('BTC-USD', live[0]!, { qty: 9 });
    }
    const truth = w.gw.l2Snapshot('BTC-USD', 10_000)!;
    await until(() => h.book.seq === truth.seq, 5_000, 'book caught up');
    expect(h.book.synced).to.equal(true);
    expect(h.snapshots).to.equal(1); // no resync was needed
    expect(h.book.depth()).to.deep.equal({ bids: truth.bids, asks: truth.asks });
    expect(h.book.checksum()).to.equal(truth.checksum);
    expect(checksumOf(truth.bids, truth.asks)).to.equal(truth.checksum);
    expect(updates).to.be.greaterThan(30);
  });

  it('edge - public BBO, trades and candles streams reach subscribers', async () => {
    const bob = await connect(KEYS.bob!.key);
    const alice = await connect(KEYS.alice!.key);
    const viewer = await connect(KEYS.analyst!.key);
    const quotes: number[] = [];
    const trades: number[] = [];
    const candles: boolean[] = [];
    await viewer.onQuote('BTC-USD', (q) => quotes.push(q.askPrice));
    await viewer.onTrade('BTC-USD', (t) => trades.push(t.qty));
    await viewer.onCandle('BTC-USD', (c) => candles.push(c.closed));
    await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 5 });
    await alice.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 6_500_000, qty: 2 });
    await until(() => trades.length === 1 && candles.length > 0 && quotes.length >= 2, 3_000, 'public streams');
    expect(quotes[0]).to.equal(0); // the BBO at subscription time (empty book), then every change
    expect(quotes[1]).to.equal(6_500_000);
    expect(trades).to.deep.equal([2]);
  });

  it('edge - cancel-on-disconnect cancels the session\'s resting orders, and only when asked', async () => {
    const withCod = await connect(KEYS.bob!.key, { cancelOnDisconnect: true, reconnect: false });
    expect(withCod.session.cancelOnDisconnect).to.equal(true);
    const without = await connect(KEYS.broker!.key, { reconnect: false });
    await withCod.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_700_000, qty: 3 });
    await withCod.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_300_000, qty: 4 });
    await without.place({ account: 'bob', symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_800_000, qty: 1 });
    await without.place({ account: 'alice', symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_200_000, qty: 1 });
    expect(w.gw.l2Snapshot('BTC-USD', 10)!.asks.length + w.gw.l2Snapshot('BTC-USD', 10)!.bids.length).to.equal(4);
    withCod.dropConnection();
    await until(() => w.gw.l2Snapshot('BTC-USD', 10)!.asks.length === 1 && w.gw.l2Snapshot('BTC-USD', 10)!.bids.length === 1, 3_000, 'cod cancels');
    const snap = w.gw.l2Snapshot('BTC-USD', 10)!;
    expect(snap.asks).to.deep.equal([[6_800_000, 1]]);
    expect(snap.bids).to.deep.equal([[6_200_000, 1]]);
    expect(w.edge.metrics.cancelOnDisconnectOrders).to.equal(2);
    // a session without it leaves its orders when it drops
    without.dropConnection();
    await sleep(100);
    expect(w.gw.l2Snapshot('BTC-USD', 10)!.asks).to.deep.equal([[6_800_000, 1]]);
  });

  it('edge - resuming the private stream after a reconnect gives no gap and no duplicate', async () => {
    const bob = await connect(KEYS.bob!.key);
    const alice = await connect(KEYS.alice!.key, { reconnectDelayMsMin: 20 });
    const seen: PrivateMessage[] = [];
    await alice.subscribePrivate((m) => seen.push(m));
    let reconnects = 0;
    alice.on('reconnect', () => reconnects++);
    await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 10_000 });
    // fills keep flowing to alice's account from another session (the broker) while alice's connection drops twice
    const broker = await connect(KEYS.broker!.key);
    for (let i = 0; i < 60; i++) {
      await broker.place({ account: 'alice', symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 6_500_000, qty: 1 });
      if (i === 15) alice.dropConnection();
      if (i === 40) {
        await until(() => reconnects === 1 && alice.connected, 3_000, 'first reconnect');
        alice.dropConnection();
      }
    }
    await until(() => reconnects >= 2 && seen.length === w.gw.journals.get('alice')!.length, 8_000, 'alice resumed and caught up').catch((e) => {
      throw new Error(`${e.message}: reconnects ${reconnects}, seen ${seen.length}, journal ${w.gw.journals.get('alice')!.length}, connected ${alice.connected}`);
    });
    expect(seen.map((m) => m.seq)).to.deep.equal(w.gw.seqs.get('alice'));
    expect(seen.map((m) => m.event)).to.deep.equal(w.gw.journals.get('alice'));
    expect(seen.filter((m) => m.event.type === 'FillSettled').length).to.equal(60);
    expect(alice.lastSeq('alice')).to.equal(w.gw.seqs.get('alice')!.at(-1));
  });

  it('edge - a place in flight when the connection drops is re-sent with its clientOrderId and executes once', async () => {
    const alice = await connect(KEYS.alice!.key, { reconnectDelayMsMin: 20 });
    w.gw.commitDelayMs = 50;
    const p = alice.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_100_000, qty: 3 });
    await sleep(10);
    alice.dropConnection();
    const r = await p;
    w.gw.commitDelayMs = 0;
    expect(r.ok).to.equal(true);
    expect(w.gw.l2Snapshot('BTC-USD', 10)!.bids).to.deep.equal([[6_100_000, 3]]);
  });
});
