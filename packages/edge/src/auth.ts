/**
 * API keys, roles and throttles.
 *
 * A key is `<keyId>.<secret>` (a key without a '.' is accepted too: its keyId is then derived from a
 * hash of the whole key). Only `sha256(salt || secret)` and a random per-key salt are stored; the
 * plaintext is never kept. Verification looks the keyId up and compares hashes in constant time.
 *
 * Decision: salted SHA-256, not scrypt. API keys are random 256-bit secrets, not passwords, so a slow KDF
 * adds no protection against guessing, while it would cost ~50 ms of CPU per connection and per HTTP
 * request on the edge's one thread (1000 subscriber connections = 50 s of blocked event loop).
 *
 * Roles: trader and marketMaker trade for their accounts (they differ in default throttles); broker
 * acts for its client accounts (the same check, on a list of clients); analyst reads public data and
 * the accounts it lists, and cannot trade; admin does everything, for any account ('*').
 *
 * @example
 *   const keys = new KeyStore();
 *   keys.add({ key: 'mm1.s3cret', role: 'marketMaker', accounts: ['mm-1'] });
 *   keys.verify('mm1.s3cret')?.role // 'marketMaker'
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from '@bourse/schemas';
import { roles } from '@bourse/schemas';

export interface KeySpec {
  /** The plaintext key; hashed on `add` and then forgotten. */
  readonly key: string;
  readonly role: Role;
  /** Accounts the key acts for (trader, marketMaker, broker) or reads (analyst). '*' = any. Admin defaults to ['*']. */
  readonly accounts?: readonly string[];
  readonly ordersPerSec?: number;
  readonly messagesPerSec?: number;
  readonly label?: string;
}

/** Defaults per role: orders per second, messages (frames and HTTP requests) per second. */
export const roleDefaults: { readonly [R in Role]: { readonly ordersPerSec: number; readonly messagesPerSec: number } } = {
  trader: { ordersPerSec: 100, messagesPerSec: 200 },
  marketMaker: { ordersPerSec: 50_000, messagesPerSec: 100_000 },
  broker: { ordersPerSec: 5_000, messagesPerSec: 10_000 },
  analyst: { ordersPerSec: 0, messagesPerSec: 100 },
  admin: { ordersPerSec: 1_000, messagesPerSec: 2_000 },
};

/** A token bucket: `rate` tokens per second, holding at most one second's worth. */
export class TokenBucket {
  rate: number;
  #tokens: number;
  #lastMs: number;
  constructor(rate: number, nowMs: number) {
    this.rate = rate;
    this.#tokens = rate;
    this.#lastMs = nowMs;
  }
  /** Takes one token; false when the bucket is empty. */
  take(nowMs: number): boolean {
    if (nowMs > this.#lastMs) {
      this.#tokens = Math.min(this.rate, this.#tokens + ((nowMs - this.#lastMs) * this.rate) / 1000);
      this.#lastMs = nowMs;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** A verified key: what the edge checks permissions and throttles against. */
export interface Principal {
  readonly keyId: string;
  readonly role: Role;
  readonly accounts: readonly string[];
  readonly ordersPerSec: number;
  readonly messagesPerSec: number;
  /** Shared by every session and HTTP request of the key. */
  readonly orders: TokenBucket;
  readonly messages: TokenBucket;
  readonly label: string;
  readonly createdMs: number;
}

interface StoredKey extends Principal {
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** The public description of a key (no secret, no hash). */
export interface KeyInfo {
  readonly keyId: string;
  readonly role: Role;
  readonly accounts: readonly string[];
  readonly ordersPerSec: number;
  readonly messagesPerSec: number;
  readonly label: string;
  readonly createdMs: number;
}

const KEY_LENGTH_MAX = 256;

function split(key: string): { keyId: string; secret: string } {
  const dot = key.indexOf('.');
  if (dot > 0 && dot < key.length - 1) return { keyId: key.slice(0, dot), secret: key.slice(dot + 1) };
  return { keyId: 'h' + createHash('sha256').update(key).digest('hex').slice(0, 16), secret: key };
}

const hashOf = (salt: Buffer, secret: string) => createHash('sha256').update(salt).update(secret, 'utf8').digest();

export class KeyStore {
  readonly #byId = new Map<string, StoredKey>();

  constructor(specs: readonly KeySpec[] = []) {
    for (const s of specs) this.add(s);
  }

  /** Adds (or replaces) a key; returns its keyId. Throws RangeError on a bad spec (a bug in the caller's config). */
  add(spec: KeySpec): string {
    if (typeof spec.key !== 'string' || spec.key.length === 0 || spec.key.length > KEY_LENGTH_MAX) throw new RangeError('key: 1..256 characters');
    if (!roles.includes(spec.role)) throw new RangeError(`role: one of ${roles.join(', ')}`);
    const { keyId, secret } = split(spec.key);
    const salt = randomBytes(16);
    const d = roleDefaults[spec.role];
    const accounts = spec.accounts ?? (spec.role === 'admin' ? ['*'] : []);
    const now = Date.now();
    const ordersPerSec = spec.ordersPerSec ?? d.ordersPerSec;
    const messagesPerSec = spec.messagesPerSec ?? d.messagesPerSec;
    this.#byId.set(keyId, {
      keyId, role: spec.role, accounts: [...accounts], ordersPerSec, messagesPerSec,
      orders: new TokenBucket(ordersPerSec, now), messages: new TokenBucket(messagesPerSec, now),
      label: spec.label ?? '', createdMs: now, salt, hash: hashOf(salt, secret),
    });
    return keyId;
  }

  /** Makes a new random key; returns the plaintext (shown once) and its keyId. */
  create(spec: Omit<KeySpec, 'key'>): { key: string; keyId: string } {
    const key = `bk${randomBytes(5).toString('hex')}.${randomBytes(32).toString('base64url')}`;
    const keyId = this.add({ ...spec, key });
    return { key, keyId };
  }

  revoke(keyId: string): boolean {
    return this.#byId.delete(keyId);
  }

  /** The principal of a valid key, or undefined. */
  verify(key: unknown): Principal | undefined {
    if (typeof key !== 'string' || key.length === 0 || key.length > KEY_LENGTH_MAX) return undefined;
    const { keyId, secret } = split(key);
    const k = this.#byId.get(keyId);
    if (!k) return undefined;
    return timingSafeEqual(hashOf(k.salt, secret), k.hash) ? k : undefined;
  }

  list(): KeyInfo[] {
    return [...this.#byId.values()].map(({ keyId, role, accounts, ordersPerSec, messagesPerSec, label, createdMs }) => ({ keyId, role, accounts, ordersPerSec, messagesPerSec, label, createdMs }));
  }
}

export const canTrade = (p: Principal) => p.role === 'trader' || p.role === 'marketMaker' || p.role === 'broker' || p.role === 'admin';
export const isAdmin = (p: Principal) => p.role === 'admin';

/** Whether the key may act for (or, for analysts, read) `account`. */
export function mayUseAccount(p: Principal, account: string): boolean {
  return p.accounts.includes('*') || p.accounts.includes(account);
}

/** The account a request means: the one it names, or the key's first. undefined if neither. */
export function accountFor(p: Principal, named: string | undefined): string | undefined {
  if (named !== undefined) return named;
  const first = p.accounts[0];
  return first === undefined || first === '*' ? undefined : first;
}
