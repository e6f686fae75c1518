/**
 * Time is an interface, so the simulator can run the runtime with a manual clock and one seed
 * replays a whole run. The runtime reads time and schedules work only through a `Clock`.
 */
export interface Clock {
  /** Milliseconds since an arbitrary epoch; may be fractional. Never decreases. */
  now(): number;
  /**
   * Run `fn` once after `delayMs` (>= 0). A delay of 0 means "soon, after the current turn", not
   * synchronously. Returns a handle for `cancel`.
   */
  schedule(delayMs: number, fn: () => void): TimerHandle;
  /** Cancel a scheduled timer; cancelling a fired or cancelled timer is a no-op. */
  cancel(handle: TimerHandle): void;
}

/** Opaque timer handle. */
export interface TimerHandle {
  readonly __timer: true;
}

interface RealHandle extends TimerHandle {
  t: ReturnType<typeof setTimeout> | undefined;
  i: ReturnType<typeof setImmediate> | undefined;
}

/**
 * Wall-clock time and Node timers. Sub-millisecond delays cannot be honoured by `setTimeout`, so a
 * delay below 1 ms runs on `setImmediate` (after pending I/O of this turn), which is what a group
 * commit window of a few hundred microseconds wants.
 *
 * @example const clock = new RealClock(); clock.schedule(5, () => console.log(clock.now()));
 */
export class RealClock implements Clock {
  private readonly origin = performance.timeOrigin;

  now(): number {
    return this.origin + performance.now();
  }

  schedule(delayMs: number, fn: () => void): TimerHandle {
    const h = { __timer: true, t: undefined, i: undefined } as RealHandle;
    if (delayMs < 1) h.i = setImmediate(fn);
    else h.t = setTimeout(fn, delayMs);
    return h;
  }

  cancel(handle: TimerHandle): void {
    const h = handle as RealHandle;
    if (h.t !== undefined) clearTimeout(h.t);
    if (h.i !== undefined) clearImmediate(h.i);
  }
}

interface ManualTimer extends TimerHandle {
  at: number;
  order: number;
  fn: (() => void) | undefined;
}

/**
 * A clock that moves only when told to. Timers fire in (due time, scheduling order) order, so a run
 * is a pure function of the calls made on it. `advance` fires everything due, including timers that
 * fired timers schedule within the window.
 *
 * @example
 *   const clock = new ManualClock(1_000);
 *   clock.schedule(10, () => console.log('fired at', clock.now()));
 *   clock.advance(10); // fired at 1010
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  schedule(delayMs: number, fn: () => void): TimerHandle {
    const h: ManualTimer = { __timer: true, at: this.t + Math.max(0, delayMs), order: this.seq++, fn };
    // Keep `timers` sorted by (at, order); insertion from the back is cheap for the usual case.
    let i = this.timers.length;
    while (i > 0) {
      const p = this.timers[i - 1]!;
      if (p.at < h.at || (p.at === h.at && p.order < h.order)) break;
      i--;
    }
    this.timers.splice(i, 0, h);
    return h;
  }

  cancel(handle: TimerHandle): void {
    (handle as ManualTimer).fn = undefined;
  }

  /** Number of timers not yet fired or cancelled. */
  pending(): number {
    let n = 0;
    for (const t of this.timers) if (t.fn) n++;
    return n;
  }

  /** Due time of the next live timer, or undefined. */
  nextAt(): number | undefined {
    for (const t of this.timers) if (t.fn) return t.at;
    return undefined;
  }

  /** Move time forward by `ms`, firing every timer that falls due, in order. Returns timers fired. */
  advance(ms: number): number {
    if (ms < 0) throw new RangeError('ManualClock cannot go backwards');
    return this.advanceTo(this.t + ms);
  }

  /** Move time to `at` (not backwards), firing due timers in order. Returns timers fired. */
  advanceTo(at: number): number {
    let fired = 0;
    for (;;) {
      const next = this.timers[0];
      if (next === undefined || next.at > at) break;
      this.timers.shift();
      if (next.fn === undefined) continue;
      if (next.at > this.t) this.t = next.at;
      const fn = next.fn;
      next.fn = undefined;
      fired++;
      fn();
    }
    if (at > this.t) this.t = at;
    return fired;
  }
}
