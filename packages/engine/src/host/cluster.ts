/**
 * Cluster mode: the engine kinds on `ClusterNode`s (shard leases, fence tokens, NATS transport) over
 * a Postgres journal, and edges that reach them over NATS.
 *
 * - `startEngineNode` (`bourse node`): a `ClusterNode` hosting book/account/md/venue entities. Its
 *   journal is wrapped in a `HostJournal` whose commit tap publishes, after each append has
 *   committed (DESIGN guarantee 1), what edges need on NATS core subjects (`commitSubjects`):
 *   book decisions on new orders, every account write (ledger events with their journal sequences),
 *   market-data events, registry additions (accounts, and instruments defined at run time, which
 *   every node and edge also re-reads every `instrumentsRefreshMs`). It ticks the books it serves
 *   (GTD expiry, candle closes) and projects the read models of the streams whose shards it serves.
 * - `ClusterGateway` (`bourse edge`): the `VenueGateway` over NATS. The logic is `VenueCore`'s, the
 *   same as the embedded venue's; commands are asked of the entity addresses through the cluster
 *   transport; commit notices feed `VenueCore.committed`; private-stream backlogs are read from the
 *   Postgres journal and reads from the Postgres read models.
 *
 * A core NATS publish is at most once. A lost notice loses nothing: a waiting answer asks the book
 * for its decision after `outcomeAskAfterMs` (books remember them), a private stream that sees the
 * next write not following its last sequence reads the gap back from the journal, and the L2 shadow
 * reloads the md entity's state on a sequence gap. (A lost LAST notice of a quiet stream is only
 * noticed on the next write of that stream.)
 */
import { AskTimeoutError, ClusterNode, NatsTransport, ShardMap, clusterStatus, prefixOf, splitJournal } from '@bourse/actors';
import type { ClusterLogRecord, ClusterNodeOptions, GroupCommitOptions, Journal, NodeEvent } from '@bourse/actors';
import { ProjectionRunner, allProjections } from '@bourse/store';
import type { Store } from '@bourse/store';
import { ACCOUNT_NO_MAX, validateInstrument } from '@bourse/schemas';
import type { BookEvent, Instrument } from '@bourse/schemas';
import type { VenueReads } from '../venue/gateway.js';
import { bookKind, learnInstrument, ledgerKind, mdKind, registryKind } from './kinds.js';
import type { HostDirectory, RegistryEvent } from './kinds.js';
import { HostJournal } from './journal.js';
import { forHostJournal, isRuntimeRecord } from './projections.js';
import { VenueCore } from './core.js';
import type { VenueCoreOptions } from './core.js';

type Nats = ClusterNodeOptions['nc'];
type Sub = ReturnType<Nats['subscribe']>;

/** Shards per kind: every node and edge of a cluster must use the same counts (fixed forever). */
export const CLUSTER_SHARDS: Readonly<Record<string, number>> = { book: 16, md: 16, account: 32, venue: 1 };

/** A NATS subject token for an entity id (ids may contain '.'; '%' is not allowed in them). */
export const subjectToken = (id: string): string => id.replace(/%/g, '%25').replace(/\./g, '%2E').replace(/\*/g, '%2A').replace(/>/g, '%3E');

