/**
 * The simulated world: one seeded run of a Bourse cluster in one process.
 *
 * Real: the engine machines (book, ledger, market data), their entity kinds and the saga
 * (`../host/kinds.ts`, `../venue/routing.ts`), the actor runtime (`ActorNode`: group commit, reliable
 * messages with per-sender high-water marks, recovery, snapshots, release) and the journal's
 * contract (`MemoryJournal`: expected sequences, fences). Simulated: time (`SimClock`, one
 * `ProcessClock` per process), the network (drop, duplicate, delay/reorder, partition any pair),
 * the store's I/O (latency, failures, commit-outcome-unknown at a crash), NATS KV leases, process
 * crashes, restarts and pauses. Everything random is drawn from one `Prng` made from the seed.
 *
 * The client side (`Client`) speaks to the entities as `EmbeddedVenue` does (ledger `$place`, then
 * the book's decision; book Cancel/Amend; ledger Deposit/Withdraw), over the simulated network, and
 * retries with the same clientOrderId / transferId after a timeout.
 */
import { AskTimeoutError, RemoteActorError, ShardMap, UnreachableError, hashOf } from '@bourse/actors';
import type { AppendOptions, JournalWrite, NodeEvent, WireAsk, WireReply } from '@bourse/actors';
import { Reject, defineInstrument } from '@bourse/schemas';
import type { BookEvent, Instrument, LedgerEvent, RejectCode, Side } from '@bourse/schemas';
import { bookMachine } from '../book/index.js';
import type { BookState } from '../book/index.js';
import { ledgerMachine } from '../risk/index.js';
import type { LedgerState } from '../risk/index.js';
import { marketDataMachine } from '../marketdata/index.js';
import type { HostDirectory, PlaceReply, BookOutcome } from '../host/kinds.js';
import { CLEARING_ACCOUNT, FEES_ACCOUNT } from '../venue/routing.js';
import { ProcessClock, SimNetwork, SimTransport } from './net.js';
import { SimClock } from './clock.js';
import { Prng } from './prng.js';
import { SimKV, SimStore } from './store.js';
import { SimEngineNode, memoShardOf } from './node.js';
import type { NodeEnv } from './node.js';
import type { FaultCounts, FaultKind, InvariantName, Violation } from './types.js';

// ------------------------------------------------------------------ configuration

/** Test-only planted bugs. Only the sim's test harness constructs these (never a CLI flag, env or config). */
export interface Plants {
  /** The journal answers an append before it commits (the commit follows later, or not at all after a crash). */
  readonly ackBeforeCommit?: boolean;
  /** A settled fill's BookReport is delivered to the ledger a second time as a plain command, past the reliable-message dedupe. */
  readonly settleFillTwice?: boolean;
  /** Lease renewal without a fencing check: the KV does not compare revisions and a node renews (and resumes) tenures it lost. */
  readonly renewWithoutFence?: boolean;
  /** The edge waits for an engine's answer without a timeout: a lost request or reply leaves its client waiting forever. */
  readonly askWithoutTimeout?: boolean;
}

export interface WorldOptions {
  readonly seed: number;
  /** Client commands to issue. */
  readonly steps: number;
  readonly nodes: number;
  readonly faults: ReadonlySet<FaultKind>;
  /** Longer runs: more accounts and instruments-worth of load per step (QA). */
  readonly long?: boolean;
  /** Stop at the first violation (default true). */
  readonly stopOnFirst?: boolean;
  /** Fault rates scale (default 1). */
  readonly faultScale?: number;
  readonly plants?: Plants;
}

export interface WorldResult {
  readonly seed: number;
  readonly steps: number;
  readonly faultsInjected: FaultCounts;
  readonly invariantsChecked: number;
  readonly violations: Violation[];
  readonly finalStateHash: string;
  readonly simMs: number;
  readonly stats: Record<string, number>;
}

const EPOCH = 1_700_000_000_000;
const LEASE_TTL_MS = 300;
const ASK_MS = 150;
/**
 * Simulated ms the workload may go without issuing a command (every client waiting on an operation)
 * before the run reports a liveness violation and moves on: a seed that can no longer make progress is
 * a finding with a replay command, not a run that never ends. Faults stall clients for at most a
 * second or two (downtime 400 ms, a pause 900 ms, a partition 600 ms, asks 150 ms with retries).
 */
const STALL_MS = 60_000;
/** Sessions per account, each with one command in flight: the concurrency that fills a simulated ms. */
const CLIENTS_PER_ACCOUNT = 3;

function instrumentsFor(long: boolean): Instrument[] {
  const list = [
    defineInstrument({ symbol: 'BTC-USD', tickSize: 5, lotSize: 1, minQty: 1, maxQty: 50, makerFeeBps: 10, takerFeeBps: 25, baseMultiplier: 100 }),
    defineInstrument({ symbol: 'ETH-USD', tickSize: 1, lotSize: 1, minQty: 1, maxQty: 80, makerFeeBps: 5, takerFeeBps: 20, baseMultiplier: 10 }),
    defineInstrument({
      symbol: 'BTC-PERP', mode: 'margin', base: 'BTC', quote: 'USD', tickSize: 5, lotSize: 1, minQty: 1, maxQty: 50,
      makerFeeBps: 5, takerFeeBps: 20, maxLeverage: 10, maintenanceMarginBps: 500,
    }),
  ];
  if (long) list.push(defineInstrument({ symbol: 'SOL-USD', tickSize: 1, lotSize: 1, minQty: 1, maxQty: 100, makerFeeBps: 10, takerFeeBps: 30, baseMultiplier: 1 }));
  return list;
}

const MIDS: Record<string, number> = { 'BTC-USD': 1_000, 'ETH-USD': 300, 'BTC-PERP': 1_000, 'SOL-USD': 150 };

// ------------------------------------------------------------------ clients

