export * from './rejects.js';
export * from './instrument.js';
export * from './book.js';
export * from './ledger.js';
export * from './marketdata.js';
export * from './machine.js';
export * from './l2/index.js';
export * from './wire.js';
