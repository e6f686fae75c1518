import { Packr } from 'msgpackr';
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

/** The events of one write (one stored row, as in the store): sequences `from … from + n - 1`. */
interface Row {
  readonly from: number;
  readonly n: number;
  /** The events, encoded together (msgpackr with the journal's records, one array). */
  readonly bytes: Uint8Array;
}

interface Stream {
  /** Stored rows in sequence order, contiguous. */
  rows: Row[];
  /** Sequence of the first stored event (events before it were deleted). */
  base: number;
  /** Highest stored sequence (0 when none). */
  high: number;
  snapshots: Snapshot[];
}

/**
 * The {@link Journal} in memory, for tests and the simulator. It keeps the real store's contract:
 * one append is all-or-nothing; contiguous writes for one id in one append are merged (others are a
 * {@link JournalUsageError}); an expected sequence that is not the stored highest fails the whole
 * append with a {@link JournalConflictError} naming every stale id; fence tokens are checked and
 * raised in the same step; events are stored encoded (msgpackr, one encoding per write, like the
 * store's one row per persistence id per append), so a caller that mutates an event after appending
 * it does not change the journal, and what cannot be encoded fails here as it would in Postgres.
 *
 * @example
 *   const journal = new MemoryJournal();
 *   await journal.append([{ persistenceId: 'account/a', expectedSeq: 0, events: [{ type: 'Deposited', amount: 5 }] }]);
 *   await journal.append([{ persistenceId: 'account/a', expectedSeq: 0, events: [{}] }]); // JournalConflictError
 */
