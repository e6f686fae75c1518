/**
 * The simulated clock per process and the simulated network.
 *
 * - `ProcessClock` is one process's view of the world's `SimClock`: its timers die with the
 *   process (crash) and wait while it is paused (a stalled event loop, a SIGSTOP: the lease-expiry
 *   race). Everything a process receives (network arrivals, journal answers) runs through `run`, so a
 *   paused process does nothing until it resumes and a dead one nothing at all.
 * - `SimNetwork` joins clients/edges, engine nodes, the store and NATS. Each message may be dropped,
 *   duplicated or delayed (different delays reorder), and any pair of peers can be partitioned. Every
 *   choice comes from the world's seeded `Prng`.
 * - `SimTransport` is one process's `Transport` over that network. The `Transport` interface does not
 *   name the sender, so each process gets its own instance (that is how a partition knows the pair).
 */
import { AskTimeoutError, UnreachableError } from '@bourse/actors';
import type { Address, Clock, RequestSink, TimerHandle, Transport, TransportBinding, TransportEndpoint } from '@bourse/actors';
import type { SimClock } from './clock.js';
import type { Prng } from './prng.js';
import type { FaultCounts, FaultKind } from './types.js';

const RESOLVED = Promise.resolve();

/**
 * `queueMicrotask` without its per-call async-hooks resource: the same FIFO microtask queue, so the
 * same order. A callback that throws surfaces as an unhandled rejection (the world records it as a
 * violation) instead of an uncaught exception.
 */
export function soon(fn: () => void): void {
  void RESOLVED.then(fn);
}

export class ProcessClock implements Clock {
  alive = true;
  paused = false;
  private deferred: (() => void)[] = [];

  constructor(
    readonly peer: string,
    private readonly world: SimClock,
  ) {}

  now(): number {
    return this.world.now();
  }

  schedule(delayMs: number, fn: () => void): TimerHandle {
    return this.world.schedule(delayMs, fn, this);
  }

  cancel(handle: TimerHandle): void {
    this.world.cancel(handle);
  }

  /** Run `fn` in this process: never when dead, after `resume` when paused. */
  run(fn: () => void): void {
    if (!this.alive) return;
    if (this.paused) {
      this.deferred.push(fn);
      return;
    }
    fn();
  }

  resume(): void {
    this.paused = false;
    const d = this.deferred;
    this.deferred = [];
    for (const f of d) this.run(f);
  }

  die(): void {
    this.alive = false;
    this.deferred = [];
  }
}

export interface NetFaults {
  readonly drop: number;
  readonly dup: number;
  readonly delay: number;
}

interface Bound {
  readonly host: ProcessClock;
  readonly ep: TransportEndpoint;
}

export class SimNetwork {
  private readonly bound: Bound[] = [];
  private readonly cuts = new Map<string, number>();
  messages = 0;
  /** Test-only plant hook (see world.ts `Plants.settleFillTwice`): commands to deliver again, past the dedupe. */
  redeliver: ((to: Address, message: unknown) => readonly unknown[] | undefined) | undefined;

  /** One stream per fault kind, so switching a kind off (shrinking) does not shift the others' draws. */
  private readonly rDrop: Prng;
  private readonly rDup: Prng;
  private readonly rDelay: Prng;

  constructor(
    readonly clock: SimClock,
    rng: Prng,
    public faults: NetFaults,
    private readonly counts: FaultCounts,
  ) {
    this.rDrop = rng.fork(11);
    this.rDup = rng.fork(12);
    this.rDelay = rng.fork(13);
  }

  private static key(a: string, b: string): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  partition(a: string, b: string): void {
    const k = SimNetwork.key(a, b);
    this.cuts.set(k, (this.cuts.get(k) ?? 0) + 1);
  }

  heal(a: string, b: string): void {
    const k = SimNetwork.key(a, b);
    const n = (this.cuts.get(k) ?? 0) - 1;
    if (n <= 0) this.cuts.delete(k);
    else this.cuts.set(k, n);
  }

  healAll(): void {
    this.cuts.clear();
  }

  reachable(a: string, b: string): boolean {
    return a === b || this.cuts.size === 0 || !this.cuts.has(SimNetwork.key(a, b));
  }

  bind(host: ProcessClock, ep: TransportEndpoint): TransportBinding {
    const b: Bound = { host, ep };
    this.bound.push(b);
    return {
      close: () => {
        const i = this.bound.indexOf(b);
        if (i >= 0) this.bound.splice(i, 1);
      },
    };
  }

