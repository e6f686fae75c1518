/**
 * The journal the engine node writes through: the store's (or a MemoryJournal), plus
 * - a commit tap: after an append has committed, every record it stored is reported with its exact
 *   journal sequence (the private and public streams and order outcomes are fed from here, so nothing
 *   is published before it is durable, and a failed append publishes nothing);
 * - fault injection for tests (fail before the write, or after it committed = outcome unknown);
 * - the `init()` binding of unbound entity states (see kinds.ts).
 */
import type { AppendOptions, Journal, JournalPage, JournalWrite, ReadOptions, Snapshot, AppendOutcome } from '@bourse/actors';
import { bindNextInit } from './kinds.js';

export interface HostJournalFaults {
  /** Throw before writing (nothing stored). */
  failBefore?(writes: readonly JournalWrite[]): boolean;
  /** Throw after the write committed (stored, but the writer is told it failed). */
  failAfter?(writes: readonly JournalWrite[]): boolean;
}

export type CommitTap = (persistenceId: string, fromSeq: number, records: readonly unknown[]) => void;

/** Upper bounds (ms) of the journal append latency histogram. */
export const APPEND_BUCKETS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000] as const;
/** Upper bounds of the records-per-append histogram. */
export const BATCH_BUCKETS = [1, 10, 100, 1000, 10_000] as const;

function bucketOf(bounds: readonly number[], x: number): number {
  let i = 0;
  while (i < bounds.length && x > bounds[i]!) i++;
  return i;
}

/** Prometheus text for a HostJournal's counters and histograms (`/metrics` through the edge). */
export function journalMetricsText(j: HostJournal, node: string): string {
  const L: string[] = [];
  const lbl = `node="${node}"`;
  L.push('# HELP bourse_journal_appends_total Committed journal appends (group commits).', '# TYPE bourse_journal_appends_total counter', `bourse_journal_appends_total{${lbl}} ${j.stats.appends}`);
  L.push('# HELP bourse_journal_rows_total Journal rows written (one per entity per append).', '# TYPE bourse_journal_rows_total counter', `bourse_journal_rows_total{${lbl}} ${j.stats.rows}`);
  L.push('# HELP bourse_journal_records_total Journal records written (events and runtime records).', '# TYPE bourse_journal_records_total counter', `bourse_journal_records_total{${lbl}} ${j.stats.records}`);
  const hist = (name: string, help: string, bounds: readonly number[], counts: readonly number[], sum: number, scale: number) => {
    L.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    let cum = 0;
    for (let i = 0; i < bounds.length; i++) {
      cum += counts[i]!;
      L.push(`${name}_bucket{${lbl},le="${bounds[i]! * scale}"} ${cum}`);
    }
    cum += counts[bounds.length]!;
    L.push(`${name}_bucket{${lbl},le="+Inf"} ${cum}`, `${name}_sum{${lbl}} ${sum}`, `${name}_count{${lbl}} ${cum}`);
  };
  hist('bourse_journal_append_seconds', 'Journal append (group commit) latency.', APPEND_BUCKETS_MS, j.appendHistogram, j.stats.appendMs / 1000, 1 / 1000);
  hist('bourse_journal_batch_records', 'Records per journal append (group commit batch size).', BATCH_BUCKETS, j.batchHistogram, j.stats.records, 1);
  return L.join('\n') + '\n';
}

export class InjectedJournalFault extends Error {
  override readonly name = 'InjectedJournalFault';
}

export class HostJournal implements Journal {
  faults: HostJournalFaults = {};
  readonly stats = { appends: 0, rows: 0, records: 0, appendMs: 0 };
  /** Committed appends by latency: counts per bucket of {@link APPEND_BUCKETS_MS} (upper bounds), last = above them all. */
  readonly appendHistogram: number[] = new Array<number>(APPEND_BUCKETS_MS.length + 1).fill(0);
  /** Committed appends by records per append: counts per bucket of {@link BATCH_BUCKETS}, last = above. */
  readonly batchHistogram: number[] = new Array<number>(BATCH_BUCKETS.length + 1).fill(0);

  constructor(
    readonly inner: Journal,
    private readonly tap: CommitTap,
  ) {}

  async append(writes: readonly JournalWrite[], options?: AppendOptions): Promise<void> {
    if (this.faults.failBefore?.(writes)) throw new InjectedJournalFault('injected journal failure before the write');
    const t0 = performance.now();
    await this.inner.append(writes, options);
    const ms = performance.now() - t0;
    this.stats.appendMs += ms;
    this.stats.appends++;
    this.stats.rows += writes.length;
    this.appendHistogram[bucketOf(APPEND_BUCKETS_MS, ms)]!++;
    if (this.faults.failAfter?.(writes)) throw new InjectedJournalFault('injected journal failure after the commit');
    let records = 0;
    for (const w of writes) {
      records += w.events.length;
      this.tap(w.persistenceId, w.expectedSeq + 1, w.events);
    }
    this.stats.records += records;
    this.batchHistogram[bucketOf(BATCH_BUCKETS, records)]!++;
  }

  read(persistenceId: string, fromSeq: number, options?: ReadOptions): AsyncIterable<JournalPage> {
    bindNextInit(persistenceId, fromSeq);
    return this.inner.read(persistenceId, fromSeq, options);
  }

  highestSeq(persistenceId: string): Promise<number> {
    return this.inner.highestSeq(persistenceId);
  }
  highestSeqs(persistenceIds: readonly string[]): Promise<Map<string, number>> {
    return this.inner.highestSeqs(persistenceIds);
  }
  resolveAppend(writes: readonly JournalWrite[]): Promise<AppendOutcome> {
    return this.inner.resolveAppend(writes);
  }
  saveSnapshot(snapshot: Snapshot): Promise<void> {
    return this.inner.saveSnapshot(snapshot);
  }
  loadSnapshot(persistenceId: string, maxSeq?: number): Promise<Snapshot | undefined> {
    return this.inner.loadSnapshot(persistenceId, maxSeq);
  }
  keepSnapshots(persistenceId: string, keep: number): Promise<number> {
    return this.inner.keepSnapshots(persistenceId, keep);
  }
  deleteEventsTo(persistenceId: string, toSeq: number): Promise<number> {
    return this.inner.deleteEventsTo(persistenceId, toSeq);
  }
  /** The owner of the inner journal closes it. */
  async close(): Promise<void> {}
}

export { isRuntimeRecord } from './projections.js';
