/**
 * The common shape of every engine state machine (book, risk ledger, market data, strategy).
 *
 * Like XState v5, the logic is separate from the runtime that hosts it: `packages/actors` runs any
 * `StateMachine` without knowing the domain.
 *
 * - `step` decides and applies in one pass: it may mutate and return `state`, and appends the events it
 *   produced to `out`. It does no I/O and reads no clock or randomness; both arrive in the command.
 * - `apply` replays one event. For any history, `apply`ing the events that `step` produced, starting
 *   from `restore(snapshot(s0))`, gives a state with the same `stateHash` as the live one. Recovery
 *   does exactly this: latest snapshot, then the journal tail.
 * - `snapshot` returns plain, canonical data (arrays, plain objects, numbers, strings, booleans): the
 *   same state always gives the same snapshot, so `stateHash` can be a hash of it.
 *
 * @example
 *   const out: BookEvent[] = [];
 *   let s = bookMachine(instrument).init();
 *   s = bookMachine(instrument).step(s, { type: 'BookTick', ts: 1 }, out);
 */
export interface StateMachine<S, C, E> {
  readonly kind: string;
  init(): S;
  step(state: S, command: C, out: E[]): S;
  apply(state: S, event: E): S;
  snapshot(state: S): unknown;
  restore(snapshot: unknown): S;
  stateHash(state: S): string;
}

/** The `(state, command) → { state, events }` form, for callers that want a fresh events array. */
export function execute<S, C, E>(m: StateMachine<S, C, E>, state: S, command: C): { state: S; events: E[] } {
  const events: E[] = [];
  const next = m.step(state, command, events);
  return { state: next, events };
}

/** Compile-time exhaustiveness: call in the `default` branch of a switch over a union's `type`. */
export function assertNever(x: never, what = 'value'): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(x)}`);
}