export class MemoryJournal implements Journal {
  private readonly streams = new Map<string, Stream>();
  /**
   * The journal's codec: msgpackr records whose structures this journal keeps and every row shares,
   * so an object shape is described once per journal instead of key by key in every row (decoding
   * got ~4x cheaper; the simulator decodes every stored event). The store's codec also writes
   * records, but defines them inside each row so a row decodes on its own; rows here never leave
   * the process, so they need not.
   */
  private readonly codec = new Packr({ structures: [], maxSharedStructures: 8160, moreTypes: false });
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
      s = { rows: [], base: 1, high: 0, snapshots: [] };
      this.streams.set(id, s);
    }
    return s;
  }

  private highest(id: string): number {
    const s = this.streams.get(id);
    return s === undefined ? 0 : s.high;
  }

  private usable(): void {
    if (this.closed) throw new JournalUsageError('journal is closed');
  }

  async append(writes: readonly JournalWrite[], options: AppendOptions = {}): Promise<void> {
    this.usable();
    if (this.faults.beforeAppend) await this.faults.beforeAppend(writes);
    // Two writes for one id in one append are merged when contiguous, as the store does.
    const merged = new Map<string, { expectedSeq: number; events: readonly unknown[] }>();
    for (const w of writes) {
      if (typeof w.persistenceId !== 'string' || w.persistenceId.length === 0) throw new JournalUsageError('append: persistenceId must be a non-empty string');
      if (!Array.isArray(w.events) || w.events.length === 0) throw new JournalUsageError(`append ${w.persistenceId}: events must be a non-empty array`);
      if (!Number.isSafeInteger(w.expectedSeq) || w.expectedSeq < 0) throw new JournalUsageError(`append ${w.persistenceId}: bad expectedSeq ${w.expectedSeq}`);
      const m = merged.get(w.persistenceId);
      if (m === undefined) merged.set(w.persistenceId, { expectedSeq: w.expectedSeq, events: w.events });
      else if (m.expectedSeq + m.events.length === w.expectedSeq) m.events = m.events.concat(w.events);
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
    const encoded: [string, Row][] = [];
    for (const [id, m] of merged) encoded.push([id, { from: m.expectedSeq + 1, n: m.events.length, bytes: this.codec.pack(m.events) as Uint8Array }]);
    for (const f of fences) this.fenceTokens.set(f.scope, Math.max(f.token, this.fenceTokens.get(f.scope) ?? 0));
    for (const [id, row] of encoded) {
      const s = this.stream(id);
      s.rows.push(row);
      s.high = row.from + row.n - 1;
      this.eventsStored += row.n;
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
    let cachedRow: Row | undefined;
    let cached: unknown[] = [];
    for (;;) {
      const s = this.streams.get(persistenceId);
      const highest = this.highest(persistenceId);
      const last = Math.min(highest, options.toSeq ?? highest);
      if (s === undefined || next > last) return;
      if (next < s.base) throw new JournalGapError(persistenceId, next, s.base);
      const to = Math.min(last, next + pageMax - 1);
      const events: unknown[] = [];
      for (let r = rowAt(s.rows, next); events.length < to - next + 1; r++) {
        const row = s.rows[r]!;
        if (row !== cachedRow) {
          cachedRow = row;
          cached = this.codec.unpack(row.bytes) as unknown[];
        }
        const decoded = cached;
        const a = Math.max(next, row.from) - row.from;
        const b = Math.min(to, row.from + row.n - 1) - row.from;
        for (let i = a; i <= b; i++) events.push(decoded[i]);
      }
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
      const same = s !== undefined && highest >= w.expectedSeq + w.events.length && this.storedEqual(s, w);
      if (same) stored++;
      else conflicts.push({ persistenceId: w.persistenceId, expectedSeq: w.expectedSeq, actualSeq: highest });
    }
    if (conflicts.length > 0) throw new JournalConflictError(conflicts);
    if (stored === writes.length && stored > 0) return 'committed';
    if (stored === 0) return 'absent';
    throw new JournalUsageError('resolveAppend: writes are partly stored, which one transaction cannot do');
  }

  /** Whether the stored events at the write's sequences are, byte for byte, what it would store. */
  private storedEqual(s: Stream, w: JournalWrite): boolean {
    const from = w.expectedSeq + 1;
    if (from < s.base) return false;
    const r = rowAt(s.rows, from);
    const row = s.rows[r];
    if (row === undefined) return false;
    // The usual case: the write is one stored row.
    if (row.from === from && row.n === w.events.length) return equalBytes(this.codec.pack(w.events), row.bytes);
    // Merged or split rows: compare event by event.
    const stored: unknown[] = [];
    for (let i = r; i < s.rows.length && stored.length < from - s.rows[r]!.from + w.events.length; i++) for (const e of this.codec.unpack(s.rows[i]!.bytes) as unknown[]) stored.push(e);
    const off = from - row.from;
    return w.events.every((e, i) => stored[off + i] !== undefined && equalBytes(this.codec.pack(e), this.codec.pack(stored[off + i])));
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
    // Whole rows only; keep the newest row so the highest sequence survives.
    let k = 0;
    while (k < s.rows.length - 1 && s.rows[k]!.from + s.rows[k]!.n - 1 <= toSeq) k++;
    if (k === 0) return 0;
    const next = s.rows[k]!.from;
    const n = next - s.base;
    s.rows.splice(0, k);
    s.base = next;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Test helper: every stored event of an id, decoded, in sequence order. */
  eventsOf(persistenceId: string): unknown[] {
    const out: unknown[] = [];
    for (const r of this.streams.get(persistenceId)?.rows ?? []) for (const e of this.codec.unpack(r.bytes) as unknown[]) out.push(e);
    return out;
  }

  /** Test helper: the sequences of an id's stored snapshots, oldest first. */
  snapshotSeqsOf(persistenceId: string): number[] {
    return (this.streams.get(persistenceId)?.snapshots ?? []).map((x) => x.seq);
  }

  /** Test helper: the byte sizes of the snapshots stored for an id, oldest first. */
  snapshotSizesOf(persistenceId: string): number[] {
    return (this.streams.get(persistenceId)?.snapshots ?? []).map((x) => x.data.length);
  }

  /** Test helper: the persistence ids that have events or snapshots. */
  ids(): string[] {
    return [...this.streams.keys()];
  }
}

/** Index of the row holding sequence `seq` (rows are contiguous and sorted); rows.length when past the end. */
function rowAt(rows: readonly Row[], seq: number): number {
  let lo = 0;
  let hi = rows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = rows[mid]!;
    if (seq < r.from) hi = mid - 1;
    else if (seq >= r.from + r.n) lo = mid + 1;
    else return mid;
  }
  return rows.length;
}

function equalBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
