import { expect } from 'chai';
import { runLoad } from '../src/index.js';
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
    } finally {
      await w.close();
    }
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
