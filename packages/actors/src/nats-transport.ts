import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import type { Address } from './address.js';
import type { Clock, TimerHandle } from './clock.js';
import { RealClock } from './clock.js';
import { AskTimeoutError, RemoteActorError, UnreachableError } from './errors.js';
import type { ShardMap } from './shard.js';
import type { RequestSink, Transport, TransportBinding, TransportEndpoint } from './transport.js';
import type { WireAsk, WireReply } from './wire.js';

export interface NatsTransportOptions {
  /** A connection made with `noAsyncTraces: true` (see {@link connectNats}). */
  readonly nc: NatsConnection;
  /** Subject prefix of this cluster, e.g. `bourse.c1`: shard `account.7` listens on `bourse.c1.s.account.7`. */
  readonly prefix: string;
  readonly shards: ShardMap;
  readonly clock?: Clock;
  /** Most entries in one published message. Default 1024. */
  readonly batchMax?: number;
  /** Retry delays for a request nobody serves yet (shard moving or unowned): min, doubling to max. Defaults 5 and 100 ms. */
  readonly retryMsMin?: number;
  readonly retryMsMax?: number;
}

/** Reply codes on the wire. */
const OK = 0;
const ERR = 1;
/** Not served here (shard not owned, moving, or the node is stopping): the sender retries. */
const NOT_HERE = 2;

type Entry = [id: number, to: Address, message: unknown];
type ReplyEntry = [id: number, code: number, value?: unknown];

interface Pending {
  readonly to: Address;
  readonly message: unknown;
  readonly deadline: number;
  readonly timeoutMs: number;
  attempt: number;
  batch: number;
  /** The shard (`account.7`) and whether this attempt went to a node subject (owner learned from a reply). */
  readonly shard: string;
  viaNode: boolean;
  retry: TimerHandle | undefined;
  /** Unwrap a {@link WireReply} (for `ask`) instead of resolving with it. */
  readonly unwrap: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** Timeouts are swept in slots of this many ms (one timer per slot, not one per request). */
const SLOT_MS = 20;

const packr = new Packr({ useRecords: false, moreTypes: false });

/** The answer to one request of a batch: back to the requester's reply subject, batched. */
class ReplyTo implements RequestSink {
  constructor(
    private readonly t: NatsTransport,
    private readonly subject: string,
    private readonly id: number,
  ) {}
  ok(v: unknown): void {
    this.t.replyTo(this.subject, this.id, true, v);
  }
  fail(e: unknown): void {
    this.t.replyTo(this.subject, this.id, false, e);
  }
}

/**
 * The cluster transport: core NATS request/reply, batched. A message for `kind/id` goes to the subject
 * of its shard (`<prefix>.s.<kind>.<n>`), on which only the shard's owner listens (queue group, so a
 * brief overlap during a handoff still delivers once) — or, once a node has answered for the shard,
 * straight to that node's subject (`<prefix>.n.<node>`), so that everything sent in one event-loop
 * turn to one node travels as one NATS message. Answers go back batched per requester. The learned
 * owner is forgotten on "not here", on "no responders" and on a timeout.
 *
 * A request that nobody serves — no listener (NATS "no responders"), or a node that no longer owns
 * the shard — is retried with backoff until its timeout: commands for a moving or unowned shard wait,
 * they are not dropped. A request is never resent once a node accepted it (delivery stays at most
 * once, as the {@link Transport} contract says; exactly-once effects come from the runtime above).
 * `deliver` (fire and forget) is sent once.
 *
 * @example
 *   const nc = await connectNats('nats://127.0.0.1:4222');
 *   const t = new NatsTransport({ nc, prefix: 'bourse.c1', shards: new ShardMap({ account: 64 }) });
 *   await askOver(t, 'account/a1', { type: 'Balance' }, 2000);
 */
export class NatsTransport implements Transport {
  readonly nc: NatsConnection;
  private readonly prefix: string;
  private readonly shards: ShardMap;
  private readonly clock: Clock;
  private readonly batchMax: number;
  private readonly retryMsMin: number;
  private readonly retryMsMax: number;
  private readonly inbox: string;
  private inboxSub: Subscription | undefined;
  private nextId = 1;
  private nextBatch = 1;
  private readonly pending = new Map<number, Pending>();
  private out = new Map<string, Entry[]>();
  private outScheduled = false;
  private replies = new Map<string, ReplyEntry[]>();
  private repliesScheduled = false;
  private endpoint: TransportEndpoint | undefined;
  private readonly listening = new Map<string, Subscription>();
  /** Shard -> node that answered for it last: requests go to that node's subject, batched per node. */
  private readonly owners = new Map<string, string>();
  private nodeSub: Subscription | undefined;
  private nodeId = '';
  private closed = false;
  readonly stats = { published: 0, entriesSent: 0, retries: 0, noResponders: 0, received: 0, notHere: 0 };

