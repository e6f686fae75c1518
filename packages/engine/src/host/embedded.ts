/**
 * `EmbeddedVenue`: the engine actors on one `ActorNode` (in-process transport) over the store's
 * journal (PGlite or Postgres), behind the `VenueGateway` the edge programs against.
 *
 * Order entry: gateway → `account/<id>` (risk, hold; answered once committed) → reliable NewOrder →
 * `book/<symbol>` → … The answer to `placeOrder` waits for the book's committed decision on the
 * order (OrderAccepted → ok, CommandRejected → its code), learned from the commit tap.
 *
 * Idempotency: the ledger entity keeps a bounded map clientOrderId → first answer (order id, or the
 * ledger's reject code) in its state, rebuilt from its own journal on recovery (CLIENT_IDS_MAX per
 * account, oldest forgotten first). A resend is answered from it without executing anything; for a
 * held order the book entity is asked for its decision (it remembers rejected new orders' codes and,
 * per account number, the highest order sequence it has decided).
 *
 * @example
 *   const v = await openEmbeddedVenue({ pglite: dir }, { instruments: [defineInstrument({ symbol: 'BTC-USD' })] });
 *   await v.openAccount('alice', ctx); await v.deposit('alice', 'USD', 1_000_000, 'd1', ctx);
 *   await v.placeOrder('alice', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 1 }, ctx);
 *   await v.close();
 */
import { ActorNode, MemoryJournal } from '@bourse/actors';
import type { GroupCommitOptions, Journal } from '@bourse/actors';
import { openStore, ProjectionRunner, allProjections } from '@bourse/store';
import type { Store } from '@bourse/store';
import { ACCOUNT_NO_MAX } from '@bourse/schemas';
import type { VenueReads } from '../venue/gateway.js';
import { CLEARING_ACCOUNT, FEES_ACCOUNT } from '../venue/routing.js';
import { bookKind, ledgerKind, mdKind, registryKind } from './kinds.js';
import { HostJournal, journalMetricsText } from './journal.js';
import { VenueCore } from './core.js';
import type { VenueCoreOptions } from './core.js';
import { WorkerStore } from './worker-store.js';
import type { CheckpointStats } from './worker-store.js';
import { forHostJournal } from './projections.js';

export type EmbeddedTarget =
  /** `checkpointWalBytes`: the journal's checkpoint interval (`JournalOptions`; default 64 MiB). */
  | { readonly pglite: string; readonly checkpointWalBytes?: number }
  | { readonly pg: string; readonly schema?: string }
  /** An open store the caller owns (not closed by the venue). */
  | { readonly store: Store }
  /** A bare journal (e.g. MemoryJournal) the caller owns: no read models. */
  | { readonly journal: Journal };

export interface EmbeddedVenueOptions extends VenueCoreOptions {
  readonly nodeId?: string;
  /**
   * Group commit window etc. Default windowUs 500, batchEventsMax 4000, maxInFlight 2: the next batch
   * is handed to the store while the previous append runs, so the store thread (PGlite's one session)
   * goes from one append to the next without waiting for this thread to hear the outcome and form the
   * next batch. An entity is in at most one append at a time, so its writes still commit in order.
   */
  readonly groupCommit?: GroupCommitOptions;
  /** Snapshot every this many events per entity. Default 50 000 (a snapshot of a deep book is costly; replaying 50k events is not). */
  readonly snapshotEventsEvery?: number;
  /** Read-model projection poll interval (ms); 0 = no projection runner. Default 100. */
  readonly projectionIntervalMs?: number;
  /**
   * PGlite/pg targets: run the store (journal, read models, projections) on its own worker thread.
   * Default true: PGlite computes on the calling thread, and there it competed with the actors.
   */
  readonly storeThread?: boolean;
}