  /** Who serves `to` now, as seen from `from` (unreachable or dead processes do not answer). */
  route(from: string, to: Address): Bound | undefined {
    for (const b of this.bound) if (b.host.alive && this.reachable(from, b.host.peer) && b.ep.serves(to)) return b;
    return undefined;
  }

  private count(kind: FaultKind): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
  }

  /**
   * Carry one message from `from` to `to`'s side: `arrive` runs once (or twice, or never) later. The
   * partition is checked on arrival (a partition that starts while a message travels cuts it).
   */
  transit(from: string, toPeer: string | undefined, arrive: () => void): void {
    this.messages++;
    const f = this.faults;
    if (f.drop > 0 && this.rDrop.chance(f.drop)) {
      this.count('drop');
      return;
    }
    const times = f.dup > 0 && this.rDup.chance(f.dup) ? 2 : 1;
    if (times === 2) this.count('dup');
    for (let i = 0; i < times; i++) {
      let delay = 0;
      if (f.delay > 0 && this.rDelay.chance(f.delay)) {
        delay = this.rDelay.int(1, 25);
        this.count('delay');
      }
      // Without a peer to check on arrival, `arrive` itself is the callback (one closure fewer per message).
      const go = toPeer === undefined ? arrive : (): void => void (this.reachable(from, toPeer) && arrive());
      if (delay > 0) this.clock.schedule(delay, go);
      else soon(go);
    }
  }
}

/** One process's `Transport`. */
export class SimTransport implements Transport {
  constructor(
    private readonly net: SimNetwork,
    private readonly host: ProcessClock,
  ) {}

  bind(endpoint: TransportEndpoint): TransportBinding {
    return this.net.bind(this.host, endpoint);
  }

  deliver(to: Address, message: unknown): void {
    const from = this.host.peer;
    this.net.transit(from, undefined, () => {
      const b = this.net.route(from, to);
      if (b !== undefined) b.host.run(() => b.ep.onDeliver(to, message));
    });
  }

  request(to: Address, message: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => new Exchange(this.net, this.host, to, message, timeoutMs, resolve, reject));
  }
}

/**
 * One request of a `SimTransport` and its reply: the request crosses the network, runs in the
 * target process, and the reply crosses back, or the requester's timer fires first. A class rather
 * than a nest of closures (one object per request instead of about ten).
 */
class Exchange {
  private done = false;
  private readonly timer: TimerHandle;

  constructor(
    readonly net: SimNetwork,
    readonly host: ProcessClock,
    private readonly to: Address,
    private readonly message: unknown,
    timeoutMs: number,
    private readonly resolve: (v: unknown) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    this.timer = host.schedule(timeoutMs, () => this.finish(false, new AskTimeoutError(to, timeoutMs)));
    net.transit(host.peer, undefined, () => this.arrive());
  }

  finish(ok: boolean, v: unknown): void {
    if (this.done) return;
    this.done = true;
    this.host.cancel(this.timer);
    if (ok) this.resolve(v);
    else this.reject(v);
  }

  /** One arrival (a duplicated request arrives twice, maybe at different processes). */
  private arrive(): void {
    const { net, host, to, message } = this;
    const from = host.peer;
    const b = net.route(from, to);
    if (b === undefined) {
      // NATS "no responders": the requester hears it after a round trip.
      net.transit('nats', from, () => host.run(() => this.finish(false, new UnreachableError(to))));
      return;
    }
    const sink = new ExchangeReply(this, b.host);
    const again = net.redeliver?.(to, message);
    b.host.run(() => {
      if (b.ep.onRequestSink) b.ep.onRequestSink(to, message, sink);
      else b.ep.onRequest(to, message).then((v) => sink.ok(v), (e: unknown) => sink.fail(e));
      if (again !== undefined) for (const cmd of again) b.ep.onDeliver(to, { t: 'tell', cmd });
    });
  }
}

/** The reply side of one arrival: a dead process sends nothing; a reply crosses the same faulty network back. */
class ExchangeReply implements RequestSink {
  constructor(
    private readonly ex: Exchange,
    private readonly target: ProcessClock,
  ) {}

  private back(ok: boolean, v: unknown): void {
    if (!this.target.alive) return;
    const ex = this.ex;
    ex.net.transit(this.target.peer, ex.host.peer, () => ex.host.run(() => ex.finish(ok, v)));
  }

  ok(v: unknown): void {
    this.back(true, v);
  }

  fail(e: unknown): void {
    this.back(false, e);
  }
}
