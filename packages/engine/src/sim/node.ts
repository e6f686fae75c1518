/**
 * One engine node of the simulated cluster: the real `ActorNode` (group commit, reliable messages,
 * recovery) hosting the real engine kinds (`../host/kinds.ts`: books, ledgers, market data with the
 * saga of `../venue/routing.ts`), over the simulated clock, network and store.
 *
 * Shard ownership mirrors `ClusterNode` (packages/actors/src/cluster.ts), which is tied to NATS and
 * `Date.now` and so cannot run here: a shard is claimed with a KV `create` whose revision is the
 * tenure's fence token; the fence is raised in the journal before serving; renewals are `update`s
 * at the last revision every TTL/3; the node stops serving at (renewal send time + 0.8·TTL) unless a
 * renewal succeeded, and at once when an update says the key moved; lost shards are `release`d.
 * Differences: no per-shard registry (a new owner wakes every entity of the shard, as `EmbeddedVenue`
 * does on start) and no rebalancing handoff (a restarted node takes shards that become free).
 */
import { ActorNode, ShardMap, preferenceOrder } from '@bourse/actors';
import type { Address, NodeEvent, ShardId } from '@bourse/actors';
import type { HostDirectory } from '../host/kinds.js';
import { bookKind, ledgerKind, mdKind } from '../host/kinds.js';
import { HostJournal } from '../host/journal.js';
import { ProcessClock, SimTransport } from './net.js';
import type { SimNetwork } from './net.js';
import type { SimKV, SimStore } from './store.js';

export interface NodeEnv {
  readonly net: SimNetwork;
  readonly store: SimStore;
  readonly kv: SimKV;
  readonly dir: HostDirectory;
  readonly shards: ShardMap;
  /** `shards.shardOf`, memoised per address (asked on every routed message and every write). */
  readonly shardOf: (address: Address) => ShardId;
  readonly shardKeys: readonly string[];
  /** Every entity address of each shard key (woken by a new owner). */
  readonly entitiesOf: ReadonlyMap<string, readonly Address[]>;
  readonly nodeIds: readonly string[];
  readonly worldClock: import('./clock.js').SimClock;
  readonly leaseTickMs: number;
  /** Serving intervals, for the single-writer check. */
  onServe(shard: string, tenure: string, token: number, t: number): void;
  onStop(shard: string, tenure: string, t: number): void;
  onRenew(shard: string, tenure: string, deadline: number): void;
  onNodeEvent(node: string, e: NodeEvent): void;
  /** Planted: renewals also renew lost tenures and resurrect them (with a KV that does not compare revisions). */
  readonly renewLostTenures: boolean;
}

interface Tenure {
  readonly key: string;
  readonly scope: string;
  readonly token: number;
  rev: number;
  deadline: number;
  state: 'starting' | 'serving' | 'lost';
  lastRenew: number;
  renewing: boolean;
}

export class SimEngineNode {
  readonly clock: ProcessClock;
  readonly actor: ActorNode;
  /** Lease holder name: a restarted node is a new tenure holder. */
  readonly tenureName: string;
  private readonly tenures = new Map<string, Tenure>();
  private readonly tokens = new Map<string, number>();
  private readonly claiming = new Set<string>();
  private readonly startedAt: number;
  /** This node's place in each shard's preference order (the node ids are fixed for the run). */
  private readonly rank = new Map<string, number>();
  private timer: import('@bourse/actors').TimerHandle | undefined;
  kvCalls = 0;
  private readonly journal: HostJournal;

