/**
 * The event journal that event-sourced actors persist through. `packages/store` implements it on
 * Postgres (pg) and PGlite; tests may implement it in memory. Domain-free: events are opaque values
 * the implementation encodes (msgpackr in the store).
 *
 * Sequences: every persistence id (`book/BTC-USD`, `account/acc-42`) has its own sequence 1, 2, 3, …
 * with no gaps. `expectedSeq` is the highest sequence the writer believes is stored (0 for a new id);
 * the events of a write get `expectedSeq + 1 … expectedSeq + events.length`.
 *
 * Group commit: the runtime collects the writes of many actors and calls `append` once; the whole
 * call is one transaction — every write is stored, or none is (DESIGN.md, "Group commit").
 *
 * Fencing: a write may carry the shard lease revision as a {@link FenceToken}. The store keeps the
 * highest token it has seen per `scope` (a shard) and raises it inside the append transaction; a
 * token lower than the stored one makes the whole append fail with {@link JournalFencedError}.
 * `append([], { fences })` raises fences without writing: a new owner calls it before recovery, so
 * that a deposed owner's next append fails even if its expected sequences happen to be right. The
 * expected-sequence check (unique `(persistence_id, seq)`) backs this up in a split brain.
 *
 * @example
 *   await journal.append([{ persistenceId: 'account/a1', expectedSeq: 0, events: [{ type: 'Deposited', amount: 5 }] }],
 *     { fences: [{ scope: 'account#7', token: 42 }] });
 *   for await (const page of journal.read('account/a1', 1)) for (const e of page.events) apply(e);
 */

/** Writes for one persistence id in one append. */
export interface JournalWrite<E = unknown> {
  readonly persistenceId: string;
  /** Highest sequence the writer believes is stored for the id; 0 when none. */
  readonly expectedSeq: number;
  /** At least one event; they get sequences `expectedSeq + 1 …`. */
  readonly events: readonly E[];
}

/** A shard lease revision: the store rejects appends whose token is below the highest seen for `scope`. */
export interface FenceToken {
  readonly scope: string;
  /** Monotonic per scope (a JetStream KV revision). A safe integer ≥ 0. */
  readonly token: number;
}

export interface AppendOptions {
  /** Fences to check and raise in the same transaction. Each scope at most once. */
  readonly fences?: readonly FenceToken[];
}

/** Contiguous events of one persistence id: `events[i]` has sequence `fromSeq + i`. */
export interface JournalPage<E = unknown> {
  readonly persistenceId: string;
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly events: readonly E[];
}

export interface ReadOptions {
  /** Last sequence to return (inclusive). Default: everything stored when each page is read. */
  readonly toSeq?: number;
  /** Upper bound on events fetched per page (approximate: whole stored rows are fetched). */
  readonly pageEventsMax?: number;
}

export interface Snapshot {
  readonly persistenceId: string;
  /** The snapshot includes every event up to and including this sequence. */
  readonly seq: number;
  /** Opaque bytes: the runtime encodes (and versions) the state. */
  readonly data: Uint8Array;
}

/** Outcome of re-checking an append whose commit result was lost with the connection. */
export type AppendOutcome = 'committed' | 'absent';

export interface Journal<E = unknown> {
  /**
   * One transaction for all writes. Throws {@link JournalConflictError} (listing every stale id) or
   * {@link JournalFencedError}; then nothing was stored. Resolves only once the commit is durable.
   * An unknown commit outcome (connection lost during COMMIT) is resolved internally with
   * {@link Journal.resolveAppend}; if that cannot be done in time, {@link JournalOutcomeUnknownError}.
   */
  append(writes: readonly JournalWrite<E>[], options?: AppendOptions): Promise<void>;
  /** Pages of events from `fromSeq` (≥ 1) on; never the whole journal at once. */
  read(persistenceId: string, fromSeq: number, options?: ReadOptions): AsyncIterable<JournalPage<E>>;
  /** Highest stored sequence, 0 when none. */
  highestSeq(persistenceId: string): Promise<number>;
  /** Highest stored sequence for each id (0 when none). */
  highestSeqs(persistenceIds: readonly string[]): Promise<Map<string, number>>;
  /**
   * Whether exactly these writes are stored (compares the stored rows with what would have been
   * written), `absent` when none of them is. Throws {@link JournalConflictError} when another writer's
   * events occupy the sequences.
   */
  resolveAppend(writes: readonly JournalWrite<E>[]): Promise<AppendOutcome>;

