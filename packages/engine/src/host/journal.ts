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

export class InjectedJournalFault extends Error {
  override readonly name = 'InjectedJournalFault';
}

export class HostJournal implements Journal {
  faults: HostJournalFaults = {};
  readonly stats = { appends: 0, rows: 0, records: 0, appendMs: 0 };

  constructor(
    readonly inner: Journal,
    private readonly tap: CommitTap,
  ) {}

  async append(writes: readonly JournalWrite[], options?: AppendOptions): Promise<void> {
    if (this.faults.failBefore?.(writes)) throw new InjectedJournalFault('injected journal failure before the write');
    const t0 = performance.now();
    await this.inner.append(writes, options);
    this.stats.appendMs += performance.now() - t0;
    this.stats.appends++;
    this.stats.rows += writes.length;
    if (this.faults.failAfter?.(writes)) throw new InjectedJournalFault('injected journal failure after the commit');
    for (const w of writes) {
      this.stats.records += w.events.length;
      this.tap(w.persistenceId, w.expectedSeq + 1, w.events);
    }
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
