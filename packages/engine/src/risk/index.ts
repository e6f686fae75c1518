/** The account risk ledger state machine (see ./ledger.ts and schemas/src/ledger.ts). */
export { ledgerMachine, holdFor, DAY_MS } from './ledger.js';
export type { LedgerConfig, LedgerState, Balance, OpenOrder, Position } from './ledger.js';
