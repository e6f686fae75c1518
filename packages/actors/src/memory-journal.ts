import { pack, unpack } from 'msgpackr';
import type { AppendOptions, AppendOutcome, Journal, JournalPage, JournalWrite, ReadOptions, SequenceConflict, Snapshot } from './journal.js';
import { JournalConflictError, JournalFencedError, JournalGapError, JournalUsageError } from './journal.js';

/**
 * Fault hooks. `beforeAppend` runs before anything is checked or stored: throwing fails the append
 * with nothing stored, and awaiting delays the commit (and so every reply behind it).
 * `afterAppend` runs after the writes are stored: throwing there is "commit outcome unknown" — the
 * events are in the journal but the writer hears a failure.
 */
export interface MemoryJournalFaults {
  beforeAppend?(writes: readonly JournalWrite[]): void | Promise<void>;
  afterAppend?(writes: readonly JournalWrite[]): void | Promise<void>;
  beforeRead?(persistenceId: string): void | Promise<void>;
}

interface Stream {
  /** Encoded events; `rows[i]` holds sequence `base + i`. */
  rows: Uint8Array[];
  /** Sequence of rows[0] (events before it were deleted). */
  base: number;
  snapshots: Snapshot[];
}

/**
 * The {@link Journal} in memory, for tests and the simulator. It keeps the real store's contract:
 * one append is all-or-nothing; contiguous writes for one id in one append are merged (others are a
 * {@link JournalUsageError}); an expected sequence that is not the stored highest fails the whole
 * append with a {@link JournalConflictError} naming every stale id; fence tokens are checked and
 * raised in the same step; events are stored encoded (msgpackr), so a caller that mutates an event
 * after appending it does not change the journal, and what cannot be encoded fails here as it would
 * in Postgres.
 *
 * @example
 *   const journal = new MemoryJournal();
 *   await journal.append([{ persistenceId: 'account/a', expectedSeq: 0, events: [{ type: 'Deposited', amount: 5 }] }]);
 *   await journal.append([{ persistenceId: 'account/a', expectedSeq: 0, events: [{}] }]); // JournalConflictError
 */
export class MemoryJournal implements Journal {
  private readonly streams = new Map<string, Stream>();
  private readonly fenceTokens = new Map<string, number>();
  faults: MemoryJournalFaults;
  /** Number of successful `append` calls (one per group commit) and events stored. */
  appendCalls = 0;
  eventsStored = 0;
  private closed = false;

  constructor(options: { faults?: MemoryJournalFaults } = {}) {
    this.faults = options.faults ?? {};
  }

  private stream(id: string): Stream {
    let s = this.streams.get(id);
    if (s === undefined) {
      s = { rows: [], base: 1, snapshots: [] };
      this.streams.set(id, s);
    }
    return s;
  }

  private highest(id: string): number {
    const s = this.streams.get(id);
    return s === undefined ? 0 : s.base + s.rows.length - 1;
  }

  private usable(): void {
    if (this.closed) throw new JournalUsageError('journal is closed');
  }

  async append(writes: readonly JournalWrite[], options: AppendOptions = {}): Promise<void> {
    this.usable();
    if (this.faults.beforeAppend) await this.faults.beforeAppend(writes);
    // Two writes for one id in one append are merged when contiguous, as the store does.
    const merged = new Map<string, { expectedSeq: number; events: unknown[] }>();
    for (const w of writes) {
      if (typeof w.persistenceId !== 'string' || w.persistenceId.length === 0) throw new JournalUsageError('append: persistenceId must be a non-empty string');
      if (!Array.isArray(w.events) || w.events.length === 0) throw new JournalUsageError(`append ${w.persistenceId}: events must be a non-empty array`);
      if (!Number.isSafeInteger(w.expectedSeq) || w.expectedSeq < 0) throw new JournalUsageError(`append ${w.persistenceId}: bad expectedSeq ${w.expectedSeq}`);
      const m = merged.get(w.persistenceId);
      if (m === undefined) merged.set(w.persistenceId, { expectedSeq: w.expectedSeq, events: [...w.events] });
      else if (m.expectedSeq + m.events.length === w.expectedSeq) m.events.push(...w.events);
      else throw new JournalUsageError(`append ${w.persistenceId}: two writes in one batch are not contiguous`);
    }
    const fences = options.fences ?? [];
    const scopes = new Set<string>();
    for (const f of fences) {
      if (scopes.has(f.scope)) throw new JournalUsageError(`fence scope ${f.scope} given twice`);
      if (!Number.isSafeInteger(f.token) || f.token < 0) throw new JournalUsageError(`bad fence token ${f.token}`);
      scopes.add(f.scope);
      const stored = this.fenceTokens.get(f.scope) ?? 0;
      if (f.token < stored) throw new JournalFencedError(f.scope, f.token, stored);
    }
    const conflicts: SequenceConflict[] = [];
    for (const [id, m] of merged) {
      const actual = this.highest(id);
      if (actual !== m.expectedSeq) conflicts.push({ persistenceId: id, expectedSeq: m.expectedSeq, actualSeq: actual });
    }
    if (conflicts.length > 0) throw new JournalConflictError(conflicts);
    // Encode everything before storing anything: an unencodable event fails the whole append.
    const encoded = [...merged].map(([id, m]) => [id, m.events.map((e) => pack(e) as Uint8Array)] as const);
    for (const f of fences) this.fenceTokens.set(f.scope, Math.max(f.token, this.fenceTokens.get(f.scope) ?? 0));
    for (const [id, rows] of encoded) {
      const s = this.stream(id);
      for (const row of rows) s.rows.push(row);
      this.eventsStored += rows.length;
    }
    this.appendCalls++;
    if (this.faults.afterAppend) await this.faults.afterAppend(writes);
  }

