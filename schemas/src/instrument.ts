/**
 * Instruments and the units every amount is counted in.
 *
 * Units (all integers; no float ever touches money):
 * - `price` is in price units (e.g. cents per BTC). It must be a positive multiple of `tickSize`.
 * - `qty` is in quantity units (e.g. 1e-4 BTC). It must be a positive multiple of `lotSize`.
 * - An asset amount is in that asset's minor units (e.g. satoshi, micro-dollars).
 * - A fill of `qty` at `price` moves `qty * baseMultiplier` base minor units and
 *   `price * qty * quoteMultiplier` quote minor units (its notional). Pick the multipliers so that
 *   both are integers; they are part of the instrument's definition.
 * - Rates are integer basis points (1 bps = 1/10000). Fees round up, in the venue's favour.
 *
 * Every product of two amounts must stay below Number.MAX_SAFE_INTEGER: `maxNotional` bounds it.
 */
export type InstrumentMode = 'cash' | 'margin';

export interface Instrument {
  /** Unique symbol, e.g. 'BTC-USD' or 'BTC-PERP'. */
  readonly symbol: string;
  readonly mode: InstrumentMode;
  /** Base asset (what is bought). Margin instruments have no base transfer: positions instead. */
  readonly base: string;
  /** Quote asset (what is paid); for margin instruments also the collateral and settlement asset. */
  readonly quote: string;
  readonly tickSize: number;
  readonly lotSize: number;
  readonly minQty: number;
  readonly maxQty: number;
  readonly baseMultiplier: number;
  readonly quoteMultiplier: number;
  /** Largest notional (quote minor units) of one order; keeps arithmetic exact. */
  readonly maxNotional: number;
  /** Fat-finger band: a limit price may be at most this far from the reference price, in bps. 0 = off. */
  readonly priceBandBps: number;
  /** Initial reference price for the band, before the first trade. 0 = none. */
  readonly referencePrice: number;
  /** Market-order protection: most price levels one market order may sweep. 0 = unlimited. */
  readonly marketMaxLevels: number;
  /** Market-order protection: most slippage from the best opposite price at arrival, in bps. 0 = unlimited. */
  readonly marketMaxSlippageBps: number;
  readonly makerFeeBps: number;
  readonly takerFeeBps: number;
  /** Margin mode only: the highest leverage an account may use (initial margin = notional / leverage). */
  readonly maxLeverage: number;
  /** Margin mode only: maintenance margin as bps of position notional at the mark price. */
  readonly maintenanceMarginBps: number;
}

export const BPS = 10_000;

/** Default instrument fields, for tests and the demo. Override what matters. */
export function defineInstrument(fields: Partial<Instrument> & Pick<Instrument, 'symbol'>): Instrument {
  return Object.freeze({
    mode: 'cash',
    base: fields.symbol.split('-')[0] ?? 'BASE',
    quote: fields.symbol.split('-')[1] ?? 'QUOTE',
    tickSize: 1,
    lotSize: 1,
    minQty: 1,
    maxQty: 1_000_000,
    baseMultiplier: 1,
    quoteMultiplier: 1,
    maxNotional: 1e15,
    priceBandBps: 0,
    referencePrice: 0,
    marketMaxLevels: 0,
    marketMaxSlippageBps: 0,
    makerFeeBps: 0,
    takerFeeBps: 0,
    maxLeverage: 1,
    maintenanceMarginBps: 0,
    ...fields,
  });
}

const posInt = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) > 0;
const nonNegInt = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/**
 * Checks an instrument definition. Returns the list of problems; empty means valid.
 * @example validateInstrument(defineInstrument({ symbol: 'BTC-USD' })) // []
 */
export function validateInstrument(i: Instrument): string[] {
  const p: string[] = [];
  if (typeof i.symbol !== 'string' || !/^[A-Z0-9][A-Z0-9._-]{0,31}$/.test(i.symbol)) p.push('symbol: 1-32 of A-Z 0-9 . _ -');
  if (i.mode !== 'cash' && i.mode !== 'margin') p.push("mode: 'cash' or 'margin'");
  if (typeof i.base !== 'string' || i.base.length === 0) p.push('base: required');
  if (typeof i.quote !== 'string' || i.quote.length === 0 || i.quote === i.base) p.push('quote: required, differs from base');
  for (const k of ['tickSize', 'lotSize', 'minQty', 'maxQty', 'baseMultiplier', 'quoteMultiplier', 'maxNotional', 'maxLeverage'] as const) {
    if (!posInt(i[k])) p.push(`${k}: a positive safe integer`);
  }
  for (const k of ['priceBandBps', 'referencePrice', 'marketMaxLevels', 'marketMaxSlippageBps', 'makerFeeBps', 'takerFeeBps', 'maintenanceMarginBps'] as const) {
    if (!nonNegInt(i[k])) p.push(`${k}: a non-negative safe integer`);
  }
  if (posInt(i.minQty) && posInt(i.maxQty) && i.minQty > i.maxQty) p.push('minQty: at most maxQty');
  if (posInt(i.lotSize) && posInt(i.minQty) && i.minQty % i.lotSize !== 0) p.push('minQty: a multiple of lotSize');
  if (i.makerFeeBps > 1000 || i.takerFeeBps > 1000) p.push('fees: at most 1000 bps');
  if (i.mode === 'cash' && i.maxLeverage !== 1) p.push('maxLeverage: 1 for cash instruments');
  if (i.mode === 'margin' && !(i.maintenanceMarginBps > 0 && i.maintenanceMarginBps * i.maxLeverage <= BPS)) {
    p.push('maintenanceMarginBps: positive, and below the initial margin at max leverage');
  }
  if (posInt(i.maxNotional) && i.maxNotional > Math.floor(Number.MAX_SAFE_INTEGER / 4)) p.push('maxNotional: at most MAX_SAFE_INTEGER / 4, so holds plus fees stay exact');
  if (i.referencePrice > 0 && posInt(i.tickSize) && i.referencePrice % i.tickSize !== 0) p.push('referencePrice: a multiple of tickSize');
  return p;
}

