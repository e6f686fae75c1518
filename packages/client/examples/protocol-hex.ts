/**
 * Prints the hex of example frames, encoded by the SDK's own encoder: the source of the hex examples in
 * schemas/PROTOCOL.md (regenerate them with `node packages/client/dist/examples/protocol-hex.js`).
 */
import { encodeFrame } from '../src/codec.js';
import { Channel, ClientMsg, ServerMsg, checksumString, checksumOf } from '@bourse/schemas';

const examples: [string, object][] = [
  ['Auth', { t: ClientMsg.Auth, id: 1, key: 'mm1.s3cret', cancelOnDisconnect: true }],
  ['Ping', { t: ClientMsg.Ping, ts: 1700000000000 }],
  ['Place', { t: ClientMsg.Place, id: 2, symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 6500000, qty: 3, clientOrderId: 'c-1' }],
  ['Cancel', { t: ClientMsg.Cancel, id: 3, symbol: 'BTC-USD', orderId: 12884901889 }],
  ['Amend', { t: ClientMsg.Amend, id: 4, symbol: 'BTC-USD', orderId: 12884901889, qty: 2 }],
  ['Subscribe (L2)', { t: ClientMsg.Subscribe, id: 5, channel: Channel.l2, symbol: 'BTC-USD' }],
  ['Subscribe (private, resume)', { t: ClientMsg.Subscribe, id: 6, channel: Channel.private, account: 'mm-1', afterSeq: 41 }],
  ['Placed', { t: ServerMsg.Placed, id: 2, account: 'mm-1', orderId: 12884901889, clientOrderId: 'c-1' }],
  ['Error', { t: ServerMsg.Error, id: 2, req: 3, code: 3001, message: 'RISK_INSUFFICIENT_BALANCE' }],
  ['Heartbeat', { t: ServerMsg.Heartbeat, ts: 1700000000000 }],
  ['L2Delta', { t: ServerMsg.L2Delta, symbol: 'BTC-USD', ts: 1700000000000, seq: 42, bids: [[6500000, 7]], asks: [[6500050, 0]], checksum: 3735928559 }],
];
for (const [name, f] of examples) {
  const hex = Buffer.from(encodeFrame(f)).toString('hex');
  console.log(`${name}\n  ${JSON.stringify(f)}\n  ${hex.match(/.{1,2}/g)!.join(' ')}\n`);
}
const bids = [[6500000, 7], [6499950, 12]] as const;
const asks = [[6500050, 3]] as const;
console.log(`checksum example: bids ${JSON.stringify(bids)} asks ${JSON.stringify(asks)}`);
console.log(`  string '${checksumString(bids, asks)}'  crc32 ${checksumOf(bids, asks)} (0x${checksumOf(bids, asks).toString(16).padStart(8, '0')})`);
console.log(`  empty book: '${checksumString([], [])}' crc32 ${checksumOf([], [])}`);
