import type { Address } from './address.js';
import type { Clock, TimerHandle } from './clock.js';
import { RealClock } from './clock.js';
import { AskTimeoutError, UnreachableError } from './errors.js';

/**
 * How a node reaches an address it may not host. The runtime core never imports a concrete
 * transport: the in-process one below is the embedded default, a NATS one plugs in for the cluster,
 * and the simulator wraps either with delay, drop, duplicate, reorder and partition.
 *
 * Delivery is at most once: a `deliver` may be lost, a `request` may time out after the handler ran.
 * Exactly-once effects are built above this (outbox + per-sender high-water marks), not inside it.
 * Messages must be plain data (they cross a socket in the cluster).
 */
export interface Transport {
  /** Attach a node; it receives the messages for the addresses it `serves`. */
  bind(endpoint: TransportEndpoint): TransportBinding;
  /** Fire and forget. */
  deliver(to: Address, message: unknown): void;
  /**
   * Request/reply. Rejects with {@link AskTimeoutError} after `timeoutMs`, with
   * {@link UnreachableError} when nobody serves `to`, or with the handler's rejection.
   */
  request(to: Address, message: unknown, timeoutMs: number): Promise<unknown>;
}

/** The node side of a transport. */
export interface TransportEndpoint {
  readonly nodeId: string;
  /** Whether this endpoint hosts `to` now (shard ownership in the cluster). */
  serves(to: Address): boolean;
  onDeliver(to: Address, message: unknown): void;
  onRequest(to: Address, message: unknown): Promise<unknown>;
  /**
   * Optional fast path of `onRequest` for batched transports: the same answer through a sink, without
   * a promise per request. `fail` with {@link UnreachableError} means "not served here".
   */
  onRequestSink?(to: Address, message: unknown, sink: RequestSink): void;
}

/** Where a request's answer goes (see {@link TransportEndpoint.onRequestSink}). */
export interface RequestSink {
  ok(value: unknown): void;
  fail(error: unknown): void;
}

export interface TransportBinding {
  close(): void;
}

/**
 * Fault hooks for tests and the simulator. Each is asked once per message; all default to "none".
 * `delayMs` uses the transport's clock, so with a `ManualClock` a delayed message waits for
 * `advance`.
 */
export interface TransportFaults {
  /** Drop this message (a request then times out). */
  drop?(to: Address, message: unknown): boolean;
  /** Deliver this message twice. */
  duplicate?(to: Address, message: unknown): boolean;
  /** Delay delivery by this many ms (different delays reorder messages). */
  delayMs?(to: Address, message: unknown): number;
}

export interface InProcessTransportOptions {
  clock?: Clock;
  faults?: TransportFaults;
}

/**
 * Nodes in one process. A message goes to the first bound endpoint that `serves` its address, on a
 * later microtask (or after the fault-injected delay), never synchronously, so the sender's turn
 * finishes first just as it would over a socket.
 *
 * @example
 *   const transport = new InProcessTransport();
 *   const node = new ActorNode({ nodeId: 'n1', transport, kinds: [counterKind] });
 *   await transport.request('counter/c1', { t: 'ask', cmd: { by: 1 } }, 1000);
 */
export class InProcessTransport implements Transport {
  private readonly endpoints: TransportEndpoint[] = [];
  private readonly clock: Clock;
  faults: TransportFaults;

  constructor(options: InProcessTransportOptions = {}) {
    this.clock = options.clock ?? new RealClock();
    this.faults = options.faults ?? {};
  }

  bind(endpoint: TransportEndpoint): TransportBinding {
    this.endpoints.push(endpoint);
    return {
      close: () => {
        const i = this.endpoints.indexOf(endpoint);
        if (i >= 0) this.endpoints.splice(i, 1);
      },
    };
  }

  private route(to: Address): TransportEndpoint | undefined {
    for (const e of this.endpoints) if (e.serves(to)) return e;
    return undefined;
  }

  private later(to: Address, message: unknown, fn: () => void): boolean {
    const f = this.faults;
    if (f.drop?.(to, message)) return false;
    const times = f.duplicate?.(to, message) ? 2 : 1;
    for (let i = 0; i < times; i++) {
      const delay = f.delayMs?.(to, message) ?? 0;
      if (delay > 0) this.clock.schedule(delay, fn);
      else queueMicrotask(fn);
    }
    return true;
  }

  deliver(to: Address, message: unknown): void {
    this.later(to, message, () => this.route(to)?.onDeliver(to, message));
  }

  request(to: Address, message: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      let done = false;
      let timer: TimerHandle | undefined;
      const finish = (ok: boolean, value: unknown): void => {
        if (done) return;
        done = true;
        if (timer !== undefined) this.clock.cancel(timer);
        if (ok) resolve(value);
        else reject(value);
      };
      timer = this.clock.schedule(timeoutMs, () => finish(false, new AskTimeoutError(to, timeoutMs)));
      this.later(to, message, () => {
        const target = this.route(to);
        if (target === undefined) return finish(false, new UnreachableError(to));
        target.onRequest(to, message).then(
          (reply) => {
            // The reply crosses the same faulty network back.
            const f = this.faults;
            if (f.drop?.(to, reply)) return;
            const delay = f.delayMs?.(to, reply) ?? 0;
            if (delay > 0) this.clock.schedule(delay, () => finish(true, reply));
            else finish(true, reply);
          },
          (err: unknown) => finish(false, err),
        );
      });
    });
  }
}
