/**
 * The engine's entity kinds on the actor runtime: `book/<symbol>`, `account/<id>` (users, plus
 * `account/fees` and `account/clearing`), `md/<symbol>` and the account registry `venue/registry`.
 *
 * Each kind wraps an engine state machine (book, ledger, market data) in a small envelope state, and
 * sends the saga's messages from its `outbox`, through `routing.ts` — the same routing the
 * synchronous `Venue` runs. The journal is the outbox; receivers dedupe by per-sender high-water mark
 * (the runtime's reliable messages), so a crash anywhere neither loses nor doubles a saga step.
 *
 * Two things the runtime's `EntityKind` does not give a kind, and how they are adapted here (see the
 * report in the host README / commit message):
 * - `init()` does not know the entity's address, but a book needs its instrument and a ledger its
 *   account number. The wrapper state starts unbound and is bound (a) by every command, which
 *   carries the entity id, and (b) on recovery without a snapshot, by `HostJournal.read`, which the
 *   runtime calls synchronously right after `init()` for that entity (`bindNextInit`).
 * - `outbox(event)` sees one event, not the entity: the wrapper's `step`/`apply` set `current`
 *   (the entity being stepped or replayed) right before the runtime derives that event's outbox.
 */
import type { EntityKind, Outgoing } from '@bourse/actors';
import type {
  BookCommand,
  BookEvent,
  Instrument,
  LedgerCommand,
  LedgerEvent,
  MdCommand,
  MdEvent,
  RejectCode,
  StateMachine,
} from '@bourse/schemas';
import { Reject, canonicalInstrument, instrumentFromRow, instrumentRow, sameInstrument, validateInstrument } from '@bourse/schemas';
import { bookMachine } from '../book/index.js';
import type { BookState } from '../book/index.js';
import { ledgerMachine } from '../risk/index.js';
import type { LedgerState } from '../risk/index.js';
import { marketDataMachine } from '../marketdata/index.js';
import type { MdState } from '../marketdata/index.js';
import { CLEARING_ACCOUNT, FEES_ACCOUNT, routeBookEvent, routeLedgerEvent } from '../venue/routing.js';
import type { Routed } from '../venue/routing.js';

/** Remembered client order ids per account (oldest forgotten first). */
export const CLIENT_IDS_MAX = 100_000;
/** Remembered book rejections of new orders per book (their codes, for resent client order ids). */
export const BOOK_REJECTS_MAX = 100_000;
const ORDER_SEQ_SPAN = 2 ** 32;

// ------------------------------------------------------------------ envelopes

/** A command to a hosted entity: `a` is the entity id (symbol or account), so an unbound state can bind. */
export interface HostCommand<C> {
  readonly a: string;
  /** A ledger's account number, sent by the gateway (a cluster node may not have heard of a new account yet). */
  readonly n?: number | undefined;
  readonly c: C;
}

/** What the ledger entity answers to a PlaceOrder. */
export interface PlaceReply {
  /** The venue order id when the ledger held the order (now or on the first attempt). */
  readonly orderId: number;
  readonly symbol: string;
  /** The ledger's reject code, 0 when held. */
  readonly code: RejectCode | 0;
  /** A resend of a known client order id: nothing was executed. */
  readonly duplicate: boolean;
}

/** The book's knowledge of one order: accepted, rejected with a code, or not seen yet. */
export type BookOutcome = { readonly state: 'accepted' } | { readonly state: 'rejected'; readonly code: RejectCode } | { readonly state: 'pending' };

export type LedgerHostCmd = LedgerCommand | { readonly type: '$place'; readonly cmd: Extract<LedgerCommand, { type: 'PlaceOrder' }> };
export type BookHostCmd = BookCommand | { readonly type: '$outcome'; readonly orderId: number };
export type MdHostCmd = MdCommand | { readonly type: '$state' };

/** A reliable saga message on the wire: a routed command; a BookReport names its instrument by symbol. */
interface SagaMessage {
  readonly a: string;
  readonly c: unknown;
}

