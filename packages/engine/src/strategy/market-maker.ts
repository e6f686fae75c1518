/**
 * A simple symmetric market maker: quotes `levels` bids and asks around a fair price, skewed against
 * its inventory so that it leans back toward flat. Pure: the host supplies the fair price, the
 * inventory and the time, and places, cancels or amends what this returns.
 *
 * @example quotesFor({ fair: 100_000, inventory: 0 }, { tick: 5, spreadTicks: 2, levels: 3, qty: 10, skewTicksPerQty: 0 })
 *   // bids at 99_990, 99_985, 99_980 and asks at 100_010, 100_015, 100_020, 10 each
 */
export interface MarketMakerParams {
  readonly tick: number;
  /** Half-spread of the innermost quotes, in ticks. */
  readonly spreadTicks: number;
  readonly levels: number;
  readonly qty: number;
  /** Ticks the quotes move per unit of inventory, against it. 0 = no skew. */
  readonly skewTicksPerQty: number;
}

export interface Quote {
  readonly side: 'buy' | 'sell';
  readonly price: number;
  readonly qty: number;
}

export function quotesFor(input: { fair: number; inventory: number }, p: MarketMakerParams): Quote[] {
  const center = Math.round(input.fair / p.tick) * p.tick - Math.trunc(input.inventory * p.skewTicksPerQty) * p.tick;
  const out: Quote[] = [];
  for (let i = 0; i < p.levels; i++) {
    const bid = center - (p.spreadTicks + i) * p.tick;
    const ask = center + (p.spreadTicks + i) * p.tick;
    if (bid > 0) out.push({ side: 'buy', price: bid, qty: p.qty });
    out.push({ side: 'sell', price: ask, qty: p.qty });
  }
  return out;
}