/** The commit subjects of a cluster. */
export function commitSubjects(cluster: string) {
  const p = `${prefixOf(cluster)}.c`;
  return {
    /** Book decisions on new orders: `[[orderId, code], ...]`, code 0 = accepted. */
    decisions: `${p}.b`,
    /** Every committed write of `account/<id>`: `{ f: fromSeq, n: records, e: [[offset, ledgerEvent], ...] }` (runtime records left out). */
    account: (id: string) => `${p}.a.${subjectToken(id)}`,
    /** Committed market-data events of `md/<symbol>`: `{ f, e: [mdEvent, ...] }`. */
    md: (symbol: string) => `${p}.m.${subjectToken(symbol)}`,
    mdAll: `${p}.m.>`,
    /** Registry additions: `[[account, accountNo], ...]`. */
    registry: `${p}.r`,
    /** Instruments defined at run time, once journaled by the registry: `[instrument, ...]`. */
    instruments: `${p}.i`,
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const pack = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
const unpack = (b: Uint8Array): unknown => JSON.parse(dec.decode(b));
/** Stands in for a runtime record the node did not publish (the private stream skips it). */
const RUNTIME = Object.freeze({ $rt: 'unpublished' });

function instrumentMap(instruments: readonly Instrument[]): Map<string, Instrument> {
  const m = new Map<string, Instrument>();
  for (const i of instruments) {
    const problems = validateInstrument(i);
    if (problems.length) throw new RangeError(`instrument ${i.symbol}: ${problems.join('; ')}`);
    if (m.has(i.symbol)) throw new RangeError(`instrument ${i.symbol} defined twice`);
    m.set(i.symbol, i);
  }
  return m;
}

// ------------------------------------------------------------------ engine node

export interface EngineNodeOptions {
  readonly nodeId: string;
  /** Made with `connectNats`. The node does not close it. */
  readonly nc: Nats;
  /** Cluster name (default `bourse`): subjects `bourse.<cluster>.…`, KV bucket `bourse-<cluster>`. */
  readonly cluster?: string;
  /** Configured instruments: the same list on every node and edge of the cluster (more are defined at run time through `venue/registry`). */
  readonly instruments: readonly Instrument[];
  /**
   * Re-read the instruments defined at run time this often (ms), in case a notice was lost; also at
   * start and whenever an entity needs an instrument not known here. Default 5000.
   */
  readonly instrumentsRefreshMs?: number;
  /** Appends and fence raises (and the read models, when `projections` is given). */
  readonly store: Store;
  /** Entity recovery reads on a pool of their own (default `store`). */
  readonly readStore?: Store;
  /** Read-model projection poll interval (ms) over the streams of the shards this node serves; 0 = none. Default 200. */
  readonly projectionIntervalMs?: number;
  /** BookTick + MarketDataTick of the books this node serves, every this many ms; 0 = never. Default 1000. */
  readonly tickMs?: number;
  readonly groupCommit?: GroupCommitOptions;
  readonly leaseTtlMs?: number;
  readonly shards?: Readonly<Record<string, number>>;
  readonly onEvent?: (e: NodeEvent | { type: 'error'; where: string; error: unknown }) => void;
  readonly onLog?: (r: ClusterLogRecord) => void;
}

export interface EngineNode {
  readonly cluster: ClusterNode;
  readonly journal: HostJournal;
  /** Commit notices published, by kind. */
  readonly published: { decisions: number; account: number; md: number; registry: number; instruments: number; messages: number };
  /** Every instrument this node knows: configured, then those defined at run time as heard of. */
  readonly instruments: ReadonlyMap<string, Instrument>;
  /** Graceful: hands its shards off, commits what is buffered. Does not close the stores or NATS. */
  stop(): Promise<void>;
  /** As a crash would. */
  kill(): void;
}

export async function startEngineNode(o: EngineNodeOptions): Promise<EngineNode> {
  const clusterName = o.cluster ?? 'bourse';
  const subjects = commitSubjects(clusterName);
  const configured = instrumentMap(o.instruments);
  const instruments = new Map(configured);
  const accounts = new Map<string, number>();
  const nc = o.nc;
  const report = (where: string, error: unknown) => o.onEvent?.({ type: 'error', where, error });
  const published = { decisions: 0, account: 0, md: 0, registry: 0, instruments: 0, messages: 0 };
  /** An instrument the registry defined: known here from now on (a known symbol keeps its definition). */
  const learn = (i: Instrument): void => void learnInstrument(instruments, i, (e) => report('instruments', e));

  // Commit notices of one append, flushed together once the append's writes have been tapped.
  let decisions: [number, number][] = [];
  let registry: [string, number][] = [];
  let defined: Instrument[] = [];
  let flushScheduled = false;
  const flush = () => {
    flushScheduled = false;
    if (decisions.length) {
      nc.publish(subjects.decisions, pack(decisions));
      published.messages++;
      decisions = [];
    }
    if (registry.length) {
      nc.publish(subjects.registry, pack(registry));
      published.messages++;
      registry = [];
    }
    if (defined.length) {
      nc.publish(subjects.instruments, pack(defined));
      published.messages++;
      defined = [];
    }
  };
  const tap = (pid: string, from: number, recs: readonly unknown[]) => {
    const c = pid.charCodeAt(0);
    if (c === 98 /* b */ && pid.startsWith('book/')) {
      for (const r of recs) {
        const e = r as BookEvent;
        if (e.type === 'OrderAccepted') decisions.push([e.orderId, 0]);
        else if (e.type === 'CommandRejected' && e.command === 'NewOrder' && e.orderId > 0) decisions.push([e.orderId, e.code]);
        else continue;
        published.decisions++;
      }
    } else if (c === 97 /* a */ && pid.startsWith('account/')) {
      const e: [number, unknown][] = [];
      for (let i = 0; i < recs.length; i++) if (!isRuntimeRecord(recs[i])) e.push([i, recs[i]]);
      nc.publish(subjects.account(pid.slice(8)), pack({ f: from, n: recs.length, e }));
      published.account++;
      published.messages++;
    } else if (c === 109 /* m */ && pid.startsWith('md/')) {
      const e = recs.filter((r) => !isRuntimeRecord(r));
      if (e.length === 0) return;
      nc.publish(subjects.md(pid.slice(3)), pack({ f: from, e }));
      published.md++;
      published.messages++;
    } else if (pid === 'venue/registry') {
      for (const r of recs) {
        const e = r as RegistryEvent;
        if (e.type === 'AccountOpened') {
          accounts.set(e.account, e.accountNo);
          registry.push([e.account, e.accountNo]);
          published.registry++;
        } else if (e.type === 'InstrumentDefined') {
          learn(e.instrument);
          defined.push(e.instrument);
          published.instruments++;
        }
      }
    } else return;
    if (!flushScheduled && (decisions.length || registry.length || defined.length)) {
      flushScheduled = true;
      queueMicrotask(flush);
    }
  };

  // The account directory: the registry's list, then its additions as they are published.
  const regSub = nc.subscribe(subjects.registry, {
    callback: (err, msg) => {
      if (err) return;
      for (const [a, n] of unpack(msg.data) as [string, number][]) accounts.set(a, n);
    },
  });
  // Run-time instruments: the registry's list, its definitions as they are published, a periodic re-read.
  const instSub = nc.subscribe(subjects.instruments, {
    callback: (err, msg) => {
      if (err) return;
      for (const i of unpack(msg.data) as Instrument[]) learn(i);
    },
  });
  let listing: Promise<void> | undefined;
  let instListing: Promise<void> | undefined;
  let instListedAt = 0;
  let cn: ClusterNode | undefined;
  const refreshInstruments = (): Promise<void> => {
    instListing ??= (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const list = await cn!.node.ask<Instrument[]>('venue/registry', { type: 'ListInstruments' }, 5_000);
          for (const i of list) learn(i);
          return;
        } catch (e) {
          if (attempt >= 5) throw e;
        }
      }
    })().finally(() => {
      instListing = undefined;
      instListedAt = Date.now();
    });
    return instListing;
  };
  const refresh = (): Promise<void> => {
    listing ??= (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const list = await cn!.node.ask<[string, number][]>('venue/registry', { type: 'List' }, 5_000);
          for (const [a, n] of list) accounts.set(a, n);
          return;
        } catch (e) {
          if (attempt >= 5) throw e;
        }
      }
    })().finally(() => (listing = undefined));
    return listing;
  };
  const dir: HostDirectory = {
    instruments,
    // At most one re-read in flight, and one per 200 ms (a miss repeats while the read is on its way).
    missingInstrument: () => {
      if (cn && !instListing && Date.now() - instListedAt >= 200) void refreshInstruments().catch((e: unknown) => report('instruments', e));
    },
    accountNo: (a) => {
      const n = accounts.get(a);
      if (n === undefined && cn) void refresh().catch((e: unknown) => report('registry', e));
      return n;
    },
  };

  const journal = new HostJournal(o.readStore ? splitJournal(o.store.journal, o.readStore.journal) : o.store.journal, tap);
  cn = await ClusterNode.start({
    nodeId: o.nodeId,
    nc,
    cluster: clusterName,
    kinds: [bookKind(dir), ledgerKind(dir), mdKind(), registryKind(ACCOUNT_NO_MAX, configured)],
    journal,
    controlJournal: o.store.journal,
    shards: o.shards ?? CLUSTER_SHARDS,
    leaseTtlMs: o.leaseTtlMs ?? 3000,
    node: {
      groupCommit: { windowUs: 1000, batchEventsMax: 4000, ...o.groupCommit },
      reliable: { windowMax: 8192, resendMs: 2_000, attemptTimeoutMs: 5_000, earlyLocal: true },
      snapshotEventsEvery: 50_000,
      passivation: { idleMs: 600_000 },
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    },
    ...(o.onLog ? { onLog: o.onLog } : {}),
  });
  const node = cn;
  void refresh().catch((e: unknown) => report('registry', e));
  void refreshInstruments().catch((e: unknown) => report('instruments', e));
  const instrumentsRefreshMs = o.instrumentsRefreshMs ?? 5_000;
  const instTimer = instrumentsRefreshMs > 0 ? setInterval(() => void refreshInstruments().catch((e: unknown) => report('instruments', e)), instrumentsRefreshMs) : undefined;
  instTimer?.unref?.();

  const servedSet = () => new Set(node.servedShards());
  const serves = (served: Set<string>, pid: string) => served.has(node.shards.shardOf(pid).key);

  // Ticks for the books this node serves.
  let lastTs = 0;
  let ticking = false;
  const tickMs = o.tickMs ?? 1000;
  const ticker =
    tickMs > 0
      ? setInterval(() => {
          if (ticking) return;
          ticking = true;
          const ts = (lastTs = Math.max(Date.now(), lastTs));
          const served = servedSet();
          void (async () => {
            for (const symbol of instruments.keys()) {
              if (!serves(served, `book/${symbol}`)) continue;
              await node.node.ask(`book/${symbol}`, { a: symbol, c: { type: 'BookTick', ts } }, 10_000);
              await node.node.ask(`md/${symbol}`, { a: symbol, c: { type: 'MarketDataTick', ts } }, 10_000);
            }
          })()
            .catch((e: unknown) => report('tick', e))
            .finally(() => (ticking = false));
        }, tickMs)
      : undefined;
  ticker?.unref?.();

  // Read models of the streams this node serves (each stream is projected by its owner; the
  // checkpoint row lock keeps a handoff overlap from applying a page twice).
  const projMs = o.projectionIntervalMs ?? 200;
  let projStop = false;
  const projStore = o.readStore ?? o.store;
  const runner = new ProjectionRunner(projStore.db, projStore.journal, allProjections.map(forHostJournal));
  const projLoop =
    projMs > 0
      ? (async () => {
          while (!projStop) {
            try {
              // One pass over every projection, batched across streams (a handful of statements per
              // poll, not a handful per stream), with the runner's default share of the database.
              const served = servedSet();
              await runner.runOnce({ streams: (pid) => !projStop && serves(served, pid), timeBudgetMs: projMs / 2 });
            } catch (e) {
              report('projections', e);
            }
            await new Promise((r) => setTimeout(r, projMs));
          }
        })()
      : Promise.resolve();

  return {
    cluster: node,
    journal,
    published,
    instruments,
    async stop() {
      if (ticker) clearInterval(ticker);
      if (instTimer) clearInterval(instTimer);
      projStop = true;
      await projLoop;
      await node.stop();
      flush();
      regSub.unsubscribe();
      instSub.unsubscribe();
    },
    kill() {
      if (ticker) clearInterval(ticker);
      if (instTimer) clearInterval(instTimer);
      projStop = true;
      node.kill();
      regSub.unsubscribe();
      instSub.unsubscribe();
    },
  };
}

