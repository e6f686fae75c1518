/**
 * Group commit: many actors submit their writes; the committer sends them to the journal in one
 * append per batch and resolves each submitter once its batch is durable.
 *
 * - A batch closes when `batchEventsMax` events are waiting, or `lingerMs` after its first write
 *   (0 = the end of the current tick), or as soon as an in-flight commit finishes.
 * - At most `inFlightMax` appends run at once. A persistence id with a write in flight is held back
 *   until that commit settles, because its next write expects those sequences.
 * - A conflict or a fence failure rejects only the writes it names; the rest of the batch is retried
 *   at once in a new append. Any other failure rejects the whole batch (the journal already retried
 *   transient ones).
 *
 * @example
 *   const gc = new GroupCommitter(store.journal, { lingerMs: 1 });
 *   await gc.submit({ persistenceId: 'account/a1', expectedSeq: 0, events: [e1] }, { scope: 'account#3', token: 7 });
 */
import type { FenceToken, Journal, JournalWrite } from '@bourse/actors';
import { JournalConflictError, JournalFencedError } from './errors.js';

export interface GroupCommitOptions {
  /** Wait this long for more writes after the first of a batch. Default 0 (same tick). */
  readonly lingerMs?: number;
  /** Close a batch at this many events. Default 50000. */
  readonly batchEventsMax?: number;
  /** Appends in flight at once. Default 1. */
  readonly inFlightMax?: number;
}

interface Pending<E> {
  write: JournalWrite<E>;
  fence: FenceToken | undefined;
  resolve(): void;
  reject(e: unknown): void;
}

export class GroupCommitter<E = unknown> {
  readonly #journal: Journal<E>;
  readonly #lingerMs: number;
  readonly #batchEventsMax: number;
  readonly #inFlightMax: number;
  #queue: Pending<E>[] = [];
  #queuedEvents = 0;
  #inFlight = 0;
  readonly #busyIds = new Set<string>();
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #idle: Array<() => void> = [];
  /** Batches committed and events in them, for metrics. */
  batches = 0;
  events = 0;

  constructor(journal: Journal<E>, opts: GroupCommitOptions = {}) {
    this.#journal = journal;
    this.#lingerMs = opts.lingerMs ?? 0;
    this.#batchEventsMax = opts.batchEventsMax ?? 50_000;
    this.#inFlightMax = opts.inFlightMax ?? 1;
  }

  /** Resolves when the write is committed; rejects with the journal's typed error otherwise. */
  submit(write: JournalWrite<E>, fence?: FenceToken): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ write, fence, resolve, reject });
      this.#queuedEvents += write.events.length;
      this.#schedule();
    });
  }

  /** Resolves once everything submitted so far has settled. */
  flush(): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #schedule(): void {
    if (this.#inFlight >= this.#inFlightMax) return; // the commit in flight will pick the queue up
    if (this.#queuedEvents >= this.#batchEventsMax) {
      this.#clearTimer();
      this.#drain();
      return;
    }
    if (this.#timer) return;
    this.#timer = this.#lingerMs > 0 ? setTimeout(() => this.#fire(), this.#lingerMs) : setImmediate(() => this.#fire());
  }

  #clearTimer(): void {
    if (!this.#timer) return;
    if (this.#lingerMs > 0) clearTimeout(this.#timer as NodeJS.Timeout);
    else clearImmediate(this.#timer as NodeJS.Immediate);
    this.#timer = undefined;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#drain();
  }

  #drain(): void {
    while (this.#inFlight < this.#inFlightMax && this.#queue.length > 0) {
      const batch: Pending<E>[] = [];
      const rest: Pending<E>[] = [];
      let events = 0;
      const ids = new Set<string>();
      for (const p of this.#queue) {
        const id = p.write.persistenceId;
        if (events < this.#batchEventsMax && !this.#busyIds.has(id)) {
          batch.push(p);
          ids.add(id);
          events += p.write.events.length;
        } else rest.push(p);
      }
      if (batch.length === 0) break;
      this.#queue = rest;
      this.#queuedEvents -= events;
      for (const id of ids) this.#busyIds.add(id);
      this.#inFlight++;
      void this.#commit(batch).finally(() => {
        this.#inFlight--;
        for (const id of ids) this.#busyIds.delete(id);
        if (this.#queue.length > 0) this.#drain();
        else if (this.#inFlight === 0) for (const r of this.#idle.splice(0)) r();
      });
    }
  }

  async #commit(batch: Pending<E>[]): Promise<void> {
    let live = batch;
    while (live.length > 0) {
      // Fences: one token per scope, the highest; a write whose own token is lower is fenced already.
      const fences = new Map<string, number>();
      for (const p of live) if (p.fence && (fences.get(p.fence.scope) ?? -1) < p.fence.token) fences.set(p.fence.scope, p.fence.token);
      const next: Pending<E>[] = [];
      for (const p of live) {
        if (p.fence && fences.get(p.fence.scope)! > p.fence.token) p.reject(new JournalFencedError(p.fence.scope, p.fence.token, fences.get(p.fence.scope)!));
        else next.push(p);
      }
      live = next;
      if (live.length === 0) return;
      try {
        await this.#journal.append(
          live.map((p) => p.write),
          { fences: [...fences].map(([scope, token]) => ({ scope, token })) },
        );
        this.batches++;
        for (const p of live) {
          this.events += p.write.events.length;
          p.resolve();
        }
        return;
      } catch (e) {
        if (e instanceof JournalConflictError && e.conflicts.length > 0) {
          const bad = new Map(e.conflicts.map((c) => [c.persistenceId, c]));
          live = live.filter((p) => {
            const c = bad.get(p.write.persistenceId);
            if (c) p.reject(new JournalConflictError([{ ...c, expectedSeq: p.write.expectedSeq }], { cause: e }));
            return !c;
          });
        } else if (e instanceof JournalFencedError) {
          live = live.filter((p) => {
            if (p.fence?.scope === e.scope) p.reject(e);
            return p.fence?.scope !== e.scope;
          });
        } else {
          for (const p of live) p.reject(e);
          return;
        }
      }
    }
  }
}
