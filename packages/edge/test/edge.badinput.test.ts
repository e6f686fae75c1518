import { expect } from 'chai';
import { RawConnection, BourseClient, AuthError, type AnyFrame } from '@bourse/client';
import { Channel, ClientMsg, CloseCode, Reject, ServerMsg } from '@bourse/schemas';
import { world, KEYS, sleep, type World } from './helpers.js';

const isErr = (code: number) => (f: AnyFrame) => f.t === ServerMsg.Error && f.code === code;

describe('edge - bad input is answered, not fatal (DESIGN guarantee 6)', function () {
  this.timeout(20_000);
  let w: World;
  const raws: RawConnection[] = [];
  let bystander: BourseClient;
  const open = async (key?: string) => {
    const r = await RawConnection.open(w.edge.url);
    raws.push(r);
    if (key) {
      r.send({ t: ClientMsg.Auth, id: 1, key });
      await r.next((f) => f.t === ServerMsg.AuthOk);
    }
    return r;
  };
  /** The session (and node) keep working: the same connection still answers a Ping. */
  const stillWorks = async (r: RawConnection) => {
    r.send({ t: ClientMsg.Ping, id: 77, ts: 5 });
    const pong = await r.next((f) => f.t === ServerMsg.Pong && f.id === 77);
    expect(pong.ts).to.equal(5);
    expect(r.closed).to.equal(undefined);
  };
  beforeEach(async () => {
    w = await world({ frameBytesMax: 4096 });
    bystander = await BourseClient.connect({ url: w.edge.url, key: KEYS.bob!.key, reconnect: false });
  });
  afterEach(async () => {
    // garbage on other sessions never disturbed this one
    expect(bystander.connected).to.equal(true);
    expect((await bystander.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 7_000_000, qty: 1 })).ok).to.equal(true);
    await bystander.close();
    await Promise.all(raws.splice(0).map((r) => r.close()));
    await w.close();
  });

  it('edge - malformed msgpack gets PROTO_MALFORMED_FRAME and closes only that session', async () => {
    const r = await open(KEYS.alice!.key);
    r.sendBytes(new Uint8Array([0xc1])); // never-used byte
    await r.next(isErr(Reject.PROTO_MALFORMED_FRAME));
    expect((await r.whenClosed()).code).to.equal(CloseCode.protocolError);
    const r2 = await open(KEYS.alice!.key);
    r2.sendBytes(new Uint8Array([0x82, 0xa1, 0x74, 0x01])); // truncated map
    await r2.next(isErr(Reject.PROTO_MALFORMED_FRAME));
    expect((await r2.whenClosed()).code).to.equal(CloseCode.protocolError);
  });

  it('edge - a frame that is not a map with an integer t, or a text frame, is garbage: error then close', async () => {
    const r = await open();
    r.send([1, 2, 3]);
    await r.next(isErr(Reject.PROTO_MALFORMED_FRAME));
    expect((await r.whenClosed()).code).to.equal(CloseCode.protocolError);
    const r2 = await open();
    r2.sendText('{"t":1}');
    await r2.next(isErr(Reject.PROTO_MALFORMED_FRAME));
    expect((await r2.whenClosed()).code).to.equal(CloseCode.protocolError);
  });

  it('edge - an unknown message type gets PROTO_UNKNOWN_MESSAGE; the session stays open', async () => {
    const r = await open(KEYS.alice!.key);
    r.send({ t: 29, id: 5 });
    const e = await r.next(isErr(Reject.PROTO_UNKNOWN_MESSAGE));
    expect([e.id, e.req]).to.deep.equal([5, 29]);
    await stillWorks(r);
  });

  it('edge - wrong field types get PROTO_BAD_FIELD naming the field; the session stays open', async () => {
    const r = await open(KEYS.alice!.key);
    const base = { t: ClientMsg.Place, symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 1 };
    const cases: [object, string][] = [
      [{ ...base, id: 10, price: '6500000' }, 'price'],
      [{ ...base, id: 11, qty: 1.5 }, 'qty'],
      [{ ...base, id: 12, side: 'long' }, 'side'],
      [{ ...base, id: 13, symbol: 42 }, 'symbol'],
      [{ ...base, id: 14, postOnly: 'yes' }, 'postOnly'],
      [{ ...base, id: 'x' }, 'id'],
      [{ t: ClientMsg.Cancel, id: 15, symbol: 'BTC-USD', orderId: -1 }, 'orderId'],
      [{ t: ClientMsg.Amend, id: 16, symbol: 'BTC-USD', orderId: 5 }, 'price, qty'],
      [{ t: ClientMsg.Subscribe, id: 17, channel: 99, symbol: 'BTC-USD' }, 'channel'],
      [{ t: ClientMsg.Subscribe, id: 18, channel: Channel.private, fromNow: 'yes' }, 'fromNow'],
      [{ t: ClientMsg.Subscribe, id: 19, channel: Channel.private, fromNow: true, afterSeq: 3 }, 'fromNow'],
    ];
    for (const [frame] of cases) r.send(frame);
    for (const [frame, field] of cases) {
      const id = typeof (frame as { id: unknown }).id === 'number' ? (frame as { id: number }).id : 0;
      const e = await r.next((f) => f.t === ServerMsg.Error && f.id === id && String(f.message).startsWith(field));
      expect(e.code).to.equal(Reject.PROTO_BAD_FIELD);
    }
    await stillWorks(r);
    expect(w.gw.l2Snapshot('BTC-USD', 10)!.bids).to.deep.equal([]);
  });

  it('edge - an oversized frame gets PROTO_FRAME_TOO_LARGE and closes only that session', async () => {
    const r = await open(KEYS.alice!.key);
    r.send({ t: ClientMsg.Ping, id: 3, ts: 1, pad: 'x'.repeat(5000) });
    await r.next(isErr(Reject.PROTO_FRAME_TOO_LARGE));
    expect((await r.whenClosed()).code).to.equal(CloseCode.frameTooLarge);
  });

  it('edge - an unknown instrument or account gets its code; the session stays open', async () => {
    const r = await open(KEYS.admin!.key);
    const order = { t: ClientMsg.Place, side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 1 };
    r.send({ ...order, id: 20, account: 'alice', symbol: 'DOGE-USD' });
    expect((await r.next((f) => f.t === ServerMsg.Error && f.id === 20)).code).to.equal(Reject.ORDER_UNKNOWN_INSTRUMENT);
    r.send({ ...order, id: 21, account: 'nobody', symbol: 'BTC-USD' });
    expect((await r.next((f) => f.t === ServerMsg.Error && f.id === 21)).code).to.equal(Reject.ADMIN_UNKNOWN_ACCOUNT);
    r.send({ t: ClientMsg.Subscribe, id: 22, channel: Channel.l2, symbol: 'DOGE-USD' });
    expect((await r.next((f) => f.t === ServerMsg.Error && f.id === 22)).code).to.equal(Reject.ORDER_UNKNOWN_INSTRUMENT);
    await stillWorks(r);
  });

  it('edge - the wrong role or account gets AUTH_* codes; the session stays open', async () => {
    const analyst = await open(KEYS.analyst!.key);
    analyst.send({ t: ClientMsg.Place, id: 30, account: 'alice', symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 1 });
    expect((await analyst.next((f) => f.t === ServerMsg.Error && f.id === 30)).code).to.equal(Reject.AUTH_FORBIDDEN_ROLE);
    await stillWorks(analyst);
    const alice = await open(KEYS.alice!.key);
    alice.send({ t: ClientMsg.Place, id: 31, account: 'bob', symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 1 });
    expect((await alice.next((f) => f.t === ServerMsg.Error && f.id === 31)).code).to.equal(Reject.AUTH_ACCOUNT_NOT_PERMITTED);
    alice.send({ t: ClientMsg.Subscribe, id: 32, channel: Channel.private, account: 'bob' });
    expect((await alice.next((f) => f.t === ServerMsg.Error && f.id === 32)).code).to.equal(Reject.AUTH_ACCOUNT_NOT_PERMITTED);
    await stillWorks(alice);
  });

  it('edge - requests before Auth get PROTO_NOT_AUTHENTICATED; a bad key AUTH_INVALID_KEY, three close the session', async () => {
    const r = await open();
    r.send({ t: ClientMsg.Place, id: 40, symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 1 });
    expect((await r.next((f) => f.t === ServerMsg.Error && f.id === 40)).code).to.equal(Reject.PROTO_NOT_AUTHENTICATED);
    await stillWorks(r);
    for (const id of [41, 42]) {
      r.send({ t: ClientMsg.Auth, id, key: 'alice.wrong' });
      expect((await r.next((f) => f.t === ServerMsg.Error && f.id === id)).code).to.equal(Reject.AUTH_INVALID_KEY);
    }
    r.send({ t: ClientMsg.Auth, id: 43, key: KEYS.alice!.key });
    await r.next((f) => f.t === ServerMsg.AuthOk && f.id === 43);
    r.send({ t: ClientMsg.Auth, id: 44, key: KEYS.alice!.key });
    expect((await r.next((f) => f.t === ServerMsg.Error && f.id === 44)).code).to.equal(Reject.PROTO_BAD_SEQUENCE);
    const r2 = await open();
    for (const id of [1, 2, 3]) r2.send({ t: ClientMsg.Auth, id, key: 'nope' });
    expect((await r2.whenClosed()).code).to.equal(CloseCode.authFailed);
    const failed = await BourseClient.connect({ url: w.edge.url, key: 'bad.key' }).then(() => undefined, (e: unknown) => e);
    expect(failed).to.be.instanceOf(AuthError);
    expect((failed as AuthError).code).to.equal(Reject.AUTH_INVALID_KEY);
  });

  it('edge - order throttle answers THROTTLE_ORDERS, message throttle THROTTLE_MESSAGES; no disconnect', async () => {
    const slow = await open(KEYS.slow!.key); // 5 orders/s
    for (let i = 0; i < 12; i++) slow.send({ t: ClientMsg.Place, id: 100 + i, symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_000_000, qty: 1 });
    await slow.next((f) => f.id === 111 && (f.t === ServerMsg.Error || f.t === ServerMsg.Placed));
    await sleep(50);
    const answers = slow.frames.filter((f) => typeof f.id === 'number' && (f.id as number) >= 100);
    const throttled = answers.filter(isErr(Reject.THROTTLE_ORDERS)).length;
    expect(answers.length).to.equal(12);
    expect(throttled).to.be.within(6, 7);
    await stillWorks(slow);
    const chatty = await open(KEYS.chatty!.key); // 10 messages/s (the Auth was one)
    for (let i = 0; i < 30; i++) chatty.send({ t: ClientMsg.Ping, id: 200 + i, ts: i });
    await chatty.next((f) => f.id === 229);
    expect(chatty.frames.filter(isErr(Reject.THROTTLE_MESSAGES)).length).to.be.within(19, 21);
    expect(chatty.closed).to.equal(undefined);
    await sleep(300);
    await stillWorks(chatty);
  });
});

describe('edge - heartbeats', function () {
  this.timeout(10_000);
  it('edge - the server sends Heartbeat frames and answers Ping; a silent session is closed after 3 intervals', async () => {
    const w = await world({ heartbeatMs: 100 });
    try {
      const r = await RawConnection.open(w.edge.url);
      r.send({ t: ClientMsg.Auth, id: 1, key: KEYS.alice!.key });
      const ok = await r.next((f) => f.t === ServerMsg.AuthOk);
      expect(ok.heartbeatMs).to.equal(100);
      await r.next((f) => f.t === ServerMsg.Heartbeat);
      expect((await r.whenClosed(2_000)).code).to.equal(CloseCode.heartbeatTimeout);
      // the SDK pings by itself and stays connected
      const c = await BourseClient.connect({ url: w.edge.url, key: KEYS.alice!.key, reconnect: false });
      let beats = 0;
      c.on('heartbeat', () => beats++);
      await sleep(700);
      expect(c.connected).to.equal(true);
      expect(beats).to.be.greaterThan(3);
      await c.close();
    } finally {
      await w.close();
    }
  });
});