// ------------------------------------------------------------------ edge gateway

export interface ClusterGatewayOptions extends VenueCoreOptions {
  readonly nc: Nats;
  /** Default `bourse`. */
  readonly cluster?: string;
  /** Private-stream backlogs are read from here (the cluster's Postgres journal). */
  readonly journal: Journal;
  /** The Postgres read models (projected by the engine nodes). */
  readonly reads: VenueReads;
  readonly shards?: Readonly<Record<string, number>>;
  /** Private subscriptions re-read the journal this often (a lost notice on a quiet stream). Default 5000 ms. */
  readonly recheckMs?: number;
  /** Re-read the instruments defined at run time this often (a lost definition notice). Default 5000 ms; 0 = never. */
  readonly instrumentsRefreshMs?: number;
  /**
   * A resendable ask (see {@link resendable}) not answered within this many ms is sent again, then
   * after twice as long, and so on, until the ask's own timeout. Default 2500 ms; 0 = never resend.
   */
  readonly resendAfterMs?: number;
}

/**
 * Whether an ask may be sent again when its answer is late: the transport never resends a request
 * a node accepted (at most once), so an ask accepted by a node that then dies would wait for its
 * whole timeout. Resending is safe for a `$place` that carries a clientOrderId (the ledger answers
 * a known clientOrderId with the original answer, also after a restart on another node: the map is
 * in its journaled state) and for reads (`$outcome`, `$state`, the registry's `List`). An order
 * without a clientOrderId is never resent: a second copy would be a second order.
 */
