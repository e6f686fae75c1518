/**
 * SDK behaviour against a scripted server (ws's WebSocketServer speaking the protocol by hand), so that
 * the failure paths a real venue rarely shows can be forced: duplicates, gaps, bad checksums, drops.
 * End-to-end tests against the real edge live in packages/edge/test.
 */
import { expect } from 'chai';
import { WebSocketServer, type WebSocket } from 'ws';
import { BourseClient, decodeFrame, encodeFrame, type PrivateMessage } from '../src/index.js';
import { Channel, ClientMsg, ServerMsg, checksumOf } from '@bourse/schemas';
import type { Level } from '@bourse/schemas';

type Frame = { t: number; id?: number } & Record<string, unknown>;

class Scripted {
  readonly wss: WebSocketServer;
  readonly received: Frame[] = [];
  readonly sockets: WebSocket[] = [];
  onSubscribe: (ws: WebSocket, f: Frame) => void = () => {};
  constructor() {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    this.wss.on('connection', (ws) => {
      this.sockets.push(ws);
      ws.on('message', (data: Buffer) => {
        const f = decodeFrame(data) as Frame;
        this.received.push(f);
        if (f.t === ClientMsg.Auth) {
          send(ws, { t: ServerMsg.AuthOk, id: f.id, keyId: 'k', role: 'trader', accounts: ['acc'], sessionId: 's', heartbeatMs: 5000, frameBytesMax: 65536, ordersPerSec: 100, messagesPerSec: 100, cancelOnDisconnect: false });
        } else if (f.t === ClientMsg.Subscribe) {
          send(ws, { t: ServerMsg.Subscribed, id: f.id, channel: f.channel, ...(f.symbol ? { symbol: f.symbol } : { account: 'acc' }) });
          this.onSubscribe(ws, f);
        }
      });
    });
  }
  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as { port: number }).port}`;
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    return new Promise((r) => this.wss.close(() => r()));
  }
}

const send = (ws: WebSocket, f: object) => ws.send(encodeFrame(f));
const event = (seq: number) => ({ type: 'Deposited', ts: seq, transferId: `t${seq}`, asset: 'USD', amount: seq, balance: { asset: 'USD', available: seq, held: 0 } });
/** Journal seqs are increasing but not contiguous: here the ledger events sit at 2, 4, 6, ... */
const priv = (n: number, prev = n - 1) => ({ t: ServerMsg.Private, account: 'acc', seq: 2 * n, prevSeq: 2 * prev, eventCode: 302, event: event(n) });
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('client - SDK against a scripted server', function () {
  this.timeout(10_000);
  let srv: Scripted;
  let client: BourseClient | undefined;
  beforeEach(async () => {
    srv = new Scripted();
    await new Promise((r) => srv.wss.once('listening', r));
  });
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await srv.close();
  });

  it('client - drops duplicate private seqs, and on a gap resubscribes from the last good seq', async () => {
    const subs: Frame[] = [];
    srv.onSubscribe = (ws, f) => {
      subs.push(f);
      const after = f.afterSeq as number;
      if (subs.length === 1) for (const s of [1, 2, 2, 3, 5, 6]) send(ws, priv(s)); // dup 2; 5 names 4 as its predecessor, which never came
      else for (let s = after / 2 + 1; s <= 7; s++) send(ws, priv(s));
    };
    client = await BourseClient.connect({ url: srv.url, key: 'k.x' });
    const seen: PrivateMessage[] = [];
    await client.subscribePrivate((m) => seen.push(m));
    await until(() => seen.length === 7);
    expect(seen.map((m) => m.seq)).to.deep.equal([2, 4, 6, 8, 10, 12, 14]);
    expect(subs.map((f) => f.afterSeq)).to.deep.equal([0, 6]);
    expect(seen[3]!.event).to.deep.equal(event(4));
  });

  it('client - reconnects after a drop and resumes the private stream at its last seq', async () => {
    const afters: number[] = [];
    srv.onSubscribe = (ws, f) => {
      afters.push(f.afterSeq as number);
      const from = (f.afterSeq as number) / 2 + 1;
      // the first connection sends 1..4 then dies; the next replays from what the client asks
      const to = afters.length === 1 ? 4 : 9;
      for (let s = from; s <= to; s++) send(ws, priv(s));
      if (afters.length === 1) setTimeout(() => ws.terminate(), 50);
    };
    client = await BourseClient.connect({ url: srv.url, key: 'k.x', reconnectDelayMsMin: 10 });
    const seen: number[] = [];
    let reconnected = 0;
    client.on('reconnect', () => reconnected++);
    await client.subscribePrivate((m) => seen.push(m.seq), { afterSeq: 0 });
    await until(() => seen.length === 9);
    expect(seen).to.deep.equal([2, 4, 6, 8, 10, 12, 14, 16, 18]);
    expect(afters).to.deep.equal([0, 8]);
    expect(reconnected).to.equal(1);
  });

  it('client - a checksum mismatch or an L2 gap asks for a new snapshot; the book ends exact', async () => {
    const bids: Level[] = [[100, 5], [99, 3]];
    const asks: Level[] = [[101, 2]];
    let snapshots = 0;
    srv.onSubscribe = (ws, f) => {
      if (f.channel !== Channel.l2) return;
      snapshots++;
      if (snapshots === 1) {
        send(ws, { t: ServerMsg.L2Snapshot, symbol: 'X', ts: 1, seq: 10, depth: 2, truncated: false, bids, asks, checksum: checksumOf(bids, asks) });
        // delta 11 correct, delta 12 with a wrong checksum
        const b11: Level[] = [[100, 6], [99, 3]];
        send(ws, { t: ServerMsg.L2Delta, symbol: 'X', ts: 2, seq: 11, bids: [[100, 6]], asks: [], checksum: checksumOf(b11, asks) });
        send(ws, { t: ServerMsg.L2Delta, symbol: 'X', ts: 3, seq: 12, bids: [[98, 1]], asks: [], checksum: 12345 });
      } else if (snapshots === 2) {
        const b: Level[] = [[100, 6], [99, 3], [98, 1]];
        send(ws, { t: ServerMsg.L2Snapshot, symbol: 'X', ts: 4, seq: 12, depth: 3, truncated: false, bids: b, asks, checksum: checksumOf(b, asks) });
        send(ws, { t: ServerMsg.L2Delta, symbol: 'X', ts: 5, seq: 14, bids: [[97, 1]], asks: [], checksum: 0 }); // gap: 13 missing
      } else {
        const b: Level[] = [[100, 6], [99, 3], [98, 1], [97, 1]];
        const a: Level[] = [[101, 2], [102, 4]];
        send(ws, { t: ServerMsg.L2Snapshot, symbol: 'X', ts: 6, seq: 14, depth: 4, truncated: false, bids: b, asks: [[101, 2]], checksum: checksumOf(b, [[101, 2]]) });
        send(ws, { t: ServerMsg.L2Delta, symbol: 'X', ts: 7, seq: 15, bids: [], asks: [[102, 4]], checksum: checksumOf(b, a) });
      }
    };
    client = await BourseClient.connect({ url: srv.url, key: 'k.x' });
    const problems: unknown[] = [];
    client.on('resync', (r: { problem: unknown }) => problems.push(r.problem));
    const h = await client.book('X');
    if (!h.ok) throw new Error('subscribe failed');
    await until(() => h.book.seq === 15);
    expect(problems).to.deep.equal(['checksum', 'gap']);
    expect(h.snapshots).to.equal(3);
    expect(h.book.depth()).to.deep.equal({ bids: [[100, 6], [99, 3], [98, 1], [97, 1]], asks: [[101, 2], [102, 4]] });
    expect(h.book.synced).to.equal(true);
  });

  it('client - rejects are values; requests made while disconnected say so instead of hanging', async () => {
    srv.wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => {
        const f = decodeFrame(data) as Frame;
        if (f.t === ClientMsg.Cancel) send(ws, { t: ServerMsg.Error, id: f.id, req: f.t, code: 2000, message: 'BOOK_UNKNOWN_ORDER' });
      });
    });
    client = await BourseClient.connect({ url: srv.url, key: 'k.x', reconnect: false });
    expect(await client.cancel('X', 5)).to.deep.equal({ ok: false, code: 2000, message: 'BOOK_UNKNOWN_ORDER' });
    client.dropConnection();
    await until(() => !client!.connected);
    const r = await client.cancel('X', 6);
    expect(r.ok).to.equal(false);
  });

  it('client - with reconnect off, or after close(), a place made while disconnected answers at once instead of waiting forever', async () => {
    const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);
    const order = { symbol: 'X', side: 'buy', orderType: 'limit', tif: 'IOC', price: 100, qty: 1 } as const;
    client = await BourseClient.connect({ url: srv.url, key: 'k.x', reconnect: false });
    client.dropConnection();
    await until(() => !client!.connected);
    const r = await within(client.place(order), 1_000);
    expect(r).to.not.equal('hung');
    expect(r).to.include({ ok: false, code: 6000 }); // ACTOR_UNAVAILABLE: the outcome is unknown (nothing was sent)
    // After close() (reconnect on by default): no reconnect is coming either.
    const c2 = await BourseClient.connect({ url: srv.url, key: 'k.x' });
    await c2.close();
    const r2 = await within(c2.place(order), 1_000);
    expect(r2).to.not.equal('hung');
    expect(r2).to.include({ ok: false });
  });
});