// ------------------------------------------------------------------ wrapper states

interface Wrapped<S> {
  id: string | undefined;
  s: S | undefined;
  /** The entity's clock: the latest `ts` of its events (see `clamp`). */
  t: number;
}

/**
 * Commands reach an entity from several senders (the gateway, each ledger, each book), each stamped
 * at its own ingress, so they can arrive out of `ts` order; the machines refuse time that goes
 * backwards. An entity therefore runs a command stamped before its clock at its clock. This is a
 * no-op where inputs arrive in time order (the synchronous Venue), and replay-safe: the events carry
 * the time they were decided at.
 */
function clamp<C>(w: Wrapped<unknown>, c: C): C {
  const ts = (c as { ts?: unknown }).ts;
  return typeof ts === 'number' && ts < w.t ? { ...c, ts: w.t } : c;
}

function clock(w: Wrapped<unknown>, e: { ts: number }): void {
  if (e.ts > w.t) w.t = e.ts;
}

interface BookW extends Wrapped<BookState> {
  instrument: Instrument | undefined;
  /** orderId → code of new orders the book rejected (bounded). */
  rejects: Map<number, RejectCode>;
  /** accountNo → highest order seq the book has decided (orders reach a book in sequence per account). */
  decided: Map<number, number>;
}

interface CoidEntry {
  readonly orderId: number;
  readonly symbol: string;
  readonly code: RejectCode | 0;
}

interface LedgerW extends Wrapped<LedgerState> {
  coids: Map<string, CoidEntry>;
}

type MdW = Wrapped<MdState>;

/** What the kinds read from their host: instruments (configured and defined at run time) and the account registry. */
export interface HostDirectory {
  /** Configured and run-time instruments as known on this process (grows when the registry defines one). */
  readonly instruments: ReadonlyMap<string, Instrument>;
  /** The account number of a user account, or undefined when it is not registered. */
  accountNo(account: string): number | undefined;
  /**
   * An entity needed an instrument this process has not heard of yet (defined at run time through
   * another process, its notice late or lost): the host re-reads the registry. The entity's command
   * fails meanwhile (a crash: nothing committed), and its sender tries again (reliable messages are
   * resent; the edge's asks fail and are retried by the client).
   */
  missingInstrument?(symbol: string): void;
}

/** The instrument `symbol` from the directory, or (telling the host) an error. */
function instrumentOf(dir: HostDirectory, symbol: string): Instrument {
  const i = dir.instruments.get(symbol);
  if (i !== undefined) return i;
  dir.missingInstrument?.(symbol);
  throw new Error(`instrument ${symbol} is not known on this process (yet)`);
}

let current: Wrapped<unknown> | undefined;
let nextInit: { w: Wrapped<unknown>; bind: (w: any, id: string) => void } | undefined;

/**
 * Called by `HostJournal.read(persistenceId, 1)`: binds the state the runtime created with `init()`
 * just before (same synchronous turn) to that entity.
 */
export function bindNextInit(persistenceId: string, fromSeq: number): void {
  const n = nextInit;
  nextInit = undefined;
  if (n === undefined || fromSeq !== 1 || n.w.id !== undefined) return;
  const slash = persistenceId.indexOf('/');
  n.bind(n.w, persistenceId.slice(slash + 1));
}

function need<S>(w: Wrapped<S>, what: string): S {
  if (w.s === undefined) throw new Error(`${what} entity used before it was bound to its id`);
  return w.s;
}

// ------------------------------------------------------------------ book