/** Opens the store (unless given one), recovers the registry and market data, and starts serving. */
export async function openEmbeddedVenue(target: EmbeddedTarget, options: EmbeddedVenueOptions): Promise<EmbeddedVenue> {
  let backend: Backend;
  const onError = (error: unknown) => options.onEvent?.({ type: 'error', where: 'store', error });
  if ('journal' in target) backend = { journal: target.journal, reads: noReads() };
  else if ('store' in target) backend = storeBackend(target.store, false);
  else {
    const t =
      'pglite' in target
        ? { pglite: target.pglite, ...(target.checkpointWalBytes !== undefined && { journal: { checkpointWalBytes: target.checkpointWalBytes } }) }
        : { pg: target.pg, ...(target.schema ? { schema: target.schema } : {}) };
    if (options.storeThread === false) backend = storeBackend(await openStore(t), true);
    else {
      const ws = await WorkerStore.open(t, onError);
      backend = {
        journal: ws.journal,
        reads: ws.reads,
        startProjections: async (ms) => {
          await ws.startProjections(ms);
          return { stop: async () => {} }; // stopped with the worker
        },
        checkpointStats: () => ws.checkpointStats,
        close: () => ws.close(),
      };
    }
  }
  const v = new EmbeddedVenue(backend, options);
  try {
    await v.start();
  } catch (e) {
    await v.close().catch(() => {});
    throw e;
  }
  return v;
}

/** Where the venue's journal and read models live. */
interface Backend {
  readonly journal: Journal;
  readonly reads: VenueReads;
  readonly store?: Store;
  startProjections?(intervalMs: number, onError: (e: unknown) => void): Promise<{ stop(): Promise<void> }>;
  /** PGlite: the checkpoints the journal ran (a store's journal, or the store thread's). */
  checkpointStats?(): CheckpointStats;
  close?(): Promise<void>;
}

function storeBackend(store: Store, owned: boolean): Backend {
  return {
    journal: store.journal,
    reads: store.readModels,
    store,
    startProjections: async (ms, onError) => new ProjectionRunner(store.db, store.journal, allProjections.map(forHostJournal)).start(ms, onError),
    ...(store.dialect === 'pglite' && { checkpointStats: () => store.journal.checkpointStats }),
    ...(owned ? { close: () => store.close() } : {}),
  };
}

/**
 * The engine on one in-process `ActorNode`: the gateway logic is `VenueCore`'s; this host adds the
 * node, the journal's commit tap, the read-model projections and the embedded-only admin/test hooks.
 */
export class EmbeddedVenue extends VenueCore {
  readonly node: ActorNode;
  readonly journal: HostJournal;
  readonly reads: VenueReads;
  readonly store: Store | undefined;
  #projections: { stop(): Promise<void> } | undefined;

  constructor(
    private readonly backend: Backend,
    private readonly options: EmbeddedVenueOptions,
  ) {
    super(options);
    this.store = backend.store;
    this.journal = new HostJournal(backend.journal, (pid, from, recs) => this.committed(pid, from, recs));
    this.node = new ActorNode({
      nodeId: options.nodeId ?? 'embedded',
      journal: this.journal,
      kinds: [bookKind(this.directory), ledgerKind(this.directory), mdKind(), registryKind(ACCOUNT_NO_MAX, this.configuredInstruments)],
      groupCommit: { windowUs: 500, batchEventsMax: 4000, maxInFlight: 2, ...options.groupCommit },
      snapshotEventsEvery: options.snapshotEventsEvery ?? 50_000,
      // In-process messages are not lost; a long attempt timeout avoids resend storms when a receiver is
      // slow under load (a resend is recognised and dropped, but costs a round trip and an error object).
      reliable: { windowMax: 8192, resendMs: 3_000, attemptTimeoutMs: 10_000, earlyLocal: true },
      passivation: { idleMs: 600_000 },
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    });
    this.reads = backend.reads;
  }

  protected ask<R>(to: string, message: unknown, timeoutMs: number): Promise<R> {
    return this.node.ask<R>(to, message, timeoutMs);
  }

  protected get streamJournal(): Journal {
    return this.journal.inner;
  }

  /** @internal Recover the registry (accounts, run-time instruments), wake every entity (they resend unacknowledged saga messages), load L2. */
  async start(): Promise<void> {
    await Promise.all([this.refreshAccounts(), this.refreshInstruments()]);
    const all = [`account/${FEES_ACCOUNT}`, `account/${CLEARING_ACCOUNT}`, ...[...this.accounts().keys()].map((a) => `account/${a}`)];
    for (const i of this.instruments()) all.push(`book/${i.symbol}`, `md/${i.symbol}`);
    this.node.wake(all);
    await this.startCore();
    const every = this.options.projectionIntervalMs ?? 100;
    if (this.backend.startProjections && every > 0) this.#projections = await this.backend.startProjections(every, (error) => this.report('projections', error));
  }

