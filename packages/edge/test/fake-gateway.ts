/**
 * TEST ONLY — NOT DURABLE. A `VenueGateway` over the engine's synchronous in-process `Venue`, for edge
 * and SDK tests until the real `EmbeddedVenue` (packages/engine/src/host) is used. "Commit" is an
 * in-memory array append: it keeps the contract's order (events become visible, then the command's
 * promise resolves) and journal seqs, but nothing survives the process.
 *
 * The engine's index does not export `Venue`, so it is imported from the engine's build output.
 */
import { Reject, rejectName } from '@bourse/schemas';
import type { Instrument, LedgerEvent, RejectCode, Side, TradingStatus, L2Snapshot } from '@bourse/schemas';
import type { VenueEvent } from '../../engine/dist/src/venue/venue.js';

// The same file runs from packages/edge/test (tsx) and packages/edge/dist/test (compiled): find the
// engine's build output from either place.
const engineDist = new URL(import.meta.url.includes('/dist/test/') ? '../../../engine/dist/src/' : '../../engine/dist/src/', import.meta.url);
const { Venue } = (await import(new URL('venue/venue.js', engineDist).href)) as typeof import('../../engine/dist/src/venue/venue.js');
const { l2Snapshot } = (await import(new URL('marketdata/machine.js', engineDist).href)) as typeof import('../../engine/dist/src/marketdata/machine.js');
type Venue = InstanceType<typeof Venue>;
import type { CommandContext, GatewayResult, OrderRequest, PrivateEvent, PublicEvent, Unsubscribe, VenueGateway, VenueReads } from '../src/gateway.js';

const no = (code: RejectCode, message?: string) => ({ ok: false as const, code, message: message ?? rejectName(code) });

export class FakeGateway implements VenueGateway {
  readonly venue: Venue;
  /** Ledger events per account, in journal order. */
  readonly journals = new Map<string, LedgerEvent[]>();
  /** Their journal seqs: increasing with gaps, like the real journal where runtime records take seqs too. */
  readonly seqs = new Map<string, number[]>();
  readonly #private = new Map<string, Set<(e: PrivateEvent) => void>>();
  readonly #public = new Map<string, Set<(e: PublicEvent) => void>>();
  readonly #buffer: VenueEvent[] = [];
  readonly #placed = new Map<string, Promise<GatewayResult<{ orderId: number }>>>();
  #ts = Date.now();
  /** Commands seen, with their trace ids (tests check that trace ids arrive). */
  readonly traces: string[] = [];
  /** Extra delay before a command "commits" (ms), to widen races in tests. */
  commitDelayMs = 0;

  constructor(instruments: readonly Instrument[]) {
    this.venue = new Venue(instruments);
    this.venue.subscribe((e) => this.#buffer.push(e));
  }

  instruments(): readonly Instrument[] {
    return [...this.venue.instruments.values()];
  }

  #now(): number {
    this.#ts = Math.max(this.#ts, Date.now());
    return this.#ts;
  }

