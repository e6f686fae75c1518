import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvEntry, KvWatchEntry } from '@nats-io/kv';
import { Kvm } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import type { Address } from './address.js';
import type { EntityKind } from './entity.js';
import type { CommitParticipant, GroupCommitter } from './group-commit.js';
import type { Journal } from './journal.js';
import { JournalFencedError } from './journal.js';
import type { ActorNodeOptions, NodeEvent } from './node.js';
import { ActorNode } from './node.js';
import { NatsTransport } from './nats-transport.js';
import type { ShardId } from './shard.js';
import { ShardMap, fnv1a32 } from './shard.js';

/**
 * What a cluster node reports about ownership, for logs and for the tests that prove no shard was
 * served by two nodes at once: `serve` (from `t` on, with fence token `token`), `stop` (until `t`),
 * `renew` (each owned shard's local stop deadline after a renewal round).
 */
export type ClusterLogRecord =
  | { readonly ev: 'serve'; readonly node: string; readonly shard: string; readonly token: number; readonly t: number; readonly claimMs: number }
  | { readonly ev: 'stop'; readonly node: string; readonly shard: string; readonly token: number; readonly t: number; readonly reason: string }
  | { readonly ev: 'renew'; readonly node: string; readonly t: number; readonly deadlines: readonly [string, number, number][] }
  | { readonly ev: 'error'; readonly node: string; readonly t: number; readonly shard?: string; readonly message: string };

export interface ClusterNodeOptions {
  readonly nodeId: string;
  /** Made with `connectNats` (noAsyncTraces). The node does not close it. */
  readonly nc: NatsConnection;
  /** Cluster name: subjects `bourse.<cluster>.…`, KV bucket `bourse-<cluster>`. `[A-Za-z0-9_-]+`. */
  readonly cluster: string;
  readonly kinds: readonly EntityKind[];
  readonly journal: Journal;
  /**
   * Where the node raises fences and loads shard registries when it claims a shard (default `journal`).
   * Give it a pool the entity recoveries do not queue on, so a claim is not stuck behind them.
   */
  readonly controlJournal?: Journal;
  /** Shard count per kind (fixed forever); kinds not listed get `defaultShards`. */
  readonly shards?: Readonly<Record<string, number>>;
  /** Default 64. */
  readonly defaultShards?: number;
  /** Lease TTL (the KV bucket's max age). Renewed every third of it. Default 1500 ms. */
  readonly leaseTtlMs?: number;
  /** Ownership loop period. Default 100 ms. */
  readonly tickMs?: number;
  /** A shard left unowned is claimed at once by its preferred node, by the next after this many ms, and so on. Default 150. */
  readonly claimStaggerMs?: number;
  /** Shards handed off at once when rebalancing. Default 8. */
  readonly handoffsMax?: number;
  /** Options passed through to the {@link ActorNode}. */
  readonly node?: Omit<ActorNodeOptions, 'nodeId' | 'kinds' | 'journal' | 'transport' | 'serves' | 'onOutboxChange'>;
  onLog?(record: ClusterLogRecord): void;
}

/** The KV bucket of a cluster. */
export const bucketOf = (cluster: string): string => `bourse-${cluster}`;
/** The subject prefix of a cluster. */
export const prefixOf = (cluster: string): string => `bourse.${cluster}`;
export const leaseKey = (shardKey: string): string => `shard.${shardKey}`;
export const nodeKey = (nodeId: string): string => `node.${nodeId}`;

/** What a lease holds. */
export interface LeaseValue {
  readonly node: string;
  /** Local ms when the tenure began. */
  readonly since: number;
  /** The tenure's fence token (its first revision). */
  readonly token: number;
}

/** What a node's heartbeat holds. */
export interface HeartbeatValue {
  readonly node: string;
  readonly pid: number;
  readonly started: number;
  readonly shards: number;
}

/** Opens (or creates) the cluster's KV bucket with the lease TTL as its max age. */
export async function openLeaseBucket(nc: NatsConnection, cluster: string, ttlMs: number): Promise<KV> {
  const kvm = new Kvm(nc);
  return kvm.create(bucketOf(cluster), { ttl: ttlMs, history: 1 });
}

/** Highest-random-weight order of `nodes` for a shard: the first is its preferred owner. */
export function preferenceOrder(nodes: readonly string[], shardKey: string): string[] {
  const w = new Map(nodes.map((n) => [n, weight(n, shardKey)]));
  return [...nodes].sort((a, b) => w.get(b)! - w.get(a)! || (a < b ? -1 : 1));
}

