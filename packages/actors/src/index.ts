export type {
  Journal,
  JournalWrite,
  JournalPage,
  FenceToken,
  AppendOptions,
  ReadOptions,
  Snapshot,
  AppendOutcome,
  SequenceConflict,
} from './journal.js';
export {
  JournalError,
  JournalConflictError,
  JournalFencedError,
  JournalDecodeError,
  JournalGapError,
  JournalUnavailableError,
  JournalOutcomeUnknownError,
  JournalUsageError,
} from './journal.js';
