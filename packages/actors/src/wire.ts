import type { Address } from './address.js';

/**
 * What nodes say to each other over a {@link Transport}. Plain data, kept apart from the API types:
 * the NATS transport encodes these with msgpackr.
 */

/** A fire-and-forget command. */
export interface WireTell {
  readonly t: 'tell';
  readonly cmd: unknown;
}

/** A command whose reply is wanted (request/reply). */
export interface WireAsk {
  readonly t: 'ask';
  readonly cmd: unknown;
}

/** The reply to a {@link WireAsk}: the value, or the error's class name and message. */
export type WireReply = { readonly ok: true; readonly v: unknown } | { readonly ok: false; readonly e: { readonly name: string; readonly message: string } };

/**
 * Reliable messages: number `seq` (`msg`) of the ordered stream from `from` to the addressee, and
 * when `more` is present, numbers `seq + 1 …` after it (what left the sender in one go travels as
 * one transport message and is answered with one {@link WireReliableAck}).
 */
export interface WireReliable {
  readonly t: 'rel';
  readonly from: Address;
  readonly seq: number;
  readonly msg: unknown;
  readonly more?: readonly unknown[];
}

/** The receiver's committed high-water mark for the sender: everything up to `hwm` is applied. */
export interface WireReliableAck {
  readonly t: 'ack';
  readonly hwm: number;
}
