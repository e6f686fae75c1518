import { dispatch, spawn, spawnStateless, start, stop } from 'nact';
import type { Ref } from 'nact';
import { pack, unpack } from 'msgpackr';
import type { Address } from './address.js';
import { kindOf } from './address.js';
import type { Clock, TimerHandle } from './clock.js';
import { RealClock } from './clock.js';
import type { EntityKind, EffectContext } from './entity.js';
import {
  ActorCrashedError,
  AskTimeoutError,
  JournalFailedError,
  MailboxFullError,
  NodeStoppedError,
  RecoveryFailedError,
  RemoteActorError,
  StaleWriterError,
  UnknownKindError,
  UnreachableError,
} from './errors.js';
import type { CommitParticipant, GroupCommitOptions } from './group-commit.js';
import { GroupCommitter } from './group-commit.js';
import type { Journal } from './journal.js';
import type { RequestSink, Transport, TransportBinding, TransportEndpoint } from './transport.js';
import { InProcessTransport } from './transport.js';
import type { WireAsk, WireReliable, WireReliableAck, WireReply, WireTell } from './wire.js';

export interface PassivationOptions {
  /** Passivate an entity idle this long (ms). Default 60 000. */
  idleMs?: number;
  /** Cap on active entities; beyond it the least recently used idle ones are passivated. Default 100 000. */
  activeEntitiesMax?: number;
  /** How often to look for idle entities (ms). Default idleMs / 2. */
  sweepMs?: number;
}

export interface RestartOptions {
  /** First restart delay (ms). Default 10. */
  backoffMsMin?: number;
  /** Cap on the delay (ms). Default 5 000. */
  backoffMsMax?: number;
  /** After running this long without failing, the next failure starts again at the minimum. Default 10 000. */
  backoffResetMs?: number;
}

export interface ReliableOptions {
  /** Resend unacknowledged messages after this long (ms). Default 200. */
  resendMs?: number;
  /** Unacknowledged messages in flight per receiver. Default 64. */
  windowMax?: number;
  /** Timeout of one delivery attempt (ms). Default resendMs. */
  attemptTimeoutMs?: number;
  /** Most messages to one receiver in one transport message. Default 256. */
  batchMax?: number;
  /**
   * A sender journals the acknowledgements it received (an `ack` record) with its next events; with
   * none, once this many acknowledged messages to one receiver are not journaled yet, or when nothing
   * is left unacknowledged. Until then a restart resends them (the receiver drops the duplicates).
   * Default 256; 1 journals every acknowledgement in the drain that took it.
   */
  ackJournalEvery?: number;
  /**
   * Deliver to a persistent receiver on this node at once, before the sender's events are committed
   * (default false: every message crosses the transport once committed). The receiver's write then
   * commits in the same append as the sender's events or after them, never without them, and fails
   * with them if they fail; its replies and effects wait for its own commit as always, so nothing is
   * visible before everything it rests on is durable. An order's hold and the book's decision then
   * commit in one append instead of two in a row. Receivers on other nodes get only committed
   * messages, over the transport.
   */
  earlyLocal?: boolean;
}

/** What happened to an entity, for logs, metrics and tests. */
export type NodeEvent =
  | { readonly type: 'activated'; readonly address: Address }
  | { readonly type: 'recovered'; readonly address: Address; readonly seq: number; readonly snapshotSeq: number; readonly stashed: number }
  | { readonly type: 'crashed'; readonly address: Address; readonly error: unknown }
  | { readonly type: 'journal-failed'; readonly address: Address; readonly error: unknown }
  | { readonly type: 'stale-writer'; readonly address: Address; readonly error: unknown }
  | { readonly type: 'recovery-failed'; readonly address: Address; readonly error: unknown }
  | { readonly type: 'restart-scheduled'; readonly address: Address; readonly delayMs: number; readonly attempt: number }
  | { readonly type: 'passivated'; readonly address: Address; readonly reason: 'idle' | 'lru' }
  /** Capturing or saving a snapshot failed, or deleting the older ones after it (`snapshotsKept`); the entity is unaffected. */
  | { readonly type: 'snapshot-failed'; readonly address: Address; readonly error: unknown }
  | { readonly type: 'effect-failed'; readonly address: Address; readonly error: unknown };

export interface ActorNodeOptions {
  readonly nodeId: string;
  readonly kinds: readonly EntityKind[];
  /** Required when any kind is persistent. */
  readonly journal?: Journal;
  /** Default: a private {@link InProcessTransport}. */
  readonly transport?: Transport;
  /** Default: {@link RealClock}. */
  readonly clock?: Clock;
  readonly groupCommit?: GroupCommitOptions;
  readonly passivation?: PassivationOptions;
  readonly restart?: RestartOptions;
  readonly reliable?: ReliableOptions;
  /** Snapshot every this many events unless the kind says otherwise. Default 1000; 0 = never. */
  readonly snapshotEventsEvery?: number;
  /**
   * Snapshots kept per entity: after one is saved, older ones past the newest this many are deleted
   * (`Journal.keepSnapshots`; recovery loads only the newest). Default 2; 0 = keep every snapshot.
   * Events are never deleted: they are the record (and private streams replay from them).
   */
  readonly snapshotsKept?: number;
  /**
   * A large snapshot is taken less often: after a snapshot of B bytes, the next one waits for at least
   * `B × snapshotEventsPerByte` events (and never fewer than the kind's interval, never more than
   * `snapshotEventsMaxFactor` times it). Default 0.1, i.e. one event per 10 bytes; 0 = a fixed interval.
   *
   * Why: a snapshot costs time in proportion to its bytes (encoded on this thread, then written in
   * one statement, which holds an embedded store's only session), and replaying events after it costs
   * time in proportion to their count. A market maker's ledger carries up to 100 000 clientOrderIds
   * (about 3.2 MB), snapshotted every 50 000 events at a fixed interval; on a node whose ledgers had
   * reached that size, ack p99 at 3000 orders/s was 217-347 ms, and 90-121 ms with no snapshots at all
   * (same data directory, side by side). `snapshotOnStop` keeps a planned restart's replay short.
   */
  readonly snapshotEventsPerByte?: number;
  /** The most a snapshot interval grows by `snapshotEventsPerByte`, as a multiple of the kind's. Default 8. */
  readonly snapshotEventsMaxFactor?: number;
  /**
   * `stop()` (graceful) snapshots every entity whose journal tail is at least its kind's interval
   * (so a large entity, snapshotted less often, still restarts without a long replay after a planned
   * stop; a crash replays the tail). Default true.
   */
  readonly snapshotOnStop?: boolean;
  /** Unprocessed commands an entity holds (mailbox and stash). Default 100 000. */
  readonly mailboxCommandsMax?: number;
  /** Whether this node hosts `address` now (shard ownership). Default: every address of a known kind. */
  serves?(address: Address): boolean;
  /**
   * Called when an entity's unacknowledged outgoing messages may have gone from none to some or back
   * (after a drain, before its events reach the group commit; and after each recovery). The cluster
   * keeps its per-shard registry of entities to wake after a failover with this.
   */
  onOutboxChange?(address: Address): void;
  onEvent?(event: NodeEvent): void;
}

// ------------------------------------------------------------------ internals

const enum Status {
  Recovering,
  Active,
  /** Crashed or failed; a restart is scheduled (or waits for outstanding commits). */
  Down,
  /** Passivated, stale or node stopped: the cell is gone from the table. */
  Gone,
}

interface ReplySink {
  ok(value: unknown): void;
  fail(error: unknown): void;
}