/** Every field of an `Instrument`, in a fixed order (copies, comparisons and snapshots use it). */
export const INSTRUMENT_FIELDS = [
  'symbol', 'mode', 'base', 'quote', 'tickSize', 'lotSize', 'minQty', 'maxQty', 'baseMultiplier', 'quoteMultiplier',
  'maxNotional', 'priceBandBps', 'referencePrice', 'marketMaxLevels', 'marketMaxSlippageBps', 'makerFeeBps',
  'takerFeeBps', 'maxLeverage', 'maintenanceMarginBps',
] as const satisfies readonly (keyof Instrument)[];

/** Whether two definitions are the same spec (every field equal). */
export function sameInstrument(a: Instrument, b: Instrument): boolean {
  return a === b || INSTRUMENT_FIELDS.every((k) => a[k] === b[k]);
}

/** A frozen plain copy of `i` with exactly the instrument fields (what journals and the wire carry). */
export function canonicalInstrument(i: Instrument): Instrument {
  const copy = {} as Record<string, unknown>;
  for (const k of INSTRUMENT_FIELDS) copy[k] = i[k];
  return Object.freeze(copy) as unknown as Instrument;
}

/** `i` as a positional row in {@link INSTRUMENT_FIELDS} order (how snapshots store instruments compactly). */
export function instrumentRow(i: Instrument): unknown[] {
  return INSTRUMENT_FIELDS.map((k) => i[k]);
}

/** The frozen instrument an {@link instrumentRow} row stores (not validated: rows come from our own snapshots). */
export function instrumentFromRow(row: readonly unknown[]): Instrument {
  const o = {} as Record<string, unknown>;
  INSTRUMENT_FIELDS.forEach((k, n) => (o[k] = row[n]));
  return Object.freeze(o) as unknown as Instrument;
}

/** Fields an instrument definition sent at run time must name; the others default as in `defineInstrument`. */
export const INSTRUMENT_REQUIRED_FIELDS = ['symbol', 'mode', 'base', 'quote', 'tickSize', 'lotSize'] as const satisfies readonly (keyof Instrument)[];

/**
 * An instrument definition from untrusted input (the admin API's body): a JSON object naming at least
 * {@link INSTRUMENT_REQUIRED_FIELDS}, no field outside {@link INSTRUMENT_FIELDS}; the rest default as in
 * `defineInstrument`, then `validateInstrument` checks the whole. Never throws.
 * @example parseInstrument({ symbol: 'ETH-USD', mode: 'cash', base: 'ETH', quote: 'USD', tickSize: 1, lotSize: 1 }) // { ok: true, instrument }
 */
export function parseInstrument(x: unknown): { ok: true; instrument: Instrument } | { ok: false; problems: string[] } {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return { ok: false, problems: ['definition: a JSON object'] };
  const o = x as Record<string, unknown>;
  const known = new Set<string>(INSTRUMENT_FIELDS);
  const problems: string[] = [];
  for (const k of Object.keys(o)) if (!known.has(k)) problems.push(`${k.slice(0, 40)}: not an instrument field`);
  for (const k of INSTRUMENT_REQUIRED_FIELDS) if (o[k] === undefined || o[k] === null) problems.push(`${k}: required`);
  if (o.symbol !== undefined && typeof o.symbol !== 'string') problems.push('symbol: a string');
  if (problems.length) return { ok: false, problems };
  const fields: Record<string, unknown> = {};
  for (const k of INSTRUMENT_FIELDS) if (o[k] !== undefined) fields[k] = o[k];
  const instrument = canonicalInstrument(defineInstrument(fields as Partial<Instrument> & Pick<Instrument, 'symbol'>));
  let found: string[];
  try {
    found = validateInstrument(instrument);
  } catch {
    found = ['definition: malformed'];
  }
  return found.length ? { ok: false, problems: found } : { ok: true, instrument };
}

/** Quote minor units of `qty` at `price`. */
export function notionalOf(i: Instrument, price: number, qty: number): number {
  return price * qty * i.quoteMultiplier;
}

/**
 * A fee of `bps` on `notional`, rounded up, computed exactly for any safe-integer notional:
 * ceil(notional * bps / 10000) without forming the product.
 * @example feeOf(10_001, 25) // 26
 */
export function feeOf(notional: number, bps: number): number {
  if (bps === 0 || notional === 0) return 0;
  const whole = Math.floor(notional / BPS);
  const rest = notional - whole * BPS;
  return whole * bps + Math.ceil((rest * bps) / BPS);
}
