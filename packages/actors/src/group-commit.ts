import type { Clock, TimerHandle } from './clock.js';
import type { FenceToken, Journal, JournalWrite } from './journal.js';
import { JournalConflictError, JournalFencedError } from './journal.js';

/** One writer (an entity) as the group commit sees it. */
export interface CommitParticipant {
  readonly persistenceId: string;
  /**
   * Bumped by the participant when it fails: buffered writes of an older epoch are dropped, never
   * appended (their events were decided on a state that will not survive).
   */
  readonly epoch: number;
  /** The write carrying events up to `toSeq` is durable. */
  committed(epoch: number, toSeq: number): void;
  /** The write failed; `stale` when the journal rejected this writer (conflict or fence). */
  failed(epoch: number, error: unknown, stale: boolean): void;
  /** Its highest committed sequence (read by writers that depend on it). */
  readonly committedSeq?: number;
  /**
   * Events of other participants its buffered events depend on, as the highest sequence needed per
   * participant (it consumed their messages before those were committed). Its write then goes only
   * into the same append as those events, or into one after they committed; never into one that
   * could commit without them.
   */
  readonly dependsOn?: ReadonlyMap<CommitParticipant, number> | undefined;
}

export interface GroupCommitOptions {
  /** Longest a buffered event waits for companions before the batch is written. Default 500 µs. */
  windowUs?: number;
  /** Write as soon as this many events are buffered. Default 2000. */
  batchEventsMax?: number;
  /**
   * While an append is in flight, at most this many events wait for the next one; beyond it the node
   * stops draining mailboxes of persistent entities until the buffer is written (backpressure).
   * Default 8 × batchEventsMax.
   */
  bufferedEventsMax?: number;
  /**
   * The fence token a write of this id carries (its shard's lease revision), or undefined. The shard
   * lease layer plugs in here; a batch sends each scope once, with the highest token asked for it.
   */
  fenceOf?(persistenceId: string): FenceToken | undefined;
  /**
   * Appends in flight at once (default 1). Above 1, a participant is in at most one in-flight append
   * (its later events wait for the next), so its writes still commit in order.
   */
  maxInFlight?: number;
  /** Keep this participant's buffered events out of the batch being formed (they go in a later one). */
  holdBack?(p: CommitParticipant): boolean;
}

interface Entry {
  readonly p: CommitParticipant;
  readonly epoch: number;
  readonly expectedSeq: number;
  readonly events: unknown[];
}

/**
 * Group commit: collects the events of every entity on the node for up to `windowUs` or
 * `batchEventsMax` events, writes them with one `Journal.append` (one transaction), then tells each
 * participant. One append is in flight at a time; what arrives meanwhile forms the next batch, which
 * is written as soon as the previous one settles.
 *
 * A conflict or a fence failure fails only the stale writers (the conflicting ids, or the ids whose
 * fence scope was rejected): nothing was stored, so the other writes of the batch are appended again
 * without them. Any other failure fails every writer of the batch.
 */
export class GroupCommitter {
  private buffer = new Map<CommitParticipant, Entry>();
  private bufferedEvents = 0;
  private inFlight = 0;
  private readonly maxInFlight: number;
  /** Participants with a write in an in-flight append. */
  private readonly busy = new Set<CommitParticipant>();
  private timer: TimerHandle | undefined;
  private readonly windowMs: number;
  private readonly batchEventsMax: number;
  private readonly bufferedEventsMax: number;
  private idleWaiters: (() => void)[] = [];
  /** Called after each append settles, so a node can resume drains paused by backpressure. */
  onRoom: (() => void) | undefined;
  /**
   * Called right before a batch is formed, so a companion writer (the cluster's per-shard registry
   * of entities with unacknowledged outgoing messages) can `add` records that must land in the same
   * transaction as the events buffered now.
   */
  beforeFlush: (() => void) | undefined;
  private forming = false;
  /** Appends issued, events committed, batches failed. */
  readonly stats = { appends: 0, eventsCommitted: 0, failures: 0, conflicts: 0, fenced: 0 };

  constructor(
    private readonly journal: Journal,
    private readonly clock: Clock,
    private readonly options: GroupCommitOptions = {},
  ) {
    this.windowMs = (options.windowUs ?? 500) / 1000;
    this.batchEventsMax = options.batchEventsMax ?? 2000;
    this.bufferedEventsMax = options.bufferedEventsMax ?? 8 * this.batchEventsMax;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  }

  /** Whether the buffer is full: callers should stop producing events until `onRoom`. */
  full(): boolean {
    return this.bufferedEvents >= this.bufferedEventsMax;
  }

  /** Buffer events of `p` whose first event gets `expectedSeq + 1`. */
  add(p: CommitParticipant, expectedSeq: number, events: readonly unknown[]): void {
    let e = this.buffer.get(p);
    if (e !== undefined && e.epoch !== p.epoch) {
      this.bufferedEvents -= e.events.length;
      e = undefined;
    }
    if (e === undefined) {
      e = { p, epoch: p.epoch, expectedSeq, events: [] };
      this.buffer.set(p, e);
    }
    for (const ev of events) e.events.push(ev);
    this.bufferedEvents += events.length;
    if (this.forming) return;
    if (this.bufferedEvents >= this.batchEventsMax) this.flush();
    else if (this.timer === undefined && this.inFlight < this.maxInFlight) this.timer = this.clock.schedule(this.windowMs, () => this.onTimer());
  }

