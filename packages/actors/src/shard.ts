import type { Address } from './address.js';
import { InvalidAddressError } from './errors.js';

/**
 * FNV-1a, 32 bits, over the UTF-8 bytes of `text` (offset basis 2166136261, prime 16777619).
 * Stable forever: shard placement depends on it, so never change it.
 *
 * @example fnv1a32('') // 2166136261;  fnv1a32('a') // 0xe40c292c
 */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    // Inline UTF-8 encoding (surrogate pairs become one 4-byte sequence).
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
      }
    }
    const bytes: number[] =
      c < 0x800
        ? [0xc0 | (c >> 6), 0x80 | (c & 63)]
        : c < 0x10000
          ? [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)]
          : [0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)];
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  }
  return h >>> 0;
}

/** A shard of one kind: `key` (`account.7`) names it in subjects and KV keys, `scope` (`account#7`) is its fence scope. */
export interface ShardId {
  readonly kind: string;
  readonly n: number;
  readonly key: string;
  readonly scope: string;
}

/**
 * The fixed shard count per kind and shard = fnv1a32(UTF-8 id) mod N. Kinds must be NATS-token safe
 * (`[A-Za-z0-9_-]+`). Changing a kind's count moves its entities: treat it as fixed forever.
 *
 * @example
 *   const map = new ShardMap({ account: 64 });
 *   map.shardOf('account/acc-42') // { kind: 'account', n: …, key: 'account.…', scope: 'account#…' }
 */
export class ShardMap {
  private readonly counts = new Map<string, number>();
  private readonly cache = new Map<string, ShardId[]>();

  constructor(
    counts: Readonly<Record<string, number>>,
    readonly defaultCount = 64,
  ) {
    for (const [k, n] of Object.entries(counts)) this.add(k, n);
  }

  private add(kind: string, n: number): ShardId[] {
    if (!/^[A-Za-z0-9_-]+$/.test(kind)) throw new InvalidAddressError(`${kind}/ (kind is not NATS-token safe)`);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`shard count of ${kind} must be a positive integer`);
    this.counts.set(kind, n);
    const shards = Array.from({ length: n }, (_, i) => ({ kind, n: i, key: `${kind}.${i}`, scope: `${kind}#${i}` }));
    this.cache.set(kind, shards);
    return shards;
  }

  /** Every shard of `kind`. */
  shards(kind: string): readonly ShardId[] {
    return this.cache.get(kind) ?? this.add(kind, this.defaultCount);
  }

  count(kind: string): number {
    return this.shards(kind).length;
  }

  shardOf(address: Address): ShardId {
    const slash = address.indexOf('/');
    if (slash <= 0 || slash === address.length - 1) throw new InvalidAddressError(address);
    const shards = this.shards(address.slice(0, slash));
    return shards[fnv1a32(address.slice(slash + 1)) % shards.length]!;
  }

  /** The shard named by a key (`account.7`), or undefined. */
  byKey(key: string): ShardId | undefined {
    const dot = key.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const n = Number(key.slice(dot + 1));
    const s = this.cache.get(key.slice(0, dot));
    return s?.[n];
  }
}
