/**
 * OHLCV candles, projected from the market-data streams, one per instrument: `md/<symbol>` (the
 * stream id names the instrument, as `book/<symbol>` does for books). CandleUpdate and CandleClosed
 * carry the whole candle, so a page is folded to the last value per (interval, bucket) and written
 * with one upsert. `closed` is sticky; a row never moves back to an older sequence. Other
 * market-data events (quotes, depth, trade ticks) are not stored here.
 */
import { sql, type Transaction } from 'kysely';
import type { JournalPage } from '@bourse/actors';
import type { MdEvent } from '@bourse/schemas';
import type { CandleTable, Database } from '../db.js';
import type { Projection } from './framework.js';

export const MD_STREAM_PREFIX = 'md/';

export const instrumentOfMdStream = (persistenceId: string): string => persistenceId.slice(MD_STREAM_PREFIX.length);

/** Folds a page of market-data events to the last candle per (interval, start). */
export function foldCandlePage(persistenceId: string, fromSeq: number, events: readonly MdEvent[]): CandleTable[] {
  const instrument = instrumentOfMdStream(persistenceId);
  const out = new Map<string, CandleTable>();
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.type !== 'CandleUpdate' && e.type !== 'CandleClosed') continue;
    const key = `${e.interval}\u0000${e.start}`;
    const closed = e.type === 'CandleClosed' || (out.get(key)?.closed ?? false);
    out.set(key, {
      instrument,
      interval: e.interval,
      start_ts: e.start,
      open: e.open,
      high: e.high,
      low: e.low,
      close: e.close,
      volume: e.volume,
      trades: e.trades,
      closed,
      updated_ts: e.ts,
      seq: fromSeq + i,
    });
  }
  return [...out.values()];
}

/** Pages of distinct market-data streams (so distinct instruments): folded, then one upsert for all. */
async function applyCandlePages(trx: Transaction<Database>, pages: readonly JournalPage<MdEvent>[]): Promise<void> {
  const rows = pages.flatMap((page) => foldCandlePage(page.persistenceId, page.fromSeq, page.events));
  if (rows.length === 0) return;
  await trx
    .insertInto('candles')
    .values(rows)
    .onConflict((oc) =>
      oc
        .columns(['instrument', 'interval', 'start_ts'])
        .doUpdateSet((eb) => ({
          open: eb.ref('excluded.open'),
          high: eb.ref('excluded.high'),
          low: eb.ref('excluded.low'),
          close: eb.ref('excluded.close'),
          volume: eb.ref('excluded.volume'),
          trades: eb.ref('excluded.trades'),
          closed: sql<boolean>`candles.closed or excluded.closed`,
          updated_ts: eb.ref('excluded.updated_ts'),
          seq: eb.ref('excluded.seq'),
        }))
        .where('candles.seq', '<', (eb) => eb.ref('excluded.seq')),
    )
    .execute();
}

/** Candles (1s, 1m, 1h) from the market-data streams `md/<symbol>`. */
export const candlesProjection: Projection<MdEvent> = {
  name: 'candles',
  streamPrefix: MD_STREAM_PREFIX,
  apply: (trx, page) => applyCandlePages(trx, [page]),
  applyPages: applyCandlePages,
};