  /** Save (or overwrite) the snapshot at `snapshot.seq`. */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /** The latest snapshot, or the latest at or below `maxSeq`. */
  loadSnapshot(persistenceId: string, maxSeq?: number): Promise<Snapshot | undefined>;
  /** Keep only the newest `keep` (≥ 1) snapshots; returns how many were deleted. */
  keepSnapshots(persistenceId: string, keep: number): Promise<number>;
  /**
   * Delete journal events up to `toSeq` (only whole stored rows; the newest row is always kept so
   * the highest sequence survives). Call only behind a saved snapshot. Returns events deleted.
   */
  deleteEventsTo(persistenceId: string, toSeq: number): Promise<number>;

  close(): Promise<void>;
}

// ---------------------------------------------------------------- errors

/** Base class of every journal error. `cause` keeps the underlying driver error when there is one. */
export class JournalError extends Error {
  override readonly name: string = 'JournalError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface SequenceConflict {
  readonly persistenceId: string;
  readonly expectedSeq: number;
  /** Highest sequence actually stored when the conflict was detected. */
  readonly actualSeq: number;
}

/** A stale (or racing) writer: the stored highest sequence is not the one it expected. Nothing was written. */
export class JournalConflictError extends JournalError {
  override readonly name = 'JournalConflictError';
  constructor(readonly conflicts: readonly SequenceConflict[], options?: { cause?: unknown }) {
    super(
      'journal conflict: ' +
        conflicts
          .slice(0, 5)
          .map((c) => `${c.persistenceId} expected seq ${c.expectedSeq}, actual ${c.actualSeq}`)
          .join('; ') +
        (conflicts.length > 5 ? `; and ${conflicts.length - 5} more` : ''),
      options,
    );
  }
}

/** The writer's fencing token is below the highest the store has seen for that scope. Nothing was written. */
export class JournalFencedError extends JournalError {
  override readonly name = 'JournalFencedError';
  constructor(
    readonly scope: string,
    readonly token: number,
    readonly storedToken: number,
  ) {
    super(`journal fenced: scope ${scope} token ${token} is below the stored token ${storedToken}`);
  }
}

/** A stored row cannot be decoded: unknown format version, corrupt bytes or a count mismatch. */
export class JournalDecodeError extends JournalError {
  override readonly name = 'JournalDecodeError';
  constructor(
    readonly persistenceId: string,
    readonly seq: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`journal decode error at ${persistenceId} seq ${seq}: ${detail}`, options);
  }
}

/** The stored sequence is not contiguous where a read needs it (e.g. reading behind a deletion). */
export class JournalGapError extends JournalError {
  override readonly name = 'JournalGapError';
  constructor(
    readonly persistenceId: string,
    readonly expectedSeq: number,
    readonly foundSeq: number,
  ) {
    super(`journal gap at ${persistenceId}: expected seq ${expectedSeq}, found ${foundSeq}`);
  }
}

/** The database could not be reached within the retry budget. The operation did not happen (reads) or did not start (appends). */
export class JournalUnavailableError extends JournalError {
  override readonly name = 'JournalUnavailableError';
}

/** The connection was lost while committing and the outcome could not be re-checked in time. */
export class JournalOutcomeUnknownError extends JournalError {
  override readonly name = 'JournalOutcomeUnknownError';
}

/** A call that breaks the interface's contract (empty events, bad sequence, duplicate fence scope). A bug in the caller. */
export class JournalUsageError extends JournalError {
  override readonly name = 'JournalUsageError';
}