const enum In {
  Command,
  Reliable,
  Ack,
}

/**
 * A mailbox entry that is not a bare fire-and-forget command. Bare commands (the hot path) go into
 * the mailbox as they are; everything else is wrapped in this class, told apart by `instanceof`.
 */
class Envelope {
  constructor(
    readonly k: In,
    readonly cmd: unknown,
    readonly reply: ReplySink | undefined,
    /** Reliable: sender; Ack: receiver. */
    readonly peer: Address = '',
    /** Reliable: pair sequence (of `cmd`); Ack: receiver's high-water mark. */
    readonly seq: number = 0,
    /** Reliable: the messages `seq + 1 …` that travelled with `cmd`. */
    readonly more: readonly unknown[] | undefined = undefined,
  ) {}
  /** Reliable, delivered on this node before the sender's events committed: what it rests on. */
  early: EarlyDep | undefined = undefined;
}

/** A local sender's uncommitted events that a directly delivered message came from. */
interface EarlyDep {
  readonly sender: Cell;
  /** The sender's epoch at sending: if it moved, those events were thrown away. */
  readonly epoch: number;
  /** The highest journal sequence of the sender events behind the message. */
  readonly evSeq: number;
}

/**
 * Runtime records in the journal, beside domain events. Domain events must not have a `$rt` key.
 * A drain writes at most one of each per peer: `recv` with the highest sequence it consumed from that
 * sender (in the same append as the commands' events), `ack` with the highest acknowledgement.
 */
type Marker =
  /** The reliable messages from `from` up to `seq` were consumed; their commands' events are in the same append. */
  | { readonly $rt: 'recv'; readonly from: Address; readonly seq: number }
  /** The receiver `to` acknowledged our messages up to `upTo`. */
  | { readonly $rt: 'ack'; readonly to: Address; readonly upTo: number };

/** A `recv` marker of the drain being built: later messages from the same sender raise its `seq`. */
interface RecvMarker {
  readonly $rt: 'recv';
  readonly from: Address;
  seq: number;
}

function isMarker(rec: unknown): rec is Marker {
  return rec !== null && typeof rec === 'object' && (rec as { $rt?: unknown }).$rt !== undefined;
}

interface OutMessage {
  readonly seq: number;
  /** Journal sequence of the event that sent it: it may leave once that is committed. */
  readonly evSeq: number;
  readonly msg: unknown;
}

interface OutPair {
  /** The receiver (also the key in `Cell.out`; kept here so the hot loops iterate values only). */
  readonly to: Address;
  /** Last pair sequence assigned. */
  next: number;
  /** Highest pair sequence the receiver acknowledged. */
  acked: number;
  /** Highest pair sequence sent in the current round. */
  sentUpTo: number;
  /** Highest acknowledgement in the journal (or in the snapshot); `acked` may be ahead. */
  logged: number;
  /** `acked` when the resend timer last fired. */
  tickAcked: number;
  /** An attempt failed, or its answer did not cover everything it carried, since the timer last fired. */
  failed: boolean;
  pending: OutMessage[];
}

interface HeldReply {
  readonly w: number;
  readonly sink: ReplySink;
  readonly value: unknown;
}

interface SnapshotBody {
  readonly v: 1;
  readonly s: unknown;
  readonly hwm: [Address, number][];
  readonly out: [Address, number, number, [number, number, unknown][]][];
}

class Cell implements CommitParticipant {
  status = Status.Recovering;
  inbox: unknown[] = [];
  scheduled = false;
  ref: Ref<unknown> | undefined;
  incarnation = 0;
  epoch = 0;
  state: unknown;
  seq = 0;
  committedSeq = 0;
  snapshotSeq = 0;
  /** Events until the next snapshot, from `snapshotSeq`: the kind's interval, grown for a large snapshot. */
  snapshotEvery = 0;
  hwm = new Map<Address, number>();
  out = new Map<Address, OutPair>();
  outPending = 0;
  /** Receivers whose acknowledgement is ahead of the journal (`acked > logged`). */
  ackDirty: Address[] = [];
  held: HeldReply[] = [];
  /** Domain events not yet committed (kept only when the kind has effects). */
  uncommitted: { seq: number; e: unknown }[] = [];
  snapshotCapture: { seq: number; data: Uint8Array } | undefined;
  restarts = 0;
  activeSince = 0;
  lastTouchMs = 0;
  restartTimer: TimerHandle | undefined;
  resendTimer: TimerHandle | undefined;
  restartWhenSettled = false;
  /** Called once everything this cell decided is committed or failed (used by `release`). */
  settleWaiters: (() => void)[] = [];
  /** Local senders whose uncommitted events this cell's buffered events rest on (sender -> evSeq). */
  dependsOn: Map<Cell, number> | undefined;
  /** Cells that consumed this cell's messages before they were committed. */
  dependents: Set<Cell> | undefined;

  constructor(
    readonly node: ActorNode,
    readonly address: Address,
    readonly kind: KindRuntime,
  ) {}

  get persistenceId(): string {
    return this.address;
  }

  committed(epoch: number, toSeq: number): void {
    this.node.onCommitted(this, epoch, toSeq);
  }

  failed(epoch: number, error: unknown, stale: boolean): void {
    this.node.onCommitFailed(this, epoch, error, stale);
  }
}

interface KindRuntime {
  readonly def: EntityKind;
  readonly persistent: boolean;
  readonly snapshotEvery: number;
  parent: Ref<unknown> | undefined;
}

/** Wraps a command's outcome as a {@link WireReply} for a transport sink. */
class AskSink implements ReplySink {
  constructor(private readonly sink: RequestSink) {}
  ok(v: unknown): void {
    this.sink.ok({ ok: true, v } satisfies WireReply);
  }
  fail(e: unknown): void {
    this.sink.ok({ ok: false, e: { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) } } satisfies WireReply);
  }
}

/** Wraps a reliable message's high-water mark as a {@link WireReliableAck}. */
class RelSink implements ReplySink {
  constructor(private readonly sink: RequestSink) {}
  ok(v: unknown): void {
    this.sink.ok({ t: 'ack', hwm: v as number } satisfies WireReliableAck);
  }
  fail(e: unknown): void {
    this.sink.fail(e);
  }
}

const DRAIN = 0;
const RECOVER = 1;

let systemCounter = 0;

/**
 * One node of the actor runtime: it hosts entities of the registered kinds, addressed `kind/id`,
 * each as a nact actor. Commands become events through the kind's state machine; events are written
 * by the node's group commit; replies, effects and reliable messages are released only after the
 * commit. See the package README for the guarantees and the knobs.
 *
 * @example
 *   const node = new ActorNode({ nodeId: 'n1', journal: new MemoryJournal(), kinds: [accountKind] });
 *   await node.ask('account/a', { type: 'Deposit', amount: 100 }, 1000);
 *   await node.stop();
 */