  /**
   * Prometheus lines for the edge's `/metrics` (a `GatewayExtras` hook): journal appends, rows,
   * records, append latency and batch size histograms; the actor node's counters; and shard
   * ownership (one node owns every shard in embedded mode: the entities it hosts, by kind).
   */
  metricsText(): string {
    const id = this.node.nodeId;
    const s = this.node.stats;
    const L: string[] = [journalMetricsText(this.journal, id).trimEnd()];
    const ck = this.backend.checkpointStats?.();
    if (ck) {
      L.push('# HELP bourse_journal_checkpoints_total PGlite checkpoints the journal ran (one per 64 MiB of WAL; they recycle WAL segments).', '# TYPE bourse_journal_checkpoints_total counter', `bourse_journal_checkpoints_total{node="${id}"} ${ck.checkpoints}`);
      L.push('# HELP bourse_journal_checkpoint_seconds_total Time the PGlite session spent in those checkpoints.', '# TYPE bourse_journal_checkpoint_seconds_total counter', `bourse_journal_checkpoint_seconds_total{node="${id}"} ${ck.ms / 1000}`);
      L.push('# HELP bourse_journal_checkpoint_failures_total PGlite checkpoints that failed (retried after the next append).', '# TYPE bourse_journal_checkpoint_failures_total counter', `bourse_journal_checkpoint_failures_total{node="${id}"} ${ck.failures}`);
    }
    L.push('# HELP bourse_actor_commands_total Commands and messages processed by the actor node.', '# TYPE bourse_actor_commands_total counter', `bourse_actor_commands_total{node="${id}"} ${s.commands}`);
    L.push('# HELP bourse_actor_crashes_total Entity crashes (state rebuilt from the journal).', '# TYPE bourse_actor_crashes_total counter', `bourse_actor_crashes_total{node="${id}"} ${s.crashes}`);
    L.push('# HELP bourse_actor_journal_failures_total Failed journal appends.', '# TYPE bourse_actor_journal_failures_total counter', `bourse_actor_journal_failures_total{node="${id}"} ${s.journalFailures}`);
    L.push('# HELP bourse_actor_duplicates_dropped_total Reliable messages recognised as resends and dropped.', '# TYPE bourse_actor_duplicates_dropped_total counter', `bourse_actor_duplicates_dropped_total{node="${id}"} ${s.duplicatesDropped}`);
    const byKind = new Map<string, number>();
    for (const a of this.node.activeAddresses()) {
      const k = a.slice(0, a.indexOf('/'));
      byKind.set(k, (byKind.get(k) ?? 0) + 1);
    }
    L.push('# HELP bourse_entities_live Entities live in memory on this node, by kind (embedded: this node owns every shard).', '# TYPE bourse_entities_live gauge');
    for (const [k, n] of [...byKind].sort()) L.push(`bourse_entities_live{node="${id}",kind="${k}"} ${n}`);
    return L.join('\n') + '\n';
  }

  /** Resolves once nothing is queued, uncommitted or unacknowledged (every saga step has run). */
  override settle(timeoutMs = 30_000): Promise<void> {
    return this.node.quiescent(timeoutMs);
  }

  /** Graceful: stops the ticker and projections, commits what is buffered, stops the node, closes an owned store. */
  async close(): Promise<void> {
    if (!this.stopCore()) return;
    await this.#projections?.stop();
    await this.node.stop();
    this.failPending();
    await this.backend.close?.();
  }

  /** Test hook: drop the node as a crash would (nothing more written; a store the caller owns stays open). */
  crash(): void {
    if (!this.stopCore()) return;
    void this.#projections?.stop();
    this.node.kill();
    this.failPending();
  }
}

function noReads(): VenueReads {
  const none = () => Promise.reject(new Error('no read models: this venue runs on a bare journal'));
  return { ordersByAccount: none, trades: none, balancesByAccount: none, positionsByAccount: none, candles: none } as unknown as VenueReads;
}

export { MemoryJournal };
