/**
 * Balances and positions, projected from the risk ledgers' streams: `account/<id>` (user ledgers) and
 * the system ledgers `fees` and `clearing` (see schemas/src/ledger.ts and engine/src/risk/README.md).
 *
 * Ledger events carry absolute balances (`BalanceAfter`) and whole positions (`PositionAfter`), so a
 * page is folded in memory to the last value per asset and per instrument and written with ONE upsert
 * per table. Each row records the ledger sequence that set it and an upsert never moves a row back to
 * an older sequence (a second line of defence; the framework already applies each page once).
 */
import type { Transaction } from 'kysely';
import type { JournalPage } from '@bourse/actors';
import { assertNever, type BalanceAfter, type LedgerEvent, type PositionAfter } from '@bourse/schemas';
import type { BalanceTable, Database, LedgerKindColumn, PositionTable } from '../db.js';
import type { Projection } from './framework.js';

export const ACCOUNT_STREAM_PREFIX = 'account/';
export const FEES_LEDGER = 'fees';
export const CLEARING_LEDGER = 'clearing';
export const SYSTEM_LEDGERS: readonly string[] = [FEES_LEDGER, CLEARING_LEDGER];

/**
 * The ledger a stream holds: `account/acc-1` → user `acc-1`; `fees` / `clearing`, or
 * `account/fees` / `account/clearing` as the engine actors journal them, → that system ledger.
 */
export function ledgerOfStream(persistenceId: string): { kind: LedgerKindColumn; account: string } {
  if (persistenceId === ACCOUNT_STREAM_PREFIX + FEES_LEDGER) return { kind: 'fees', account: FEES_LEDGER };
  if (persistenceId === ACCOUNT_STREAM_PREFIX + CLEARING_LEDGER) return { kind: 'clearing', account: CLEARING_LEDGER };
  if (persistenceId.startsWith(ACCOUNT_STREAM_PREFIX)) return { kind: 'user', account: persistenceId.slice(ACCOUNT_STREAM_PREFIX.length) };
  if (persistenceId === FEES_LEDGER) return { kind: 'fees', account: FEES_LEDGER };
  if (persistenceId === CLEARING_LEDGER) return { kind: 'clearing', account: CLEARING_LEDGER };
  throw new Error(`not a ledger stream: ${persistenceId}`);
}

/** Folds a page of ledger events into the last balance per asset and the last position per instrument. */
export function foldLedgerPage(
  persistenceId: string,
  fromSeq: number,
  events: readonly LedgerEvent[],
): { balances: BalanceTable[]; positions: PositionTable[] } {
  const { kind, account } = ledgerOfStream(persistenceId);
  const balances = new Map<string, BalanceTable>();
  const positions = new Map<string, PositionTable>();
  const bal = (b: BalanceAfter, ts: number, seq: number) =>
    balances.set(b.asset, { kind, account, asset: b.asset, available: b.available, held: b.held, updated_ts: ts, seq });
  const pos = (p: PositionAfter, ts: number, seq: number) =>
    positions.set(p.symbol, {
      account,
      instrument: p.symbol,
      collateral: p.collateral,
      qty: p.qty,
      entry_cost: p.entryCost,
      realized_pnl: p.realizedPnl,
      margin: p.margin,
      updated_ts: ts,
      seq,
    });
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const seq = fromSeq + i;
    switch (e.type) {
      case 'Deposited':
      case 'Withdrawn':
      case 'OrderHeld':
      case 'LiquidationOrder':
      case 'HoldChanged':
      case 'HoldReleased':
      case 'EntryPosted':
        bal(e.balance, e.ts, seq);
        break;
      case 'FillSettled':
        for (const b of e.balances) bal(b, e.ts, seq);
        if (e.position) pos(e.position, e.ts, seq);
        break;
      case 'InstrumentRegistered':
      case 'LedgerRejected':
      case 'MarkPriceSet': // equity and unrealized P&L move with the mark; not a stored balance
      case 'RiskLimitsSet':
      case 'MarginCall':
      case 'LiquidationEnded':
        break;
      default:
        assertNever(e, 'ledger event');
    }
  }
  return { balances: [...balances.values()], positions: [...positions.values()] };
}

/**
 * Pages of distinct ledger streams: folded, then one upsert per table for all of them. Two streams
 * that name one ledger (`fees` and `account/fees`) must not meet in one upsert (Postgres refuses to
 * update a row twice in a statement), so such pages go one by one, in the order given.
 */
async function applyLedgerPages(trx: Transaction<Database>, pages: readonly JournalPage<LedgerEvent>[]): Promise<void> {
  const ledgers = new Set<string>();
  for (const page of pages) {
    const { kind, account } = ledgerOfStream(page.persistenceId);
    const key = `${kind}\u0000${account}`;
    if (ledgers.has(key)) {
      for (const pg of pages) await applyLedgerPages(trx, [pg]);
      return;
    }
    ledgers.add(key);
  }
  const balances: BalanceTable[] = [];
  const positions: PositionTable[] = [];
  for (const page of pages) {
    const f = foldLedgerPage(page.persistenceId, page.fromSeq, page.events);
    balances.push(...f.balances);
    positions.push(...f.positions);
  }
  if (balances.length > 0) {
    await trx
      .insertInto('balances')
      .values(balances)
      .onConflict((oc) =>
        oc
          .columns(['kind', 'account', 'asset'])
          .doUpdateSet((eb) => ({
            available: eb.ref('excluded.available'),
            held: eb.ref('excluded.held'),
            updated_ts: eb.ref('excluded.updated_ts'),
            seq: eb.ref('excluded.seq'),
          }))
          .where('balances.seq', '<', (eb) => eb.ref('excluded.seq')),
      )
      .execute();
  }
  if (positions.length > 0) {
    await trx
      .insertInto('positions')
      .values(positions)
      .onConflict((oc) =>
        oc
          .columns(['account', 'instrument'])
          .doUpdateSet((eb) => ({
            collateral: eb.ref('excluded.collateral'),
            qty: eb.ref('excluded.qty'),
            entry_cost: eb.ref('excluded.entry_cost'),
            realized_pnl: eb.ref('excluded.realized_pnl'),
            margin: eb.ref('excluded.margin'),
            updated_ts: eb.ref('excluded.updated_ts'),
            seq: eb.ref('excluded.seq'),
          }))
          .where('positions.seq', '<', (eb) => eb.ref('excluded.seq')),
      )
      .execute();
  }
}

/** Balances (user and system ledgers) and margin positions from ledger events. */
export const balancesAndPositionsProjection: Projection<LedgerEvent> = {
  name: 'balances_positions',
  streamPrefix: ACCOUNT_STREAM_PREFIX,
  streamIds: SYSTEM_LEDGERS,
  apply: (trx, page) => applyLedgerPages(trx, [page]),
  applyPages: applyLedgerPages,
};
