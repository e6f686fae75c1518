import { InvalidAddressError } from './errors.js';

/**
 * An actor address: `kind/id`, e.g. `account/acc-42`. The kind names a registered entity kind; the
 * id is everything after the first `/` (so ids may contain `/`).
 */
export type Address = string;

/** @example address('account', 'acc-42') // 'account/acc-42' */
export function address(kind: string, id: string): Address {
  if (kind.length === 0 || kind.includes('/') || id.length === 0) throw new InvalidAddressError(`${kind}/${id}`);
  return `${kind}/${id}`;
}

/** @example parseAddress('account/acc-42') // { kind: 'account', id: 'acc-42' } */
export function parseAddress(addr: Address): { kind: string; id: string } {
  const slash = addr.indexOf('/');
  if (slash <= 0 || slash === addr.length - 1) throw new InvalidAddressError(addr);
  return { kind: addr.slice(0, slash), id: addr.slice(slash + 1) };
}

/** The kind part of an address, without allocating the id. */
export function kindOf(addr: Address): string {
  const slash = addr.indexOf('/');
  if (slash <= 0 || slash === addr.length - 1) throw new InvalidAddressError(addr);
  return addr.slice(0, slash);
}
