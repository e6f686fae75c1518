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
  // Sequences inside a filtered page are renumbered densely from fromSeq; they stay within the
  // page's range, so the ledger projection's "never move a row back" check still holds.
  const domain = (page: JournalPage): JournalPage | undefined => {
    const events = page.events.filter((e) => !isRuntimeRecord(e));
    if (events.length === 0) return undefined;
    return events.length === page.events.length ? page : { persistenceId: page.persistenceId, fromSeq: page.fromSeq, toSeq: page.fromSeq + events.length - 1, events };
  };
  const applyPages = p.applyPages;
  return {
    ...p,
    apply(trx, page: JournalPage) {
      const d = domain(page);
      return d ? p.apply(trx, d) : Promise.resolve();
    },
    // The batch entry point too (the runner prefers it): each page filtered the same way.
    applyPages: applyPages
      ? (trx, pages: readonly JournalPage[]) => {
          const ds = pages.map(domain).filter((d): d is JournalPage => d !== undefined);
          return ds.length > 0 ? applyPages.call(p, trx, ds) : Promise.resolve();
        }
      : undefined,
  };
}