  /** Runs `fn` (synchronous venue work), then "commits": appends and publishes the events it produced. */
  async #command<T>(ctx: CommandContext, fn: (ts: number, events: VenueEvent[]) => T): Promise<T> {
    this.traces.push(ctx.traceId);
    if (this.commitDelayMs > 0) await new Promise((r) => setTimeout(r, this.commitDelayMs));
    const r = fn(this.#now(), this.#buffer);
    const events = this.#buffer.splice(0);
    await Promise.resolve();
    for (const e of events) {
      if (e.kind === 'ledger') {
        const account = e.stream.slice('account/'.length);
        let j = this.journals.get(account);
        let q = this.seqs.get(account);
        if (!j || !q) {
          this.journals.set(account, (j = []));
          this.seqs.set(account, (q = []));
        }
        j.push(e.event);
        // every third event, pretend a runtime record took a seq in between
        const seq = (q.at(-1) ?? 0) + (j.length % 3 === 0 ? 2 : 1);
        q.push(seq);
        const pe = { account, seq, event: e.event };
        for (const l of this.#private.get(account) ?? []) l(pe);
      } else if (e.kind === 'md') {
        const symbol = e.stream.slice('md/'.length);
        for (const l of this.#public.get(symbol) ?? []) l({ symbol, event: e.event });
      }
    }
    return r;
  }

  #checks(account: string, symbol: string): GatewayResult | undefined {
    if (!this.venue.instruments.has(symbol)) return no(Reject.ORDER_UNKNOWN_INSTRUMENT);
    if (!this.venue.ledgers.has(account)) return no(Reject.ADMIN_UNKNOWN_ACCOUNT);
    return undefined;
  }

  placeOrder(account: string, req: OrderRequest, ctx: CommandContext): Promise<GatewayResult<{ orderId: number }>> {
    const key = req.clientOrderId === undefined ? undefined : `${account}\0${req.clientOrderId}`;
    if (key !== undefined) {
      const first = this.#placed.get(key);
      if (first) return first; // idempotent: the original answer
    }
    const p = this.#command(ctx, (ts) => {
      const bad = this.#checks(account, req.symbol);
      if (bad) return bad as GatewayResult<{ orderId: number }>;
      const r = this.venue.place(ts, account, req);
      if (r.rejected !== undefined) return no(r.rejected);
      return { ok: true as const, orderId: r.orderId! };
    });
    if (key !== undefined) this.#placed.set(key, p);
    return p;
  }

  cancelOrder(account: string, symbol: string, orderId: number, ctx: CommandContext): Promise<GatewayResult> {
    return this.#command(ctx, (ts) => {
      const bad = this.#checks(account, symbol);
      if (bad) return bad;
      const events = this.venue.cancel(ts, account, symbol, orderId);
      const rej = events.find((e) => e.kind === 'book' && e.event.type === 'CommandRejected');
      return rej && rej.kind === 'book' && rej.event.type === 'CommandRejected' ? no(rej.event.code) : { ok: true as const };
    });
  }

  amendOrder(account: string, symbol: string, orderId: number, change: { price?: number; qty?: number }, ctx: CommandContext): Promise<GatewayResult> {
    return this.#command(ctx, (ts) => {
      const bad = this.#checks(account, symbol);
      if (bad) return bad;
      for (const e of this.venue.amend(ts, account, symbol, orderId, change)) {
        if (e.kind === 'ledger' && e.event.type === 'LedgerRejected') return no(e.event.code);
        if (e.kind === 'book' && e.event.type === 'CommandRejected') return no(e.event.code);
      }
      return { ok: true as const };
    });
  }

  massCancel(account: string, symbol: string, side: Side | undefined, ctx: CommandContext): Promise<GatewayResult<{ cancelled: number }>> {
    return this.#command(ctx, (ts) => {
      const bad = this.#checks(account, symbol);
      if (bad) return bad as GatewayResult<{ cancelled: number }>;
      const events = this.venue.massCancel(ts, account, symbol, side);
      return { ok: true as const, cancelled: events.filter((e) => e.kind === 'book' && e.event.type === 'OrderCancelled').length };
    });
  }

  openAccount(account: string, ctx: CommandContext): Promise<GatewayResult> {
    return this.#command(ctx, () => {
      if (this.venue.ledgers.has(account)) return no(Reject.LEDGER_INVALID_ACCOUNT, `account ${account} exists`);
      this.venue.openAccount(account);
      return { ok: true as const };
    });
  }

  deposit(account: string, asset: string, amount: number, transferId: string, ctx: CommandContext): Promise<GatewayResult> {
    return this.#transfer(ctx, account, (ts) => this.venue.deposit(ts, account, asset, amount, transferId));
  }

  withdraw(account: string, asset: string, amount: number, transferId: string, ctx: CommandContext): Promise<GatewayResult> {
    return this.#transfer(ctx, account, (ts) => this.venue.withdraw(ts, account, asset, amount, transferId));
  }

  #transfer(ctx: CommandContext, account: string, fn: (ts: number) => readonly VenueEvent[]): Promise<GatewayResult> {
    return this.#command(ctx, (ts) => {
      if (!this.venue.ledgers.has(account)) return no(Reject.ADMIN_UNKNOWN_ACCOUNT);
      const rej = fn(ts).find((e) => e.kind === 'ledger' && e.event.type === 'LedgerRejected');
      return rej && rej.kind === 'ledger' && rej.event.type === 'LedgerRejected' ? no(rej.event.code) : { ok: true as const };
    });
  }

  setTradingStatus(symbol: string, status: TradingStatus, ctx: CommandContext): Promise<GatewayResult> {
    return this.#command(ctx, (ts) => {
      if (!this.venue.instruments.has(symbol)) return no(Reject.ORDER_UNKNOWN_INSTRUMENT);
      const rej = this.venue.setStatus(ts, symbol, status).find((e) => e.kind === 'book' && e.event.type === 'CommandRejected');
      return rej && rej.kind === 'book' && rej.event.type === 'CommandRejected' ? no(rej.event.code) : { ok: true as const };
    });
  }

  subscribePrivate(account: string, afterSeq: number, onEvent: (e: PrivateEvent) => void): Unsubscribe {
    const j = this.journals.get(account) ?? [];
    const q = this.seqs.get(account) ?? [];
    for (let i = 0; i < j.length; i++) if (q[i]! > afterSeq) onEvent({ account, seq: q[i]!, event: j[i]! });
    let set = this.#private.get(account);
    if (!set) this.#private.set(account, (set = new Set()));
    set.add(onEvent);
    return () => set.delete(onEvent);
  }

  async privateHead(account: string): Promise<number> {
    return this.seqs.get(account)?.at(-1) ?? 0;
  }

  subscribePublic(symbol: string, onEvent: (e: PublicEvent) => void): Unsubscribe {
    let set = this.#public.get(symbol);
    if (!set) this.#public.set(symbol, (set = new Set()));
    set.add(onEvent);
    return () => set.delete(onEvent);
  }

  l2Snapshot(symbol: string, depth: number): L2Snapshot | undefined {
    const md = this.venue.marketData.get(symbol);
    return md ? l2Snapshot(md.state, this.#ts, depth) : undefined;
  }

  /** Only balances and positions, straight from the ledgers (no store behind this fake). */
  readonly reads = {
    balancesByAccount: async (account: string) => {
      const l = this.venue.ledgers.get(account);
      if (!l) return [];
      return [...l.state.balances].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([asset, b]) => ({
        kind: 'user', account, asset, available: b.available, held: b.held, total: b.available + b.held, updatedTs: this.#ts, seq: this.seqs.get(account)?.at(-1) ?? 0,
      }));
    },
    positionsByAccount: async () => [],
    ordersByAccount: async () => ({ items: [], next: undefined }),
    trades: async () => ({ items: [], next: undefined }),
    candles: async () => [],
  } as unknown as VenueReads;

  async close(): Promise<void> {}
}
