/**
 * The simulated store (Postgres journal) and NATS KV (leases).
 *
 * `SimJournal` is one process's connection to the shared store (a `MemoryJournal`, which keeps the
 * store's contract: all-or-nothing appends, expected-sequence conflicts, fences). An append travels
 * to the store (latency from the seed), commits there, and its answer travels back. Crash semantics:
 * when the process died while its append was in flight, the transaction commits or not by a seeded
 * coin ("commit outcome unknown") and nobody hears about it. Store faults: the append fails before
 * anything is stored (`JournalUnavailableError`) or after it committed (`JournalOutcomeUnknownError`).
 * A partition between a node and the store makes its calls fail as unavailable.
 *
 * `SimKV` is the lease bucket: `create` (absent or expired key), `update` (compare-and-set on the
 * revision), TTL from the last write, revisions increasing across the bucket, all on simulated time.
 */
import { JournalOutcomeUnknownError, JournalUnavailableError, MemoryJournal } from '@bourse/actors';
import type { AppendOptions, AppendOutcome, Journal, JournalPage, JournalWrite, ReadOptions, Snapshot } from '@bourse/actors';
import type { SimClock } from './clock.js';
import { soon } from './net.js';
import type { ProcessClock, SimNetwork } from './net.js';
import type { Prng } from './prng.js';
import type { FaultCounts } from './types.js';

export interface StoreFaults {
  /** Probability an append fails (half before storing, half after = outcome unknown). */
  readonly appendFail: number;
}

/** Hooks only the sim's test harness sets (planted bugs). */
export interface JournalPlants {
  /** Answer an append as committed at once; the commit happens later (and may not happen at all). */
  ackBeforeCommit?: boolean;
}

export interface CommitObserver {
  (peer: string, writes: readonly JournalWrite[], options: AppendOptions | undefined): void;
}

export class SimStore {
  readonly mem = new MemoryJournal();
  /** Highest fence token raised per scope, as the store has seen them (for the single-writer check). */
  readonly fences = new Map<string, number>();
  appends = 0;
  /** Events decoded from the store once (`events[i]` is sequence i + 1), deep-frozen, shared by every reader. */
  private readonly decodedEvents = new Map<string, unknown[]>();
  /** Per id, the decode in progress (decodes of one id run one after another). */
  private readonly decoding = new Map<string, Promise<unknown[]>>();
  /** Ids whose early events were deleted: read straight from the store. */
  readonly uncached = new Set<string>();
  /** Events decoded from the store (each once), for the statistics. */
  eventsDecoded = 0;

  constructor(
    readonly clock: SimClock,
    readonly net: SimNetwork,
    readonly rng: Prng,
    public faults: StoreFaults,
    readonly counts: FaultCounts,
    readonly onCommit: CommitObserver,
    readonly plants: JournalPlants = {},
  ) {}

  connect(host: ProcessClock): SimJournal {
    return new SimJournal(this, host);
  }

  /**
   * Every stored event of `persistenceId` up to the store's highest sequence now, decoded. Recoveries
   * after crashes, releases and journal failures replay the same streams many times over (hundreds
   * of thousands of events a run); each stored event is decoded once here instead of once per read.
   * The events are deep-frozen: a reader that mutated one would change what the next reader
   * recovers, so it throws instead (an actor crash, which the world reports as a violation).
   */
  decoded(persistenceId: string): Promise<readonly unknown[]> {
    const prev = this.decoding.get(persistenceId);
    const next = (prev ?? Promise.resolve(undefined)).then(() => this.extend(persistenceId));
    this.decoding.set(persistenceId, next);
    void next.finally(() => {
      if (this.decoding.get(persistenceId) === next) this.decoding.delete(persistenceId);
    }).catch(() => undefined);
    return next;
  }