export class ActorNode {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly transport: Transport;
  private readonly journal: Journal | undefined;
  /** The node's group commit (undefined without a journal); the cluster adds companion writes to it. */
  readonly committer: GroupCommitter | undefined;
  private readonly onOutboxChange: ((a: Address) => void) | undefined;
  private readonly kinds = new Map<string, KindRuntime>();
  /** Live cells in least-recently-used order (touching re-inserts). */
  private readonly cells = new Map<Address, Cell>();
  private readonly system: Ref<never>;
  private readonly binding: TransportBinding;
  private readonly onEvent: ((e: NodeEvent) => void) | undefined;
  private readonly servesFn: ((a: Address) => boolean) | undefined;
  private readonly idleMs: number;
  private readonly snapshotsKept: number;
  private readonly snapshotEventsPerByte: number;
  private readonly snapshotEventsMaxFactor: number;
  private readonly snapshotOnStop: boolean;
  /** Snapshot saves under way (`stop` waits for them). */
  private readonly snapshotSaves = new Set<Promise<unknown>>();
  private readonly activeEntitiesMax: number;
  private readonly sweepTimerMs: number;
  private sweepTimer: TimerHandle | undefined;
  private readonly backoffMsMin: number;
  private readonly backoffMsMax: number;
  private readonly backoffResetMs: number;
  private readonly resendMs: number;
  private readonly windowMax: number;
  private readonly attemptTimeoutMs: number;
  private readonly batchMax: number;
  private readonly ackJournalEvery: number;
  private readonly mailboxCommandsMax: number;
  private readonly earlyLocal: boolean;
  private stopped = false;
  private readonly step: unknown[] = [];
  /** Whether the entity being drained had unacknowledged outgoing messages when its drain began. */
  private outBefore = false;
  private entityCounter = 0;
  /** Entities whose drain waits for room in the group commit. */
  private paused = new Set<Cell>();
  /** Counters for tests and metrics. */
  readonly stats = {
    commands: 0,
    crashes: 0,
    restarts: 0,
    journalFailures: 0,
    staleWriters: 0,
    passivations: 0,
    activations: 0,
    duplicatesDropped: 0,
    reliableSent: 0,
    /** Transport messages that carried the reliable messages (several per message when batched). */
    reliableBatches: 0,
    /** Of those, delivered straight to a receiver on this node (see `ReliableOptions.earlyLocal`). */
    localBatches: 0,
    /** Entities failed because messages they consumed came from events that failed to commit. */
    dependentFailures: 0,
    mailboxFull: 0,
    backpressurePauses: 0,
  };

  constructor(options: ActorNodeOptions) {
    this.nodeId = options.nodeId;
    this.clock = options.clock ?? new RealClock();
    this.transport = options.transport ?? new InProcessTransport({ clock: this.clock });
    this.journal = options.journal;
    this.onEvent = options.onEvent;
    this.servesFn = options.serves;
    this.onOutboxChange = options.onOutboxChange;
    const p = options.passivation ?? {};
    this.idleMs = p.idleMs ?? 60_000;
    this.snapshotsKept = Math.max(0, options.snapshotsKept ?? 2);
    this.snapshotEventsPerByte = Math.max(0, options.snapshotEventsPerByte ?? 0.1);
    this.snapshotEventsMaxFactor = Math.max(1, options.snapshotEventsMaxFactor ?? 8);
    this.snapshotOnStop = options.snapshotOnStop ?? true;
    this.activeEntitiesMax = p.activeEntitiesMax ?? 100_000;
    this.sweepTimerMs = p.sweepMs ?? Math.max(1, this.idleMs / 2);
    const r = options.restart ?? {};
    this.backoffMsMin = r.backoffMsMin ?? 10;
    this.backoffMsMax = r.backoffMsMax ?? 5_000;
    this.backoffResetMs = r.backoffResetMs ?? 10_000;
    const rel = options.reliable ?? {};
    this.resendMs = rel.resendMs ?? 200;
    this.windowMax = rel.windowMax ?? 64;
    this.attemptTimeoutMs = rel.attemptTimeoutMs ?? this.resendMs;
    this.batchMax = Math.max(1, rel.batchMax ?? 256);
    this.ackJournalEvery = Math.max(1, rel.ackJournalEvery ?? 256);
    this.earlyLocal = rel.earlyLocal ?? false;
    this.mailboxCommandsMax = options.mailboxCommandsMax ?? 100_000;
    this.system = start({ name: `bourse-${options.nodeId.replace(/[^a-z0-9-]/gi, '_')}-${++systemCounter}` } as never);
    let anyPersistent = false;
    for (const def of options.kinds) {
      if (this.kinds.has(def.kind)) throw new Error(`kind '${def.kind}' registered twice`);
      const persistent = def.persistent ?? true;
      if (!persistent && def.outbox) throw new Error(`kind '${def.kind}': reliable messages (outbox) need a persistent kind`);
      anyPersistent ||= persistent;
      const parent = spawnStateless(this.system, () => undefined, `k${this.kinds.size}`);
      this.kinds.set(def.kind, { def, persistent, snapshotEvery: def.snapshotEventsEvery ?? options.snapshotEventsEvery ?? 1000, parent });
    }
    if (anyPersistent && this.journal === undefined) throw new Error('a persistent kind needs a journal');
    this.committer = this.journal ? new GroupCommitter(this.journal, this.clock, options.groupCommit) : undefined;
    if (this.committer) this.committer.onRoom = () => this.resumePaused();
    const endpoint: TransportEndpoint = {
      nodeId: this.nodeId,
      serves: (a) => this.serves(a),
      onDeliver: (to, m) => this.onDeliver(to, m),
      onRequest: (to, m) => this.onRequest(to, m),
      onRequestSink: (to, m, sink) => this.onRequestSink(to, m, sink),
    };
    this.binding = this.transport.bind(endpoint);
    this.armSweep();
  }

  // ---------------------------------------------------------------- public API

  /** Whether this node hosts `address` (a registered kind, and owned when ownership is configured). */
  serves(address: Address): boolean {
    if (this.stopped) return false;
    const slash = address.indexOf('/');
    if (slash <= 0 || !this.kinds.has(address.slice(0, slash))) return false;
    return this.servesFn === undefined || this.servesFn(address);
  }

  /**
   * Fire and forget: the command reaches the entity at most once (locally: exactly once unless the
   * mailbox is full). Use `ask` to learn the outcome.
   */
  tell(to: Address, command: unknown): void {
    const cell = this.localCell(to);
    if (cell !== undefined) this.enqueue(cell, command);
    else this.transport.deliver(to, { t: 'tell', cmd: command } satisfies WireTell);
  }

  /** Many commands to one entity in one go (one mailbox push per command, one wake-up). */
  tellMany(to: Address, commands: readonly unknown[]): void {
    const cell = this.localCell(to);
    if (cell === undefined) {
      for (const cmd of commands) this.transport.deliver(to, { t: 'tell', cmd } satisfies WireTell);
      return;
    }
    for (const cmd of commands) this.enqueue(cell, cmd);
  }

  /**
   * Request/reply: resolves with the kind's `reply` (default: the events the command caused) once
   * those events are committed; rejects with a typed error (timeout, journal failure, crash, stale
   * writer, mailbox full). A rejection after a timeout or journal failure means "outcome unknown".
   */
  ask<R = unknown>(to: Address, command: unknown, timeoutMs: number): Promise<R> {
    const cell = this.localCell(to);
    if (cell === undefined) {
      return this.transport.request(to, { t: 'ask', cmd: command } satisfies WireAsk, timeoutMs).then((r) => {
        const reply = r as WireReply;
        if (reply.ok) return reply.v as R;
        throw new RemoteActorError(reply.e.name, reply.e.message);
      });
    }
    return new Promise<R>((resolve, reject) => {
      let done = false;
      const timer = this.clock.schedule(timeoutMs, () => {
        if (done) return;
        done = true;
        reject(new AskTimeoutError(to, timeoutMs));
      });
      const sink: ReplySink = {
        ok: (v) => {
          if (done) return;
          done = true;
          this.clock.cancel(timer);
          resolve(v as R);
        },
        fail: (e) => {
          if (done) return;
          done = true;
          this.clock.cancel(timer);
          reject(e);
        },
      };
      this.enqueue(cell, new Envelope(In.Command, command, sink));
    });
  }

