import type { EntityKind } from '../src/index.js';
import { fromDecideApply } from '../src/index.js';

/**
 * A toy bank account, for the runtime's tests only (not the trading domain). Money moves between
 * accounts as a reliable message: the sender's `Debited` event puts a `Credit` in its outbox.
 * `Transfer` and `Deposit` carry client ids so that a client retry is answered, never re-executed.
 * `Credit` is deliberately *not* deduplicated here: exactly-once crediting must come from the runtime.
 */
export interface Account {
  balance: number;
  /** Outcome per transfer id this account sent. */
  outcomes: Record<string, 'ok' | 'insufficient'>;
  deposits: Record<string, true>;
  credits: number;
}

export type AccountCmd =
  | { type: 'Deposit'; depositId: string; amount: number }
  | { type: 'Transfer'; transferId: string; to: string; amount: number }
  | { type: 'Credit'; transferId: string; from: string; amount: number }
  | { type: 'Balance' }
  | { type: 'Boom' };

export type AccountEvent =
  | { type: 'Deposited'; depositId: string; amount: number }
  | { type: 'Debited'; transferId: string; to: string; amount: number }
  | { type: 'TransferRejected'; transferId: string }
  | { type: 'Credited'; transferId: string; from: string; amount: number };

export const accountMachine = fromDecideApply<Account, AccountCmd, AccountEvent>({
  kind: 'account',
  init: () => ({ balance: 0, outcomes: {}, deposits: {}, credits: 0 }),
  decide(s, c) {
    switch (c.type) {
      case 'Deposit':
        return s.deposits[c.depositId] ? [] : [{ type: 'Deposited', depositId: c.depositId, amount: c.amount }];
      case 'Transfer':
        if (s.outcomes[c.transferId]) return [];
        return s.balance >= c.amount
          ? [{ type: 'Debited', transferId: c.transferId, to: c.to, amount: c.amount }]
          : [{ type: 'TransferRejected', transferId: c.transferId }];
      case 'Credit':
        return [{ type: 'Credited', transferId: c.transferId, from: c.from, amount: c.amount }];
      case 'Balance':
        return [];
      case 'Boom':
        throw new Error('boom');
    }
  },
  apply(s, e) {
    switch (e.type) {
      case 'Deposited':
        s.balance += e.amount;
        s.deposits[e.depositId] = true;
        break;
      case 'Debited':
        s.balance -= e.amount;
        s.outcomes[e.transferId] = 'ok';
        break;
      case 'TransferRejected':
        s.outcomes[e.transferId] = 'insufficient';
        break;
      case 'Credited':
        s.balance += e.amount;
        s.credits++;
        break;
    }
    return s;
  },
});

export type AccountReply = number | 'ok' | 'insufficient' | undefined;

export const accountKind: EntityKind<Account, AccountCmd, AccountEvent, AccountReply> = {
  kind: 'account',
  machine: accountMachine,
  reply(s, c) {
    switch (c.type) {
      case 'Transfer':
        return s.outcomes[c.transferId];
      case 'Balance':
        return s.balance;
      default:
        return 'ok';
    }
  },
  outbox(e) {
    return e.type === 'Debited' ? [{ to: `account/${e.to}`, message: { transferId: e.transferId, amount: e.amount } }] : undefined;
  },
  inbound(from, m) {
    const { transferId, amount } = m as { transferId: string; amount: number };
    return { type: 'Credit', transferId, from: from.slice('account/'.length), amount };
  },
};

/** Resolve after `ms` of real time. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolve after the current turn and the nact setImmediate hops that follow it. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}