export function bookKind(dir: HostDirectory): EntityKind<BookW, HostCommand<BookHostCmd>, BookEvent, unknown> {
  const machines = new Map<string, StateMachine<BookState, BookCommand, BookEvent>>();
  const machineOf = (symbol: string) => {
    let m = machines.get(symbol);
    if (!m) {
      m = bookMachine(instrumentOf(dir, symbol));
      machines.set(symbol, m);
    }
    return m;
  };
  const bind = (w: BookW, id: string): void => {
    if (w.id !== undefined) return;
    const s = machineOf(id).init(); // throws (state left unbound) when the instrument is unknown here
    w.id = id;
    w.instrument = dir.instruments.get(id);
    w.s = s;
  };
  const track = (w: BookW, e: BookEvent): void => {
    clock(w, e);
    if (e.type === 'OrderAccepted') decide(w, e.orderId);
    else if (e.type === 'CommandRejected' && e.command === 'NewOrder' && e.orderId > 0) {
      decide(w, e.orderId);
      w.rejects.set(e.orderId, e.code);
      if (w.rejects.size > BOOK_REJECTS_MAX) w.rejects.delete(w.rejects.keys().next().value!);
    }
  };
  const machine: StateMachine<BookW, HostCommand<BookHostCmd>, BookEvent> = {
    kind: 'book',
    init() {
      const w: BookW = { id: undefined, s: undefined, t: 0, instrument: undefined, rejects: new Map(), decided: new Map() };
      nextInit = { w, bind };
      return w;
    },
    step(w, env, out) {
      bind(w, env.a);
      current = w;
      const c = env.c;
      if (c.type === '$outcome') return w;
      const from = out.length;
      w.s = machineOf(w.id!).step(need(w, 'book'), clamp(w, c), out);
      for (let i = from; i < out.length; i++) track(w, out[i]!);
      return w;
    },
    apply(w, e) {
      current = w;
      w.s = machineOf(w.id!).apply(need(w, 'book'), e);
      track(w, e);
      return w;
    },
    snapshot: (w) => ({ id: w.id, t: w.t, s: machineOf(w.id!).snapshot(need(w, 'book')), r: [...w.rejects], d: [...w.decided] }),
    restore(x) {
      const snap = x as { id: string; t: number; s: unknown; r: [number, RejectCode][]; d: [number, number][] };
      current = undefined;
      return { id: snap.id, t: snap.t, s: machineOf(snap.id).restore(snap.s), instrument: dir.instruments.get(snap.id), rejects: new Map(snap.r), decided: new Map(snap.d) };
    },
    stateHash: (w) => machineOf(w.id!).stateHash(need(w, 'book')),
  };
  return {
    kind: 'book',
    machine,
    reply(w, env, events): unknown {
      const c = env.c;
      if (c.type === '$outcome') return outcomeOf(w, c.orderId);
      return events.slice();
    },
    outbox(e) {
      const w = current as BookW | undefined;
      if (w?.instrument === undefined) throw new Error('book outbox outside a bound book step');
      const routed: Routed[] = [];
      routeBookEvent(w.instrument, e, routed);
      return routed.length === 0 ? undefined : routed.map(toOutgoing);
    },
    inbound: (_from, m) => fromMessage(dir, m as SagaMessage) as HostCommand<BookHostCmd>,
  };
}

function decide(w: BookW, orderId: number): void {
  const no = Math.floor(orderId / ORDER_SEQ_SPAN);
  const seq = orderId % ORDER_SEQ_SPAN;
  if ((w.decided.get(no) ?? 0) < seq) w.decided.set(no, seq);
}

function outcomeOf(w: BookW, orderId: number): BookOutcome {
  const code = w.rejects.get(orderId);
  if (code !== undefined) return { state: 'rejected', code };
  const seq = orderId % ORDER_SEQ_SPAN;
  if ((w.decided.get(Math.floor(orderId / ORDER_SEQ_SPAN)) ?? 0) >= seq) return { state: 'accepted' };
  return { state: 'pending' };
}

// ------------------------------------------------------------------ ledger