  /** Whether nothing is buffered or in flight. */
  idle(): boolean {
    return this.inFlight === 0 && this.buffer.size === 0;
  }

  /** Resolves when nothing is buffered or in flight (flushing what is buffered now). */
  drained(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    this.flush();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.flush();
  }

  /** Write what is buffered now, unless an append is in flight (then it follows that one). */
  flush(): void {
    if (this.inFlight >= this.maxInFlight || this.buffer.size === 0 || this.forming) return;
    if (this.timer !== undefined) {
      this.clock.cancel(this.timer);
      this.timer = undefined;
    }
    if (this.beforeFlush) {
      this.forming = true;
      try {
        this.beforeFlush();
      } finally {
        this.forming = false;
      }
    }
    let entries: Entry[] = [];
    const kept = new Map<CommitParticipant, Entry>();
    let keptEvents = 0;
    const hold = this.options.holdBack;
    let anyDeps = false;
    for (const e of this.buffer.values()) {
      if (e.epoch !== e.p.epoch) continue;
      if (this.busy.has(e.p) || (hold !== undefined && hold(e.p))) {
        kept.set(e.p, e);
        keptEvents += e.events.length;
      } else {
        entries.push(e);
        if (e.p.dependsOn !== undefined && e.p.dependsOn.size > 0) anyDeps = true;
      }
    }
    if (anyDeps) {
      // Keep back every write whose dependencies are neither committed nor in this batch, until
      // nothing changes (keeping one back can leave another's dependency out).
      const inBatch = new Map<CommitParticipant, Entry>();
      for (const e of entries) inBatch.set(e.p, e);
      for (let changed = true; changed; ) {
        changed = false;
        for (const e of inBatch.values()) {
          if (e.p.dependsOn === undefined) continue;
          for (const [q, seq] of e.p.dependsOn) {
            if ((q.committedSeq ?? 0) >= seq) continue;
            const qe = inBatch.get(q);
            if (qe !== undefined && qe.expectedSeq + qe.events.length >= seq) continue;
            inBatch.delete(e.p);
            kept.set(e.p, e);
            keptEvents += e.events.length;
            changed = true;
            break;
          }
        }
      }
      entries = [...inBatch.values()];
    }
    this.buffer = kept;
    this.bufferedEvents = keptEvents;
    if (entries.length === 0) return this.settled();
    this.inFlight++;
    for (const e of entries) this.busy.add(e.p);
    void this.write(entries).finally(() => {
      this.inFlight--;
      for (const e of entries) this.busy.delete(e.p);
      if (this.buffer.size > 0) this.flush();
      else this.settled();
      this.onRoom?.();
    });
  }

  private settled(): void {
    if (!this.idle()) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private async write(entries: Entry[]): Promise<void> {
    // Each conflict removes at least one writer, so this ends.
    for (;;) {
      const live = entries.filter((e) => e.epoch === e.p.epoch);
      if (live.length === 0) return;
      const writes: JournalWrite[] = live.map((e) => ({ persistenceId: e.p.persistenceId, expectedSeq: e.expectedSeq, events: e.events }));
      const scopeOf = new Map<string, string>();
      let fences: FenceToken[] | undefined;
      if (this.options.fenceOf) {
        const byScope = new Map<string, number>();
        for (const w of writes) {
          const f = this.options.fenceOf(w.persistenceId);
          if (f === undefined) continue;
          scopeOf.set(w.persistenceId, f.scope);
          byScope.set(f.scope, Math.max(f.token, byScope.get(f.scope) ?? 0));
        }
        // Sorted: concurrent appends (pipelining, other nodes at a handoff) then lock fence rows in
        // one order, so they cannot deadlock on them.
        fences = [...byScope].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([scope, token]) => ({ scope, token }));
      }
      this.stats.appends++;
      try {
        await this.journal.append(writes, fences && fences.length > 0 ? { fences } : undefined);
      } catch (err) {
        // Only the writers the error names are stale; nothing was stored, so the rest go again.
        let stale: Set<string> | undefined;
        if (err instanceof JournalConflictError) {
          this.stats.conflicts++;
          stale = new Set(err.conflicts.map((c) => c.persistenceId));
        } else if (err instanceof JournalFencedError) {
          this.stats.fenced++;
          stale = new Set(live.filter((e) => scopeOf.get(e.p.persistenceId) === err.scope).map((e) => e.p.persistenceId));
        }
        if (stale !== undefined && stale.size > 0) {
          for (const e of live) if (stale.has(e.p.persistenceId)) e.p.failed(e.epoch, err, true);
          entries = live.filter((e) => !stale.has(e.p.persistenceId));
          continue;
        }
        this.stats.failures++;
        for (const e of live) e.p.failed(e.epoch, err, err instanceof JournalFencedError);
        return;
      }
      for (const e of live) {
        this.stats.eventsCommitted += e.events.length;
        e.p.committed(e.epoch, e.expectedSeq + e.events.length);
      }
      return;
    }
  }
}
