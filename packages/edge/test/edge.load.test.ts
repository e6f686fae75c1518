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
});
