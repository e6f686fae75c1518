/**
 * The end-to-end scenario in cluster mode: a private nats-server, a private Postgres schema,
 * two engine nodes (`bourse node`) and one edge (`bourse edge`) as child processes of the CLI, driven
 * through the SDK over real WebSockets and the HTTP admin API. Every process is stopped by its pid.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BourseClient, type PrivateMessage } from '@bourse/client';
import { clusterStatus } from '@bourse/actors';
import { checksumOf, type L2Snapshot } from '@bourse/schemas';
import { BTC, KEYS, ACCOUNTS, until, sleep } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../../../..' : '../../..');
const cli = path.join(root, 'packages/edge/dist/src/cli/main.js');
const NATS_BIN = '/usr/sbin/nats-server';

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  out: string;
  readonly ready: Promise<void>;
}

/** The actors package's test harness (compiled): a private nats-server with JetStream, free ports. */
const harness = (await import(pathToFileURL(path.join(root, 'packages/actors/dist/test/cluster-harness.js')).href)) as {
  freePort(): Promise<number>;
  startNatsServer(): Promise<{ readonly url: string; stop(): Promise<void> }>;
};
const { freePort } = harness;

/** Starts a process; `ready` resolves when it prints a line `ready` (rejects if it exits first or after `ms`). */
function startProc(name: string, cmd: string, args: string[], ms = 30_000): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = {
    name,
    child,
    out: '',
    ready: new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name} not ready within ${ms} ms:\n${p.out}`)), ms);
      const on = (b: Buffer) => {
        p.out += b.toString();
        if (/^ready$/m.test(p.out)) {
          clearTimeout(t);
          resolve();
        }
      };
      child.stdout!.on('data', on);
      child.stderr!.on('data', (b: Buffer) => (p.out += b.toString()));
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`${name} exited (${code}) before ready:\n${p.out}`));
      });
    }),
  };
  p.ready.catch(() => {});
  return p;
}

/** SIGTERM by pid, then SIGKILL by pid after `graceMs`. */
async function stopProc(p: Proc | undefined, graceMs = 8_000): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.child.once('exit', () => r()));
  try {
    process.kill(p.child.pid!, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(p.child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await exited;
  clearTimeout(t);
}

describe('cli - bourse node / bourse edge arguments', () => {
  it('cli - node and edge answer bad arguments with a one-line reason and exit 2', () => {
    const cases = [
      ['node'],
      ['node', '--nats', 'nats://127.0.0.1:4222'],
      ['node', '--nats', 'nats://127.0.0.1:4222', '--pg', 'postgres://x/y', '--id', 'bad id'],
      ['edge', '--pg', 'postgres://x/y'],
      ['edge', '--nats', 'nats://127.0.0.1:4222', '--pg', 'mysql://x'],
      ['edge', '--nats', 'nats://127.0.0.1:4222', '--pg', 'postgres://x/y', '--port', '-1'],
      ['edge', '--nats', 'nats://127.0.0.1:4222', '--pg', 'postgres://x/y', '--cluster', 'a.b'],
      ['node', '--nats', 'nats://127.0.0.1:4222', '--pg', 'postgres://x/y', '--bogus'],
    ];
    for (const args of cases) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(r.stderr, args.join(' ')).to.match(/^bourse (node|edge): /);
    }
  });
});

describe('edge - cluster mode end to end: NATS, Postgres, two engine nodes and one edge (CLI processes)', function () {
  this.timeout(90_000);
  let dir: string;
  let nats: Awaited<ReturnType<typeof harness.startNatsServer>> | undefined;
  let natsUrl: string;
  let dropSchema: (() => Promise<void>) | undefined;
  const cluster = `e2e${process.pid}${Math.random().toString(36).slice(2, 6)}`;
  const nodes: Proc[] = [];
  let edgeProc: Proc | undefined;
  let wsUrl: string;
  let httpUrl: string;
  const clients: BourseClient[] = [];
  const connect = async (key: string, extra: Partial<Parameters<typeof BourseClient.connect>[0]> = {}) => {
    const c = await BourseClient.connect({ url: wsUrl, key, ...extra });
    clients.push(c);
    return c;
  };
  const http = async (method: string, p: string, key: string, body?: unknown) => {
    const r = await fetch(`${httpUrl}${p}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return JSON.parse(text) as unknown;
  };
  const shardsByNode = async () => {
    const [status] = await clusterStatus(natsUrl, { cluster });
    return new Map((status?.nodes ?? []).map((n) => [n.node, n.shards.length]));
  };
  const depth = async () => (await http('GET', '/v1/instruments/BTC-USD/depth?levels=1000', KEYS.analyst!.key)) as L2Snapshot;

  before(async function () {
    if (!existsSync(NATS_BIN)) this.skip();
    if (!existsSync(cli)) throw new Error(`${cli} missing: build first (pnpm exec tsc -b)`);
    dir = mkdtempSync(path.join(tmpdir(), 'bourse-cluster-e2e-'));
    nats = await harness.startNatsServer();
    natsUrl = nats.url;
    // A private, migrated Postgres schema (the store's compiled test helper).
    const testing = (await import(pathToFileURL(path.join(root, 'packages/store/dist/src/testing.js')).href)) as {
      createTestTarget(d: 'pg'): Promise<{ options: { pg: string; schema: string }; drop(): Promise<void> }>;
    };
    const target = await testing.createTestTarget('pg');
    dropSchema = () => target.drop();
    const keysFile = path.join(dir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify(Object.values(KEYS)));
    const instrumentsFile = path.join(dir, 'instruments.json');
    writeFileSync(instrumentsFile, JSON.stringify([BTC]));
    const common = ['--nats', natsUrl, '--pg', target.options.pg, '--schema', target.options.schema, '--cluster', cluster, '--instruments', instrumentsFile];
    for (const id of ['n1', 'n2']) nodes.push(startProc(id, process.execPath, [cli, 'node', ...common, '--id', id]));
    await Promise.all(nodes.map((n) => n.ready));
    // The second node to join takes over its share of the shards (rebalance): wait for it.
    const spread = Date.now() + 20_000;
    for (;;) {
      const s = await shardsByNode();
      if ((s.get('n1') ?? 0) > 0 && (s.get('n2') ?? 0) > 0) break;
      if (Date.now() > spread) throw new Error(`shards not spread over both nodes: ${JSON.stringify([...s])}`);
      await sleep(200);
    }
    const port = await freePort();
    edgeProc = startProc('edge', process.execPath, [cli, 'edge', ...common, '--port', String(port), '--keys', keysFile]);
    await edgeProc.ready;
    wsUrl = `ws://127.0.0.1:${port}`;
    httpUrl = `http://127.0.0.1:${port}`;
    for (const a of ACCOUNTS) {
      await http('POST', '/v1/admin/accounts', KEYS.admin!.key, { account: a });
      await http('POST', `/v1/admin/accounts/${a}/deposits`, KEYS.admin!.key, { asset: 'USD', amount: 10_000_000_000_000, transferId: `usd-${a}` });
      await http('POST', `/v1/admin/accounts/${a}/deposits`, KEYS.admin!.key, { asset: 'BTC', amount: 100_000_000_000, transferId: `btc-${a}` });
    }
  });

  after(async function () {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
    await stopProc(edgeProc);
    await Promise.all(nodes.map((n) => stopProc(n)));
    await nats?.stop();
    await dropSchema?.().catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('edge - cluster: both engine nodes serve shards; two accounts trade through the SDK; fills on both private streams; balances settle; the L2 book rebuilds with matching checksums', async () => {
    // Shards are spread over both nodes (so the saga crosses processes).
    const served = await shardsByNode();
    expect([...served.keys()].sort()).to.deep.equal(['n1', 'n2']);
    expect(served.get('n1')).to.be.greaterThan(0);
    expect(served.get('n2')).to.be.greaterThan(0);

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

    const ask = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 10, clientOrderId: 'b-1' });
    expect(ask.ok, JSON.stringify(ask)).to.equal(true);
    // a resent clientOrderId gets the original answer
    const again = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_000, qty: 10, clientOrderId: 'b-1' });
    expect(again).to.deep.equal(ask);
    for (let i = 1; i <= 5; i++) {
      const r = await bob.place({ symbol: 'BTC-USD', side: i % 2 ? 'sell' : 'buy', orderType: 'limit', tif: 'GTC', price: i % 2 ? 6_500_000 + i * 50 : 6_400_000 - i * 50, qty: i });
      expect(r.ok, JSON.stringify(r)).to.equal(true);
    }
    const buy = await alice.place({ symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 6_500_000, qty: 4 });
    expect(buy.ok, JSON.stringify(buy)).to.equal(true);

    await until(() => aEvents.some((m) => m.event.type === 'FillSettled') && bEvents.some((m) => m.event.type === 'FillSettled'), 15_000, 'fills on both streams');
    const aFill = aEvents.find((m) => m.event.type === 'FillSettled')!.event;
    const bFill = bEvents.find((m) => m.event.type === 'FillSettled')!.event;
    expect(aFill).to.deep.include({ role: 'taker', side: 'buy', qty: 4, price: 6_500_000 });
    expect(bFill).to.deep.include({ role: 'maker', side: 'sell', qty: 4, price: 6_500_000, clientOrderId: 'b-1' });
    if (buy.ok && ask.ok && aFill.type === 'FillSettled' && bFill.type === 'FillSettled') {
      expect(aFill.orderId).to.equal(buy.orderId);
      expect(bFill.orderId).to.equal(ask.orderId);
    }
    for (const evs of [aEvents, bEvents]) for (let i = 1; i < evs.length; i++) expect(evs[i]!.seq).to.be.greaterThan(evs[i - 1]!.seq);

    // Balances settle: the read models, projected by the engine nodes from the Postgres journal.
    const fee = (n: number, bps: number) => Math.ceil((n * bps) / 10_000);
    const notional = 4 * 6_500_000;
    const usd = async (account: string, key: string) => {
      const rows = (await http('GET', `/v1/accounts/${account}/balances`, key)) as { asset: string; available: number; held: number }[];
      const u = rows.find((b) => b.asset === 'USD');
      return (u?.available ?? 0) + (u?.held ?? 0);
    };
    const aliceUsd = 10_000_000_000_000 - notional - fee(notional, 5);
    const bobUsd = 10_000_000_000_000 + notional - fee(notional, 2);
    const end = Date.now() + 15_000;
    while (((await usd('alice', KEYS.alice!.key)) !== aliceUsd || (await usd('bob', KEYS.bob!.key)) !== bobUsd) && Date.now() < end) await sleep(100);
    expect(await usd('alice', KEYS.alice!.key)).to.equal(aliceUsd);
    expect(await usd('bob', KEYS.bob!.key)).to.equal(bobUsd);

    // The SDK's book (snapshot + deltas over the wire) equals the edge's committed L2, checksum included.
    let truth = await depth();
    const bookEnd = Date.now() + 10_000;
    while (h.book.seq !== truth.seq && Date.now() < bookEnd) {
      await sleep(50);
      truth = await depth();
    }
    expect(h.book.seq).to.equal(truth.seq);
    expect(h.book.depth()).to.deep.equal({ bids: truth.bids, asks: truth.asks });
    expect(h.book.checksum()).to.equal(truth.checksum);
    expect(checksumOf(truth.bids, truth.asks)).to.equal(truth.checksum);
    expect(truth.asks[0]).to.deep.equal([6_500_000, 6]); // 10 - 4 left at the best ask
    expect(h.snapshots).to.equal(1);

    // /metrics carries the shard ownership the edge reads from the lease bucket.
    const metricsEnd = Date.now() + 10_000;
    let metrics = '';
    while (!/bourse_cluster_shards\{node="n2"\} [1-9]/.test(metrics) && Date.now() < metricsEnd) {
      metrics = await (await fetch(`${httpUrl}/metrics`)).text();
      await sleep(100);
    }
    expect(metrics).to.match(/bourse_cluster_shards\{node="n1"\} [1-9]/);
    expect(metrics).to.match(/bourse_cluster_shards\{node="n2"\} [1-9]/);
    expect(metrics).to.match(/bourse_cluster_notices_total [1-9]/);
  });

  it('edge - cluster: cancel-on-disconnect cancels the session\'s orders; private-stream resume after reconnect has no gap and no duplicate', async () => {
    const bob = await connect(KEYS.bob!.key, { cancelOnDisconnect: true, reconnect: false });
    const r = await bob.place({ symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_900_000, qty: 2 });
    expect(r.ok, JSON.stringify(r)).to.equal(true);
    const hasAsk = async () => (await depth()).asks.some(([p]) => p === 6_900_000);
    const t1 = Date.now() + 10_000;
    while (!(await hasAsk()) && Date.now() < t1) await sleep(50);
    expect(await hasAsk(), 'the order in the committed L2').to.equal(true);
    bob.dropConnection();
    const t2 = Date.now() + 15_000;
    while ((await hasAsk()) && Date.now() < t2) await sleep(50);
    expect(await hasAsk(), 'cancel-on-disconnect').to.equal(false);

    const alice = await connect(KEYS.alice!.key, { reconnectDelayMsMin: 20 });
    const seen: PrivateMessage[] = [];
    await alice.subscribePrivate((m) => seen.push(m));
    let reconnects = 0;
    alice.on('reconnect', () => reconnects++);
    const broker = await connect(KEYS.broker!.key);
    const maker = await broker.place({ account: 'bob', symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_450_000, qty: 100 });
    expect(maker.ok, JSON.stringify(maker)).to.equal(true);
    for (let i = 0; i < 30; i++) {
      const f = await broker.place({ account: 'alice', symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 6_450_000, qty: 1 });
      expect(f.ok, JSON.stringify(f)).to.equal(true);
      if (i === 10) alice.dropConnection();
    }
    const fills = () => seen.filter((m) => m.event.type === 'FillSettled' && m.event.role === 'taker' && m.event.price === 6_450_000).length;
    await until(() => reconnects >= 1 && fills() >= 30, 20_000, 'alice resumed');
    await sleep(300);
    const seqs = seen.map((m) => m.seq);
    expect(new Set(seqs).size).to.equal(seqs.length); // no duplicate
    expect(seqs).to.deep.equal([...seqs].sort((x, y) => x - y)); // in order
    expect(fills()).to.equal(30); // none missed, none twice
    // and the same as a fresh replay of the journal from the start
    const replayer = await connect(KEYS.alice!.key);
    const replay: PrivateMessage[] = [];
    await replayer.subscribePrivate((m) => replay.push(m), { afterSeq: 0 });
    await until(() => replay.length > 0 && replay[replay.length - 1]!.seq >= seqs[seqs.length - 1]!, 10_000, 'replay');
    const tail = replay.filter((m) => m.seq >= seqs[0]!).slice(0, seen.length);
    expect(tail.map((m) => m.seq)).to.deep.equal(seqs);
    expect(tail.map((m) => m.event)).to.deep.equal(seen.map((m) => m.event));
  });
});