  async *read(persistenceId: string, fromSeq: number, options: ReadOptions = {}): AsyncIterable<JournalPage> {
    this.usable();
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw new JournalUsageError(`bad fromSeq ${fromSeq}`);
    if (this.faults.beforeRead) await this.faults.beforeRead(persistenceId);
    const pageMax = Math.max(1, options.pageEventsMax ?? 1000);
    let next = fromSeq;
    for (;;) {
      const s = this.streams.get(persistenceId);
      const highest = this.highest(persistenceId);
      const last = Math.min(highest, options.toSeq ?? highest);
      if (s === undefined || next > last) return;
      if (next < s.base) throw new JournalGapError(persistenceId, next, s.base);
      const to = Math.min(last, next + pageMax - 1);
      const events: unknown[] = [];
      for (let q = next; q <= to; q++) events.push(unpack(s.rows[q - s.base]!));
      yield { persistenceId, fromSeq: next, toSeq: to, events };
      next = to + 1;
    }
  }

  async highestSeq(persistenceId: string): Promise<number> {
    this.usable();
    return this.highest(persistenceId);
  }

  async highestSeqs(persistenceIds: readonly string[]): Promise<Map<string, number>> {
    this.usable();
    return new Map(persistenceIds.map((id) => [id, this.highest(id)]));
  }

  async resolveAppend(writes: readonly JournalWrite[]): Promise<AppendOutcome> {
    this.usable();
    let stored = 0;
    const conflicts: SequenceConflict[] = [];
    for (const w of writes) {
      const s = this.streams.get(w.persistenceId);
      const highest = this.highest(w.persistenceId);
      if (highest <= w.expectedSeq) continue;
      const same =
        s !== undefined &&
        highest >= w.expectedSeq + w.events.length &&
        w.events.every((e, i) => equalBytes(pack(e), s.rows[w.expectedSeq + 1 + i - s.base]));
      if (same) stored++;
      else conflicts.push({ persistenceId: w.persistenceId, expectedSeq: w.expectedSeq, actualSeq: highest });
    }
    if (conflicts.length > 0) throw new JournalConflictError(conflicts);
    if (stored === writes.length && stored > 0) return 'committed';
    if (stored === 0) return 'absent';
    throw new JournalUsageError('resolveAppend: writes are partly stored, which one transaction cannot do');
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.usable();
    const s = this.stream(snapshot.persistenceId);
    const copy: Snapshot = { persistenceId: snapshot.persistenceId, seq: snapshot.seq, data: snapshot.data.slice() };
    const i = s.snapshots.findIndex((x) => x.seq === snapshot.seq);
    if (i >= 0) s.snapshots[i] = copy;
    else {
      s.snapshots.push(copy);
      s.snapshots.sort((a, b) => a.seq - b.seq);
    }
  }

  async loadSnapshot(persistenceId: string, maxSeq?: number): Promise<Snapshot | undefined> {
    this.usable();
    const snaps = this.streams.get(persistenceId)?.snapshots ?? [];
    for (let i = snaps.length - 1; i >= 0; i--) {
      const x = snaps[i]!;
      if (maxSeq === undefined || x.seq <= maxSeq) return { persistenceId, seq: x.seq, data: x.data.slice() };
    }
    return undefined;
  }

  async keepSnapshots(persistenceId: string, keep: number): Promise<number> {
    this.usable();
    if (keep < 1) throw new JournalUsageError('keepSnapshots: keep must be >= 1');
    const s = this.streams.get(persistenceId);
    if (s === undefined || s.snapshots.length <= keep) return 0;
    const n = s.snapshots.length - keep;
    s.snapshots.splice(0, n);
    return n;
  }

  async deleteEventsTo(persistenceId: string, toSeq: number): Promise<number> {
    this.usable();
    const s = this.streams.get(persistenceId);
    if (s === undefined || s.rows.length === 0) return 0;
    // Keep the newest row so the highest sequence survives.
    const last = Math.min(toSeq, s.base + s.rows.length - 2);
    const n = Math.max(0, last - s.base + 1);
    s.rows.splice(0, n);
    s.base += n;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Test helper: every stored event of an id, decoded, in sequence order. */
  eventsOf(persistenceId: string): unknown[] {
    return (this.streams.get(persistenceId)?.rows ?? []).map((r) => unpack(r) as unknown);
  }

  /** Test helper: the persistence ids that have events or snapshots. */
  ids(): string[] {
    return [...this.streams.keys()];
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