/**
 * The balanced placement every node computes alike from the same live set: shards in order, each to
 * its highest-weight node that still has room (at most ceil(shards / nodes) each). Close to rendezvous
 * hashing (a join or leave moves few shards) but evenly spread.
 */
export function placement(nodes: readonly string[], shardKeys: readonly string[]): Map<string, string> {
  const cap = Math.ceil(shardKeys.length / Math.max(1, nodes.length));
  const load = new Map(nodes.map((n) => [n, 0]));
  const out = new Map<string, string>();
  for (const key of shardKeys) {
    for (const n of preferenceOrder(nodes, key)) {
      if (load.get(n)! < cap) {
        load.set(n, load.get(n)! + 1);
        out.set(key, n);
        break;
      }
    }
  }
  return out;
}

/** FNV-1a of `node|shard`, then the murmur3 finalizer: FNV alone mixes similar short keys poorly. */
function weight(node: string, shardKey: string): number {
  let h = fnv1a32(`${node}|${shardKey}`);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const packr = new Packr({ useRecords: false, moreTypes: false });
const enc = new TextEncoder();
const dec = new TextDecoder();
const REGISTRY_PREFIX = '$reg/';
const REGISTRY_SNAPSHOT_EVERY = 1000;

/**
 * The per-shard list of entities with unacknowledged outgoing messages ("remembered entities"), kept
 * in the journal under `$reg/<kind>#<n>` as `{ a: address, p: 1 | 0 }` records. The records join the
 * group-commit batch that carries the entity's events (the committer's `beforeFlush`), so an outbox
 * event is never durable without its sender being remembered. A new owner reads the list and wakes
 * those entities, which resend what was not acknowledged. Removals are lazy (an extra wake is harmless).
 */
class ShardRegistry implements CommitParticipant {
  readonly persistenceId: string;
  epoch = 0;
  seq = 0;
  committedSeq = 0;
  private snapSeq = 0;
  readonly remembered = new Set<Address>();
  private readonly dirty = new Map<Address, boolean>();
  retired = false;
  /** Records of this registry are in an in-flight append (then its marks wait, and so do their entities). */
  inFlight = false;

  constructor(
    readonly shard: ShardId,
    private readonly journal: Journal,
    private readonly onFail: (error: unknown, stale: boolean) => void,
  ) {
    this.persistenceId = REGISTRY_PREFIX + shard.scope;
  }

  async load(): Promise<void> {
    const snap = await this.journal.loadSnapshot(this.persistenceId);
    let seq = 0;
    if (snap !== undefined) {
      for (const a of packr.unpack(snap.data) as Address[]) this.remembered.add(a);
      seq = this.snapSeq = snap.seq;
    }
    for await (const page of this.journal.read(this.persistenceId, seq + 1)) {
      for (const r of page.events as { a: Address; p: number }[]) {
        if (r.p) this.remembered.add(r.a);
        else this.remembered.delete(r.a);
      }
      seq = page.toSeq;
    }
    this.seq = this.committedSeq = seq;
  }

  /** Whether `address` has unacknowledged outgoing messages now. */
  mark(address: Address, pending: boolean): boolean {
    if (this.retired) return false;
    this.dirty.set(address, pending);
    return true;
  }

  /** Called from the committer's `beforeFlush`: the changed entries join the batch being formed. */
  flushInto(committer: GroupCommitter): boolean {
    if (this.retired || this.dirty.size === 0 || this.inFlight) return false;
    const events: { a: Address; p: number }[] = [];
    for (const [a, want] of this.dirty) {
      if (want === this.remembered.has(a)) continue;
      events.push({ a, p: want ? 1 : 0 });
      if (want) this.remembered.add(a);
      else this.remembered.delete(a);
    }
    this.dirty.clear();
    if (events.length === 0) return false;
    committer.add(this, this.seq, events);
    this.seq += events.length;
    this.inFlight = true;
    return true;
  }

  hasDirty(): boolean {
    return this.dirty.size > 0 && !this.retired;
  }

  /** Whether `address` has a mark not yet written. */
  pending(address: Address): boolean {
    return this.dirty.has(address);
  }

  committed(epoch: number, toSeq: number): void {
    this.inFlight = false;
    if (epoch !== this.epoch || toSeq <= this.committedSeq) return;
    this.committedSeq = toSeq;
    if (this.seq === toSeq && toSeq - this.snapSeq >= REGISTRY_SNAPSHOT_EVERY && !this.retired) {
      this.snapSeq = toSeq;
      const data = packr.pack([...this.remembered]) as Uint8Array;
      // Then keep two snapshots and drop the records behind them, so a claim reads little.
      this.journal
        .saveSnapshot({ persistenceId: this.persistenceId, seq: toSeq, data })
        .then(() => this.journal.keepSnapshots(this.persistenceId, 2))
        .then(() => this.journal.deleteEventsTo(this.persistenceId, toSeq))
        .catch(() => undefined);
    }
  }

  failed(epoch: number, error: unknown, stale: boolean): void {
    this.inFlight = false;
    if (epoch !== this.epoch) return;
    this.epoch++;
    this.onFail(error, stale);
  }

  retire(): void {
    this.retired = true;
    this.epoch++;
    this.dirty.clear();
  }
}

type ShardState = 'starting' | 'serving' | 'stopping';

interface Owned {
  readonly shard: ShardId;
  state: ShardState;
  /** Fence token: the lease revision that began this tenure. */
  readonly token: number;
  /** Latest lease revision (renewals raise it). */
  rev: number;
  /** Local time after which this node must not serve the shard (renewal send time + 0.8 TTL). */
  deadline: number;
  readonly since: number;
  registry: ShardRegistry | undefined;
}

/**
 * One node of the cluster: an {@link ActorNode} whose entities are placed by shard, with shard
 * ownership as leases in JetStream KV and messages over {@link NatsTransport}.
 *
 * - shard = fnv1a32(UTF-8 id) mod N (per kind, fixed). Preferred owner: highest random weight over
 *   the live nodes (heartbeats in the same bucket), so a join or leave moves about 1/n of the shards.
 * - Claim: KV `create` of `shard.<kind>.<n>`; its revision is the fence token. The new owner raises
 *   the journal fence (`append([], { fences })`), loads the shard's registry, starts serving and wakes
 *   the remembered entities. Renewal: `update` with the last revision every TTL/3. A node that has
 *   not renewed stops serving at send time + 0.8·TTL, before the server lets the lease expire.
 * - Handoff: when a live node is preferred for a shard it owns, the owner stops serving it, releases
 *   its entities (commit, forward queued commands, stop), then deletes the lease; the preferred node
 *   claims it. Commands meanwhile are retried by the transport.
 *
 * @example
 *   const nc = await connectNats(url);
 *   const node = await ClusterNode.start({ nodeId: 'n1', nc, cluster: 'c1', kinds: [accountKind], journal });
 *   await node.node.ask('account/a1', { type: 'Balance' }, 2000);
 *   await node.stop();
 */
export class ClusterNode {
  readonly nodeId: string;
  readonly node: ActorNode;
  readonly transport: NatsTransport;
  readonly shards: ShardMap;
  readonly kv: KV;
  private readonly opts: ClusterNodeOptions;
  private readonly ttl: number;
  private readonly tickMs: number;
  private readonly stagger: number;
  private readonly handoffsMax: number;
  private readonly owned = new Map<string, Owned>();
  /** Last fence token this node held per scope: writes after a loss still carry it (and are fenced). */
  private readonly tokens = new Map<string, number>();
  private readonly view = new Map<string, { value: Uint8Array; created: number; op: string; revision: number }>();
  private readonly unownedSince = new Map<string, number>();
  private readonly claiming = new Set<string>();
  private handoffs = 0;
  private placementFor = '';
  private placementSince = 0;
  private placed = new Map<string, string>();
  private dirtyRegistries = new Set<ShardRegistry>();
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private renewing = false;
  private stopped = false;
  private readonly started = Date.now();
  private watchStop: (() => void) | undefined;
  readonly stats = { claims: 0, claimFailures: 0, handoffs: 0, losses: 0, renewals: 0, renewFailures: 0, fencedAtClaim: 0 };

  private constructor(opts: ClusterNodeOptions, kv: KV) {
    this.opts = opts;
    this.nodeId = opts.nodeId;
    this.kv = kv;
    this.ttl = opts.leaseTtlMs ?? 1500;
    this.tickMs = opts.tickMs ?? 100;
    this.stagger = opts.claimStaggerMs ?? 150;
    this.handoffsMax = opts.handoffsMax ?? 8;
    this.shards = new ShardMap(opts.shards ?? {}, opts.defaultShards ?? 64);
    for (const k of opts.kinds) this.shards.shards(k.kind);
    this.transport = new NatsTransport({ nc: opts.nc, prefix: prefixOf(opts.cluster), shards: this.shards });
    const userOnEvent = opts.node?.onEvent;
    this.node = new ActorNode({
      ...opts.node,
      nodeId: opts.nodeId,
      kinds: opts.kinds,
      journal: opts.journal,
      transport: this.transport,
      groupCommit: {
        maxInFlight: 2,
        ...opts.node?.groupCommit,
        fenceOf: (id) => this.fenceOf(id),
        // An entity whose registry mark waits for its registry's in-flight append waits with it.
        holdBack: (p) => this.holdBack(p.persistenceId),
      },
      serves: (a) => this.servesAddress(a),
      onOutboxChange: (a) => this.onOutboxChange(a),
      onEvent: (e: NodeEvent) => {
        if (e.type === 'stale-writer') {
          const o = this.owned.get(this.shards.shardOf(e.address).key);
          if (o !== undefined) void this.lose(o, 'fenced', false);
        }
        userOnEvent?.(e);
      },
    });
    this.node.committer!.beforeFlush = () => {
      if (this.dirtyRegistries.size === 0) return;
      const regs = this.dirtyRegistries;
      this.dirtyRegistries = new Set();
      for (const r of regs) {
        r.flushInto(this.node.committer!);
        if (r.hasDirty()) this.dirtyRegistries.add(r); // marks kept while its append is in flight
      }
    };
  }

  /** Opens the bucket, starts watching it and begins claiming shards. */
  static async start(opts: ClusterNodeOptions): Promise<ClusterNode> {
    const kv = await openLeaseBucket(opts.nc, opts.cluster, opts.leaseTtlMs ?? 1500);
    const n = new ClusterNode(opts, kv);
    await n.begin();
    return n;
  }

  private async begin(): Promise<void> {
    const w = await this.kv.watch({ key: '>' });
    this.watchStop = () => w.stop();
    void (async () => {
      for await (const e of w as AsyncIterable<KvWatchEntry>) this.onWatch(e);
    })().catch(() => undefined);
    await this.heartbeat();
    this.lastRenew = Date.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  private onWatch(e: KvEntry): void {
    this.view.set(e.key, { value: e.value, created: e.created.getTime(), op: e.operation, revision: e.revision });
  }

  // ---------------------------------------------------------------- hooks for the ActorNode

  private servesAddress(a: Address): boolean {
    const o = this.owned.get(this.shards.shardOf(a).key);
    return o !== undefined && o.state === 'serving' && Date.now() < o.deadline;
  }

  private fenceOf(persistenceId: string): { scope: string; token: number } {
    const scope = persistenceId.startsWith(REGISTRY_PREFIX) ? persistenceId.slice(REGISTRY_PREFIX.length) : this.shards.shardOf(persistenceId).scope;
    return { scope, token: this.tokens.get(scope) ?? 0 };
  }

  private holdBack(persistenceId: string): boolean {
    if (this.dirtyRegistries.size === 0 || persistenceId.startsWith(REGISTRY_PREFIX)) return false;
    const reg = this.owned.get(this.shards.shardOf(persistenceId).key)?.registry;
    return reg !== undefined && reg.inFlight && reg.pending(persistenceId);
  }

  private onOutboxChange(a: Address): void {
    const o = this.owned.get(this.shards.shardOf(a).key);
    const reg = o?.registry;
    if (reg === undefined) return;
    const view = this.node.inspect(a);
    if (view === undefined) return;
    if (reg.mark(a, view.outPending > 0)) this.dirtyRegistries.add(reg);
  }

  // ---------------------------------------------------------------- ownership loop

  private log(r: ClusterLogRecord): void {
    try {
      this.opts.onLog?.(r);
    } catch {
      /* observers must not break the loop */
    }
  }

  /**
   * Nodes that count for placement: a heartbeat seen within two TTLs (a node whose event loop lagged
   * through one renewal must not make every other node reshuffle its shards).
   */
  private liveNodes(now: number): string[] {
    const nodes = new Set<string>([this.nodeId]);
    for (const [k, v] of this.view) {
      if (!k.startsWith('node.') || v.op !== 'PUT' || now - v.created >= 2 * this.ttl) continue;
      nodes.add(k.slice(5));
    }
    return [...nodes].sort();
  }

  private heartbeatFresh(node: string, now: number): boolean {
    const v = this.view.get(nodeKey(node));
    return v !== undefined && v.op === 'PUT' && now - v.created < this.ttl;
  }

  private leaseOwner(shardKey: string, now: number): string | undefined {
    const v = this.view.get(leaseKey(shardKey));
    if (v === undefined || v.op !== 'PUT' || now - v.created >= this.ttl) return undefined;
    try {
      return (JSON.parse(dec.decode(v.value)) as LeaseValue).node;
    } catch {
      return '?';
    }
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const o of this.owned.values()) {
      if (o.state !== 'stopping' && now >= o.deadline) void this.lose(o, 'not renewed in time', false);
    }
    if (!this.renewing && now - this.lastRenew >= this.ttl / 3) void this.renew();
    const live = this.liveNodes(now);
    const liveKey = live.join(',');
    if (liveKey !== this.placementFor) {
      this.placementFor = liveKey;
      this.placementSince = now;
      this.placed = new Map();
      for (const kind of this.opts.kinds) for (const [k, n] of placement(live, this.shards.shards(kind.kind).map((s) => s.key))) this.placed.set(k, n);
    }
    for (const kind of this.opts.kinds) {
      for (const shard of this.shards.shards(kind.kind)) {
        const key = shard.key;
        const mine = this.owned.get(key);
        const preferred = this.placed.get(key)!;
        const order = [preferred, ...preferenceOrder(live, key).filter((n) => n !== preferred)];
        if (mine === undefined) {
          if (this.claiming.has(key)) continue;
          const owner = this.leaseOwner(key, now);
          if (owner !== undefined) {
            this.unownedSince.delete(key);
            continue;
          }
          let since = this.unownedSince.get(key);
          if (since === undefined) this.unownedSince.set(key, (since = now));
          const rank = order.indexOf(this.nodeId);
          if (rank === 0 || now - since >= rank * this.stagger) void this.claim(shard);
        } else if (
          mine.state === 'serving' &&
          order[0] !== this.nodeId &&
          this.handoffs < this.handoffsMax &&
          now - mine.since > this.ttl &&
          // Hand off only once membership has been stable for a TTL, and to a node that is surely up.
          now - this.placementSince >= this.ttl &&
          this.heartbeatFresh(order[0]!, now)
        ) {
          this.handoffs++;
          this.stats.handoffs++;
          void this.lose(mine, `handoff to ${order[0]}`, true).finally(() => this.handoffs--);
        }
      }
    }
  }

  private async heartbeat(): Promise<void> {
    const v: HeartbeatValue = { node: this.nodeId, pid: process.pid, started: this.started, shards: this.owned.size };
    await this.kv.put(nodeKey(this.nodeId), enc.encode(JSON.stringify(v)));
  }

  private async renew(): Promise<void> {
    this.renewing = true;
    const sentAt = Date.now();
    this.lastRenew = sentAt;
    try {
      const list = [...this.owned.values()].filter((o) => o.state !== 'stopping');
      // Logged before sending: the deadlines a success would set, an upper bound of the real ones.
      const upTo = sentAt + 0.8 * this.ttl;
      this.log({ ev: 'renew', node: this.nodeId, t: sentAt, deadlines: list.map((o) => [o.shard.key, o.token, Math.max(o.deadline, upTo)]) });
      await Promise.all([
        this.heartbeat().catch(() => undefined),
        ...list.map(async (o) => {
          const t0 = Date.now();
          try {
            const value: LeaseValue = { node: this.nodeId, since: o.since, token: o.token };
            const rev = await this.kv.update(leaseKey(o.shard.key), enc.encode(JSON.stringify(value)), o.rev);
            o.rev = rev; // also when stopping: the handoff deletes the lease at this revision
            if (o.state === 'stopping') return;
            o.deadline = Math.max(o.deadline, Math.min(t0, sentAt) + 0.8 * this.ttl);
            this.stats.renewals++;
          } catch (e) {
            this.stats.renewFailures++;
            // Someone else holds the key now (our lease expired): stop at once.
            if (/wrong last sequence/i.test((e as Error).message)) void this.lose(o, 'lease taken', false);
          }
        }),
      ]);
    } finally {
      this.renewing = false;
    }
  }

  private async claim(shard: ShardId): Promise<void> {
    const key = shard.key;
    this.claiming.add(key);
    const t0 = Date.now();
    try {
      let rev: number;
      try {
        const value: LeaseValue = { node: this.nodeId, since: t0, token: 0 };
        rev = await this.kv.create(leaseKey(key), enc.encode(JSON.stringify(value)));
      } catch {
        this.stats.claimFailures++;
        return;
      }
      if (this.stopped) {
        await this.kv.delete(leaseKey(key), { previousSeq: rev }).catch(() => undefined);
        return;
      }
      this.stats.claims++;
      const o: Owned = { shard, state: 'starting', token: rev, rev, deadline: t0 + 0.8 * this.ttl, since: t0, registry: undefined };
      this.owned.set(key, o);
      this.tokens.set(shard.scope, rev);
      try {
        // Raise the fence first: from here on, a deposed owner's appends for this shard fail.
        const control = this.opts.controlJournal ?? this.opts.journal;
        await control.append([], { fences: [{ scope: shard.scope, token: rev }] });
        const reg = new ShardRegistry(shard, control, (err, stale) => {
          if (this.owned.get(key) === o) void this.lose(o, stale ? 'fenced (registry)' : `registry write failed: ${(err as Error)?.message}`, !stale);
        });
        await reg.load();
        o.registry = reg;
      } catch (e) {
        if (e instanceof JournalFencedError) this.stats.fencedAtClaim++;
        this.log({ ev: 'error', node: this.nodeId, t: Date.now(), shard: key, message: `claim: ${(e as Error).message}` });
        await this.lose(o, 'claim failed', !(e instanceof JournalFencedError));
        return;
      }
      if (o.state !== 'starting') return;
      const now = Date.now();
      if (now >= o.deadline) {
        await this.lose(o, 'claim too slow', true);
        return;
      }
      o.state = 'serving';
      this.log({ ev: 'serve', node: this.nodeId, shard: key, token: rev, t: now, claimMs: now - t0 });
      this.transport.listen(key);
      this.node.wake(o.registry!.remembered);
    } finally {
      this.claiming.delete(key);
    }
  }

  /**
   * Stop serving a shard: at once for new commands; then release its entities (what they decided is
   * committed, their queued commands are forwarded), retire the registry, and — when `free` and the
   * lease is still ours — delete the lease so the next owner need not wait for it to expire.
   */
  private async lose(o: Owned, reason: string, free: boolean): Promise<void> {
    if (o.state === 'stopping') return;
    const wasServing = o.state === 'serving';
    o.state = 'stopping';
    this.stats.losses++;
    const key = o.shard.key;
    if (wasServing) this.log({ ev: 'stop', node: this.nodeId, shard: key, token: o.token, t: Math.min(Date.now(), o.deadline), reason });
    this.transport.unlisten(key);
    try {
      await this.node.release((a) => !a.startsWith(REGISTRY_PREFIX) && this.shards.shardOf(a).key === key);
    } catch (e) {
      this.log({ ev: 'error', node: this.nodeId, t: Date.now(), shard: key, message: `release: ${(e as Error).message}` });
    }
    // The released entities' last registry records went in the same batches as their events.
    o.registry?.retire();
    if (free) await this.kv.delete(leaseKey(key), { previousSeq: o.rev }).catch(() => undefined);
    if (this.owned.get(key) === o) this.owned.delete(key);
  }

  // ---------------------------------------------------------------- views and shutdown

  /** Shards this node serves now. */
  servedShards(): string[] {
    return [...this.owned.values()].filter((o) => o.state === 'serving').map((o) => o.shard.key);
  }

  /** Shards this node holds a lease for, in any state. */
  ownedShards(): { shard: string; state: ShardState; token: number; since: number }[] {
    return [...this.owned.values()].map((o) => ({ shard: o.shard.key, state: o.state, token: o.token, since: o.since }));
  }

  /** Graceful leave: hand every shard off (release, delete the lease), remove the heartbeat, stop. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.claiming.size > 0) await new Promise((r) => setTimeout(r, 5));
    await Promise.all([...this.owned.values()].map((o) => this.lose(o, 'node leaving', true)));
    await this.kv.delete(nodeKey(this.nodeId)).catch(() => undefined);
    this.watchStop?.();
    await this.node.stop();
    this.transport.close();
  }

  /** Stop at once, as a crash would (leases are left to expire). */
  kill(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.watchStop?.();
    this.node.kill();
    this.transport.close();
  }
}
