// The README's example. Run: pnpm exec tsx packages/store/examples/basics.ts [DIR]
import { openStore, GroupCommitter, ProjectionRunner, ordersAndTradesProjection, balancesAndPositionsProjection } from '../src/index.js';

const store = await openStore({ pglite: process.argv[2] ?? '.bourse/example-data' });
const gc = new GroupCommitter(store.journal);
const book = 'book/BTC-USD';
const seq = await store.journal.highestSeq(book);
await gc.submit({
  persistenceId: book,
  expectedSeq: seq,
  events: [
    { type: 'OrderAccepted', ts: 1, orderId: seq + 1, account: 'acc-1', clientOrderId: undefined, side: 'buy',
      orderType: 'limit', tif: 'GTC', price: 100, qty: 5, stopPrice: 0, expireAt: 0, postOnly: false,
      reduceOnly: false, stp: 'cancelTaker' },
    { type: 'OrderRested', ts: 1, orderId: seq + 1, side: 'buy', price: 100, qty: 5 },
  ],
});
for await (const page of store.journal.read(book, 1)) console.log(page.fromSeq, page.toSeq, page.events.length);

await new ProjectionRunner(store.db, store.journal, [ordersAndTradesProjection]).runOnce();
console.log((await store.readModels.ordersByAccount('acc-1', { open: true })).items);
// Balances come from the account's ledger stream (events carry absolute balances):
const ledger = 'account/acc-1';
await store.journal.append([{ persistenceId: ledger, expectedSeq: await store.journal.highestSeq(ledger),
  events: [{ type: 'Deposited', ts: 1, transferId: `t-${Date.now()}`, asset: 'USD', amount: 100, balance: { asset: 'USD', available: 100, held: 0 } }] }]);
await new ProjectionRunner(store.db, store.journal, [balancesAndPositionsProjection]).runOnce();
console.log(await store.readModels.balancesByAccount('acc-1')); // [{ asset: 'USD', available: 100, held: 0, total: 100, seq, ... }]
await store.close();