  constructor(
    readonly id: string,
    readonly incarnation: number,
    private readonly env: NodeEnv,
  ) {
    this.clock = new ProcessClock(id, env.worldClock);
    this.tenureName = `${id}#${incarnation}`;
    this.startedAt = this.clock.now();
    for (const key of env.shardKeys) this.rank.set(key, preferenceOrder(env.nodeIds, key).indexOf(id));
    const transport = new SimTransport(env.net, this.clock);
    const journal = new HostJournal(env.store.connect(this.clock), () => undefined);
    this.journal = journal;
    this.actor = new ActorNode({
      nodeId: this.tenureName,
      clock: this.clock,
      transport,
      journal,
      kinds: [bookKind(env.dir), ledgerKind(env.dir), mdKind()],
      groupCommit: { windowUs: 300, batchEventsMax: 2000, fenceOf: (id) => this.fenceOf(id) },
      snapshotEventsEvery: 250,
      snapshotEventsPerByte: 0, // a fixed interval, and no snapshots at a graceful stop: the sim's runs snapshot as they always have
      snapshotOnStop: false,
      reliable: { resendMs: 40, attemptTimeoutMs: 40, windowMax: 512, earlyLocal: true },
      restart: { backoffMsMin: 2, backoffMsMax: 200, backoffResetMs: 1000 },
      passivation: { idleMs: 5_000 },
      serves: (a) => this.servesAddress(a),
      onEvent: (e) => {
        if (e.type === 'stale-writer') {
          const t = this.tenures.get(this.env.shardOf(e.address).key);
          if (t !== undefined) this.lose(t, 'fenced');
        }
        env.onNodeEvent(id, e);
      },
    });
    this.timer = this.clock.schedule(0, () => this.tick());
  }

  get alive(): boolean {
    return this.clock.alive;
  }

  private servesAddress(a: Address): boolean {
    const t = this.tenures.get(this.env.shardOf(a).key);
    return t !== undefined && t.state === 'serving' && this.clock.now() < t.deadline;
  }

  private fenceOf(persistenceId: string): { scope: string; token: number } {
    const scope = this.env.shardOf(persistenceId).scope;
    return { scope, token: this.tokens.get(scope) ?? 0 };
  }

  servedShards(): string[] {
    const now = this.clock.now();
    return [...this.tenures.values()].filter((t) => t.state === 'serving' && now < t.deadline).map((t) => t.key);
  }

  /** Crash: the process is gone; its in-flight appends commit or not by the store's coin. */
  kill(): void {
    const now = this.clock.now();
    for (const t of this.tenures.values()) if (t.state === 'serving') this.env.onStop(t.key, this.tenureName, Math.min(now, t.deadline));
    this.tenures.clear();
    this.clock.die();
    this.actor.kill();
  }

  pause(): void {
    this.clock.paused = true;
  }

  resume(): void {
    this.clock.resume();
  }

  // ---------------------------------------------------------------- ownership loop

  private kv<T>(op: () => T, timeoutMs: number, done: (r: T | undefined, timedOut: boolean) => void): void {
    this.kvCalls++;
    const net = this.env.net;
    let settled = false;
    const h = this.clock.schedule(timeoutMs, () => {
      if (settled) return;
      settled = true;
      done(undefined, true);
    });
    net.transit(this.id, 'nats', () => {
      const r = op();
      net.transit('nats', this.id, () =>
        this.clock.run(() => {
          if (settled) return;
          settled = true;
          this.clock.cancel(h);
          done(r, false);
        }),
      );
    });
  }