  constructor(options: NatsTransportOptions) {
    this.nc = options.nc;
    this.prefix = options.prefix;
    this.shards = options.shards;
    this.clock = options.clock ?? new RealClock();
    this.batchMax = options.batchMax ?? 1024;
    this.retryMsMin = options.retryMsMin ?? 5;
    this.retryMsMax = options.retryMsMax ?? 100;
    this.inbox = `${this.prefix}.r.${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  }

  /** The subject a shard's owner listens on. */
  subjectOf(shardKey: string): string {
    return `${this.prefix}.s.${shardKey}`;
  }

  /** The subject a node listens on for every shard it serves. */
  nodeSubject(nodeId: string): string {
    return `${this.prefix}.n.${nodeId}`;
  }

  // ---------------------------------------------------------------- node side

  bind(endpoint: TransportEndpoint): TransportBinding {
    if (this.endpoint !== undefined) throw new Error('NatsTransport: one endpoint per transport');
    this.endpoint = endpoint;
    this.nodeId = endpoint.nodeId;
    if (!/^[A-Za-z0-9_-]+$/.test(this.nodeId)) throw new Error(`NatsTransport: node id ${this.nodeId} is not NATS-token safe`);
    this.nodeSub = this.nc.subscribe(this.nodeSubject(this.nodeId), {
      callback: (err, msg) => {
        if (err === null) this.onBatch(msg);
      },
    });
    return {
      close: () => {
        if (this.endpoint === endpoint) this.endpoint = undefined;
        for (const k of [...this.listening.keys()]) this.unlisten(k);
        this.nodeSub?.unsubscribe();
        this.nodeSub = undefined;
      },
    };
  }

  /** Start taking the shard's messages (the cluster calls this once it serves the shard). */
  listen(shardKey: string): void {
    if (this.closed || this.listening.has(shardKey)) return;
    const sub = this.nc.subscribe(this.subjectOf(shardKey), {
      queue: 'owner',
      callback: (err, msg) => {
        if (err === null) this.onBatch(msg);
      },
    });
    this.listening.set(shardKey, sub);
  }

  /** Stop taking the shard's messages. */
  unlisten(shardKey: string): void {
    const sub = this.listening.get(shardKey);
    if (sub === undefined) return;
    this.listening.delete(shardKey);
    sub.unsubscribe();
  }

  listenedShards(): string[] {
    return [...this.listening.keys()];
  }

  private onBatch(msg: Msg): void {
    // [reply subject for answers, entries]: answers to one requester from many batches share a message.
    const [reply, entries] = packr.unpack(msg.data) as [string, Entry[]];
    const ep = this.endpoint;
    this.stats.received += entries.length;
    for (const [id, to, message] of entries) {
      if (ep === undefined || !ep.serves(to)) {
        this.stats.notHere++;
        if (id !== 0 && reply) this.reply(reply, [id, NOT_HERE]);
        continue;
      }
      if (id === 0) {
        ep.onDeliver(to, message);
        continue;
      }
      const sink = new ReplyTo(this, reply ?? '', id);
      try {
        if (ep.onRequestSink) ep.onRequestSink(to, message, sink);
        else ep.onRequest(to, message).then((v) => sink.ok(v), (e: unknown) => sink.fail(e));
      } catch (e) {
        sink.fail(e);
      }
    }
  }

  /** @internal */
  replyTo(subject: string, id: number, ok: boolean, v: unknown): void {
    if (!subject) return;
    if (ok) this.reply(subject, [id, OK, v]);
    else
      this.reply(
        subject,
        v instanceof UnreachableError ? [id, NOT_HERE] : [id, ERR, { name: v instanceof Error ? v.name : 'Error', message: v instanceof Error ? v.message : String(v) }],
      );
  }

  private reply(subject: string, r: ReplyEntry): void {
    let list = this.replies.get(subject);
    if (list === undefined) this.replies.set(subject, (list = []));
    list.push(r);
    if (list.length >= this.batchMax) {
      this.replies.delete(subject);
      this.publish(subject, [this.nodeId, list]);
    } else if (!this.repliesScheduled) {
      this.repliesScheduled = true;
      setImmediate(() => this.flushReplies());
    }
  }

  private flushReplies(): void {
    this.repliesScheduled = false;
    const all = this.replies;
    this.replies = new Map();
    for (const [subject, list] of all) this.publish(subject, [this.nodeId, list]);
  }

  private publish(subject: string, data: unknown, reply?: string): void {
    if (this.closed || this.nc.isClosed()) return;
    this.stats.published++;
    try {
      this.nc.publish(subject, packr.pack(data), reply ? { reply } : undefined);
    } catch {
      /* connection closing: requests time out */
    }
  }

  // ---------------------------------------------------------------- sender side

  deliver(to: Address, message: unknown): void {
    const shard = this.shards.shardOf(to).key;
    const node = this.owners.get(shard);
    this.enqueueOut(node !== undefined ? this.nodeSubject(node) : this.subjectOf(shard), [0, to, message]);
  }

  request(to: Address, message: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => this.start(to, message, timeoutMs, false, resolve, reject));
  }

  /**
   * A command to an entity from outside any node (a client): resolves with the entity's reply, or
   * rejects with its error ({@link RemoteActorError}) or a timeout. Same as `askOver(this, …)`, with
   * one promise instead of two.
   */
  ask<R = unknown>(to: Address, command: unknown, timeoutMs: number): Promise<R> {
    return new Promise<R>((resolve, reject) => this.start(to, { t: 'ask', cmd: command } satisfies WireAsk, timeoutMs, true, resolve as (v: unknown) => void, reject));
  }

  private start(to: Address, message: unknown, timeoutMs: number, unwrap: boolean, resolve: (v: unknown) => void, reject: (e: unknown) => void): void {
    if (this.closed) return reject(new UnreachableError(to));
    this.ensureInbox();
    const id = this.nextId++;
    const deadline = this.clock.now() + timeoutMs;
    const p: Pending = { to, message, deadline, timeoutMs, attempt: 0, batch: 0, shard: this.shards.shardOf(to).key, viaNode: false, retry: undefined, unwrap, resolve, reject };
    this.pending.set(id, p);
    this.armTimeout(id, deadline);
    this.send(id, p);
  }

  /** Slot -> ids whose deadline falls in it; one clock timer per slot. */
  private readonly slots = new Map<number, number[]>();

  private armTimeout(id: number, deadline: number): void {
    const slot = Math.ceil(deadline / SLOT_MS);
    let ids = this.slots.get(slot);
    if (ids === undefined) {
      this.slots.set(slot, (ids = []));
      this.clock.schedule(Math.max(0, slot * SLOT_MS - this.clock.now()), () => this.expire(slot));
    }
    ids.push(id);
  }

  private expire(slot: number): void {
    const ids = this.slots.get(slot);
    this.slots.delete(slot);
    if (ids === undefined) return;
    const now = this.clock.now();
    for (const id of ids) {
      const p = this.pending.get(id);
      if (p === undefined) continue;
      if (p.deadline > now) this.armTimeout(id, p.deadline); // the clock fired early
      else {
        // A node that stopped answering (paused, partitioned) must not keep its shards' traffic.
        if (p.viaNode) this.owners.delete(p.shard);
        this.settle(id, false, new AskTimeoutError(p.to, p.timeoutMs));
      }
    }
  }

  private send(id: number, p: Pending): void {
    p.retry = undefined;
    const node = this.owners.get(p.shard);
    p.viaNode = node !== undefined;
    this.enqueueOut(node !== undefined ? this.nodeSubject(node) : this.subjectOf(p.shard), [id, p.to, p.message]);
  }

  private enqueueOut(subject: string, e: Entry): void {
    if (this.closed) return;
    let list = this.out.get(subject);
    if (list === undefined) this.out.set(subject, (list = []));
    list.push(e);
    if (list.length >= this.batchMax) {
      this.out.delete(subject);
      this.sendBatch(subject, list);
    } else if (!this.outScheduled) {
      this.outScheduled = true;
      setImmediate(() => this.flushOut());
    }
  }

  private flushOut(): void {
    this.outScheduled = false;
    const all = this.out;
    this.out = new Map();
    for (const [subject, list] of all) this.sendBatch(subject, list);
  }

  private sendBatch(subject: string, list: Entry[]): void {
    const batch = this.nextBatch++;
    for (const e of list) {
      if (e[0] === 0) continue;
      const p = this.pending.get(e[0]);
      if (p !== undefined) p.batch = batch;
    }
    this.stats.entriesSent += list.length;
    // Answers go to `<inbox>.0` (shared by all batches); NATS "no responders" comes to `<inbox>.<batch>`.
    this.publish(subject, [`${this.inbox}.0`, list], `${this.inbox}.${batch}`);
  }

  private ensureInbox(): void {
    if (this.inboxSub !== undefined) return;
    this.inboxSub = this.nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (err === null) this.onReplies(msg);
      },
    });
  }

  private onReplies(msg: Msg): void {
    if (msg.data.length === 0) {
      // A status message: 503 "no responders" means nobody listens on the shard yet.
      const code = msg.headers?.code ?? 0;
      if (code === 503) {
        this.stats.noResponders++;
        const batch = Number(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
        for (const [id, p] of this.pending) {
          if (p.batch !== batch || p.retry !== undefined) continue;
          if (p.viaNode) this.owners.delete(p.shard); // that node is gone: ask the shard subject
          this.retryLater(id, p);
        }
      }
      return;
    }
    const [node, list] = packr.unpack(msg.data) as [string, ReplyEntry[]];
    for (const [id, code, value] of list) {
      if (code === OK) {
        const p = this.pending.get(id);
        if (p !== undefined && !p.viaNode && node) this.owners.set(p.shard, node);
        this.settle(id, true, value);
      } else if (code === NOT_HERE) {
        const p = this.pending.get(id);
        if (p !== undefined && p.retry === undefined) {
          if (p.viaNode || this.owners.get(p.shard) === node) this.owners.delete(p.shard);
          this.retryLater(id, p);
        }
      } else {
        const e = value as { name: string; message: string };
        this.settle(id, false, e.name === 'UnreachableError' ? new UnreachableError(this.pending.get(id)?.to ?? '?') : new RemoteActorError(e.name, e.message));
      }
    }
  }

  private retryLater(id: number, p: Pending): void {
    const delay = Math.min(this.retryMsMax, this.retryMsMin * 2 ** Math.min(p.attempt++, 20));
    if (this.clock.now() + delay >= p.deadline) return; // the timeout answers it
    this.stats.retries++;
    p.batch = 0;
    p.retry = this.clock.schedule(delay, () => {
      if (this.pending.get(id) === p) this.send(id, p);
    });
  }

  private settle(id: number, ok: boolean, v: unknown): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    if (p.retry !== undefined) this.clock.cancel(p.retry);
    if (!ok) p.reject(v);
    else if (!p.unwrap) p.resolve(v);
    else {
      const r = v as WireReply;
      if (r.ok) p.resolve(r.v);
      else p.reject(new RemoteActorError(r.e.name, r.e.message));
    }
  }

  /** Requests waiting for a reply. */
  inFlight(): number {
    return this.pending.size;
  }

  /** Stop: unsubscribe, fail what is pending with {@link UnreachableError}. Does not close the connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const k of [...this.listening.keys()]) this.unlisten(k);
    this.nodeSub?.unsubscribe();
    this.inboxSub?.unsubscribe();
    for (const [id, p] of [...this.pending]) this.settle(id, false, new UnreachableError(p.to));
    this.slots.clear();
  }
}

/** Ask an entity over a transport from outside any node (a client): unwraps the {@link WireReply}. */
export async function askOver<R = unknown>(transport: Transport, to: Address, command: unknown, timeoutMs: number): Promise<R> {
  if (transport instanceof NatsTransport) return transport.ask<R>(to, command, timeoutMs);
  const reply = (await transport.request(to, { t: 'ask', cmd: command } satisfies WireAsk, timeoutMs)) as WireReply;
  if (reply.ok) return reply.v as R;
  throw new RemoteActorError(reply.e.name, reply.e.message);
}

/** Connect with the options the cluster needs (`noAsyncTraces`, unlimited reconnects, a name). */
export async function connectNats(url: string, name = 'bourse'): Promise<NatsConnection> {
  const { connect } = await import('@nats-io/transport-node');
  return connect({ servers: url, name, noAsyncTraces: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 5000 });
}
