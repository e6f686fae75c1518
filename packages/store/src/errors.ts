/**
 * Every error the store throws, in one place. Journal errors are declared by `@bourse/actors` (the
 * `Journal` interface's contract) and re-exported here; store-only errors are declared here.
 * Each keeps the driver error as `cause`.
 */
export {
  JournalError,
  JournalConflictError,
  JournalFencedError,
  JournalDecodeError,
  JournalGapError,
  JournalUnavailableError,
  JournalOutcomeUnknownError,
  JournalUsageError,
} from '@bourse/actors';

/** Base class of the store's startup and schema errors. */
export class StoreError extends Error {
  override readonly name: string = 'StoreError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The connection string or directory is malformed. Fix the configuration; retrying will not help. */
export class StoreConfigError extends StoreError {
  override readonly name = 'StoreConfigError';
}

/** The server did not answer within the connect timeout (refused, unreachable, or silent). */
export class StoreUnreachableError extends StoreError {
  override readonly name = 'StoreUnreachableError';
}

/** The server answered but refused the credentials or the database. */
export class StoreAuthError extends StoreError {
  override readonly name = 'StoreAuthError';
}

/** The database is read-only (a hot standby, or `default_transaction_read_only`). The journal needs writes. */
export class StoreReadOnlyError extends StoreError {
  override readonly name = 'StoreReadOnlyError';
}

/** The schema is missing or older than this code: run `pnpm bourse migrate --pg URL`. */
export class StoreSchemaError extends StoreError {
  override readonly name = 'StoreSchemaError';
}