type Op =
  | { k: 'place'; coid: string; symbol: string; side: Side; orderType: 'limit' | 'market'; tif: 'GTC' | 'IOC' | 'FOK'; price: number; qty: number; leverage?: number }
  | { k: 'cancel'; symbol: string; orderId: number }
  | { k: 'amend'; symbol: string; orderId: number; price: number; qty: number }
  | { k: 'deposit' | 'withdraw'; transferId: string; asset: string; amount: number };

interface Acked {
  readonly account: string;
  readonly coid: string;
  readonly orderId: number;
  readonly symbol: string;
  readonly accepted: boolean;
  readonly step: number;
}

class Client {
  busy = false;
  attempts = 0;
  /** Orders acknowledged as accepted and maybe still open: [symbol, orderId]. */
  open: [string, number][] = [];
  n = 0;

  constructor(
    readonly account: string,
    readonly maker: boolean,
    readonly clock: ProcessClock,
    readonly transport: SimTransport,
    /** Session number within the account (ids stay unique per account). */
    readonly session: number,
  ) {}
}

// ------------------------------------------------------------------ the world

interface Interval {
  readonly tenure: string;
  readonly token: number;
  readonly start: number;
  deadline: number;
  end: number | undefined;
}

export class World {
  readonly rng: Prng;
  /** Separate streams: the workload, crashes/pauses, partitions (shrinking a fault kind away keeps the rest of the run). */
  private readonly rWork: Prng;
  private readonly rCrash: Prng;
  private readonly rPart: Prng;
  readonly clock = new SimClock(0);
  readonly counts: FaultCounts = {};
  readonly violations: Violation[] = [];
  invariantsChecked = 0;
  step = 0;
  private readonly o: Required<Omit<WorldOptions, 'plants' | 'long'>> & { plants: Plants; long: boolean };
  private readonly net: SimNetwork;
  private readonly store: SimStore;
  private readonly kv: SimKV;
  private readonly instruments: Instrument[];
  private readonly bySymbol = new Map<string, Instrument>();
  private readonly accounts: string[] = [];
  private readonly accountNo = new Map<string, number>();
  private readonly env: NodeEnv;
  readonly nodes: (SimEngineNode | undefined)[] = [];
  private readonly incarnations: number[] = [];
  private readonly clients: Client[] = [];
  private readonly edge: ProcessClock;
  private readonly edgeTransport: SimTransport;
  private readonly mids = new Map<string, number>();
  private readonly intervals = new Map<string, Interval[]>();
  // Journal indexes, fed by every commit the store makes.
  private readonly heldByOrder = new Map<number, number>();
  private readonly heldByCoid = new Map<string, number>();
  private readonly acceptedByOrder = new Map<number, number>();
  private readonly rejectedByOrder = new Map<number, number>();
  private readonly cancelledOrders = new Set<number>();
  private readonly transfers = new Map<string, number>();
  private readonly fillsSettled = new Map<string, number>();
  private readonly acked: Acked[] = [];
  private readonly ackedTransfers: [string, string, number][] = [];
  private commitDigest = 0x811c9dc5;
  private historyDigest = 0x811c9dc5;
  private readonly downUntil = new Map<number, number>();
  readonly stats: Record<string, number> = { placed: 0, acked: 0, rejected: 0, retries: 0, cancels: 0, amends: 0, transfers: 0, fills: 0, commits: 0, messages: 0 };
  private stopping = false;

  constructor(options: WorldOptions) {
    this.o = { stopOnFirst: true, faultScale: 1, long: false, plants: {}, ...options } as never;
    this.rng = new Prng(options.seed);
    this.rWork = this.rng.fork(3);
    this.rCrash = this.rng.fork(4);
    this.rPart = this.rng.fork(5);
    const f = options.faults;
    const sc = this.o.faultScale;
    this.net = new SimNetwork(
      this.clock,
      this.rng.fork(1),
      { drop: f.has('drop') ? 0.01 * sc : 0, dup: f.has('dup') ? 0.01 * sc : 0, delay: f.has('delay') ? 0.05 * sc : 0 },
      this.counts,
    );
    this.store = new SimStore(
      this.clock,
      this.net,
      this.rng.fork(2),
      { appendFail: f.has('store') ? 0.004 * sc : 0 },
      this.counts,
      (peer, writes, opts) => this.onCommit(peer, writes, opts),
      { ackBeforeCommit: this.o.plants.ackBeforeCommit === true },
    );
    this.kv = new SimKV(this.clock, LEASE_TTL_MS, { renewWithoutFence: this.o.plants.renewWithoutFence === true });
    this.instruments = instrumentsFor(this.o.long);
    for (const i of this.instruments) {
      this.bySymbol.set(i.symbol, i);
      this.mids.set(i.symbol, MIDS[i.symbol]!);
    }
    const makers = this.o.long ? 8 : 5;
    const takers = this.o.long ? 16 : 10;
    for (let i = 0; i < makers; i++) this.accounts.push(`mm${i}`);
    for (let i = 0; i < takers; i++) this.accounts.push(`tk${i}`);
    this.accounts.forEach((a, i) => this.accountNo.set(a, 3 + i));
    const dir: HostDirectory = { instruments: this.bySymbol, accountNo: (a) => this.accountNo.get(a) };
    const shards = new ShardMap({ book: 2, md: 2, account: 4 });
    const shardKeys: string[] = [];
    for (const k of ['book', 'md', 'account']) for (const s of shards.shards(k)) shardKeys.push(s.key);
    const entitiesOf = new Map<string, string[]>();
    const all = [...this.instruments.flatMap((i) => [`book/${i.symbol}`, `md/${i.symbol}`]), ...[...this.accounts, FEES_ACCOUNT, CLEARING_ACCOUNT].map((a) => `account/${a}`)];
    for (const a of all) {
      const key = shards.shardOf(a).key;
      (entitiesOf.get(key) ?? entitiesOf.set(key, []).get(key)!).push(a);
    }
    const nodeIds = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    this.env = {
      net: this.net,
      store: this.store,
      kv: this.kv,
      dir,
      shards,
      shardOf: memoShardOf(shards),
      shardKeys,
      entitiesOf,
      nodeIds,
      worldClock: this.clock,
      leaseTickMs: 20,
      onServe: (s, t, token, at) => this.onServe(s, t, token, at),
      onStop: (s, t, at) => this.onStop(s, t, at),
      onRenew: (s, t, d) => this.onRenew(s, t, d),
      onNodeEvent: (n, e) => this.onNodeEvent(n, e),
      renewLostTenures: this.o.plants.renewWithoutFence === true,
    };
    for (let i = 0; i < options.nodes; i++) {
      this.incarnations.push(1);
      this.nodes.push(new SimEngineNode(nodeIds[i]!, 1, this.env));
    }
    if (this.o.plants.settleFillTwice) {
      // PLANTED BUG: a fill's BookReport reaches the ledger a second time as a plain command (no pair sequence, so no dedupe).
      // A batched reliable message (WireReliable.more) carries several; each fill among them is delivered again.
      type Rel = { a: string; c: { type: string; instrument: unknown; event?: { type: string } } } | undefined;
      this.net.redeliver = (to, message) => {
        const m = message as { t?: string; msg?: Rel; more?: readonly Rel[] };
        if (m.t !== 'rel' || !to.startsWith('account/')) return undefined;
        const again: unknown[] = [];
        for (const x of m.more === undefined ? [m.msg] : [m.msg, ...m.more]) {
          if (x?.c.type !== 'BookReport' || x.c.event?.type !== 'Fill') continue;
          again.push({ a: x.a, c: { ...x.c, instrument: this.bySymbol.get(x.c.instrument as string) } });
        }
        return again.length > 0 ? again : undefined;
      };
    }
    this.edge = new ProcessClock('edge', this.clock);
    this.edgeTransport = new SimTransport(this.net, this.edge);
    // Several sessions per account (each one command at a time): the concurrency that fills a simulated ms.
    for (let k = 0; k < CLIENTS_PER_ACCOUNT; k++) for (const a of this.accounts) this.clients.push(new Client(a, a.startsWith('mm'), this.edge, this.edgeTransport, k));
  }

