/**
 * Quick start: connect, follow the private stream and the BTC-USD book, place and cancel an order.
 *
 *   BOURSE_URL=ws://127.0.0.1:8080 BOURSE_KEY=<key> node packages/client/dist/examples/quickstart.js
 */
import { BourseClient, rejectNameOf } from '../src/index.js';

const url = process.env.BOURSE_URL ?? 'ws://127.0.0.1:8080';
const key = process.env.BOURSE_KEY ?? '';
const symbol = process.env.BOURSE_SYMBOL ?? 'BTC-USD';

const client = await BourseClient.connect({ url, key, cancelOnDisconnect: true });
console.log(`connected as ${client.session.role} for ${client.session.accounts.join(', ')}`);

await client.subscribePrivate((m) => console.log(`private #${m.seq} ${m.event.type}`));
const book = await client.book(symbol);
if (!book.ok) throw new Error(`no book: ${book.message}`);
await book.ready;
const { bids, asks } = book.book.depth(3);
console.log(`${symbol} top 3: bids ${JSON.stringify(bids)} asks ${JSON.stringify(asks)} (checksum ${book.book.checksum()})`);

const bid = bids[0]?.[0];
const r = await client.place({ symbol, side: 'buy', orderType: 'limit', tif: 'GTC', price: bid ?? 6_000_000, qty: 1, postOnly: true });
if (r.ok) {
  console.log(`placed order ${r.orderId} (clientOrderId ${r.clientOrderId})`);
  const c = await client.cancel(symbol, r.orderId);
  console.log(c.ok ? 'cancelled' : `cancel rejected: ${rejectNameOf(c.code)}`);
} else {
  console.log(`rejected: ${rejectNameOf(r.code)} ${r.message}`);
}
await client.close();
