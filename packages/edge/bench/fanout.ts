/**
 * bench:fanout — public market-data fan-out to 1000 WebSocket subscribers on 127.0.0.1.
 *
 * Two servers, measured side by side in one run, each with the same subscribers and the same pacing:
 * - `uws`: a bare uWebSockets.js app; every socket subscribes to one topic on open; the publisher calls
 *   `app.publish(topic, bytes)` with a pre-encoded Quote frame (the ceiling: uWS alone).
 * - `edge`: `startEdge` over a stub gateway; each subscriber authenticates and subscribes to the BBO
 *   channel with protocol frames; the publisher hands Quote events to the gateway callback, and the
 *   edge encodes each one (once) and publishes it to the channel's topic (the real path).
 *
 * Subscribers run in child processes (default 2 × 500 connections). Each is a minimal WebSocket client
 * over node:net that parses frame headers and counts binary frames without decoding them, so the
 * receiving side costs little CPU. "Delivered" = frames counted by the subscribers. The publisher is
 * closed-loop: it keeps at most `windowMsgs` messages per subscriber in flight (published minus the
 * subscribers' last reported count), so the figure is a sustained rate, not a burst into buffers.
 * Warm-up 1 s, then measured for `seconds` (default 5) per variant; the variants alternate `rounds`
 * times (default 2) and the best round of each is reported with all rounds listed.
 *
 * Run: pnpm run bench:fanout [-- --subs 1000 --children 2 --seconds 5 --rounds 2]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { loadavg, cpus } from 'node:os';
import { App, us_listen_socket_close, us_socket_local_port } from 'uWebSockets.js';
import type { us_listen_socket, us_socket } from 'uWebSockets.js';
import { Packr } from 'msgpackr';
import { Channel, ClientMsg, ServerMsg, defineInstrument, wireValue } from '@bourse/schemas';
import type { Quote } from '@bourse/schemas';
import { startEdge } from '../src/edge.js';
import type { PublicEvent, VenueGateway } from '../src/gateway.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const SYMBOL = 'BTC-USD';
const KEY = 'bench.fanout-key';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

// ---------------------------------------------------------------- child: subscribers

interface ChildStart {
  readonly port: number;
  readonly conns: number;
  readonly mode: 'uws' | 'edge';
}

function maskedFrame(payload: Uint8Array): Buffer {
  // Client frames must be masked; a zero mask key leaves the payload as is.
  if (payload.length >= 126) throw new Error('bench frames are small');
  return Buffer.concat([Buffer.from([0x82, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
}

function runChild(): void {
  let counted = 0;
  let ready = 0;
  const sockets: Socket[] = [];
  process.on('message', (m: { cmd: string } & Partial<ChildStart>) => {
    if (m.cmd === 'start') start(m as unknown as ChildStart);
    else if (m.cmd === 'count') process.send!({ cmd: 'count', counted });
    else if (m.cmd === 'stop') {
      for (const s of sockets) s.destroy();
      process.exit(0);
    }
  });
  const start = ({ port, conns, mode }: ChildStart) => {
    const auth = maskedFrame(packr.pack({ t: ClientMsg.Auth, id: 1, key: KEY }));
    const sub = maskedFrame(packr.pack({ t: ClientMsg.Subscribe, id: 2, channel: Channel.bbo, symbol: SYMBOL }));
    for (let c = 0; c < conns; c++) {
      const s = netConnect({ host: '127.0.0.1', port, noDelay: true });
      sockets.push(s);
      let handshake: Buffer | null = Buffer.alloc(0);
      let carry: Buffer | null = null;
      let skip = 0;
      let frames = 0;
      let isReady = false;
      const markReady = () => {
        if (!isReady) {
          isReady = true;
          if (++ready === conns) process.send!({ cmd: 'ready' });
        }
      };
      const parse = (input: Buffer) => {
        let buf = input;
        if (carry) {
          buf = Buffer.concat([carry, buf]);
          carry = null;
        }
        const n = buf.length;
        let i = 0;
        if (skip > 0) {
          const k = Math.min(skip, n);
          skip -= k;
          i = k;
        }
        while (i < n) {
          if (n - i < 2) {
            carry = Buffer.from(buf.subarray(i));
            return;
          }
          const b0 = buf[i]!;
          let len = buf[i + 1]! & 0x7f;
          let h = 2;
          if (len === 126) {
            if (n - i < 4) return void (carry = Buffer.from(buf.subarray(i)));
            len = buf.readUInt16BE(i + 2);
            h = 4;
          } else if (len === 127) {
            if (n - i < 10) return void (carry = Buffer.from(buf.subarray(i)));
            len = Number(buf.readBigUInt64BE(i + 2));
            h = 10;
          }
          if ((b0 & 0x0f) === 2) {
            frames++;
            if (isReady) counted++;
            else if (mode === 'edge' && frames >= 2) markReady(); // AuthOk, Subscribed
          }
          i += h;
          const avail = n - i;
          if (len <= avail) i += len;
          else {
            skip = len - avail;
            i = n;
          }
        }
      };
      s.on('connect', () => {
        const key = randomBytes(16).toString('base64');
        s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      s.on('data', (d: Buffer) => {
        if (handshake) {
          handshake = Buffer.concat([handshake, d]);
          const end = handshake.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!handshake.subarray(0, 12).toString().includes('101')) throw new Error(`handshake failed: ${handshake.toString()}`);
          const rest = handshake.subarray(end + 4);
          handshake = null;
          if (mode === 'edge') s.write(Buffer.concat([auth, sub]));
          else markReady();
          if (rest.length) parse(rest);
          return;
        }
        parse(d);
      });
      s.on('error', (e) => {
        console.error(`subscriber error: ${e.message}`);
      });
    }
  };
}

// ---------------------------------------------------------------- parent

interface Round {
  readonly variant: 'uws' | 'edge';
  readonly deliveredPerSec: number;
  readonly publishedPerSec: number;
  readonly seconds: number;
}

async function startChildren(port: number, subs: number, nChildren: number, mode: 'uws' | 'edge'): Promise<ChildProcess[]> {
  const self = fileURLToPath(import.meta.url);
  const kids: ChildProcess[] = [];
  const readies: Promise<void>[] = [];
  for (let k = 0; k < nChildren; k++) {
    const conns = Math.floor(subs / nChildren) + (k < subs % nChildren ? 1 : 0);
    const child = fork(self, ['child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    kids.push(child);
    readies.push(new Promise<void>((resolve) => child.on('message', (m: { cmd: string }) => m.cmd === 'ready' && resolve())));
    child.send({ cmd: 'start', port, conns, mode });
  }
  await Promise.race([Promise.all(readies), new Promise((_, rej) => setTimeout(() => rej(new Error('subscribers not ready in 30 s')), 30_000))]);
  return kids;
}

function counter(kids: ChildProcess[]): () => Promise<number> {
  const last = new Map<ChildProcess, number>();
  for (const k of kids) {
    last.set(k, 0);
    k.on('message', (m: { cmd: string; counted?: number }) => m.cmd === 'count' && last.set(k, m.counted!));
  }
  return async () => {
    const before = kids.map((k) => new Promise<void>((r) => k.once('message', () => r())));
    for (const k of kids) k.send({ cmd: 'count' });
    await Promise.all(before);
    let sum = 0;
    for (const v of last.values()) sum += v;
    return sum;
  };
}

/** Publishes with `publish()` closed-loop for warm-up + `seconds`; returns delivered/s measured after warm-up. */
async function drive(kids: ChildProcess[], subs: number, publish: () => void, seconds: number, windowMsgs: number): Promise<{ delivered: number; published: number; elapsedS: number }> {
  const count = counter(kids);
  let published = 0;
  let delivered = 0;
  let running = true;
  // poll the subscribers' counts every 20 ms
  const poll = (async () => {
    while (running) {
      delivered = await count();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const pump = () => {
    if (!running) return;
    const ahead = published - delivered / subs;
    const room = Math.min(256, windowMsgs - ahead);
    for (let i = 0; i < room; i++) {
      publish();
      published++;
    }
    setImmediate(pump);
  };
  pump();
  await new Promise((r) => setTimeout(r, 1000));
  const d0 = await count();
  const p0 = published;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const d1 = await count();
  const elapsedS = (performance.now() - t0) / 1000;
  const p1 = published;
  running = false;
  await poll;
  return { delivered: (d1 - d0) / elapsedS, published: (p1 - p0) / elapsedS, elapsedS };
}

function quote(seq: number): Quote {
  return { type: 'Quote', ts: Date.now(), symbol: SYMBOL, seq, bidPrice: 6_500_000 - (seq % 7) * 50, bidQty: 10 + (seq % 13), askPrice: 6_500_050 + (seq % 5) * 50, askQty: 7 + (seq % 11) };
}

async function runUws(subs: number, nChildren: number, seconds: number, windowMsgs: number): Promise<Round> {
  const app = App();
  app.ws('/*', { maxBackpressure: 64 * 1024 * 1024, open: (ws) => void ws.subscribe('q'), message: () => {} });
  const ls = await new Promise<us_listen_socket>((res, rej) => app.listen('127.0.0.1', 0, (s) => (s ? res(s) : rej(new Error('listen')))));
  const port = us_socket_local_port(ls as unknown as us_socket);
  const kids = await startChildren(port, subs, nChildren, 'uws');
  let seq = 0;
  const q = quote(0);
  const bytes = packr.pack(wireValue({ t: ServerMsg.Quote, symbol: SYMBOL, ts: q.ts, seq: 1, bidPrice: q.bidPrice, bidQty: q.bidQty, askPrice: q.askPrice, askQty: q.askQty }));
  const r = await drive(kids, subs, () => void (seq++, app.publish('q', bytes, true)), seconds, windowMsgs);
  for (const k of kids) k.send({ cmd: 'stop' });
  us_listen_socket_close(ls);
  app.close();
  return { variant: 'uws', deliveredPerSec: Math.round(r.delivered), publishedPerSec: Math.round(r.published), seconds: r.elapsedS };
}

async function runEdge(subs: number, nChildren: number, seconds: number, windowMsgs: number): Promise<Round> {
  const listeners: ((e: PublicEvent) => void)[] = [];
  const inst = defineInstrument({ symbol: SYMBOL, tickSize: 50, lotSize: 1, minQty: 1, maxQty: 1000 });
  const nope = () => Promise.reject(new Error('bench gateway: public data only'));
  const gateway = {
    instruments: () => [inst],
    subscribePublic: (_s: string, fn: (e: PublicEvent) => void) => (listeners.push(fn), () => {}),
    subscribePrivate: () => () => {},
    privateHead: nope,
    l2Snapshot: () => undefined,
    placeOrder: nope, cancelOrder: nope, amendOrder: nope, massCancel: nope, openAccount: nope, deposit: nope, withdraw: nope, setTradingStatus: nope,
    reads: undefined,
    close: async () => {},
  } as unknown as VenueGateway;
  const edge = await startEdge({ gateway, port: 0, keys: [{ key: KEY, role: 'analyst', accounts: [], messagesPerSec: 1_000_000 }], logLevel: 'warn', heartbeatMs: 60_000, maxBackpressureBytes: 64 * 1024 * 1024, preAuthMessagesPerSec: 100 });
  const kids = await startChildren(edge.port, subs, nChildren, 'edge');
  let seq = 0;
  const r = await drive(kids, subs, () => {
    const e = { symbol: SYMBOL, event: quote(++seq) };
    for (const l of listeners) l(e);
  }, seconds, windowMsgs);
  for (const k of kids) k.send({ cmd: 'stop' });
  await edge.close();
  return { variant: 'edge', deliveredPerSec: Math.round(r.delivered), publishedPerSec: Math.round(r.published), seconds: r.elapsedS };
}

async function main(): Promise<void> {
  const subs = arg('subs', 1000);
  const nChildren = arg('children', 2);
  const seconds = arg('seconds', 5);
  const rounds = arg('rounds', 2);
  const windowMsgs = arg('window', 200);
  const sample = packr.pack(wireValue({ t: ServerMsg.Quote, symbol: SYMBOL, ts: Date.now(), seq: 123456, bidPrice: 6_500_000, bidQty: 10, askPrice: 6_500_050, askQty: 7 })).length;
  console.log(`bench:fanout — ${subs} subscribers on 127.0.0.1 in ${nChildren} child process(es), Quote frames of ~${sample} bytes`);
  console.log(`method: closed-loop publisher (<= ${windowMsgs} msgs/subscriber in flight), 1 s warm-up then ${seconds} s measured per variant, ${rounds} alternating round(s);`);
  console.log('        delivered = binary frames counted by the subscribers (header parse over node:net, no decode); uws = bare uWS topic publish of pre-encoded bytes; edge = startEdge, encode per event + topic publish');
  console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at start`);
  const all: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const run of [runUws, runEdge]) {
      const res = await run(subs, nChildren, seconds, windowMsgs);
      all.push(res);
      console.log(`  round ${r + 1} ${res.variant.padEnd(4)}: ${(res.deliveredPerSec / 1e6).toFixed(2)}M msgs/s delivered (${res.publishedPerSec} published/s)`);
      await new Promise((res2) => setTimeout(res2, 300));
    }
  }
  const best = (v: 'uws' | 'edge') => Math.max(...all.filter((x) => x.variant === v).map((x) => x.deliveredPerSec));
  const edgeBest = best('edge');
  const uwsBest = best('uws');
  console.log(JSON.stringify({
    bench: 'fanout', subscribers: subs, children: nChildren, frameBytes: sample, seconds, rounds,
    edgeMsgsPerSec: edgeBest, uwsMsgsPerSec: uwsBest, edgeVsUws: Math.round((edgeBest / uwsBest) * 100) / 100,
    targetMsgsPerSec: 2_000_000, meetsTarget: edgeBest >= 2_000_000,
    loadAvgEnd: loadavg().map((x) => Math.round(x * 100) / 100), runs: all,
  }));
}

if (process.argv[2] === 'child') runChild();
else main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
