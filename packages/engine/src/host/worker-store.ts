/**
 * The engine thread's side of `store-worker.ts`: a `Journal` and the read models whose calls run on
 * the store's own thread. Used by `openEmbeddedVenue` for PGlite and pg targets unless
 * `storeThread: false`.
 */
import { Worker } from 'node:worker_threads';
import type { AppendOptions, AppendOutcome, Journal, JournalPage, JournalWrite, ReadOptions, Snapshot } from '@bourse/actors';
import { JournalConflictError, JournalError, JournalFencedError } from '@bourse/actors';
import { prepareAppend } from '@bourse/store';
import type { VenueReads } from '../venue/gateway.js';

type Pending = { resolve(v: unknown): void; reject(e: unknown): void };

function toError(e: { name: string; message: string; conflicts?: never; scope?: string; token?: number; storedToken?: number }): Error {
  if (e.name === 'JournalConflictError') return new JournalConflictError(e.conflicts ?? []);
  if (e.name === 'JournalFencedError') return new JournalFencedError(e.scope ?? '', e.token ?? 0, e.storedToken ?? 0);
  if (e.name.startsWith('Journal')) {
    const err = new JournalError(e.message);
    Object.defineProperty(err, 'name', { value: e.name });
    return err;
  }
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** PGlite checkpoints the journal ran on the store thread (`StoreJournal.checkpointStats`). */
export interface CheckpointStats {
  readonly checkpoints: number;
  readonly ms: number;
  readonly failures: number;
}

export class WorkerStore {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #closed = false;
  readonly journal: Journal;
  readonly reads: VenueReads;
  /** As of the last append's answer (the store thread sends them along with it). */
  checkpointStats: CheckpointStats = { checkpoints: 0, ms: 0, failures: 0 };

  private constructor(onError: (e: unknown) => void) {
    const here = import.meta.url;
    // Under tsx (tests) this module is the .ts source; compiled, it is .js next to the worker's .js.
    const url = new URL(here.endsWith('.ts') ? './store-worker.ts' : './store-worker.js', here);
    // Under tsx the worker registers tsx itself first (a worker does not inherit the loader).
    this.#worker = here.endsWith('.ts')
      ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true })
      : new Worker(url);
    this.#worker.on('message', (m: { id: number; ok: boolean; value?: unknown; error?: never }) => {
      if (m.id === 0) return onError(toError(m.error!));
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(toError(m.error!));
    });
    this.#worker.on('error', (e) => {
      onError(e);
      this.#failAll(e);
    });
    this.#worker.on('exit', () => this.#failAll(new JournalError('store thread exited')));
    const call = this.call.bind(this);
    this.journal = {
      // Encoded here and the payload's buffer transferred: the store thread (the busier one) then gets
      // a few arrays and bytes, instead of structured-cloning every event object and packing it itself.
      append: async (writes: readonly JournalWrite[], options?: AppendOptions) => {
        const prep = prepareAppend(writes, options?.fences ?? []);
        const stats = (await this.#call('appendPrepared', [prep], [prep.payload.buffer as ArrayBuffer])) as CheckpointStats | undefined;
        if (stats) this.checkpointStats = stats;
      },
      read: (persistenceId: string, fromSeq: number, options?: ReadOptions): AsyncIterable<JournalPage> => ({
        [Symbol.asyncIterator]() {
          let cursor: Promise<number> | undefined;
          let done = false;
          return {
            async next(): Promise<IteratorResult<JournalPage>> {
              if (done) return { done: true, value: undefined };
              cursor ??= call('readOpen', persistenceId, fromSeq, options) as Promise<number>;
              const page = (await call('readNext', await cursor)) as JournalPage | null;
              if (page === null) {
                done = true;
                return { done: true, value: undefined };
              }
              return { done: false, value: page };
            },
            async return(): Promise<IteratorResult<JournalPage>> {
              if (!done && cursor) await call('readClose', await cursor);
              done = true;
              return { done: true, value: undefined };
            },
          };
        },
      }),
      highestSeq: (id: string) => call('highestSeq', id) as Promise<number>,
      highestSeqs: (ids: readonly string[]) => call('highestSeqs', ids) as Promise<Map<string, number>>,
      resolveAppend: (writes: readonly JournalWrite[]) => call('resolveAppend', writes) as Promise<AppendOutcome>,
      saveSnapshot: (s: Snapshot) => call('saveSnapshot', s) as Promise<void>,
      loadSnapshot: (id: string, maxSeq?: number) => call('loadSnapshot', id, maxSeq) as Promise<Snapshot | undefined>,
      keepSnapshots: (id: string, keep: number) => call('keepSnapshots', id, keep) as Promise<number>,
      deleteEventsTo: (id: string, toSeq: number) => call('deleteEventsTo', id, toSeq) as Promise<number>,
      close: async () => {},
    };
    const read = (name: string) => (...args: unknown[]) => call('reads', name, ...args);
    this.reads = {
      ordersByAccount: read('ordersByAccount'),
      trades: read('trades'),
      balancesByAccount: read('balancesByAccount'),
      positionsByAccount: read('positionsByAccount'),
      candles: read('candles'),
    } as unknown as VenueReads;
  }

  /** Starts the worker and opens the store in it (migrating PGlite as `openStore` does). */
  static async open(target: { pglite: string } | { pg: string; schema?: string }, onError: (e: unknown) => void): Promise<WorkerStore> {
    const ws = new WorkerStore(onError);
    try {
      await ws.call('open', target);
    } catch (e) {
      await ws.#worker.terminate();
      throw e;
    }
    return ws;
  }

  call(op: string, ...args: unknown[]): Promise<unknown> {
    return this.#call(op, args);
  }

  #call(op: string, args: unknown[], transfer?: ArrayBuffer[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(new JournalError('store thread closed'));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** Read models in the worker: a `ProjectionRunner` over the host-aware projections. */
  startProjections(intervalMs: number): Promise<unknown> {
    return this.call('projections', intervalMs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.call('close');
    } finally {
      this.#closed = true;
      await this.#worker.terminate();
    }
  }

  #failAll(e: unknown): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) p.reject(e);
  }
}