  /**
   * Activate entities (recover them) without sending a command, so that those with unacknowledged
   * reliable messages resend them. A node taking over a shard wakes the entities it remembers; the
   * journal cannot list them yet (see README, "Gaps").
   */
  wake(addresses: Iterable<Address>): void {
    for (const a of addresses) this.localCell(a);
  }

  /** Inject a crash into an entity (as if its state machine threw). For tests and the simulator. */
  crash(to: Address): void {
    const cell = this.cells.get(to);
    if (cell === undefined || cell.status === Status.Gone) return;
    this.onCrashed(cell, new Error('injected crash'));
  }

  /** The entity's state hash, or undefined when it is not active here. */
  stateHash(to: Address): string | undefined {
    const cell = this.cells.get(to);
    if (cell === undefined || cell.status !== Status.Active) return undefined;
    return cell.kind.def.machine.stateHash(cell.state);
  }

  /** A read-only view of an active entity's runtime state (for tests and diagnostics). */
  inspect(to: Address): { status: 'recovering' | 'active' | 'down'; seq: number; committedSeq: number; state: unknown; outPending: number } | undefined {
    const cell = this.cells.get(to);
    if (cell === undefined || cell.status === Status.Gone) return undefined;
    const status = cell.status === Status.Active ? 'active' : cell.status === Status.Recovering ? 'recovering' : 'down';
    return { status, seq: cell.seq, committedSeq: cell.committedSeq, state: cell.state, outPending: cell.outPending };
  }

  /** Addresses of live (not passivated) entities, least recently used first. */
  activeAddresses(): Address[] {
    return [...this.cells.keys()];
  }

