import { expect } from 'chai';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runLoad, startFsyncProbe, summarizeSyncs } from '../src/index.js';
import { world, KEYS } from './helpers.js';

describe('edge - bourse load', function () {
  this.timeout(20_000);
  it('edge - runLoad drives orders through the SDK and prints one JSON line last with the agreed fields', async () => {
    const w = await world();
    try {
      const ctx = { traceId: 'seed' };
      for (let i = 0; i < 5; i++) {
        await w.gw.placeOrder('bob', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_050 + i * 50, qty: 1_000 }, ctx);
        await w.gw.placeOrder('bob', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6_500_000 - i * 50, qty: 1_000 }, ctx);
      }
      const lines: string[] = [];
      const r = await runLoad({ url: w.edge.url, key: KEYS.alice!.key, rate: 400, durationS: 1, clients: 2, print: (l) => lines.push(l) });
      const last = JSON.parse(lines.at(-1)!);
      for (const k of ['sent', 'acked', 'rejected', 'fills', 'ordersPerSec', 'ackP50Ms', 'ackP99Ms', 'ackP999Ms']) expect(last).to.have.property(k);
      expect(r.sent).to.be.within(390, 400);
      expect(r.acked + r.rejected + r.unanswered).to.equal(r.sent);
      expect(r.acked).to.equal(r.sent);
      expect(r.fills).to.equal(r.acked); // every IOC met resting liquidity at the opposite best price
      expect(r.ackP50Ms).to.be.greaterThan(0);
      expect(r.ackP999Ms).to.be.at.least(r.ackP99Ms);
      expect(lines[1]).to.match(/scheduled send time/);
      expect(last).to.not.have.property('fsyncProbe'); // only when asked for
    } finally {
      await w.close();
    }
  });

  it('edge - runLoad with fsyncProbeDir reports the disk\'s own sync latency over the same run, and leaves no scratch files', async () => {
    const w = await world();
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-probe-'));
    try {
      const lines: string[] = [];
      const r = await runLoad({ url: w.edge.url, key: KEYS.alice!.key, rate: 100, durationS: 1, clients: 1, fsyncProbeDir: dir, print: (l) => lines.push(l) });
      const p = JSON.parse(lines.at(-1)!).fsyncProbe;
      expect(p).to.deep.equal(r.fsyncProbe);
      expect(p.n, 'one sync every 10 ms over the run (about 1.5 s with connecting and closing)').to.be.within(20, 250);
      expect(p.p50Ms).to.be.greaterThan(0);
      expect(p.p99Ms).to.be.at.least(p.p50Ms);
      expect(p.maxMs).to.be.at.least(p.p99Ms);
      expect(lines.some((l) => l.startsWith('fsync probe:'))).to.equal(true);
      expect(readdirSync(dir)).to.deep.equal([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await w.close();
    }
  });

  it('edge - runLoad against an address where no edge listens fails at once, naming the address and the cause', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const e = await runLoad({ url: `ws://127.0.0.1:${port}`, key: 'k', rate: 10, durationS: 1, clients: 1, print: () => {} }).then(() => undefined, (err: Error) => err);
    expect(e?.message).to.equal(`cannot list instruments at http://127.0.0.1:${port}/v1/instruments: ECONNREFUSED`);
  });

  it('edge - the fsync probe: a directory that does not exist fails at once, and its figures are order statistics of the syncs', async () => {
    const e = await startFsyncProbe(path.join(tmpdir(), 'bourse-no-such-dir', 'x')).then(() => undefined, (err: Error) => err);
    expect(e?.message).to.match(/fsync probe: cannot create a scratch directory/);
    // 1000 syncs: 0.1 ms x 985, then 15 slow ones of 21..35 ms.
    const ms = [...Array.from({ length: 985 }, () => 0.1), ...Array.from({ length: 15 }, (_, i) => 21 + i)];
    expect(summarizeSyncs(ms.reverse(), 10)).to.deep.equal({ n: 1000, p50Ms: 0.1, p99Ms: 25, p999Ms: 34, maxMs: 35, over20Ms: 15, intervalMs: 10 });
  });

  it('edge - runLoad --window bounds the orders in flight per client (rate 0), and the JSON line says the window', async () => {
    const w = await world();
    try {
      const ctx = { traceId: 'seed' };
      for (let i = 0; i < 3; i++) await w.gw.placeOrder('bob', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 6_500_050 + i * 50, qty: 100_000 }, ctx);
      // Every answer takes 5 ms, so a closed loop of 2 clients x window 3 keeps at most 6 in flight.
      let inFlight = 0;
      let most = 0;
      const place = w.gw.placeOrder.bind(w.gw);
      w.gw.placeOrder = async (...a: Parameters<typeof place>) => {
        most = Math.max(most, ++inFlight);
        try {
          await new Promise((r) => setTimeout(r, 5));
          return await place(...a);
        } finally {
          inFlight--;
        }
      };
      const lines: string[] = [];
      const r = await runLoad({ url: w.edge.url, key: KEYS.alice!.key, rate: 0, durationS: 1, clients: 2, window: 3, print: (l) => lines.push(l) });
      expect(JSON.parse(lines.at(-1)!).window).to.equal(3);
      expect(r.window).to.equal(3);
      expect(r.acked).to.be.greaterThan(20);
      expect(most).to.be.within(2, 6);
    } finally {
      await w.close();
    }
  });
});