  private tick(): void {
    const env = this.env;
    const now = this.clock.now();
    const ttl = env.kv.ttlMs;
    for (const t of [...this.tenures.values()]) {
      if (t.state === 'serving' && now >= t.deadline) this.lose(t, 'deadline');
      else if (t.state === 'lost' && !env.renewLostTenures) this.tenures.delete(t.key);
    }
    // Renew every TTL/3.
    for (const t of this.tenures.values()) {
      if (t.renewing || now - t.lastRenew < ttl / 3) continue;
      if (t.state !== 'serving' && !(env.renewLostTenures && t.state === 'lost')) continue;
      t.renewing = true;
      t.lastRenew = now;
      const sentAt = now;
      this.kv(
        () => env.kv.update(`shard.${t.key}`, { node: this.tenureName, token: t.token }, t.rev),
        ttl / 3,
        (rev) => {
          t.renewing = false;
          if (rev === undefined) {
            if (t.state === 'serving') this.lose(t, 'lease taken');
            return;
          }
          t.rev = rev;
          if (t.state === 'lost' && env.renewLostTenures && this.tenures.get(t.key) === t) {
            // PLANTED BUG: a renewal that does not check it still holds the fenced tenure resurrects it.
            t.state = 'serving';
            t.deadline = sentAt + 0.8 * ttl;
            if (this.clock.now() < t.deadline) {
              env.onServe(t.key, this.tenureName, t.token, this.clock.now());
              env.onRenew(t.key, this.tenureName, t.deadline);
            }
            else t.state = 'lost';
            return;
          }
          if (t.state === 'serving') {
            t.deadline = Math.max(t.deadline, sentAt + 0.8 * ttl);
            env.onRenew(t.key, this.tenureName, t.deadline);
          }
        },
      );
    }
    // Claim free shards: the placed node at once, others once the shard has been free a while.
    for (const key of env.shardKeys) {
      if (this.tenures.has(key) || this.claiming.has(key)) continue;
      const rank = this.rank.get(key)!;
      if (rank > 0 && now - this.startedAt < 100 * rank) continue;
      if (env.kv.holder(`shard.${key}`) !== undefined && rank !== 0 && (this.kvCalls + rank) % 3 !== 0) continue; // a peek, not a call: keeps claim traffic down
      this.claim(key);
    }
    if (this.clock.alive) this.timer = this.clock.schedule(env.leaseTickMs, () => this.tick());
  }

  private claim(key: string): void {
    const env = this.env;
    this.claiming.add(key);
    const t0 = this.clock.now();
    const ttl = env.kv.ttlMs;
    this.kv(
      () => env.kv.create(`shard.${key}`, { node: this.tenureName, token: 0 }),
      ttl / 3,
      (rev) => {
        if (rev === undefined) {
          this.claiming.delete(key);
          return;
        }
        const scope = key.replace('.', '#');
        const t: Tenure = { key, scope, token: rev, rev, deadline: t0 + 0.8 * ttl, state: 'starting', lastRenew: t0, renewing: false };
        this.tenures.set(key, t);
        this.tokens.set(scope, rev);
        // Raise the fence first: from here on a deposed owner's appends for this shard fail.
        this.journal
          .append([], { fences: [{ scope, token: rev }] })
          .then(
            () => {
              this.claiming.delete(key);
              if (t.state !== 'starting' || this.tenures.get(key) !== t) return;
              const now = this.clock.now();
              if (now >= t.deadline) {
                this.tenures.delete(key);
                return;
              }
              t.state = 'serving';
              env.onServe(key, this.tenureName, rev, now);
              env.onRenew(key, this.tenureName, t.deadline);
              this.actor.wake(env.entitiesOf.get(key) ?? []);
            },
            () => {
              this.claiming.delete(key);
              if (this.tenures.get(key) === t) this.tenures.delete(key);
            },
          );
      },
    );
  }

  private lose(t: Tenure, _reason: string): void {
    if (t.state === 'lost') return;
    const was = t.state;
    t.state = 'lost';
    if (was === 'serving') this.env.onStop(t.key, this.tenureName, Math.min(this.clock.now(), t.deadline));
    if (!this.env.renewLostTenures) this.tenures.delete(t.key);
    const shardOf = this.env.shardOf;
    this.actor.release((a) => shardOf(a).key === t.key, 200).catch(() => undefined);
  }
}

/** `shards.shardOf` with a per-address cache (the sim's addresses are a small fixed set). */
export function memoShardOf(shards: ShardMap): (address: Address) => ShardId {
  const cache = new Map<Address, ShardId>();
  return (a) => {
    let s = cache.get(a);
    if (s === undefined) cache.set(a, (s = shards.shardOf(a)));
    return s;
  };
}