export function ledgerKind(dir: HostDirectory): EntityKind<LedgerW, HostCommand<LedgerHostCmd>, LedgerEvent, unknown> {
  // A ledger machine's step/apply/snapshot do not depend on its config; only init() does.
  const any = ledgerMachine({ account: '-', accountNo: 0, kind: 'user' });
  const bind = (w: LedgerW, id: string, no?: number, recovering = false): void => {
    if (w.id !== undefined) return;
    const kind = id === FEES_ACCOUNT ? 'fees' : id === CLEARING_ACCOUNT ? 'clearing' : 'user';
    const accountNo = id === FEES_ACCOUNT ? 1 : id === CLEARING_ACCOUNT ? 2 : (dir.accountNo(id) ?? (Number.isSafeInteger(no) && no! > 2 ? no : undefined));
    // Recovering an account this node has not heard of: stay unbound; the first command carrying its
    // number binds it (a brand-new account has no events to replay), anything else fails below.
    if (accountNo === undefined && recovering) return;
    if (accountNo === undefined) throw new Error(`account ${id} is not registered`);
    w.id = id;
    w.s = ledgerMachine({ account: id, accountNo, kind }).init();
  };
  const track = (w: LedgerW, e: LedgerEvent): void => {
    clock(w, e);
    if (e.type === 'OrderHeld') {
      if (e.clientOrderId !== undefined && !w.coids.has(e.clientOrderId)) remember(w, e.clientOrderId, { orderId: e.orderId, symbol: e.symbol, code: 0 });
    } else if (e.type === 'LedgerRejected' && e.command === 'PlaceOrder' && e.clientOrderId !== undefined) {
      // A duplicate of an open order, or an id that is not one, is not the first answer for that id.
      if (e.code !== Reject.RISK_DUPLICATE_ORDER && e.code !== Reject.ORDER_INVALID_CLIENT_ORDER_ID && !w.coids.has(e.clientOrderId)) {
        remember(w, e.clientOrderId, { orderId: 0, symbol: '', code: e.code });
      }
    }
  };
  const machine: StateMachine<LedgerW, HostCommand<LedgerHostCmd>, LedgerEvent> = {
    kind: 'ledger',
    init() {
      const w: LedgerW = { id: undefined, s: undefined, t: 0, coids: new Map() };
      nextInit = { w, bind: (x: LedgerW, id: string) => bind(x, id, undefined, true) };
      return w;
    },
    step(w, env, out) {
      bind(w, env.a, env.n);
      current = w;
      let c = env.c;
      if (c.type === '$place') {
        const coid = c.cmd.clientOrderId;
        if (typeof coid === 'string' && w.coids.has(coid)) return w; // answered from memory by reply()
        c = c.cmd;
      } else if (c.type === 'BookReport' && typeof (c.instrument as unknown) === 'string') c = withInstrument(dir, need(w, 'ledger'), c as unknown as { instrument: string });
      const from = out.length;
      w.s = any.step(need(w, 'ledger'), clamp(w, c), out);
      for (let i = from; i < out.length; i++) track(w, out[i]!);
      return w;
    },
    apply(w, e) {
      current = w;
      w.s = any.apply(need(w, 'ledger'), e);
      track(w, e);
      return w;
    },
    snapshot: (w) => ({ id: w.id, t: w.t, s: any.snapshot(need(w, 'ledger')), c: [...w.coids].map(([k, v]) => [k, v.orderId, v.symbol, v.code]) }),
    restore(x) {
      const snap = x as { id: string; t: number; s: unknown; c: [string, number, string, RejectCode | 0][] };
      current = undefined;
      return { id: snap.id, t: snap.t, s: any.restore(snap.s), coids: new Map(snap.c.map(([k, orderId, symbol, code]) => [k, { orderId, symbol, code }])) };
    },
    stateHash: (w) => any.stateHash(need(w, 'ledger')),
  };
  return {
    kind: 'account',
    machine,
    reply(w, env, events): unknown {
      const c = env.c;
      if (c.type !== '$place') return events.slice();
      const coid = c.cmd.clientOrderId;
      for (const e of events) {
        if (e.type === 'OrderHeld') return { orderId: e.orderId, symbol: e.symbol, code: 0, duplicate: false } satisfies PlaceReply;
        if (e.type === 'LedgerRejected') return { orderId: 0, symbol: '', code: e.code, duplicate: false } satisfies PlaceReply;
      }
      const known = typeof coid === 'string' ? w.coids.get(coid) : undefined;
      if (known) return { orderId: known.orderId, symbol: known.symbol, code: known.code, duplicate: true } satisfies PlaceReply;
      return { orderId: 0, symbol: '', code: Reject.ACTOR_UNKNOWN_COMMAND, duplicate: false } satisfies PlaceReply;
    },
    outbox(e) {
      const w = current as LedgerW | undefined;
      if (w?.id === undefined) throw new Error('ledger outbox outside a bound ledger step');
      const routed: Routed[] = [];
      // The ledger's own instruments (its state, as of this event live and on replay), not the directory's.
      routeLedgerEvent(w.id, e, need(w, 'ledger').instruments, routed);
      return routed.length === 0 ? undefined : routed.map(toOutgoing);
    },
    inbound: (_from, m) => fromMessage(dir, m as SagaMessage) as HostCommand<LedgerHostCmd>,
  };
}

