/**
 * The order book state machine, one per instrument.
 *
 * @example
 *   import { bookMachine } from '@bourse/engine';
 *   const m = bookMachine(defineInstrument({ symbol: 'BTC-USD' }));
 *   const out: BookEvent[] = [];
 *   let s = m.init();
 *   s = m.step(s, { type: 'NewOrder', ts: 1, orderId: 1, account: 'a', side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 5 }, out);
 *   s.bestBid(); // 100
 */
import type { BookCommand, BookEvent, Instrument, StateMachine } from '@bourse/schemas';
import { hashOf } from '../util/hash.js';
import { OrderBook, defaultBookLimits } from './order-book.js';
import type { BookLimits } from './order-book.js';

export { OrderBook, defaultBookLimits } from './order-book.js';
export type { BookLimits, BookSnapshot, DepthLevel, OrderView } from './order-book.js';

/** The book's state is the mutable `OrderBook`: `step` and `apply` change it in place and return it. */
export type BookState = OrderBook;

export function bookMachine(instrument: Instrument, limits: BookLimits = defaultBookLimits): StateMachine<BookState, BookCommand, BookEvent> {
  return {
    kind: 'book',
    init: () => new OrderBook(instrument, limits),
    step(state, command, out) {
      state.step(command, out);
      return state;
    },
    apply(state, event) {
      state.apply(event);
      return state;
    },
    snapshot: (state) => state.snapshot(),
    restore: (snapshot) => OrderBook.restore(instrument, snapshot, limits),
    stateHash: (state) => hashOf(state.snapshot()),
  };
}