export function resendable(message: unknown): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { type?: unknown; c?: { type?: unknown; cmd?: { clientOrderId?: unknown } } };
  // Reads, and a define: the registry answers an identical definition as the first time, executing nothing.
  if (m.type === 'List' || m.type === 'ListInstruments' || m.type === 'DefineInstrument') return true;
  const t = m.c?.type;
  if (t === '$outcome' || t === '$state') return true;
  return t === '$place' && typeof m.c?.cmd?.clientOrderId === 'string';
}

/**
 * The `VenueGateway` of an edge in a cluster: `VenueCore` over NATS. Ticks are the engine nodes'
 * (default `tickMs` 0 here); a book decision not heard within `outcomeAskAfterMs` is asked of the
 * book (default 3000: notices are rarely lost, and under overload earlier asks would add load).
 */
export class ClusterGateway extends VenueCore {
  readonly reads: VenueReads;
  readonly transport: NatsTransport;
  readonly #journal: Journal;
  readonly #nc: Nats;
  readonly #subjects: ReturnType<typeof commitSubjects>;
  readonly #recheckMs: number;
  readonly #subs: Sub[] = [];
  readonly #accountSubs = new Map<string, Sub>();
  readonly stats = { notices: 0, resends: 0 };
  readonly #resendAfterMs: number;
  #recheck: ReturnType<typeof setInterval> | undefined;
  #instTimer: ReturnType<typeof setInterval> | undefined;
  readonly #instrumentsRefreshMs: number;
  #statusTimer: ReturnType<typeof setInterval> | undefined;
  #shardLines = '';
  readonly #cluster: string;