  private async extend(persistenceId: string): Promise<unknown[]> {
    let evs = this.decodedEvents.get(persistenceId);
    if (evs === undefined) this.decodedEvents.set(persistenceId, (evs = []));
    const high = await this.mem.highestSeq(persistenceId);
    if (evs.length >= high) return evs;
    for await (const page of this.mem.read(persistenceId, evs.length + 1)) {
      for (const e of page.events) evs.push(deepFreeze(e));
      this.eventsDecoded += page.events.length;
    }
    return evs;
  }
}

/** Freezes a decoded event and everything in it (plain objects and arrays, as msgpackr decodes them). */
function deepFreeze<T>(v: T): T {
  if (v === null || typeof v !== 'object' || Object.isFrozen(v) || ArrayBuffer.isView(v)) return v;
  Object.freeze(v);
  // Primitives (most fields) are skipped here rather than in a call each.
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (x !== null && typeof x === 'object') deepFreeze(x);
    }
  } else if (v instanceof Map) for (const x of v.values()) deepFreeze(x);
  else {
    for (const k in v) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== null && typeof x === 'object') deepFreeze(x);
    }
  }
  return v;
}

function unavailable(peer: string): JournalUnavailableError {
  return new JournalUnavailableError(`store unreachable from ${peer}`);
}

export class SimJournal implements Journal {
  constructor(
    private readonly store: SimStore,
    private readonly host: ProcessClock,
  ) {}

  private check(): void {
    if (!this.store.net.reachable(this.host.peer, 'store')) throw unavailable(this.host.peer);
  }

  append(writes: readonly JournalWrite[], options?: AppendOptions): Promise<void> {
    const st = this.store;
    const host = this.host;
    const peer = host.peer;
    const rng = st.rng;
    let failure: 'before' | 'after' | undefined;
    if (st.faults.appendFail > 0 && rng.chance(st.faults.appendFail)) {
      failure = rng.chance(0.5) ? 'before' : 'after';
      st.counts.store = (st.counts.store ?? 0) + 1;
    }
    const latency = rng.int(0, 2) + (st.plants.ackBeforeCommit ? 2 : 0);
    return new Promise<void>((resolve, reject) => {
      const answer = (err: unknown): void => {
        // The answer crosses the network back (a partition that began meanwhile loses it: outcome unknown).
        const deliver = (): void => host.run(() => (err === undefined ? resolve() : reject(err)));
        if (!st.net.reachable(peer, 'store')) {
          host.run(() => reject(new JournalOutcomeUnknownError(`connection to the store lost while committing (${peer})`)));
          return;
        }
        deliver();
      };
      if (!st.net.reachable(peer, 'store')) {
        soon(() => host.run(() => reject(unavailable(peer))));
        return;
      }
      if (st.plants.ackBeforeCommit) soon(() => host.run(() => resolve())); // PLANTED BUG: the answer before the commit
      const arrive = (): void => {
        if (!host.alive) {
          // The writer crashed with this transaction in flight: committed or not, by the seed.
          st.counts.store = (st.counts.store ?? 0) + 1;
          if (rng.chance(0.5)) this.commit(writes, options).catch(() => undefined);
          return;
        }
        if (failure === 'before') return answer(new JournalUnavailableError('injected: the store refused the transaction'));
        this.commit(writes, options).then(
          () => answer(failure === 'after' ? new JournalOutcomeUnknownError('injected: committed, but the answer was lost') : undefined),
          (e: unknown) => answer(e),
        );
      };
      if (latency > 0) st.clock.schedule(latency, arrive);
      else soon(arrive);
    });
  }

  private commit(writes: readonly JournalWrite[], options: AppendOptions | undefined): Promise<void> {
    const st = this.store;
    const p = st.mem.append(writes, options);
    // MemoryJournal.append without fault hooks stores synchronously: observe only what it stored.
    return p.then(() => {
      st.appends++;
      for (const f of options?.fences ?? []) st.fences.set(f.scope, Math.max(f.token, st.fences.get(f.scope) ?? 0));
      st.onCommit(this.host.peer, writes, options);
    });
  }

