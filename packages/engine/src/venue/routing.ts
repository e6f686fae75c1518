/**
 * The order saga's routing, written once: which messages each book or ledger event sends, and to
 * whom. Pure functions of one event (plus static configuration), so every host runs the same saga:
 * the synchronous `Venue` queues them, the actor host (`src/host`) sends them as reliable messages
 * derived from its journal (an entity's outbox must be a pure function of one journaled event, so it
 * is re-derived identically on replay).
 *
 *   OrderHeld, LiquidationOrder            → book      NewOrder
 *   FillSettled                            → fees      PostEntry(fee), clearing PostEntry(-realizedPnl)
 *   MarginCall                             → books     MassCancel (the ledger's margin books in the collateral)
 *   OrderCancelled, OrderAmended           → ledger    BookReport
 *   Fill                                   → ledgers   BookReport to taker and maker
 *   CommandRejected (NewOrder, AmendOrder) → ledger    BookReport
 *   OrderRested, Fill, OrderCancelled/OrderAmended of a rested order → md (a bare book event: a batch of one)
 *
 * Two choices, both the same in every host:
 * - Market data gets one message per L2-relevant book event, not one per book command: an outbox
 *   sees one event at a time and cannot know where a command's events end. Events that move nothing
 *   visible (OrderAccepted, stops, status) are not sent at all.
 * - `OrderAccepted` is not reported to the ledger: the ledger's answer to it is "nothing" (the hold
 *   stands as placed), so the message would only cost a round trip.
 */
import type { BookCommand, BookEvent, HeldOrderFields, Instrument, LedgerCommand, LedgerEvent, MdCommand } from '@bourse/schemas';

export const FEES_ACCOUNT = 'fees';
export const CLEARING_ACCOUNT = 'clearing';

/** One saga step to run: a command for a book, a ledger or a market-data machine. */
export type Routed =
  | { readonly to: 'book'; readonly symbol: string; readonly cmd: BookCommand }
  | { readonly to: 'ledger'; readonly account: string; readonly cmd: LedgerCommand }
  | { readonly to: 'md'; readonly symbol: string; readonly cmd: MdCommand };

/** Stream (persistence id / actor address) names. */
export const streamOf = {
  book: (symbol: string) => `book/${symbol}`,
  md: (symbol: string) => `md/${symbol}`,
  account: (account: string) => `account/${account}`,
};

/**
 * Whether a book event moves L2, trades or candles (what the market-data machine uses). A cancel or
 * amend of an order that never rested (an IOC remainder, a decremented STP taker) moves nothing.
 */
export function isMdRelevant(e: BookEvent): boolean {
  switch (e.type) {
    case 'OrderRested':
    case 'Fill':
      return true;
    case 'OrderCancelled':
    case 'OrderAmended':
      return e.rested !== false;
    default:
      return false;
  }
}

/** The messages one event of book `instrument` sends, appended to `out` in saga order. */
export function routeBookEvent(instrument: Instrument, e: BookEvent, out: Routed[]): void {
  const symbol = instrument.symbol;
  if (isMdRelevant(e)) out.push({ to: 'md', symbol, cmd: e });
  switch (e.type) {
    case 'OrderCancelled':
    case 'OrderAmended':
      out.push({ to: 'ledger', account: e.account, cmd: { type: 'BookReport', ts: e.ts, instrument, event: e } });
      break;
    case 'Fill':
      out.push({ to: 'ledger', account: e.takerAccount, cmd: { type: 'BookReport', ts: e.ts, instrument, event: e } });
      out.push({ to: 'ledger', account: e.makerAccount, cmd: { type: 'BookReport', ts: e.ts, instrument, event: e } });
      break;
    case 'CommandRejected':
      if (e.orderId !== 0 && (e.command === 'NewOrder' || e.command === 'AmendOrder')) {
        out.push({ to: 'ledger', account: e.account, cmd: { type: 'BookReport', ts: e.ts, instrument, event: e } });
      }
      break;
    default:
      break; // OrderAccepted, OrderRested, StopArmed, StopTriggered, status and reference price: nothing for ledgers
  }
}

/**
 * The messages one event of ledger `account` sends, appended to `out`. `instruments` are the ones
 * the ledger itself has registered, by symbol (its own state: every instrument it holds an order or
 * a position on), for the margin books a MarginCall cancels on. Not the venue's list: that grows at
 * run time, and an outbox must derive the same messages from a journaled event on replay as it did
 * live. Passed as the map, iterated only for a MarginCall (this runs for every ledger event).
 */
export function routeLedgerEvent(account: string, e: LedgerEvent, instruments: ReadonlyMap<string, Instrument>, out: Routed[]): void {
  switch (e.type) {
    case 'OrderHeld':
    case 'LiquidationOrder':
      out.push({ to: 'book', symbol: e.symbol, cmd: newOrderFrom(e) });
      break;
    case 'FillSettled': {
      const ref = `${e.symbol}:${e.tradeId}:${account}:${e.role}`;
      if (e.fee !== 0) out.push({ to: 'ledger', account: FEES_ACCOUNT, cmd: { type: 'PostEntry', ts: e.ts, entryId: `fee:${ref}`, asset: e.feeAsset, amount: e.fee } });
      if (e.realizedPnl !== 0) out.push({ to: 'ledger', account: CLEARING_ACCOUNT, cmd: { type: 'PostEntry', ts: e.ts, entryId: `pnl:${ref}`, asset: e.feeAsset, amount: -e.realizedPnl } });
      break;
    }
    case 'MarginCall':
      for (const i of instruments.values()) {
        if (i.mode === 'margin' && i.quote === e.collateral) out.push({ to: 'book', symbol: i.symbol, cmd: { type: 'MassCancel', ts: e.ts, account } });
      }
      break;
    default:
      break;
  }
}

/** The book command a held (or liquidation) order becomes. */
export function newOrderFrom(e: HeldOrderFields): BookCommand {
  return {
    type: 'NewOrder',
    ts: e.ts,
    orderId: e.orderId,
    account: e.account,
    ...(e.clientOrderId === undefined ? {} : { clientOrderId: e.clientOrderId }),
    side: e.side,
    orderType: e.orderType,
    tif: e.tif,
    price: e.price,
    qty: e.qty,
    ...(e.stopPrice ? { stopPrice: e.stopPrice } : {}),
    ...(e.expireAt ? { expireAt: e.expireAt } : {}),
    postOnly: e.postOnly,
    reduceOnly: e.reduceOnly,
    stp: e.stp,
  };
}