  constructor(o: ClusterGatewayOptions) {
    super({ tickMs: 0, outcomeAskAfterMs: 3000, ...o });
    this.accountsShared = true;
    this.earlyMax = 65_536;
    this.reads = o.reads;
    this.#journal = o.journal;
    this.#nc = o.nc;
    this.#recheckMs = Math.max(50, o.recheckMs ?? 5_000);
    this.#instrumentsRefreshMs = Math.max(0, o.instrumentsRefreshMs ?? 5_000);
    this.#resendAfterMs = Math.max(0, o.resendAfterMs ?? 2_500);
    const cluster = (this.#cluster = o.cluster ?? 'bourse');
    this.#subjects = commitSubjects(cluster);
    this.transport = new NatsTransport({ nc: o.nc, prefix: prefixOf(cluster), shards: new ShardMap(o.shards ?? CLUSTER_SHARDS, 64), retryMsMax: 100 });
  }

  static async open(o: ClusterGatewayOptions): Promise<ClusterGateway> {
    const g = new ClusterGateway(o);
    try {
      await g.start();
    } catch (e) {
      await g.close().catch(() => {});
      throw e;
    }
    return g;
  }

  protected ask<R>(to: string, message: unknown, timeoutMs: number): Promise<R> {
    if (this.#resendAfterMs === 0 || this.#resendAfterMs >= timeoutMs || !resendable(message)) return this.transport.ask<R>(to, message, timeoutMs);
    return this.#askResending<R>(to, message, timeoutMs);
  }

  /** `ask`, sent again after `resendAfterMs`, 2x that, … while its timeout allows (see {@link resendable}). */
  async #askResending<R>(to: string, message: unknown, timeoutMs: number): Promise<R> {
    const deadline = performance.now() + timeoutMs;
    for (let attemptMs = this.#resendAfterMs; ; attemptMs *= 2) {
      const left = deadline - performance.now();
      try {
        return await this.transport.ask<R>(to, message, Math.max(1, Math.min(left, attemptMs)));
      } catch (e) {
        if (!(e instanceof AskTimeoutError) || attemptMs >= left) throw e;
        this.stats.resends++;
      }
    }
  }

  protected get streamJournal(): Journal {
    return this.#journal;
  }

  /** Subscribes to the commit subjects, then loads the registry and the committed L2 books. */
  async start(): Promise<void> {
    const s = this.#subjects;
    this.#subs.push(
      this.#nc.subscribe(s.decisions, {
        callback: (err, msg) => {
          if (err) return;
          this.stats.notices++;
          const recs: unknown[] = [];
          for (const [orderId, code] of unpack(msg.data) as [number, number][]) {
            recs.push(code === 0 ? { type: 'OrderAccepted', orderId } : { type: 'CommandRejected', command: 'NewOrder', orderId, code });
          }
          this.committed('book/', 0, recs);
        },
      }),
      this.#nc.subscribe(s.mdAll, {
        callback: (err, msg) => {
          if (err) return;
          this.stats.notices++;
          const symbol = decodeToken(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
          const m = unpack(msg.data) as { f: number; e: unknown[] };
          this.committed(`md/${symbol}`, m.f, m.e);
        },
      }),
      this.#nc.subscribe(s.registry, {
        callback: (err, msg) => {
          if (err) return;
          for (const [a, n] of unpack(msg.data) as [string, number][]) this.noteAccount(a, n);
        },
      }),
      this.#nc.subscribe(s.instruments, {
        callback: (err, msg) => {
          if (err) return;
          for (const i of unpack(msg.data) as Instrument[]) this.learnInstrument(i);
        },
      }),
    );
    await this.#nc.flush();
    await this.startCore();
    // A lost notice is noticed on the stream's next write; a quiet stream is re-read now and then.
    this.#recheck = setInterval(() => this.recheckPrivate(), this.#recheckMs);
    this.#recheck.unref?.();
    // A lost definition notice: the instrument is learned at the next re-read.
    if (this.#instrumentsRefreshMs > 0) {
      this.#instTimer = setInterval(() => void this.refreshInstruments().catch((e: unknown) => this.report('instruments', e)), this.#instrumentsRefreshMs);
      this.#instTimer.unref?.();
    }
    // Shard ownership for /metrics, from the lease bucket (read every 5 s; metricsText is synchronous).
    const readStatus = () =>
      void clusterStatus(this.#nc, { cluster: this.#cluster }).then(
        ([st]) => {
          const lines = ['# HELP bourse_cluster_shards Shards each engine node holds a lease for.', '# TYPE bourse_cluster_shards gauge'];
          for (const n of st?.nodes ?? []) lines.push(`bourse_cluster_shards{node="${n.node}"} ${n.shards.length}`);
          this.#shardLines = lines.join('\n') + '\n';
        },
        (e: unknown) => this.report('cluster status', e),
      );
    readStatus();
    this.#statusTimer = setInterval(readStatus, 5_000);
    this.#statusTimer.unref?.();
  }

  /** Prometheus lines for the edge's `/metrics` (a `GatewayExtras` hook): shard ownership and commit notices. */
  metricsText(): string {
    return (
      this.#shardLines +
      '# HELP bourse_cluster_notices_total Commit notices received from the engine nodes.\n# TYPE bourse_cluster_notices_total counter\n' +
      `bourse_cluster_notices_total ${this.stats.notices}\n` +
      '# HELP bourse_cluster_ask_resends_total Asks sent again after no answer in time (resendable asks only).\n# TYPE bourse_cluster_ask_resends_total counter\n' +
      `bourse_cluster_ask_resends_total ${this.stats.resends}\n`
    );
  }

  protected override interest(persistenceId: string, on: boolean): void {
    if (!persistenceId.startsWith('account/')) return;
    const account = persistenceId.slice(8);
    if (!on) {
      this.#accountSubs.get(account)?.unsubscribe();
      this.#accountSubs.delete(account);
      return;
    }
    if (this.#accountSubs.has(account)) return;
    const sub = this.#nc.subscribe(this.#subjects.account(account), {
      callback: (err, msg) => {
        if (err) return;
        this.stats.notices++;
        const m = unpack(msg.data) as { f: number; n: number; e: [number, unknown][] };
        const recs: unknown[] = new Array<unknown>(m.n).fill(RUNTIME);
        for (const [i, r] of m.e) recs[i] = r;
        this.committed(persistenceId, m.f, recs);
      },
    });
    this.#accountSubs.set(account, sub);
    // Writes committed before the server registered the subscription were not heard: read them back.
    void this.#nc.flush().then(
      () => this.recheckPrivate(persistenceId),
      (e: unknown) => this.report('private stream', e),
    );
  }

  async close(): Promise<void> {
    if (!this.stopCore()) return;
    if (this.#recheck) clearInterval(this.#recheck);
    if (this.#instTimer) clearInterval(this.#instTimer);
    if (this.#statusTimer) clearInterval(this.#statusTimer);
    for (const s of this.#subs) s.unsubscribe();
    for (const s of this.#accountSubs.values()) s.unsubscribe();
    this.#accountSubs.clear();
    this.transport.close();
    this.failPending();
  }
}

function decodeToken(t: string): string {
  return t.replace(/%3E/g, '>').replace(/%2A/g, '*').replace(/%2E/g, '.').replace(/%25/g, '%');
}
