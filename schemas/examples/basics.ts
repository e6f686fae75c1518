// Run: pnpm build && node schemas/dist/examples/basics.js
import { defineInstrument, validateInstrument, feeOf, notionalOf, Reject, rejectName } from '../src/index.js';

const btc = defineInstrument({ symbol: 'BTC-USD', tickSize: 5, lotSize: 10, minQty: 10, takerFeeBps: 25 });
console.log(validateInstrument(btc)); // [] — valid
console.log(feeOf(notionalOf(btc, 100_005, 30), btc.takerFeeBps)); // 7501: 3,000,150 * 25 bps, rounded up
console.log(rejectName(Reject.RISK_INSUFFICIENT_BALANCE)); // 'RISK_INSUFFICIENT_BALANCE'