  /**
   * Resolves when nothing is left to do: no commands queued, no events uncommitted, no entity
   * recovering or down, and no reliable message unacknowledged. Polls on the real event loop, so use
   * it with a real clock (with a manual clock, advance time yourself).
   */
  async quiescent(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.isQuiescent()) return;
      if (Date.now() > deadline) throw new Error(`node ${this.nodeId} not quiescent after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  isQuiescent(): boolean {
    if (this.committer && !this.committer.idle()) return false;
    for (const c of this.cells.values()) {
      if (c.status !== Status.Active || c.inbox.length > 0 || c.seq !== c.committedSeq || c.outPending > 0 || c.held.length > 0) return false;
    }
    return true;
  }

  /**
   * Stop hosting the entities whose address matches (the old owner's half of a shard handoff; call
   * it once `serves` says no for them). Each stops taking commands at once; what it already decided
   * is committed (replies released as usual); commands still queued are forwarded over the transport
   * to whoever serves the address now. Resolves, with how many were released, when all of them have
   * stopped, so the new owner can start them.
   */
  async release(match: (address: Address) => boolean, forwardTimeoutMs = 30_000): Promise<number> {
    const cells = [...this.cells.values()].filter((c) => match(c.address));
    const waits: Promise<void>[] = [];
    for (const cell of cells) {
      this.cells.delete(cell.address);
      this.retire(cell);
      cell.status = Status.Gone;
      const queued = cell.inbox;
      cell.inbox = [];
      for (const m of queued) this.forward(cell.address, m, forwardTimeoutMs);
      if (cell.seq !== cell.committedSeq) waits.push(new Promise((r) => cell.settleWaiters.push(r)));
    }
    await Promise.all(waits);
    return cells.length;
  }

  /** Re-send a queued mailbox entry to the current owner of `to`. */
  private forward(to: Address, m: unknown, timeoutMs: number): void {
    if (!(m instanceof Envelope)) return this.transport.deliver(to, { t: 'tell', cmd: m } satisfies WireTell);
    if (m.k !== In.Command) return; // reliable messages and acks are resent by their senders
    const sink = m.reply!;
    this.transport.request(to, { t: 'ask', cmd: m.cmd } satisfies WireAsk, timeoutMs).then((r) => {
      const reply = r as WireReply;
      if (reply.ok) sink.ok(reply.v);
      else sink.fail(new RemoteActorError(reply.e.name, reply.e.message));
    }, (e: unknown) => sink.fail(e));
  }

  private settled(cell: Cell): void {
    if (cell.settleWaiters.length === 0) return;
    const w = cell.settleWaiters;
    cell.settleWaiters = [];
    for (const f of w) f();
  }

  /** Passivate every idle entity now (as the sweep would, ignoring idle time). */
  passivateAll(): number {
    let n = 0;
    for (const c of [...this.cells.values()]) if (this.passivatable(c)) n += this.passivate(c, 'idle') ? 1 : 0;
    return n;
  }

  /** Graceful stop: wait for buffered events to commit, then stop every entity. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.committer?.drained();
    if (this.snapshotOnStop && this.journal !== undefined) {
      for (const c of this.cells.values()) {
        const every = c.kind.snapshotEvery;
        if (!c.kind.persistent || every <= 0 || c.status !== Status.Active || c.seq !== c.committedSeq || c.seq - c.snapshotSeq < every) continue;
        const snap = this.captureSnapshot(c);
        if (snap !== undefined) this.saveSnapshot(c, snap);
      }
    }
    await Promise.allSettled([...this.snapshotSaves]);
    this.kill();
  }

  /**
   * Stop at once, as a crash would: nothing more is written or sent, pending replies fail with
   * {@link NodeStoppedError} (to a remote client they would simply time out).
   */
  kill(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweepTimer) this.clock.cancel(this.sweepTimer);
    this.binding.close();
    const err = new NodeStoppedError(this.nodeId);
    for (const c of this.cells.values()) {
      c.epoch++;
      this.retire(c);
      for (const h of c.held) h.sink.fail(err);
      c.held = [];
      for (const m of c.inbox) if (m instanceof Envelope) m.reply?.fail(err);
      c.inbox = [];
      this.settled(c);
    }
    this.cells.clear();
    stop(this.system);
  }

  // ---------------------------------------------------------------- transport side

  private onDeliver(to: Address, message: unknown): void {
    const m = message as WireTell;
    if (m.t !== 'tell') return;
    const cell = this.localCell(to);
    if (cell !== undefined) this.enqueue(cell, m.cmd);
  }

  private onRequest(to: Address, message: unknown): Promise<unknown> {
    const m = message as WireAsk | WireReliable;
    if (m.t === 'rel') {
      return new Promise((resolve, reject) => {
        const sink: ReplySink = { ok: (v) => resolve({ t: 'ack', hwm: v as number } satisfies WireReliableAck), fail: reject };
        const cell = this.localCell(to);
        if (cell === undefined) return reject(new UnreachableError(to));
        this.enqueue(cell, new Envelope(In.Reliable, m.msg, sink, m.from, m.seq, m.more));
      });
    }
    // No timer here: the requester's transport times the request out.
    const cell = this.localCell(to);
    if (cell === undefined) return Promise.reject(new UnreachableError(to));
    return new Promise<unknown>((resolve, reject) => this.enqueue(cell, new Envelope(In.Command, m.cmd, { ok: resolve, fail: reject }))).then(
      (v): WireReply => ({ ok: true, v }),
      (e: unknown): WireReply => ({ ok: false, e: { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) } }),
    );
  }

  /** `onRequest` without promises: the answer goes to `sink` (already in wire form). */
  private onRequestSink(to: Address, message: unknown, sink: RequestSink): void {
    const m = message as WireAsk | WireReliable;
    const cell = this.localCell(to);
    if (cell === undefined) return sink.fail(new UnreachableError(to));
    if (m.t === 'rel') this.enqueue(cell, new Envelope(In.Reliable, m.msg, new RelSink(sink), m.from, m.seq, m.more));
    else this.enqueue(cell, new Envelope(In.Command, m.cmd, new AskSink(sink)));
  }

  // ---------------------------------------------------------------- mailbox

  /** The cell for `to` when this node serves it (activating it), else undefined. */
  private localCell(to: Address): Cell | undefined {
    const c = this.cells.get(to);
    if (c !== undefined && (this.servesFn === undefined || this.servesFn(to))) return c;
    if (!this.serves(to)) return undefined;
    return c ?? this.activate(to);
  }

  private enqueue(cell: Cell, m: unknown): void {
    if (cell.inbox.length >= this.mailboxCommandsMax && !(m instanceof Envelope && m.k === In.Ack)) {
      this.stats.mailboxFull++;
      if (m instanceof Envelope) m.reply?.fail(new MailboxFullError(cell.address, this.mailboxCommandsMax));
      return;
    }
    cell.inbox.push(m);
    if (!cell.scheduled && cell.ref !== undefined) {
      cell.scheduled = true;
      dispatch(cell.ref, DRAIN);
    }
  }

  private activate(to: Address): Cell {
    if (this.stopped) throw new NodeStoppedError(this.nodeId);
    const kind = this.kinds.get(kindOf(to));
    if (kind === undefined) throw new UnknownKindError(kindOf(to));
    const cell = new Cell(this, to, kind);
    cell.lastTouchMs = this.clock.now();
    this.cells.set(to, cell);
    this.stats.activations++;
    this.emit({ type: 'activated', address: to });
    this.spawnActor(cell);
    if (this.cells.size > this.activeEntitiesMax) this.evictLru();
    return cell;
  }

  /** Start a nact actor for the cell and begin recovery (or go active at once when not persistent). */
  private spawnActor(cell: Cell): void {
    const inc = ++cell.incarnation;
    cell.scheduled = false;
    cell.restartWhenSettled = false;
    const f = (state: unknown, msg: number): unknown => {
      if (cell.incarnation !== inc) return state;
      if (msg === DRAIN) this.drain(cell);
      else if (msg === RECOVER) return this.recover(cell, inc).then(() => state);
      return state;
    };
    cell.ref = spawn(cell.kind.parent as Ref<never>, f as never, `e${++this.entityCounter}`, {
      onCrash: (_msg: unknown, err: Error, ctx: { stop: symbol }) => {
        if (cell.incarnation === inc) this.onCrashed(cell, err);
        return ctx.stop;
      },
    } as never) as Ref<unknown>;
    if (cell.kind.persistent) {
      cell.status = Status.Recovering;
      dispatch(cell.ref as Ref<number>, RECOVER);
    } else {
      cell.status = Status.Active;
      cell.state = cell.kind.def.machine.init();
      cell.activeSince = this.clock.now();
    }
    if (cell.inbox.length > 0) {
      cell.scheduled = true;
      dispatch(cell.ref as Ref<number>, DRAIN);
    }
  }

  private resumePaused(): void {
    if (this.paused.size === 0 || this.committer!.full()) return;
    const cells = this.paused;
    this.paused = new Set();
    for (const cell of cells) {
      if (cell.ref !== undefined && !cell.scheduled && cell.inbox.length > 0) {
        cell.scheduled = true;
        dispatch(cell.ref as Ref<number>, DRAIN);
      }
    }
  }

  /** Stop the nact actor of a cell (if any) and cancel its timers. */
  private retire(cell: Cell): void {
    cell.incarnation++;
    if (cell.ref !== undefined) stop(cell.ref);
    cell.ref = undefined;
    cell.scheduled = false;
    if (cell.resendTimer) this.clock.cancel(cell.resendTimer);
    cell.resendTimer = undefined;
    if (cell.restartTimer) this.clock.cancel(cell.restartTimer);
    cell.restartTimer = undefined;
  }

  // ---------------------------------------------------------------- the hot path

  private drain(cell: Cell): void {
    cell.scheduled = false;
    if (cell.status !== Status.Active) return; // stashed until recovery ends
    const batch = cell.inbox;
    if (batch.length === 0) return;
    if (cell.kind.persistent && this.committer!.full()) {
      // Backpressure: the journal is behind; leave the mailbox as it is until the next append settles.
      this.paused.add(cell);
      this.stats.backpressurePauses++;
      return;
    }
    cell.inbox = [];
    const kind = cell.kind;
    const def = kind.def;
    const machine = def.machine;
    const startSeq = cell.seq;
    this.outBefore = cell.outPending > 0;
    const records: unknown[] = [];
    const tmp = this.step;
    /** This drain's `recv` marker per sender. */
    let recv: Map<Address, RecvMarker> | undefined;
    let i = 0;
    try {
      for (; i < batch.length; i++) {
        const m = batch[i];
        if (!(m instanceof Envelope)) {
          tmp.length = 0;
          cell.state = machine.step(cell.state, m, tmp);
          if (tmp.length > 0) this.record(cell, tmp, records);
          continue;
        }
        switch (m.k) {
          case In.Command: {
            tmp.length = 0;
            cell.state = machine.step(cell.state, m.cmd, tmp);
            const v = def.reply ? def.reply(cell.state, m.cmd, tmp) : tmp.slice();
            this.record(cell, tmp, records);
            this.hold(cell, m.reply!, v);
            break;
          }
          case In.Reliable: {
            const from = m.peer;
            const early = m.early;
            if (early !== undefined && early.sender.epoch !== early.epoch) {
              // The sender's events behind it failed to commit: the message never happened.
              m.reply?.fail(new JournalFailedError(from, new Error('the events that sent this message were not committed')));
              break;
            }
            let h = cell.hwm.get(from) ?? 0;
            const h0 = h;
            const n = m.more === undefined ? 1 : 1 + m.more.length;
            for (let j = 0; j < n; j++) {
              const seq = m.seq + j;
              if (seq <= h) {
                this.stats.duplicatesDropped++;
                continue;
              }
              if (seq !== h + 1) break; // a gap: the sender resends from h + 1
              tmp.length = 0;
              const msg = j === 0 ? m.cmd : m.more![j - 1];
              const cmd = def.inbound ? def.inbound(from, msg) : msg;
              cell.state = machine.step(cell.state, cmd, tmp);
              // The marker and the command's events go to the journal together, or not at all. One
              // marker per sender per drain, placed before the first of its commands' events.
              let marker = recv?.get(from);
              if (marker === undefined) {
                marker = { $rt: 'recv', from, seq };
                cell.seq++;
                records.push(marker);
                (recv ??= new Map()).set(from, marker);
              } else marker.seq = seq;
              cell.hwm.set(from, seq);
              h = seq;
              this.record(cell, tmp, records);
            }
            if (early !== undefined && h > h0 && early.evSeq > early.sender.committedSeq) {
              const deps = (cell.dependsOn ??= new Map());
              if ((deps.get(early.sender) ?? 0) < early.evSeq) deps.set(early.sender, early.evSeq);
              (early.sender.dependents ??= new Set()).add(cell);
            }
            this.hold(cell, m.reply!, h);
            break;
          }
          case In.Ack: {
            const pair = cell.out.get(m.peer);
            if (pair !== undefined && m.seq > pair.acked && kind.persistent) {
              if (pair.acked === pair.logged) cell.ackDirty.push(m.peer);
              this.applyAck(cell, pair, m.seq);
            }
            break;
          }
        }
      }
    } catch (err) {
      // A bug in the state machine: the command that threw is answered with the crash; the ones
      // after it go back to the mailbox; the events of the ones before it are still committed.
      const m = batch[i];
      if (m instanceof Envelope) m.reply?.fail(new ActorCrashedError(cell.address, err));
      const rest = batch.slice(i + 1);
      for (const x of cell.inbox) rest.push(x);
      cell.inbox = rest;
      this.afterDrain(cell, startSeq, records);
      this.stats.commands += i;
      throw err;
    }
    this.stats.commands += batch.length;
    this.afterDrain(cell, startSeq, records);
  }

  /** Give the events to the journal (or treat them as committed when not persistent). */
  private afterDrain(cell: Cell, startSeq: number, records: unknown[]): void {
    this.touch(cell);
    if (cell.ackDirty.length > 0) this.journalAcks(cell, records);
    // Before the events reach the group commit: the registry's record must join the same batch.
    if (this.onOutboxChange !== undefined && cell.outPending > 0 !== this.outBefore) this.onOutboxChange(cell.address);
    if (!cell.kind.persistent) {
      if (cell.seq !== cell.committedSeq) this.onCommitted(cell, cell.epoch, cell.seq);
      return;
    }
    if (records.length === 0) return;
    this.committer!.add(cell, startSeq, records);
    if (this.earlyLocal && cell.outPending > 0 && !this.stopped) this.sendOutbox(cell);
    const every = cell.kind.snapshotEvery;
    if (every > 0 && cell.seq - cell.snapshotSeq >= Math.max(every, cell.snapshotEvery)) {
      // Capture now (the state is at cell.seq); write once cell.seq is committed.
      cell.snapshotCapture = this.captureSnapshot(cell) ?? cell.snapshotCapture; // a failed capture keeps the one waiting
    }
  }

  /** Assign sequences to a command's events and note what they send. */
  private record(cell: Cell, events: readonly unknown[], records: unknown[]): void {
    const def = cell.kind.def;
    if (!cell.kind.persistent && def.effects === undefined) {
      cell.seq += events.length;
      return;
    }
    for (const e of events) {
      cell.seq++;
      if (cell.kind.persistent) records.push(e);
      if (def.outbox) this.deriveOutbox(cell, e, cell.seq);
      if (def.effects) cell.uncommitted.push({ seq: cell.seq, e });
    }
  }

  private deriveOutbox(cell: Cell, e: unknown, evSeq: number): void {
    const outs = cell.kind.def.outbox!(e);
    if (outs === undefined) return;
    for (const o of outs) {
      let pair = cell.out.get(o.to);
      if (pair === undefined) {
        pair = { to: o.to, next: 0, acked: 0, sentUpTo: 0, logged: 0, tickAcked: 0, failed: false, pending: [] };
        cell.out.set(o.to, pair);
      }
      pair.next++;
      pair.pending.push({ seq: pair.next, evSeq, msg: o.message });
      cell.outPending++;
    }
  }

  /**
   * Journal the acknowledgements taken since the last time (one `ack` record per receiver) when the
   * drain writes anyway, when one receiver's unjournaled span reached `ackJournalEvery`, or when
   * nothing is left unacknowledged (so a passivated or handed-off entity recovers with an empty outbox).
   */
  private journalAcks(cell: Cell, records: unknown[]): void {
    let now = records.length > 0 || cell.outPending === 0;
    if (!now) {
      for (const to of cell.ackDirty) {
        const pair = cell.out.get(to);
        if (pair !== undefined && pair.acked - pair.logged >= this.ackJournalEvery) {
          now = true;
          break;
        }
      }
      if (!now) return;
    }
    for (const to of cell.ackDirty) {
      const pair = cell.out.get(to);
      if (pair === undefined || pair.acked <= pair.logged) continue;
      const marker: Marker = { $rt: 'ack', to, upTo: pair.acked };
      cell.seq++;
      records.push(marker);
      pair.logged = pair.acked;
    }
    cell.ackDirty = [];
  }

  private applyAck(cell: Cell, pair: OutPair, upTo: number): void {
    if (upTo <= pair.acked) return;
    pair.acked = upTo;
    let n = 0;
    while (n < pair.pending.length && pair.pending[n]!.seq <= upTo) n++;
    if (n > 0) {
      pair.pending.splice(0, n);
      cell.outPending -= n;
    }
    if (pair.sentUpTo < upTo) pair.sentUpTo = upTo;
  }

  /** Reply now if everything the entity has decided is committed; otherwise after the commit. */
  private hold(cell: Cell, sink: ReplySink, value: unknown): void {
    if ((cell.seq === cell.committedSeq && cell.held.length === 0) || !cell.kind.persistent) sink.ok(value);
    else cell.held.push({ w: cell.seq, sink, value });
  }

  private touch(cell: Cell): void {
    cell.lastTouchMs = this.clock.now();
    // Re-insert to keep the map in LRU order; cheap enough once per drain.
    this.cells.delete(cell.address);
    this.cells.set(cell.address, cell);
  }

  // ---------------------------------------------------------------- after the commit

  /** @internal called by the group commit. */
  onCommitted(cell: Cell, epoch: number, toSeq: number): void {
    if (epoch !== cell.epoch || toSeq <= cell.committedSeq) return;
    cell.committedSeq = toSeq;
    if (cell.dependents !== undefined) this.pruneDependents(cell);
    if (cell.dependsOn !== undefined) for (const [q, need] of cell.dependsOn) if (q.committedSeq >= need) cell.dependsOn.delete(q);
    // 1. Replies.
    if (cell.held.length > 0) {
      let n = 0;
      while (n < cell.held.length && cell.held[n]!.w <= toSeq) n++;
      const ready = cell.held.splice(0, n);
      for (const h of ready) h.sink.ok(h.value);
    }
    // 2. Effects.
    const def = cell.kind.def;
    if (def.effects && cell.uncommitted.length > 0) {
      let n = 0;
      while (n < cell.uncommitted.length && cell.uncommitted[n]!.seq <= toSeq) n++;
      const done = cell.uncommitted.splice(0, n).map((x) => x.e);
      if (done.length > 0) {
        try {
          def.effects(done, this.effectContext(cell));
        } catch (err) {
          this.emit({ type: 'effect-failed', address: cell.address, error: err });
        }
      }
    }
    // 3. Reliable messages whose events are now durable.
    if (cell.outPending > 0 && !this.stopped) this.sendOutbox(cell);
    // 4. The snapshot captured at a now-committed sequence.
    const snap = cell.snapshotCapture;
    if (snap !== undefined && snap.seq <= toSeq) {
      cell.snapshotCapture = undefined;
      this.saveSnapshot(cell, snap);
    }
    if (cell.seq === cell.committedSeq) this.settled(cell);
    if (cell.restartWhenSettled && cell.seq === cell.committedSeq) {
      cell.restartWhenSettled = false;
      this.restart(cell);
    }
  }

  /** @internal called by the group commit. */
  onCommitFailed(cell: Cell, epoch: number, error: unknown, stale: boolean): void {
    if (epoch !== cell.epoch) return;
    cell.epoch++; // drops this entity's buffered writes
    cell.dependsOn = undefined;
    this.failDependents(cell);
    const wrapped = stale ? new StaleWriterError(cell.address, cell.committedSeq, error) : new JournalFailedError(cell.address, error);
    for (const h of cell.held) h.sink.fail(wrapped);
    cell.held = [];
    cell.uncommitted = [];
    cell.snapshotCapture = undefined;
    cell.seq = cell.committedSeq;
    cell.restartWhenSettled = false;
    this.retire(cell);
    this.settled(cell);
    if (stale) {
      this.stats.staleWriters++;
      this.emit({ type: 'stale-writer', address: cell.address, error });
      // Another writer owns this entity: stop serving it here. Stashed commands learn why.
      cell.status = Status.Gone;
      for (const m of cell.inbox) if (m instanceof Envelope) m.reply?.fail(wrapped);
      cell.inbox = [];
      if (this.cells.get(cell.address) === cell) this.cells.delete(cell.address);
      return;
    }
    this.stats.journalFailures++;
    this.emit({ type: 'journal-failed', address: cell.address, error });
    cell.status = Status.Down;
    this.scheduleRestart(cell);
  }

  /** Forget the dependents whose needs `cell`'s commits now cover. */
  private pruneDependents(cell: Cell): void {
    for (const d of cell.dependents!) {
      const need = d.dependsOn?.get(cell);
      if (need === undefined || need <= cell.committedSeq) {
        d.dependsOn?.delete(cell);
        cell.dependents!.delete(d);
      }
    }
    if (cell.dependents!.size === 0) cell.dependents = undefined;
  }

  /**
   * `cell`'s uncommitted events failed: every entity that consumed messages they sent fails too (and,
   * through this, whatever consumed its own), so each rebuilds from the journal, where none of it is.
   */
  private failDependents(cell: Cell): void {
    const ds = cell.dependents;
    if (ds === undefined) return;
    cell.dependents = undefined;
    for (const d of ds) {
      const need = d.dependsOn?.get(cell);
      if (need === undefined || need <= cell.committedSeq) continue;
      d.dependsOn!.delete(cell);
      this.stats.dependentFailures++;
      this.onCommitFailed(d, d.epoch, new Error(`consumed messages of ${cell.address} whose events were not committed`), false);
    }
  }

  private onCrashed(cell: Cell, err: unknown): void {
    if (cell.status === Status.Gone) return;
    this.stats.crashes++;
    this.emit({ type: 'crashed', address: cell.address, error: err });
    this.retire(cell);
    cell.status = Status.Down;
    this.scheduleRestart(cell);
  }

  private scheduleRestart(cell: Cell): void {
    if (this.clock.now() - cell.activeSince > this.backoffResetMs) cell.restarts = 0;
    const attempt = cell.restarts++;
    const delayMs = Math.min(this.backoffMsMax, this.backoffMsMin * 2 ** Math.min(attempt, 30));
    this.emit({ type: 'restart-scheduled', address: cell.address, delayMs, attempt: attempt + 1 });
    if (cell.restartTimer) this.clock.cancel(cell.restartTimer);
    cell.restartTimer = this.clock.schedule(delayMs, () => {
      cell.restartTimer = undefined;
      this.restart(cell);
    });
  }

  private restart(cell: Cell): void {
    if (this.stopped || cell.status !== Status.Down) return;
    // A crashed entity may still have events in the group commit: recover only once they settle.
    if (cell.seq !== cell.committedSeq) {
      cell.restartWhenSettled = true;
      return;
    }
    this.stats.restarts++;
    this.spawnActor(cell);
  }

  // ---------------------------------------------------------------- recovery

  private async recover(cell: Cell, inc: number): Promise<void> {
    const def = cell.kind.def;
    const machine = def.machine;
    try {
      const snap = await this.journal!.loadSnapshot(cell.address);
      if (cell.incarnation !== inc) return;
      cell.hwm = new Map();
      cell.out = new Map();
      cell.outPending = 0;
      cell.ackDirty = [];
      cell.uncommitted = [];
      let seq = 0;
      if (snap !== undefined) {
        this.decodeSnapshot(cell, snap.data);
        seq = snap.seq;
      } else cell.state = machine.init();
      const snapshotSeq = seq;
      for await (const page of this.journal!.read(cell.address, seq + 1)) {
        if (cell.incarnation !== inc) return;
        let q = page.fromSeq;
        for (const rec of page.events) {
          if (isMarker(rec)) {
            if (rec.$rt === 'recv') cell.hwm.set(rec.from, rec.seq);
            else {
              const pair = cell.out.get(rec.to);
              if (pair !== undefined) this.applyAck(cell, pair, rec.upTo);
            }
          } else {
            cell.state = machine.apply(cell.state, rec);
            if (def.outbox) this.deriveOutbox(cell, rec, q);
          }
          q++;
        }
        seq = page.toSeq;
      }
      if (cell.incarnation !== inc) return;
      cell.seq = cell.committedSeq = seq;
      cell.snapshotSeq = snapshotSeq;
      cell.snapshotEvery = snap === undefined ? 0 : this.snapshotIntervalAfter(cell.kind.snapshotEvery, snap.data.length);
      for (const pair of cell.out.values()) pair.sentUpTo = pair.logged = pair.tickAcked = pair.acked;
      cell.status = Status.Active;
      cell.activeSince = this.clock.now();
      this.emit({ type: 'recovered', address: cell.address, seq, snapshotSeq, stashed: cell.inbox.length });
      this.onOutboxChange?.(cell.address);
      if (cell.outPending > 0) this.sendOutbox(cell);
    } catch (err) {
      if (cell.incarnation !== inc) return;
      this.emit({ type: 'recovery-failed', address: cell.address, error: new RecoveryFailedError(cell.address, err) });
      this.retire(cell);
      cell.status = Status.Down;
      this.scheduleRestart(cell);
    }
  }

  /**
   * Encodes the entity's state at `cell.seq` and counts the next interval from there (grown for a large
   * snapshot); undefined, with a `snapshot-failed` event, when the state cannot be encoded.
   */
  private captureSnapshot(cell: Cell): { seq: number; data: Uint8Array } | undefined {
    try {
      const data = this.encodeSnapshot(cell);
      cell.snapshotSeq = cell.seq;
      cell.snapshotEvery = this.snapshotIntervalAfter(cell.kind.snapshotEvery, data.length);
      return { seq: cell.seq, data };
    } catch (err) {
      this.emit({ type: 'snapshot-failed', address: cell.address, error: err });
      return undefined;
    }
  }

  /** Saves a snapshot at a committed sequence, then deletes the older ones past `snapshotsKept`. */
  private saveSnapshot(cell: Cell, snap: { seq: number; data: Uint8Array }): void {
    const journal = this.journal!;
    const keep = this.snapshotsKept;
    const p = journal
      .saveSnapshot({ persistenceId: cell.address, seq: snap.seq, data: snap.data })
      .then(() => (keep > 0 ? journal.keepSnapshots(cell.address, keep) : 0))
      .catch((err: unknown) => this.emit({ type: 'snapshot-failed', address: cell.address, error: err }))
      .finally(() => this.snapshotSaves.delete(p));
    this.snapshotSaves.add(p);
  }

  /** Events before the next snapshot, after one of `bytes` (see `snapshotEventsPerByte`). */
  private snapshotIntervalAfter(every: number, bytes: number): number {
    if (every <= 0) return 0;
    return Math.min(every * this.snapshotEventsMaxFactor, Math.max(every, Math.ceil(bytes * this.snapshotEventsPerByte)));
  }

  private encodeSnapshot(cell: Cell): Uint8Array {
    const body: SnapshotBody = {
      v: 1,
      s: cell.kind.def.machine.snapshot(cell.state),
      hwm: [...cell.hwm],
      out: [...cell.out].map(([to, p]) => [to, p.next, p.acked, p.pending.map((m) => [m.seq, m.evSeq, m.msg] as [number, number, unknown])]),
    };
    return pack(body);
  }

  private decodeSnapshot(cell: Cell, data: Uint8Array): void {
    const body = unpack(data) as SnapshotBody;
    if (body.v !== 1) throw new Error(`unknown snapshot version ${String(body.v)}`);
    cell.state = cell.kind.def.machine.restore(body.s);
    cell.hwm = new Map(body.hwm);
    cell.out = new Map();
    cell.outPending = 0;
    for (const [to, next, acked, pending] of body.out) {
      cell.out.set(to, { to, next, acked, sentUpTo: acked, logged: acked, tickAcked: acked, failed: false, pending: pending.map(([seq, evSeq, msg]) => ({ seq, evSeq, msg })) });
      cell.outPending += pending.length;
    }
  }

  // ---------------------------------------------------------------- reliable messages

  private sendOutbox(cell: Cell): void {
    let left = false;
    for (const pair of cell.out.values()) {
      const pending = pair.pending;
      if (pending.length === 0) continue;
      left = true;
      // `pending` holds consecutive pair sequences: the first unsent one is at sentUpTo + 1.
      let k = Math.max(0, pair.sentUpTo + 1 - pending[0]!.seq);
      const limit = pair.acked + this.windowMax;
      // A persistent receiver on this node takes messages at once, committed or not; the rest wait
      // for their events' commit and go over the transport.
      const local = this.earlyLocal ? this.localPersistentCell(pair.to) : undefined;
      const upTo = local !== undefined ? cell.seq : cell.committedSeq;
      while (k < pending.length) {
        const first = k;
        while (k < pending.length && k - first < this.batchMax) {
          const m = pending[k]!;
          if (m.evSeq > upTo || m.seq > limit) break;
          k++;
        }
        if (k === first) break;
        pair.sentUpTo = pending[k - 1]!.seq;
        if (local !== undefined) this.deliverLocal(cell, pair, local, pending, first, k);
        else this.sendBatch(cell, pair, pair.to, pending, first, k);
      }
    }
    if (left && cell.resendTimer === undefined) {
      cell.resendTimer = this.clock.schedule(this.resendMs, () => {
        cell.resendTimer = undefined;
        if (cell.status !== Status.Active || this.cells.get(cell.address) !== cell) return;
        // Resend from the first unacknowledged message to receivers that refused or lost something,
        // or made no progress for a whole period; the others are answering what is in flight.
        for (const pair of cell.out.values()) {
          if (pair.failed || pair.acked === pair.tickAcked) pair.sentUpTo = pair.acked;
          pair.failed = false;
          pair.tickAcked = pair.acked;
        }
        this.sendOutbox(cell);
      });
    }
  }

  /** The receiver's cell when it is a persistent entity this node serves (activating it), else undefined. */
  private localPersistentCell(to: Address): Cell | undefined {
    const kind = this.kinds.get(kindOf(to));
    if (kind === undefined || !kind.persistent || this.stopped) return undefined;
    const c = this.localCell(to);
    return c !== undefined && c.status !== Status.Gone ? c : undefined;
  }

  /**
   * `pending[a … b)` straight into a receiver's mailbox on this node. When they came from events not
   * yet committed, the envelope says so: the receiver records the dependency for the group commit,
   * and drops the message if the sender has failed since.
   */
  private deliverLocal(cell: Cell, pair: OutPair, to: Cell, pending: readonly OutMessage[], a: number, b: number): void {
    this.stats.reliableSent += b - a;
    this.stats.reliableBatches++;
    this.stats.localBatches++;
    const m = pending[a]!;
    let more: unknown[] | undefined;
    if (b - a > 1) {
      more = new Array(b - a - 1);
      for (let i = a + 1; i < b; i++) more[i - a - 1] = pending[i]!.msg;
    }
    const last = pending[b - 1]!.seq;
    const evSeq = pending[b - 1]!.evSeq; // the highest: events are sequenced in order of their messages
    const sink: ReplySink = { ok: (hwm) => this.onReliableAck(cell, pair, to.address, last, hwm as number), fail: () => (pair.failed = true) };
    const env = new Envelope(In.Reliable, m.msg, sink, cell.address, m.seq, more);
    if (evSeq > cell.committedSeq) env.early = { sender: cell, epoch: cell.epoch, evSeq };
    this.enqueue(to, env);
  }

  /** Send `pending[a … b)` (consecutive sequences) as one transport message. */
  private sendBatch(cell: Cell, pair: OutPair, to: Address, pending: readonly OutMessage[], a: number, b: number): void {
    this.stats.reliableSent += b - a;
    this.stats.reliableBatches++;
    const m = pending[a]!;
    let wire: WireReliable;
    if (b - a === 1) wire = { t: 'rel', from: cell.address, seq: m.seq, msg: m.msg };
    else {
      const more: unknown[] = new Array(b - a - 1);
      for (let i = a + 1; i < b; i++) more[i - a - 1] = pending[i]!.msg;
      wire = { t: 'rel', from: cell.address, seq: m.seq, msg: m.msg, more };
    }
    const last = pending[b - 1]!.seq;
    this.transport.request(to, wire, this.attemptTimeoutMs).then(
      (r) => this.onReliableAck(cell, pair, to, last, (r as WireReliableAck).hwm),
      () => {
        pair.failed = true; // resent by the timer
      },
    );
  }

  /** The receiver `to` answered a batch ending at `last` with its high-water mark `hwm`. */
  private onReliableAck(cell: Cell, pair: OutPair, to: Address, last: number, hwm: number): void {
    if (hwm < last) pair.failed = true; // a gap at the receiver: resent by the timer
    const live = this.cells.get(cell.address);
    if (live !== undefined && !this.stopped) this.enqueue(live, new Envelope(In.Ack, undefined, undefined, to, hwm));
  }

  // ---------------------------------------------------------------- passivation

  private armSweep(): void {
    if (this.stopped) return;
    this.sweepTimer = this.clock.schedule(this.sweepTimerMs, () => {
      this.sweep();
      this.armSweep();
    });
  }

  private sweep(): void {
    const cutoff = this.clock.now() - this.idleMs;
    for (const c of [...this.cells.values()]) {
      if (c.lastTouchMs > cutoff) continue;
      if (this.passivatable(c)) this.passivate(c, 'idle');
    }
  }

  private passivatable(c: Cell): boolean {
    return (
      c.kind.persistent &&
      c.status === Status.Active &&
      c.inbox.length === 0 &&
      c.seq === c.committedSeq &&
      c.held.length === 0 &&
      c.outPending === 0 &&
      c.snapshotCapture === undefined
    );
  }

  private evictLru(): void {
    for (const c of this.cells.values()) {
      if (this.cells.size <= this.activeEntitiesMax) return;
      if (this.passivatable(c)) this.passivate(c, 'lru');
    }
  }

  private passivate(c: Cell, reason: 'idle' | 'lru'): boolean {
    this.retire(c);
    c.status = Status.Gone;
    this.cells.delete(c.address);
    this.stats.passivations++;
    this.emit({ type: 'passivated', address: c.address, reason });
    return true;
  }

  // ---------------------------------------------------------------- misc

  private effectContext(cell: Cell): EffectContext {
    return { self: cell.address, tell: (to, cmd) => this.tell(to, cmd), now: () => this.clock.now() };
  }

  private emit(e: NodeEvent): void {
    if (this.onEvent) {
      try {
        this.onEvent(e);
      } catch {
        /* an observer's bug must not break the runtime */
      }
    }
  }
}