  // ---------------------------------------------------------------- violations

  violate(invariant: InvariantName, detail: string): void {
    if (this.violations.some((v) => v.invariant === invariant)) return;
    this.violations.push({ seed: this.o.seed, step: this.step, invariant, detail });
  }

  private check(ok: boolean, invariant: InvariantName, detail: () => string): void {
    this.invariantsChecked++;
    if (!ok) this.violate(invariant, detail());
  }

  get failed(): boolean {
    return this.violations.length > 0;
  }

  // ---------------------------------------------------------------- store observer (the journal as truth)

  private onCommit(peer: string, writes: readonly JournalWrite[], _opts: AppendOptions | undefined): void {
    this.stats.commits!++;
    let h = this.commitDigest;
    for (const w of writes) {
      // Commit order digest (ids by length and first/last chars, sequences, sizes); content is covered by the final replayed state hashes.
      const id = w.persistenceId;
      h = Math.imul(h ^ id.length ^ (id.charCodeAt(id.length - 1) << 8) ^ (id.charCodeAt(id.length - 2) << 16), 0x01000193);
      h = Math.imul(h ^ w.expectedSeq ^ (w.events.length << 20), 0x01000193) >>> 0;
      const pid = w.persistenceId;
      const isBook = pid.startsWith('book/');
      const account = pid.startsWith('account/') ? pid.slice(8) : undefined;
      if (!isBook && account === undefined) continue; // market data: nothing to index
      for (const r of w.events) {
        const e = r as { type?: string; $rt?: unknown };
        if (e.$rt !== undefined || e.type === undefined) continue;
        if (account !== undefined) {
          const le = r as LedgerEvent;
          if (le.type === 'OrderHeld') {
            this.heldByOrder.set(le.orderId, (this.heldByOrder.get(le.orderId) ?? 0) + 1);
            if (le.clientOrderId !== undefined) {
              const k = `${account}|${le.clientOrderId}`;
              const n = (this.heldByCoid.get(k) ?? 0) + 1;
              this.heldByCoid.set(k, n);
              this.check(n === 1, 'order-duplicated', () => `clientOrderId ${le.clientOrderId} of ${account} held ${n} times (writer ${peer})`);
            }
          } else if (le.type === 'Deposited' || le.type === 'Withdrawn') {
            const k = `${account}|${le.transferId}`;
            const n = (this.transfers.get(k) ?? 0) + 1;
            this.transfers.set(k, n);
            this.check(n === 1, 'transfer-lost-or-duplicated', () => `transfer ${le.transferId} of ${account} applied ${n} times`);
          } else if (le.type === 'LedgerRejected' && le.command === 'BookReport') {
            // The saga delivered a report the ledger cannot square with its orders: books and ledgers disagree.
            // RISK_UNKNOWN_ORDER is the benign race of a late report (an amend or cancel refused by the book)
            // for an order the ledger has already closed; a lost fill settlement is caught by the final
            // fill-by-fill check instead.
            this.check(le.code === Reject.RISK_UNKNOWN_ORDER, 'book-ledger-agree', () => `${account} refused a BookReport (${le.ref}): code ${le.code}`);
          } else if (le.type === 'FillSettled') {
            const k = `${account}|${le.symbol}|${le.tradeId}|${le.role}`;
            const n = (this.fillsSettled.get(k) ?? 0) + 1;
            this.fillsSettled.set(k, n);
            this.check(n === 1, 'conservation', () => `fill ${le.symbol}#${le.tradeId} settled ${n} times on ${account} (${le.role})`);
          }
        } else if (isBook) {
          const be = r as BookEvent;
          if (be.type === 'OrderAccepted') {
            const n = (this.acceptedByOrder.get(be.orderId) ?? 0) + 1;
            this.acceptedByOrder.set(be.orderId, n);
            this.check(n === 1, 'order-duplicated', () => `order ${be.orderId} accepted ${n} times by ${pid}`);
          } else if (be.type === 'CommandRejected' && be.command === 'NewOrder') this.rejectedByOrder.set(be.orderId, (this.rejectedByOrder.get(be.orderId) ?? 0) + 1);
          else if (be.type === 'OrderCancelled') this.cancelledOrders.add(be.orderId);
          else if (be.type === 'Fill') this.stats.fills!++;
        }
      }
    }
    this.commitDigest = h;
  }