/**
 * A book report whose symbol this process's directory does not know (an instrument defined at run
 * time, heard of late here): the ledger registered it when it held the order the report is about,
 * so its own state has the definition. Neither: the report waits (see `missingInstrument`).
 */
function withInstrument(dir: HostDirectory, s: LedgerState, c: { readonly instrument: string }): LedgerCommand {
  const i = s.instruments.get(c.instrument) ?? instrumentOf(dir, c.instrument);
  return { ...c, instrument: i } as unknown as LedgerCommand;
}

function remember(w: LedgerW, coid: string, entry: CoidEntry): void {
  w.coids.set(coid, entry);
  if (w.coids.size > CLIENT_IDS_MAX) w.coids.delete(w.coids.keys().next().value!);
}

// ------------------------------------------------------------------ market data

export function mdKind(): EntityKind<MdW, HostCommand<MdHostCmd>, MdEvent, unknown> {
  const machines = new Map<string, StateMachine<MdState, MdCommand, MdEvent>>();
  const machineOf = (symbol: string) => {
    let m = machines.get(symbol);
    if (!m) machines.set(symbol, (m = marketDataMachine(symbol)));
    return m;
  };
  const bind = (w: MdW, id: string): void => {
    if (w.id !== undefined) return;
    w.id = id;
    w.s = machineOf(id).init();
  };
  const machine: StateMachine<MdW, HostCommand<MdHostCmd>, MdEvent> = {
    kind: 'md',
    init() {
      const w: MdW = { id: undefined, s: undefined, t: 0 };
      nextInit = { w, bind };
      return w;
    },
    step(w, env, out) {
      bind(w, env.a);
      current = w;
      if (env.c.type === '$state') return w;
      const from = out.length;
      w.s = machineOf(w.id!).step(need(w, 'md'), clamp(w, env.c), out);
      for (let i = from; i < out.length; i++) clock(w, out[i]!);
      return w;
    },
    apply(w, e) {
      current = w;
      w.s = machineOf(w.id!).apply(need(w, 'md'), e);
      clock(w, e);
      return w;
    },
    snapshot: (w) => ({ id: w.id, t: w.t, s: machineOf(w.id!).snapshot(need(w, 'md')) }),
    restore(x) {
      const snap = x as { id: string; t: number; s: unknown };
      current = undefined;
      return { id: snap.id, t: snap.t, s: machineOf(snap.id).restore(snap.s) };
    },
    stateHash: (w) => machineOf(w.id!).stateHash(need(w, 'md')),
  };
  return {
    kind: 'md',
    machine,
    // `$state` answers a copy of the committed state (released once every earlier event is committed).
    reply: (w, env, events) => (env.c.type === '$state' ? machineOf(w.id!).snapshot(need(w, 'md')) : events.slice()),
    inbound: (_from, m) => m as HostCommand<MdHostCmd>,
  };
}

