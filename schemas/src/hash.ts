/**
 * Deterministic hashing for state machines. `stateHash(machine.snapshot(s))` is how every engine
 * machine names its state: snapshots are canonical plain data, so equal states give equal hashes.
 *
 * The hash is two independent 53-bit cyrb53 lanes over the canonical JSON text (106 bits, hex). It is
 * for replay checks, not for security.
 *
 * @example hashOf({ a: 1 }) === hashOf({ a: 1 }) // true
 */
export function hashString(text: string): string {
  return cyrb53(text, 0x9e3779b9).toString(16).padStart(14, '0') + cyrb53(text, 0x85ebca6b).toString(16).padStart(14, '0');
}

/** Hash of a canonical snapshot (plain data whose object keys are always built in the same order). */
export function hashOf(snapshot: unknown): string {
  return hashString(JSON.stringify(snapshot));
}

function cyrb53(str: string, seed: number): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
