/**
 * The world's simulated time: the `Clock` interface of @bourse/actors with a binary heap of timers.
 * Semantics as `ManualClock` (timers fire in (due time, scheduling order) order; `advance` fires
 * everything due, including timers scheduled by timers within the window). ManualClock keeps a sorted
 * array (insertion walks and splices it), which cost ~5% of a run with thousands of pending ask
 * timeouts; a heap makes schedule/fire O(log n).
 */
import type { Clock, TimerHandle } from '@bourse/actors';

/** Runs a timer's callback in its process (see `ProcessClock.run`). */
export interface TimerHost {
  run(fn: () => void): void;
}

interface Timer extends TimerHandle {
  at: number;
  order: number;
  fn: (() => void) | undefined;
  host: TimerHost | undefined;
}

export class SimClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly heap: Timer[] = [];

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  /** `host`: the process the callback runs in (no closure per timer to say so). */
  schedule(delayMs: number, fn: () => void, host?: TimerHost): TimerHandle {
    const h: Timer = { __timer: true, at: this.t + Math.max(0, delayMs), order: this.seq++, fn, host };
    const a = this.heap;
    let i = a.length;
    a.push(h);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = h;
    return h;
  }

  cancel(handle: TimerHandle): void {
    (handle as Timer).fn = undefined;
  }

  private pop(): Timer {
    const a = this.heap;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && less(a[r]!, a[l]!) ? r : l;
        if (!less(a[c]!, last)) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }

  /** Due time of the next live timer, or undefined. */
  nextAt(): number | undefined {
    const a = this.heap;
    while (a.length > 0 && a[0]!.fn === undefined) this.pop();
    return a.length > 0 ? a[0]!.at : undefined;
  }

  advance(ms: number): number {
    return this.advanceTo(this.t + ms);
  }

  advanceTo(at: number): number {
    let fired = 0;
    const a = this.heap;
    while (a.length > 0 && a[0]!.at <= at) {
      const next = this.pop();
      if (next.fn === undefined) continue;
      if (next.at > this.t) this.t = next.at;
      const fn = next.fn;
      next.fn = undefined;
      fired++;
      if (next.host !== undefined) next.host.run(fn);
      else fn();
    }
    if (at > this.t) this.t = at;
    return fired;
  }
}

function less(x: Timer, y: Timer): boolean {
  return x.at < y.at || (x.at === y.at && x.order < y.order);
}