// ------------------------------------------------------------------ registry (accounts and instruments)

export interface RegistryState {
  readonly accounts: Map<string, number>;
  next: number;
  /** Instruments defined at run time (`DefineInstrument`), by symbol; configured ones are not here. */
  readonly instruments: Map<string, Instrument>;
}
export type RegistryCommand =
  | { readonly type: 'OpenAccount'; readonly account: string }
  | { readonly type: 'List' }
  | { readonly type: 'DefineInstrument'; readonly ts: number; readonly instrument: Instrument }
  | { readonly type: 'ListInstruments' };
export interface AccountOpened {
  readonly type: 'AccountOpened';
  readonly account: string;
  readonly accountNo: number;
}
/** An instrument defined at run time (the durable record; `instrument` is the canonical definition). */
export interface InstrumentDefined {
  readonly type: 'InstrumentDefined';
  readonly ts: number;
  readonly instrument: Instrument;
}
export type RegistryEvent = AccountOpened | InstrumentDefined;
/** The registry's answer to `DefineInstrument`: the definition in force (new or identical), or why not. */
export type DefineReply = { readonly code: 0; readonly instrument: Instrument } | { readonly code: RejectCode; readonly message: string };

/**
 * Adds `i`, an instrument the registry defined (heard from a notice or a re-read), to a process's
 * `known` instruments. A known symbol keeps its definition (a different one is reported: the registry
 * refuses conflicting definitions, so that only happens when the configuration changed after a
 * run-time definition); an invalid one is reported and ignored. True when `i` was new here.
 */
export function learnInstrument(known: Map<string, Instrument>, i: Instrument, report: (error: Error) => void): boolean {
  if (typeof i !== 'object' || i === null) return false;
  const had = known.get(i.symbol);
  if (had !== undefined) {
    if (!sameInstrument(had, i)) report(new Error(`instrument ${had.symbol}: the registry's definition differs from this process's; keeping this process's`));
    return false;
  }
  const problems = validateInstrument(i);
  if (problems.length) {
    report(new Error(`instrument ${String(i.symbol)} from the registry is invalid: ${problems.join('; ')}`));
    return false;
  }
  known.set(i.symbol, i);
  return true;
}

/** Why `instrument` cannot be defined next to `known` (configured or defined before), or undefined when it can (or already is). */
export function defineProblem(instrument: unknown, known: Instrument | undefined): { code: RejectCode; message: string } | undefined {
  let problems: string[];
  try {
    problems = typeof instrument === 'object' && instrument !== null ? validateInstrument(instrument as Instrument) : ['definition: an object'];
  } catch {
    problems = ['definition: malformed'];
  }
  if (problems.length) return { code: Reject.ADMIN_INVALID_INSTRUMENT, message: problems.join('; ') };
  if (known !== undefined && !sameInstrument(known, instrument as Instrument)) {
    return { code: Reject.ADMIN_INSTRUMENT_EXISTS, message: `${known.symbol} exists with a different definition` };
  }
  return undefined;
}

/**
 * `venue/registry`: the venue's directory. User accounts and their numbers (3, 4, …; 1 = fees,
 * 2 = clearing), as the sync Venue numbers them; and the instruments defined at run time, next to
 * the `configured` ones (which it refuses to redefine differently). Defining a symbol again with the
 * identical definition is answered as the first time, with no event, so a resent define is harmless.
 */
