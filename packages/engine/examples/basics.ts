// Run from the repo root: pnpm build && node packages/engine/dist/examples/basics.js
import { defineInstrument, rejectName } from '@bourse/schemas';
import { Venue } from '../src/index.js';

// One spot instrument: prices in cents, quantities in whole units, 25 bps taker fee.
const venue = new Venue([defineInstrument({ symbol: 'BTC-USD', tickSize: 5, takerFeeBps: 25 })]);
venue.openAccount('maker');
venue.openAccount('taker');
venue.deposit(1, 'maker', 'BTC', 10, 'd1');
venue.deposit(1, 'taker', 'USD', 1_000_000, 'd2');

venue.place(2, 'maker', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 65_000, qty: 3 });
const r = venue.place(3, 'taker', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 65_005, qty: 2 });

for (const e of r.events) if (e.event.type === 'Fill') console.log('fill', e.event.qty, '@', e.event.price, 'taker fee', e.event.takerFee);
console.log('taker balances', Object.fromEntries(venue.ledgers.get('taker')!.state.balances));
console.log('conserved:', venue.conservation().length === 0);
const poor = venue.place(4, 'taker', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 65_000, qty: 100 });
console.log('too big:', rejectName(poor.rejected!));