  /**
   * `MemoryJournal.read`'s pages (at most `pageEventsMax` events, each page up to what is stored when
   * it is read), served from the store's decoded events.
   */
  async *read(persistenceId: string, fromSeq: number, options?: ReadOptions): AsyncIterable<JournalPage> {
    this.check();
    const st = this.store;
    if (st.uncached.has(persistenceId) || !Number.isSafeInteger(fromSeq) || fromSeq < 1) {
      yield* st.mem.read(persistenceId, fromSeq, options);
      return;
    }
    const pageMax = Math.max(1, options?.pageEventsMax ?? 1000);
    let next = fromSeq;
    for (;;) {
      const evs = await st.decoded(persistenceId);
      const last = Math.min(evs.length, options?.toSeq ?? evs.length);
      if (next > last) return;
      const to = Math.min(last, next + pageMax - 1);
      yield { persistenceId, fromSeq: next, toSeq: to, events: evs.slice(next - 1, to) };
      next = to + 1;
    }
  }

  async highestSeq(persistenceId: string): Promise<number> {
    this.check();
    return this.store.mem.highestSeq(persistenceId);
  }
  async highestSeqs(persistenceIds: readonly string[]): Promise<Map<string, number>> {
    this.check();
    return this.store.mem.highestSeqs(persistenceIds);
  }
  async resolveAppend(writes: readonly JournalWrite[]): Promise<AppendOutcome> {
    this.check();
    return this.store.mem.resolveAppend(writes);
  }
  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.check();
    if (!this.host.alive) return;
    return this.store.mem.saveSnapshot(snapshot);
  }
  async loadSnapshot(persistenceId: string, maxSeq?: number): Promise<Snapshot | undefined> {
    this.check();
    return this.store.mem.loadSnapshot(persistenceId, maxSeq);
  }
  async keepSnapshots(persistenceId: string, keep: number): Promise<number> {
    this.check();
    return this.store.mem.keepSnapshots(persistenceId, keep);
  }
  async deleteEventsTo(persistenceId: string, toSeq: number): Promise<number> {
    this.check();
    this.store.uncached.add(persistenceId);
    return this.store.mem.deleteEventsTo(persistenceId, toSeq);
  }
  async close(): Promise<void> {}
}

// ------------------------------------------------------------------ NATS KV (leases)

export interface LeaseRecord {
  readonly node: string;
  readonly token: number;
}

interface KvEntry {
  value: LeaseRecord;
  rev: number;
  expiresAt: number;
}

/** Hooks only the sim's test harness sets (planted bugs). */
export interface KvPlants {
  /** `update` does not compare the revision: a renewal overwrites whoever holds the key now. */
  renewWithoutFence?: boolean;
}

export class SimKV {
  private readonly entries = new Map<string, KvEntry>();
  private rev = 0;

  constructor(
    private readonly clock: SimClock,
    readonly ttlMs: number,
    private readonly plants: KvPlants = {},
  ) {}

  private live(key: string): KvEntry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** The new revision, or undefined when the key is held. */
  create(key: string, value: LeaseRecord): number | undefined {
    if (this.live(key) !== undefined) return undefined;
    const rev = ++this.rev;
    this.entries.set(key, { value, rev, expiresAt: this.clock.now() + this.ttlMs });
    return rev;
  }

  /** The new revision, or undefined when the key is not at `lastRev` ("wrong last sequence"). */
  update(key: string, value: LeaseRecord, lastRev: number): number | undefined {
    const e = this.live(key);
    if (!this.plants.renewWithoutFence && (e === undefined || e.rev !== lastRev)) return undefined;
    const rev = ++this.rev;
    this.entries.set(key, { value, rev, expiresAt: this.clock.now() + this.ttlMs });
    return rev;
  }

  holder(key: string): LeaseRecord | undefined {
    return this.live(key)?.value;
  }
}