export function registryKind(accountNoMax: number, configured: ReadonlyMap<string, Instrument> = new Map()): EntityKind<RegistryState, RegistryCommand, RegistryEvent, unknown> {
  const apply = (s: RegistryState, e: RegistryEvent): RegistryState => {
    if (e.type === 'InstrumentDefined') {
      s.instruments.set(e.instrument.symbol, e.instrument);
      return s;
    }
    s.accounts.set(e.account, e.accountNo);
    s.next = Math.max(s.next, e.accountNo + 1);
    return s;
  };
  const known = (s: RegistryState, symbol: unknown): Instrument | undefined =>
    typeof symbol === 'string' ? (configured.get(symbol) ?? s.instruments.get(symbol)) : undefined;
  const symbolOf = (i: unknown): unknown => (typeof i === 'object' && i !== null ? (i as { symbol?: unknown }).symbol : undefined);
  // `i` only when instruments were defined: the snapshot of a registry without any keeps its old shape.
  const snapshot = (s: RegistryState) => ({
    a: [...s.accounts],
    n: s.next,
    ...(s.instruments.size > 0 ? { i: [...s.instruments.values()].sort((x, y) => (x.symbol < y.symbol ? -1 : 1)).map(instrumentRow) } : {}),
  });
  return {
    kind: 'venue',
    machine: {
      kind: 'registry',
      init: () => ({ accounts: new Map(), next: 3, instruments: new Map() }),
      step(s, c, out) {
        if (c.type === 'DefineInstrument') {
          const k = known(s, symbolOf(c.instrument));
          if (k !== undefined || defineProblem(c.instrument, undefined) !== undefined || !Number.isSafeInteger(c.ts) || c.ts < 0) return s;
          const e: InstrumentDefined = { type: 'InstrumentDefined', ts: c.ts, instrument: canonicalInstrument(c.instrument) };
          out.push(e);
          return apply(s, e);
        }
        if (c.type !== 'OpenAccount' || s.accounts.has(c.account) || s.next > accountNoMax) return s;
        const e: AccountOpened = { type: 'AccountOpened', account: c.account, accountNo: s.next };
        out.push(e);
        return apply(s, e);
      },
      apply,
      snapshot,
      restore: (x) => {
        const y = x as { a: [string, number][]; n: number; i?: unknown[][] };
        const instruments = new Map<string, Instrument>();
        for (const row of y.i ?? []) {
          const i = instrumentFromRow(row);
          instruments.set(i.symbol, i);
        }
        return { accounts: new Map(y.a), next: y.n, instruments };
      },
      stateHash: (s) => JSON.stringify(snapshot(s)),
    },
    reply: (s, c) => {
      switch (c.type) {
        case 'OpenAccount':
          return s.accounts.get(c.account) ?? 0;
        case 'DefineInstrument': {
          if (!Number.isSafeInteger(c.ts) || c.ts < 0) return { code: Reject.ADMIN_INVALID_INSTRUMENT, message: 'bad ts' } satisfies DefineReply;
          const k = known(s, symbolOf(c.instrument));
          const problem = defineProblem(c.instrument, k);
          return (problem ?? { code: 0, instrument: k! }) satisfies DefineReply;
        }
        case 'ListInstruments':
          return [...s.instruments.values()];
        default:
          return [...s.accounts];
      }
    },
  };
}

// ------------------------------------------------------------------ messages

export const addressOf = (r: Routed): string => (r.to === 'book' ? `book/${r.symbol}` : r.to === 'md' ? `md/${r.symbol}` : `account/${r.account}`);

function toOutgoing(r: Routed): Outgoing {
  if (r.to === 'ledger') {
    const c = r.cmd;
    // The instrument travels as its symbol; the receiver looks it up (static configuration).
    const wire = c.type === 'BookReport' ? { ...c, instrument: c.instrument.symbol } : c;
    return { to: `account/${r.account}`, message: { a: r.account, c: wire } satisfies SagaMessage };
  }
  return { to: addressOf(r), message: { a: r.symbol, c: r.cmd } satisfies SagaMessage };
}

function fromMessage(dir: HostDirectory, m: SagaMessage): HostCommand<unknown> {
  const c = m.c as { type: string; instrument?: unknown };
  if (c.type === 'BookReport' && typeof c.instrument === 'string') {
    const i = dir.instruments.get(c.instrument);
    // Unknown here: stays a symbol, resolved by the ledger from its own state (`withInstrument`).
    if (i !== undefined) return { a: m.a, c: { ...c, instrument: i } };
  }
  return m;
}
