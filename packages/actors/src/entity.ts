import { hashString } from '@bourse/schemas';
import type { StateMachine } from '@bourse/schemas';
import type { Address } from './address.js';

/**
 * A reliable message an entity sends because of one of its events. The event is in the sender's
 * journal, so the journal is the outbox: after a crash the message is derived again on replay and
 * resent until the receiver acknowledges it.
 */
export interface Outgoing {
  readonly to: Address;
  /** Plain data; becomes a command of the receiver (through its kind's `inbound`). */
  readonly message: unknown;
}

/** What an entity's effects may do once its events are committed. */
export interface EffectContext {
  readonly self: Address;
  /** Fire-and-forget message to any address (at most once; use `outbox` for reliability). */
  tell(to: Address, command: unknown): void;
  now(): number;
}

/**
 * A kind of addressable entity: the state machine plus how the runtime talks to it.
 *
 * @example
 *   const counter: EntityKind<{ n: number }, { by: number }, { by: number }, number> = {
 *     kind: 'counter',
 *     machine: fromDecideApply({ kind: 'counter', init: () => ({ n: 0 }),
 *       decide: (_s, c) => [{ by: c.by }], apply: (s, e) => ({ n: s.n + e.by }) }),
 *     reply: (s) => s.n,
 *   };
 */
export interface EntityKind<S = any, C = any, E = any, R = unknown> {
  readonly kind: string;
  readonly machine: StateMachine<S, C, E>;
  /**
   * Persist events through the journal (default true). A non-persistent kind keeps state in memory
   * only: it is never passivated for idleness, and a crash resets it to `init()`.
   */
  readonly persistent?: boolean;
  /** The reply to an `ask`, computed right after the command's step (released after commit). */
  reply?(state: S, command: C, events: readonly E[]): R;
  /** Reliable messages an event sends. Called on the live path and on replay; must be pure. */
  outbox?(event: E): readonly Outgoing[] | undefined;
  /** Turn a reliable message from `from` into a command. Default: the message itself. */
  inbound?(from: Address, message: unknown): C;
  /** Side effects, run once per committed batch of this entity's events, after the commit. */
  effects?(events: readonly E[], ctx: EffectContext): void;
  /** Take a snapshot every this many events (default: the node's `snapshotEventsEvery`). 0 = never. */
  readonly snapshotEventsEvery?: number;
}

/** The classic event-sourcing pair, for kinds that do not implement `StateMachine.step` directly. */
export interface DecideApply<S, C, E> {
  readonly kind: string;
  init(): S;
  /** Pure: the events this command causes in this state (empty to reject or ignore). */
  decide(state: S, command: C): readonly E[];
  /** Pure or mutating: the state after one event. */
  apply(state: S, event: E): S;
  /** Default: `structuredClone(state)` (state must be plain data). */
  snapshot?(state: S): unknown;
  /** Default: `structuredClone(snapshot)`. */
  restore?(snapshot: unknown): S;
  /** Default: a hash of the canonical JSON of `snapshot(state)`. */
  stateHash?(state: S): string;
}

/**
 * Adapt `decide` + `apply` to a `StateMachine` whose `step` decides, then applies each event.
 *
 * @example
 *   const m = fromDecideApply({ kind: 'counter', init: () => ({ n: 0 }),
 *     decide: (_s, c: { by: number }) => [{ by: c.by }], apply: (s, e) => ({ n: s.n + e.by }) });
 *   const out: { by: number }[] = [];
 *   m.step(m.init(), { by: 2 }, out); // { n: 2 }, out = [{ by: 2 }]
 */
export function fromDecideApply<S, C, E>(d: DecideApply<S, C, E>): StateMachine<S, C, E> {
  const snapshot = d.snapshot ?? ((s: S): unknown => structuredClone(s));
  const restore = d.restore ?? ((x: unknown): S => structuredClone(x) as S);
  return {
    kind: d.kind,
    init: () => d.init(),
    step(state, command, out) {
      const events = d.decide(state, command);
      let s = state;
      for (const e of events) {
        s = d.apply(s, e);
        out.push(e);
      }
      return s;
    },
    apply: (s, e) => d.apply(s, e),
    snapshot,
    restore,
    stateHash: d.stateHash ?? ((s: S) => hashOf(snapshot(s))),
  };
}

/** A 106-bit hex hash of canonical JSON (two cyrb53 lanes). For replay checks, not security. */
export function hashOf(value: unknown): string {
  const text = canonicalJson(value);
  return hashString(text);
}

/** JSON with object keys sorted, so equal plain data gives equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)) {
      const o = v as Record<string, unknown>;
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(o).sort()) sorted[k] = o[k];
      return sorted;
    }
    return typeof v === 'bigint' ? v.toString() : v;
  });
}