  // ---------------------------------------------------------------- single writer (lease records)

  private onServe(shard: string, tenure: string, token: number, t: number): void {
    const list = this.intervals.get(shard) ?? this.intervals.set(shard, []).get(shard)!;
    for (const iv of list) {
      if (iv.tenure === tenure) continue;
      const end = iv.end ?? iv.deadline;
      this.check(end <= t, 'single-writer', () => `shard ${shard}: ${tenure} (token ${token}) serves from ${t.toFixed(2)} while ${iv.tenure} (token ${iv.token}) may serve until ${end.toFixed(2)}`);
    }
    // Keep only intervals that can still matter.
    const keep = list.filter((iv) => (iv.end ?? Infinity) > t - LEASE_TTL_MS * 4);
    keep.push({ tenure, token, start: t, deadline: t, end: undefined });
    this.intervals.set(shard, keep);
  }

  private onRenew(shard: string, tenure: string, deadline: number): void {
    const iv = this.intervals.get(shard)?.find((x) => x.tenure === tenure && x.end === undefined);
    if (iv) iv.deadline = Math.max(iv.deadline, deadline);
  }

  private onStop(shard: string, tenure: string, t: number): void {
    const iv = this.intervals.get(shard)?.find((x) => x.tenure === tenure && x.end === undefined);
    if (iv) iv.end = Math.min(t, iv.deadline);
  }

  private onNodeEvent(node: string, e: NodeEvent): void {
    this.stats[`ev:${e.type}`] = (this.stats[`ev:${e.type}`] ?? 0) + 1;
    if (e.type === 'recovered') this.stats['replayedEvents'] = (this.stats['replayedEvents'] ?? 0) + e.seq - e.snapshotSeq;
    if (e.type === 'crashed') {
      const msg = e.error instanceof Error ? e.error.message : String(e.error);
      if (msg !== 'injected crash') this.check(false, 'no-crash', () => `${node} ${e.address}: state machine threw: ${msg}`);
    }
  }

  // ---------------------------------------------------------------- client side

  private ts(): number {
    return EPOCH + Math.floor(this.clock.now());
  }

  private ask<R>(c: Client, to: string, cmd: unknown): Promise<R> {
    return c.transport.request(to, { t: 'ask', cmd } satisfies WireAsk, this.o.plants.askWithoutTimeout ? Infinity : ASK_MS).then(unwrapReply) as Promise<R>;
  }

  private later(ms: number): Promise<void> {
    return new Promise((r) => this.edge.schedule(ms, r));
  }

