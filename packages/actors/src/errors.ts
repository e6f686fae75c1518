/**
 * Every error the runtime raises, in one module, named by cause. Each keeps its cause chain
 * (`error.cause`), so a reply that failed because the journal failed says so.
 */

export class ActorsError extends Error {
  /**
   * Capture a stack trace in every runtime error (default false). These errors are raised on hot,
   * expected paths (timeouts, unreachable addresses, full mailboxes, resends after a failover), where
   * a stack costs more than the work and says only "the runtime's timer or mailbox"; the cause of an
   * error that wraps a bug (`ActorCrashedError`, `JournalFailedError`, ...) keeps its own stack.
   * Set it to true while debugging.
   */
  static captureStacks = false;

  constructor(message: string, options?: { cause?: unknown }) {
    if (ActorsError.captureStacks) super(message, options);
    else {
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        super(message, options);
      } finally {
        Error.stackTraceLimit = limit;
      }
    }
    this.name = new.target.name;
  }
}

/** An `ask` got no reply within its timeout. The command may or may not have been applied. */
export class AskTimeoutError extends ActorsError {
  constructor(readonly address: string, readonly timeoutMs: number) {
    super(`no reply from ${address} within ${timeoutMs} ms`);
  }
}

/**
 * The journal append that carried this command's events failed (or its outcome is unknown). The
 * command may or may not be in the journal; the actor was stopped and recovers from the journal.
 */
export class JournalFailedError extends ActorsError {
  constructor(readonly address: string, cause: unknown) {
    super(`journal append failed for ${address}`, { cause });
  }
}

/**
 * The journal rejected an append because its expected sequence was stale: another writer appended
 * to the same persistence id. The local actor was stopped (guarantee 5: one writer per actor).
 */
export class StaleWriterError extends ActorsError {
  constructor(readonly address: string, readonly expectedSeq: number, cause?: unknown) {
    super(`stale writer for ${address}: journal is ahead of expected seq ${expectedSeq}`, { cause });
  }
}

/** The actor's state machine threw while handling this command (a bug); the actor restarts. */
export class ActorCrashedError extends ActorsError {
  constructor(readonly address: string, cause: unknown) {
    super(`actor ${address} crashed`, { cause });
  }
}

/** Recovery (reading the snapshot or the journal tail) failed; the actor retries with backoff. */
export class RecoveryFailedError extends ActorsError {
  constructor(readonly address: string, cause: unknown) {
    super(`recovery of ${address} failed`, { cause });
  }
}

/**
 * The actor's mailbox is full: it holds `mailboxCommandsMax` unprocessed commands (while recovering
 * or backing off, the mailbox is the stash). The command was not accepted.
 */
export class MailboxFullError extends ActorsError {
  constructor(readonly address: string, readonly mailboxCommandsMax: number) {
    super(`mailbox of ${address} is full (${mailboxCommandsMax} commands)`);
  }
}

/** No kind with this name is registered on the node. */
export class UnknownKindError extends ActorsError {
  constructor(readonly kind: string) {
    super(`unknown actor kind '${kind}'`);
  }
}

/** An address that is not `kind/id` with a non-empty kind and id. */
export class InvalidAddressError extends ActorsError {
  constructor(readonly address: string) {
    super(`invalid actor address '${address}' (expected 'kind/id')`);
  }
}

/** The node is shutting down or stopped; the command was not handled. */
export class NodeStoppedError extends ActorsError {
  constructor(readonly nodeId: string) {
    super(`node ${nodeId} is stopped`);
  }
}

/** No node listens for this address on the transport. */
export class UnreachableError extends ActorsError {
  constructor(readonly address: string) {
    super(`no node serves ${address}`);
  }
}

/** An error raised on another node, carried back over the transport by name and message. */
export class RemoteActorError extends ActorsError {
  constructor(readonly remoteName: string, message: string) {
    super(`${remoteName}: ${message}`);
  }
}
