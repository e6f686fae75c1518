/** The store's projections over an actor-hosted journal. */
import type { JournalPage } from '@bourse/actors';
import type { Projection } from '@bourse/store';

/** Whether a journal record is the runtime's (`$rt` marker), not a domain event. */
export function isRuntimeRecord(rec: unknown): boolean {
  return rec !== null && typeof rec === 'object' && (rec as { $rt?: unknown }).$rt !== undefined;
}

/**
 * The store's projections, as they must read an actor-hosted journal: runtime records (`$rt`) are
 * dropped from each page. (The store's ledger projection knows `account/fees` and `account/clearing`
 * as the system ledgers itself.)
 */
export function forHostJournal(p: Projection<any>): Projection<any> {
  return {
    ...p,
    apply(trx, page: JournalPage) {
      const events = page.events.filter((e) => !isRuntimeRecord(e));
      const persistenceId = page.persistenceId;
      if (events.length === 0) return Promise.resolve();
      // Sequences inside a filtered page are renumbered densely from fromSeq; they stay within the
      // page's range, so the ledger projection's "never move a row back" check still holds.
      return p.apply(trx, { persistenceId, fromSeq: page.fromSeq, toSeq: page.fromSeq + events.length - 1, events });
    },
  };
}