  /** Retry `fn` (same ids) until it answers; false when the world is ending and it still has not. */
  private async retrying<T>(c: Client, fn: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof AskTimeoutError || e instanceof UnreachableError || e instanceof RemoteActorError)) throw e;
        this.stats.retries!++;
        if (this.failed && this.o.stopOnFirst) return undefined;
        await this.later(5 + this.rWork.int(0, 20) + Math.min(attempt, 10) * 5);
      }
    }
  }

  private async runOp(c: Client, op: Op): Promise<void> {
    const a = c.account;
    switch (op.k) {
      case 'place': {
        this.stats.placed!++;
        const cmd: Record<string, unknown> = { type: 'PlaceOrder', ts: this.ts(), instrument: this.bySymbol.get(op.symbol)!, clientOrderId: op.coid, side: op.side, orderType: op.orderType, tif: op.tif, price: op.price, qty: op.qty };
        if (op.leverage !== undefined) cmd.leverage = op.leverage;
        const answer = await this.retrying(c, async () => {
          const r = await this.ask<PlaceReply>(c, `account/${a}`, { a, c: { type: '$place', cmd } });
          if (r.code !== 0) return { orderId: 0, accepted: false, code: r.code };
          // The book's decision: ask until it has one (the saga delivers NewOrder reliably).
          for (;;) {
            const o = await this.ask<BookOutcome>(c, `book/${r.symbol}`, { a: r.symbol, c: { type: '$outcome', orderId: r.orderId } });
            if (o.state === 'accepted') return { orderId: r.orderId, accepted: true, code: 0 };
            if (o.state === 'rejected') return { orderId: r.orderId, accepted: false, code: o.code };
            if (this.failed && this.o.stopOnFirst) throw new Error('stopping');
            await this.later(3);
          }
        });
        if (answer === undefined) return;
        this.historyDigest = mix(this.historyDigest, `${a}|${op.coid}|${answer.orderId}|${answer.code}`);
        if (answer.orderId === 0) {
          this.stats.rejected!++;
          return;
        }
        this.stats.acked!++;
        const rec: Acked = { account: a, coid: op.coid, orderId: answer.orderId, symbol: op.symbol, accepted: answer.accepted, step: this.step };
        this.acked.push(rec);
        // Guarantee 1, at the moment the client sees it: the events behind the answer are committed.
        this.check((this.heldByOrder.get(rec.orderId) ?? 0) >= 1, 'ack-after-commit', () => `order ${rec.orderId} (${a} ${op.coid}) answered before its OrderHeld was committed`);
        if (answer.accepted) {
          this.check((this.acceptedByOrder.get(rec.orderId) ?? 0) >= 1, 'ack-after-commit', () => `order ${rec.orderId} answered accepted before the book's OrderAccepted was committed`);
          if (op.tif === 'GTC') c.open.push([op.symbol, answer.orderId]);
        }
        return;
      }
      case 'cancel': {
        this.stats.cancels!++;
        const events = await this.retrying(c, () => this.ask<BookEvent[]>(c, `book/${op.symbol}`, { a: op.symbol, c: { type: 'CancelOrder', ts: this.ts(), orderId: op.orderId, account: a } }));
        if (events === undefined) return;
        const ok = !events.some((e) => e.type === 'CommandRejected');
        this.historyDigest = mix(this.historyDigest, `${a}|cancel|${op.orderId}|${ok}`);
        if (ok) this.check(this.cancelledOrders.has(op.orderId), 'ack-after-commit', () => `cancel of ${op.orderId} answered before OrderCancelled was committed`);
        return;
      }
      case 'amend': {
        this.stats.amends!++;
        const ts = this.ts();
        try {
          const held = await this.ask<LedgerEvent[]>(c, `account/${a}`, { a, c: { type: 'AmendHold', ts, orderId: op.orderId, price: op.price, qty: op.qty } });
          if (held.some((e) => e.type === 'LedgerRejected')) return;
          const events = await this.retrying(c, () => this.ask<BookEvent[]>(c, `book/${op.symbol}`, { a: op.symbol, c: { type: 'AmendOrder', ts, orderId: op.orderId, account: a, price: op.price, qty: op.qty } }));
          this.historyDigest = mix(this.historyDigest, `${a}|amend|${op.orderId}|${events?.length ?? -1}`);
        } catch {
          // An amend whose hold step timed out is abandoned (not idempotent to resend blindly).
        }
        return;
      }
      case 'deposit':
      case 'withdraw': {
        this.stats.transfers!++;
        const type = op.k === 'deposit' ? 'Deposit' : 'Withdraw';
        let tries = 0;
        const events = await this.retrying(c, () => {
          tries++;
          return this.ask<LedgerEvent[]>(c, `account/${a}`, { a, c: { type, ts: this.ts(), transferId: op.transferId, asset: op.asset, amount: op.amount } });
        });
        if (events === undefined) return;
        const rej = events.find((e) => e.type === 'LedgerRejected') as { code: RejectCode } | undefined;
        const landed = rej === undefined || (rej.code === Reject.LEDGER_DUPLICATE_TRANSFER && tries > 1);
        this.historyDigest = mix(this.historyDigest, `${a}|${op.transferId}|${landed}`);
        if (landed) {
          this.ackedTransfers.push([a, op.transferId, this.step]);
          this.check((this.transfers.get(`${a}|${op.transferId}`) ?? 0) >= 1, 'ack-after-commit', () => `${type} ${op.transferId} of ${a} answered before it was committed`);
        }
        return;
      }
    }
  }

  private issue(c: Client, op: Op): void {
    c.busy = true;
    this.runOp(c, op).then(
      () => (c.busy = false),
      (e: unknown) => {
        c.busy = false;
        if ((e as Error)?.message !== 'stopping') this.violate('liveness', `client ${c.account}: ${(e as Error)?.stack ?? String(e)}`);
      },
    );
  }

  private nextOp(c: Client): Op {
    const r = this.rWork;
    const roll = r.next();
    const sym = r.pick(this.instruments).symbol;
    const ins = this.bySymbol.get(sym)!;
    const mid = this.mids.get(sym)!;
    const tick = ins.tickSize;
    if (roll < 0.03) {
      const asset = r.pick(['USD', 'BTC', 'ETH']);
      return { k: r.chance(0.6) ? 'deposit' : 'withdraw', transferId: `${c.account}-${c.session}-t${++c.n}`, asset, amount: r.int(1, asset === 'USD' ? 200_000 : 2_000) };
    }
    if (c.open.length > 0 && roll < (c.maker ? 0.25 : 0.12)) {
      const i = r.int(0, c.open.length - 1);
      const [symbol, orderId] = c.open[i]!;
      c.open.splice(i, 1);
      return { k: 'cancel', symbol, orderId };
    }
    if (c.open.length > 0 && roll < (c.maker ? 0.33 : 0.16)) {
      const [symbol, orderId] = c.open[r.int(0, c.open.length - 1)]!;
      const m = this.mids.get(symbol)!;
      const t = this.bySymbol.get(symbol)!.tickSize;
      return { k: 'amend', symbol, orderId, price: m + r.int(-6, 6) * t, qty: r.int(1, 8) };
    }
    if (r.chance(0.05)) this.mids.set(sym, Math.max(20 * tick, mid + r.int(-2, 2) * tick));
    const side: Side = r.chance(0.5) ? 'buy' : 'sell';
    const lev = ins.mode === 'margin' ? { leverage: r.int(1, 10) } : {};
    const coid = `${c.account}-${c.session}-o${++c.n}`;
    if (c.maker) {
      const off = r.int(1, 8) * tick;
      return { k: 'place', coid, symbol: sym, side, orderType: 'limit', tif: 'GTC', price: side === 'buy' ? mid - off : mid + off, qty: r.int(1, 10), ...lev };
    }
    const cross = r.int(0, 6) * tick;
    const price = side === 'buy' ? mid + cross : Math.max(tick, mid - cross);
    if (r.chance(0.15)) return { k: 'place', coid, symbol: sym, side, orderType: 'market', tif: 'IOC', price: side === 'buy' ? mid + 50 * tick : Math.max(tick, mid - 50 * tick), qty: r.int(1, 6), ...lev };
    return { k: 'place', coid, symbol: sym, side, orderType: 'limit', tif: r.pick(['IOC', 'IOC', 'GTC', 'FOK'] as const), price, qty: r.int(1, 8), ...lev };
  }

  // ---------------------------------------------------------------- faults

  /** `dt`: simulated ms since the last call (fault rates are per ms). */
  private injectFaults(dt = 1): void {
    const f = this.o.faults;
    const r = this.rCrash;
    const sc = this.o.faultScale * dt;
    const now = this.clock.now();
    // Restart crashed nodes when their downtime is over.
    for (const [i, until] of this.downUntil) {
      if (now >= until) {
        this.downUntil.delete(i);
        this.restart(i);
      }
    }
    if (f.has('crash')) {
      if (r.chance(0.004 * sc)) {
        const live = this.nodes.map((n, i) => (n?.alive ? i : -1)).filter((i) => i >= 0);
        if (live.length > 1 || (live.length === 1 && this.nodes.length === 1)) {
          const i = r.pick(live);
          this.nodes[i]!.kill();
          this.downUntil.set(i, now + r.int(10, 400));
          this.count('crash');
        }
      }
      if (r.chance(0.004 * sc)) {
        // A stalled process (GC pause, SIGSTOP): the lease-expiry race.
        const live = this.nodes.filter((n): n is SimEngineNode => n !== undefined && n.alive && !n.clock.paused);
        if (live.length > 0) {
          const n = r.pick(live);
          n.pause();
          this.count('crash');
          this.clock.schedule(r.int(LEASE_TTL_MS / 2, LEASE_TTL_MS * 3), () => n.resume());
        }
      }
    }
    const rp = this.rPart;
    if (f.has('partition') && rp.chance(0.008 * sc)) {
      const peers = [...this.env.nodeIds, 'edge', 'store', 'nats'];
      const a = rp.pick(peers);
      let b = rp.pick(peers);
      if (a === b) b = a === 'store' ? 'nats' : 'store';
      this.net.partition(a, b);
      this.count('partition');
      this.clock.schedule(rp.int(5, 600), () => this.net.heal(a, b));
    }
  }

  private count(k: FaultKind): void {
    this.counts[k] = (this.counts[k] ?? 0) + 1;
  }

  private restart(i: number): void {
    if (this.nodes[i]?.alive) return;
    this.incarnations[i]!++;
    this.nodes[i] = new SimEngineNode(this.env.nodeIds[i]!, this.incarnations[i]!, this.env);
  }

  // ---------------------------------------------------------------- continuous checks

  private checkBooks(): void {
    for (const n of this.nodes) {
      if (!n?.alive) continue;
      for (const i of this.instruments) {
        const v = n.actor.inspect(`book/${i.symbol}`);
        const book = (v?.state as { s?: BookState } | undefined)?.s;
        if (!book) continue;
        const bid = book.bestBid();
        const ask = book.bestAsk();
        this.check(!(bid > 0 && ask > 0 && bid >= ask), 'book-sound', () => `${i.symbol} crossed on ${n.tenureName}: bid ${bid} >= ask ${ask}`);
      }
    }
  }

  // ---------------------------------------------------------------- the run

  /**
   * `n` turns of the event loop (nact runs each mailbox drain in its own setImmediate). Chained
   * immediates under one promise: the same order as awaiting one turn at a time (each `await` only
   * queued the next immediate from an otherwise empty microtask queue), without a promise per turn.
   */
  private turns(n: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let left = n;
      const turn = (): void => {
        if (--left <= 0) resolve();
        else setImmediate(turn);
      };
      if (n <= 0) resolve();
      else setImmediate(turn);
    });
  }

  private tick(ms = 1): Promise<void> {
    this.clock.advance(ms);
    return this.turns(3);
  }

  private idleJump(): number {
    const next = this.clock.nextAt();
    return next === undefined ? 1 : Math.max(1, Math.min(20, Math.ceil(next - this.clock.now())));
  }

  private allServed(): boolean {
    const served = new Set<string>();
    for (const n of this.nodes) if (n?.alive && !n.clock.paused) for (const s of n.servedShards()) served.add(s);
    return served.size === this.env.shardKeys.length;
  }

  async run(): Promise<WorldResult> {
    // An exception nobody catches would kill a real node process: record it as a violation.
    const onUnhandled = (e: unknown): void => this.violate('no-crash', `unhandled rejection (a node process would die): ${(e as Error)?.stack?.split('\n').slice(0, 4).join(' | ') ?? String(e)}`);
    process.on('unhandledRejection', onUnhandled);
    // Timeouts and unreachable errors are created by the thousand under faults; their stack traces
    // were ~5% of a run's CPU. Restored when the run ends (unhandled rejections keep a short stack).
    const stackLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 4;
    try {
      return await this.runInner();
    } finally {
      // Let rejections of this run surface while the handler is still installed.
      await this.turns(2);
      process.off('unhandledRejection', onUnhandled);
      Error.stackTraceLimit = stackLimit;
    }
  }

  private async runInner(): Promise<WorldResult> {
    // Bring the cluster up and fund every account (not counted as steps, no faults yet).
    for (let i = 0; i < 2_000 && !this.allServed(); i++) await this.tick(5);
    for (const c of this.clients) {
      if (c.session > 0) continue;
      c.busy = true;
      void (async () => {
        for (const [asset, amount] of [['USD', 50_000_000], ['BTC', 200_000], ['ETH', 500_000]] as const) {
          await this.runOp(c, { k: 'deposit', transferId: `${c.account}-fund-${asset}`, asset, amount });
        }
        c.busy = false;
      })();
    }
    for (let i = 0; i < 20_000 && this.clients.some((c) => c.busy); i++) await this.tick(1);
    for (let i = 0; i < 20; i++) await this.tick(1);
    this.stats.startMs = this.clock.now();
    // The workload, under faults.
    const perTick = this.clients.length;
    let issued = 0;
    let ticks = 0;
    let dt = 1;
    let progressAt = this.clock.now();
    while (issued < this.o.steps && !(this.failed && this.o.stopOnFirst)) {
      const before = issued;
      for (let k = 0; k < perTick && issued < this.o.steps; k++) {
        const c = this.clients[this.rWork.int(0, this.clients.length - 1)]!;
        if (c.busy) continue;
        this.step = ++issued;
        this.issue(c, this.nextOp(c));
      }
      if (issued > before) progressAt = this.clock.now();
      else if (this.clock.now() - progressAt > STALL_MS) {
        this.violate('liveness', `no command issued for ${STALL_MS} simulated ms: every client is waiting on an operation that never ends (${this.clients.length} clients)`);
        break;
      }
      this.injectFaults(dt);
      // Every client waiting (timeouts, partitions): jump to the next timer (at most 20 ms) instead of ticking idle ms.
      dt = issued === before ? this.idleJump() : 1;
      await this.tick(dt);
      if (++ticks % 16 === 0) this.checkBooks();
    }
    this.step = issued;
    // Heal everything and let the system settle.
    this.stopping = true;
    this.net.faults = { drop: 0, dup: 0, delay: 0 };
    this.store.faults = { appendFail: 0 };
    this.net.healAll();
    for (const n of this.nodes) if (n?.clock.paused) n.resume();
    for (let i = 0; i < this.nodes.length; i++) if (!this.nodes[i]?.alive) this.restart(i);
    this.downUntil.clear();
    let settled = false;
    for (let i = 0; i < 40_000 && !(this.failed && this.o.stopOnFirst); i++) {
      await this.tick(1);
      if (i % 10 === 0 && this.allServed() && this.clients.every((c) => !c.busy) && this.nodes.every((n) => n!.actor.isQuiescent())) {
        // Quiescent twice in a row, 20 ms apart (a resend may be on its way).
        for (let j = 0; j < 20; j++) await this.tick(1);
        if (this.clients.every((c) => !c.busy) && this.nodes.every((n) => n!.actor.isQuiescent())) {
          settled = true;
          break;
        }
      }
    }
    if (!(this.failed && this.o.stopOnFirst)) {
      this.check(settled, 'liveness', () => `not quiescent ${40_000} simulated ms after the faults stopped (busy clients: ${this.clients.filter((c) => c.busy).map((c) => c.account).join(',')})`);
      this.step = issued + 1;
      await this.finalChecks();
    }
    const hash = this.finalHash();
    for (const n of this.nodes) if (n?.alive) n.kill();
    return {
      seed: this.o.seed,
      steps: issued,
      faultsInjected: this.counts,
      invariantsChecked: this.invariantsChecked,
      violations: this.violations,
      finalStateHash: hash,
      simMs: this.clock.now(),
      stats: { ...this.stats, messages: this.net.messages, storeAppends: this.store.appends, eventsDecoded: this.store.eventsDecoded },
    };
  }

  // ---------------------------------------------------------------- final checks (the journal is the truth)

  private replayed = new Map<string, { hash: string; state: unknown }>();

  private async finalChecks(): Promise<void> {
    // Every stream, decoded once (the store's decoded events, shared with recoveries).
    const decoded = new Map<string, readonly unknown[]>();
    for (const id of this.store.mem.ids()) decoded.set(id, await this.store.decoded(id));
    const mem = { eventsOf: (id: string): readonly unknown[] => decoded.get(id) ?? [] };
    // 1. Acknowledged orders and transfers: exactly once in the journal.
    for (const a of this.acked) {
      this.check(this.heldByOrder.get(a.orderId) === 1, 'acked-order-lost', () => `acked order ${a.orderId} (${a.account} ${a.coid}, step ${a.step}) held ${this.heldByOrder.get(a.orderId) ?? 0} times in the journal`);
      if (a.accepted) this.check(this.acceptedByOrder.get(a.orderId) === 1, 'acked-order-lost', () => `acked order ${a.orderId} accepted ${this.acceptedByOrder.get(a.orderId) ?? 0} times in book/${a.symbol}`);
      else this.check((this.rejectedByOrder.get(a.orderId) ?? 0) >= 1, 'acked-order-lost', () => `order ${a.orderId} answered as rejected by the book, but no rejection is journaled`);
    }
    for (const [a, t, step] of this.ackedTransfers) {
      this.check(this.transfers.get(`${a}|${t}`) === 1, 'transfer-lost-or-duplicated', () => `acked transfer ${t} of ${a} (step ${step}) is ${this.transfers.get(`${a}|${t}`) ?? 0} times in the journal`);
    }
    // 2. Replay every stream from the journal; compare with the live entity (guarantee 4).
    const ledgers = new Map<string, LedgerState>();
    for (const a of [...this.accounts, FEES_ACCOUNT, CLEARING_ACCOUNT]) {
      const kind = a === FEES_ACCOUNT ? 'fees' : a === CLEARING_ACCOUNT ? 'clearing' : 'user';
      const no = a === FEES_ACCOUNT ? 1 : a === CLEARING_ACCOUNT ? 2 : this.accountNo.get(a)!;
      const m = ledgerMachine({ account: a, accountNo: no, kind });
      let s = m.init();
      for (const e of mem.eventsOf(`account/${a}`)) if (!isRt(e)) s = m.apply(s, e as LedgerEvent);
      ledgers.set(a, s);
      this.compareLive(`account/${a}`, m.stateHash(s));
    }
    const books = new Map<string, BookState>();
    for (const i of this.instruments) {
      const m = bookMachine(i);
      let s = m.init();
      const evs = mem.eventsOf(`book/${i.symbol}`).filter((e) => !isRt(e)) as BookEvent[];
      for (const e of evs) s = m.apply(s, e);
      books.set(i.symbol, s);
      this.compareLive(`book/${i.symbol}`, m.stateHash(s));
      this.checkFills(i, evs);
      const mm = marketDataMachine(i.symbol);
      let ms = mm.init();
      for (const e of mem.eventsOf(`md/${i.symbol}`)) if (!isRt(e)) ms = mm.apply(ms, e as never);
      this.compareLive(`md/${i.symbol}`, mm.stateHash(ms));
      const bid = s.bestBid();
      const ask = s.bestAsk();
      this.check(!(bid > 0 && ask > 0 && bid >= ask), 'book-sound', () => `${i.symbol} crossed at rest in the journal: ${bid} >= ${ask}`);
      // Every resting order of a user is one its ledger holds for, and vice versa (at quiescence).
      for (const a of this.accounts) {
        const resting = s.openOrders(a).map((o) => o.orderId).sort((x, y) => x - y);
        const held = [...ledgers.get(a)!.orders.values()].filter((o) => o.symbol === i.symbol).map((o) => o.orderId).sort((x, y) => x - y);
        this.check(resting.join() === held.join(), 'book-ledger-agree', () => `${a} ${i.symbol}: book has [${resting.join()}], ledger holds [${held.join()}]`);
      }
    }
    // 3. Conservation: per asset, the sum over every ledger equals deposits minus withdrawals.
    const net = new Map<string, number>();
    const sum = new Map<string, number>();
    for (const [a, s] of ledgers) {
      for (const e of mem.eventsOf(`account/${a}`)) {
        const le = e as LedgerEvent;
        if (le.type === 'Deposited') net.set(le.asset, (net.get(le.asset) ?? 0) + le.amount);
        else if (le.type === 'Withdrawn') net.set(le.asset, (net.get(le.asset) ?? 0) - le.amount);
      }
      for (const [asset, b] of s.balances) {
        sum.set(asset, (sum.get(asset) ?? 0) + b.available + b.held);
        if (a !== CLEARING_ACCOUNT) this.check(b.held >= 0, 'conservation', () => `${a} ${asset} held ${b.held} < 0`);
        if (s.kind === 'user' && asset !== 'USD') this.check(b.available >= 0, 'conservation', () => `${a} ${asset} available ${b.available} < 0 (cash asset)`);
      }
    }
    for (const asset of new Set([...net.keys(), ...sum.keys()])) {
      this.check((net.get(asset) ?? 0) === (sum.get(asset) ?? 0), 'conservation', () => `${asset}: ledgers hold ${sum.get(asset) ?? 0}, deposits - withdrawals = ${net.get(asset) ?? 0}`);
    }
  }

  private compareLive(address: string, replayHash: string): void {
    this.replayed.set(address, { hash: replayHash, state: undefined });
    for (const n of this.nodes) {
      const live = n?.alive ? n.actor.stateHash(address) : undefined;
      if (live === undefined) continue;
      this.check(live === replayHash, 'replay-equals-live', () => `${address} on ${n!.tenureName}: live ${live} != replayed ${replayHash}`);
    }
  }

  /** Every fill names two orders the book accepted, at the maker's price, within the taker's limit, within their quantities. */
  private checkFills(i: Instrument, evs: readonly BookEvent[]): void {
    const orders = new Map<number, { side: Side; price: number; market: boolean; qty: number; filled: number }>();
    for (const e of evs) {
      if (e.type === 'OrderAccepted') {
        const o = e as unknown as { orderId: number; side: Side; price: number; orderType: string; qty: number };
        orders.set(o.orderId, { side: o.side, price: o.price, market: o.orderType === 'market', qty: o.qty, filled: 0 });
      } else if (e.type === 'OrderAmended') {
        const x = e as unknown as { orderId: number; newPrice?: number; price?: number; newQty?: number };
        const o = orders.get(x.orderId);
        const np = x.newPrice ?? x.price;
        if (o && np !== undefined) o.price = np;
      } else if (e.type === 'Fill') {
        for (const [acct, role] of [[e.takerAccount, 'taker'], [e.makerAccount, 'maker']] as const) {
          const n = this.fillsSettled.get(`${acct}|${i.symbol}|${e.tradeId}|${role}`) ?? 0;
          this.check(n === 1, 'conservation', () => `${i.symbol} fill ${e.tradeId} settled ${n} times on ${acct} (${role})`);
        }
        const t = orders.get(e.takerOrderId);
        const m = orders.get(e.makerOrderId);
        this.check(t !== undefined && m !== undefined, 'book-sound', () => `${i.symbol} fill ${e.tradeId} names an order the book never accepted`);
        if (!t || !m) continue;
        this.check(e.price === m.price, 'book-sound', () => `${i.symbol} fill ${e.tradeId} at ${e.price}, maker rests at ${m.price}`);
        const within = t.side === 'buy' ? e.price <= t.price : e.price >= t.price;
        this.check(within || t.price === 0, 'book-sound', () => `${i.symbol} fill ${e.tradeId} at ${e.price} beyond the taker's limit ${t.price}`);
      }
    }
  }

  private finalHash(): string {
    const states: [string, string][] = [];
    for (const [a, r] of [...this.replayed].sort((x, y) => (x[0] < y[0] ? -1 : 1))) states.push([a, r.hash]);
    return hashOf({ commits: this.commitDigest, history: this.historyDigest, states, steps: this.step, faults: this.counts });
  }

  get plants(): Plants {
    return this.o.plants;
  }
  get network(): SimNetwork {
    return this.net;
  }
}

/** A `WireReply`'s value, or its error as a `RemoteActorError` (one function for every ask, not a closure each). */
function unwrapReply(r: unknown): unknown {
  const reply = r as WireReply;
  if (reply.ok) return reply.v;
  throw new RemoteActorError(reply.e.name, reply.e.message);
}

function isRt(e: unknown): boolean {
  return e !== null && typeof e === 'object' && (e as { $rt?: unknown }).$rt !== undefined;
}

function mix(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
