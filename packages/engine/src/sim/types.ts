export type FaultKind = 'crash' | 'partition' | 'drop' | 'dup' | 'delay' | 'store';
export const FAULT_KINDS: readonly FaultKind[] = ['crash', 'partition', 'drop', 'dup', 'delay', 'store'];
export type FaultCounts = Partial<Record<FaultKind, number>>;

export type InvariantName =
  | 'ack-after-commit'
  | 'acked-order-lost'
  | 'order-duplicated'
  | 'transfer-lost-or-duplicated'
  | 'conservation'
  | 'book-sound'
  | 'book-ledger-agree'
  | 'single-writer'
  | 'replay-equals-live'
  | 'liveness'
  | 'no-crash';

export interface Violation {
  readonly seed: number;
  /** First step at which it was seen (the final checks report the last step + 1). */
  readonly step: number;
  readonly invariant: InvariantName;
  readonly detail: string;
}
