import type { AppendOptions, AppendOutcome, Journal, JournalPage, JournalWrite, ReadOptions, Snapshot } from './journal.js';

/**
 * One journal over two connection pools: appends (the group commit, fence raises) on `writer`, reads
 * and snapshots (entity recovery) on `reader`. Both must reach the same database. After a failover a
 * new owner recovers hundreds of entities at once; on one pool those reads queue ahead of the group
 * commit and every reply waits behind them.
 *
 * @example
 *   const journal = splitJournal((await openStore({ pg, poolMax: 2 })).journal, (await openStore({ pg, poolMax: 4 })).journal);
 */
export function splitJournal<E = unknown>(writer: Journal<E>, reader: Journal<E>): Journal<E> {
  return {
    append: (writes: readonly JournalWrite<E>[], options?: AppendOptions): Promise<void> => writer.append(writes, options),
    resolveAppend: (writes: readonly JournalWrite<E>[]): Promise<AppendOutcome> => writer.resolveAppend(writes),
    read: (id: string, fromSeq: number, options?: ReadOptions): AsyncIterable<JournalPage<E>> => reader.read(id, fromSeq, options),
    highestSeq: (id: string) => reader.highestSeq(id),
    highestSeqs: (ids: readonly string[]) => reader.highestSeqs(ids),
    saveSnapshot: (s: Snapshot) => reader.saveSnapshot(s),
    loadSnapshot: (id: string, maxSeq?: number) => reader.loadSnapshot(id, maxSeq),
    keepSnapshots: (id: string, keep: number) => reader.keepSnapshots(id, keep),
    deleteEventsTo: (id: string, toSeq: number) => writer.deleteEventsTo(id, toSeq),
    close: async () => {
      await writer.close();
      if (reader !== writer) await reader.close();
    },
  };
}
