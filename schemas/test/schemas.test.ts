import { expect } from 'chai';
import { Reject, rejectCodes, rejectName, rejectSubsystem, BookCommandCode, BookEventCode, LedgerCommandCode, defineInstrument, validateInstrument } from '../src/index.js';

const ranges: Record<string, [number, number]> = {
  PROTO: [100, 199], AUTH: [200, 299], THROTTLE: [300, 399], ORDER: [1000, 1999], BOOK: [2000, 2999],
  RISK: [3000, 3999], LEDGER: [4000, 4999], ADMIN: [5000, 5999], ACTOR: [6000, 6999],
};

describe('schemas - reject codes', () => {
  it('are unique, and each sits in its subsystem range', () => {
    const values = Object.values(Reject);
    expect(new Set(values).size).to.equal(values.length);
    for (const [name, code] of Object.entries(Reject)) {
      const sub = name.slice(0, name.indexOf('_'));
      expect(ranges, name).to.have.property(sub);
      const [lo, hi] = ranges[sub]!;
      expect(code, name).to.be.within(lo, hi);
      expect(rejectSubsystem(code)).to.equal(sub);
    }
  });
  it('are declared in ascending order, so the enum reads in code order', () => {
    const values = Object.values(Reject);
    expect(values).to.deep.equal([...values].sort((a, b) => a - b));
    expect(rejectCodes).to.deep.equal([...values].sort((a, b) => a - b));
  });
  it('name unknown numbers without throwing', () => {
    expect(rejectName(Reject.BOOK_HALTED)).to.equal('BOOK_HALTED');
    expect(rejectName(999_999)).to.equal('UNKNOWN_999999');
  });
});

describe('schemas - wire codes', () => {
  it('are unique across commands and events', () => {
    const all = [...Object.values(BookCommandCode), ...Object.values(BookEventCode), ...Object.values(LedgerCommandCode)];
    expect(new Set(all).size).to.equal(all.length);
  });
});

describe('schemas - instruments', () => {
  it('accept a sensible cash instrument', () => {
    expect(validateInstrument(defineInstrument({ symbol: 'BTC-USD', tickSize: 5, lotSize: 10, minQty: 10 }))).to.deep.equal([]);
  });
  it('name every broken field', () => {
    const bad = defineInstrument({ symbol: 'bad symbol', tickSize: 0, lotSize: 1.5, minQty: 5, maxQty: 2, makerFeeBps: -1, mode: 'margin', maxLeverage: 10, maintenanceMarginBps: 2000 });
    const problems = validateInstrument(bad).join('\n');
    for (const field of ['symbol', 'tickSize', 'lotSize', 'minQty', 'makerFeeBps', 'maintenanceMarginBps']) expect(problems).to.contain(field);
  });
});

import { feeOf } from '../src/index.js';
describe('schemas - fee arithmetic', () => {
  it('rounds up and is exact beyond 2^53 / bps', () => {
    expect(feeOf(10_000, 25)).to.equal(25);
    expect(feeOf(10_001, 25)).to.equal(26);
    expect(feeOf(1, 1)).to.equal(1);
    expect(feeOf(0, 30)).to.equal(0);
    const big = 2 ** 51 + 12_345;
    expect(BigInt(feeOf(big, 999))).to.equal((BigInt(big) * 999n + 9_999n) / 10_000n);
  });
});
