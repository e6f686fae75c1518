/**
 * Read-model projections: each projection keeps a checkpoint per journal stream (persistence id) in
 * `projection_checkpoints`, and applies a page of a stream's events and advances that checkpoint in
 * ONE transaction. So an event is applied exactly once, whatever crashes or concurrent runners do.
 *
 * No reliance on a global order (BIGSERIAL ids or commit order, which become visible out of order):
 * progress is tracked per stream by its own gapless sequence, and a stream's row `seq_from = s` can
 * only commit after the row ending at `s - 1` has committed (the append's predecessor check), so a
 * reader that sees sequence s has already been able to see everything before it.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Journal, JournalPage } from '@bourse/actors';
import type { Database } from '../db.js';

export interface Projection<E = unknown> {
  /** Stable name: the checkpoint key. Renaming it replays everything. */
  readonly name: string;
  /** Only streams whose persistence id starts with this (or one of these) are projected (e.g. `book/`). */
  readonly streamPrefix: string | readonly string[];
  /** Further streams projected by exact id (e.g. the system ledgers `fees` and `clearing`). */
  readonly streamIds?: readonly string[];
  /** Applies a contiguous page of one stream's events. Write only through `trx`. */
  apply(trx: Transaction<Database>, page: JournalPage<E>): Promise<void>;
}

export interface StreamProgress {
  readonly persistenceId: string;
  readonly head: number;
  readonly done: number;
}

export interface CatchUpOptions {
  /** Events per transaction. Default 2000. */
  readonly pageEventsMax?: number;
  /** Stop after this many pages per stream (for tests). Default unlimited. */
  readonly pagesMax?: number;
}

/** Whether the projection reads the stream `persistenceId`. */
export function projects(p: Projection, persistenceId: string): boolean {
  return prefixesOf(p).some((x) => persistenceId.startsWith(x)) || (p.streamIds ?? []).includes(persistenceId);
}

const prefixesOf = (p: Projection): string[] => (typeof p.streamPrefix === 'string' ? [p.streamPrefix] : [...p.streamPrefix]);

export class ProjectionRunner {
  constructor(
    readonly db: Kysely<Database>,
    readonly journal: Journal,
    readonly projections: readonly Projection<any>[],
  ) {}

  /** Streams of the projection that have events beyond its checkpoint. */
  async lagging(p: Projection): Promise<StreamProgress[]> {
    // One small row per stream (journal_heads, kept by the append), joined to this projection's checkpoints.
    const { rows } = await sql<{ persistence_id: string; head: number; done: number }>`
      select h.persistence_id, h.seq_to as head, coalesce(c.seq, 0) as done
        from journal_heads h
        left join projection_checkpoints c on c.projection = ${p.name} and c.persistence_id = h.persistence_id
       where h.seq_to > coalesce(c.seq, 0)
         and (exists (select 1 from unnest(${prefixesOf(p)}::text[]) as x(prefix) where starts_with(h.persistence_id, x.prefix))
              or h.persistence_id = any(${[...(p.streamIds ?? [])]}::text[]))`.execute(this.db);
    return rows.map((r) => ({ persistenceId: r.persistence_id, head: Number(r.head), done: Number(r.done) })).filter((r) => r.head > r.done);
  }

  /** Brings every projection up to date with what is committed now. Returns events applied. */
  async runOnce(opts: CatchUpOptions = {}): Promise<number> {
    let applied = 0;
    for (const p of this.projections) for (const s of await this.lagging(p)) applied += await this.catchUp(p, s.persistenceId, opts);
    return applied;
  }

  /** Applies a stream's events beyond the checkpoint, page by page, one transaction per page. */
  async catchUp(p: Projection, persistenceId: string, opts: CatchUpOptions = {}): Promise<number> {
    const pageEventsMax = opts.pageEventsMax ?? 2000;
    let applied = 0;
    for (let pages = 0; pages < (opts.pagesMax ?? Infinity); pages++) {
      const from = (await this.checkpoint(p.name, persistenceId)) + 1;
      // Read outside the transaction (PGlite has one session); events never change once committed.
      let page: JournalPage | undefined;
      for await (const pg of this.journal.read(persistenceId, from, { pageEventsMax, toSeq: from + pageEventsMax - 1 })) {
        page = pg;
        break;
      }
      if (!page) break;
      const got = page;
      applied += await this.db.transaction().execute(async (trx) => {
        await trx.insertInto('projection_checkpoints').values({ projection: p.name, persistence_id: persistenceId, seq: 0 }).onConflict((oc) => oc.doNothing()).execute();
        const locked = await trx
          .selectFrom('projection_checkpoints')
          .select('seq')
          .where('projection', '=', p.name)
          .where('persistence_id', '=', persistenceId)
          .forUpdate()
          .executeTakeFirstOrThrow();
        const done = Number(locked.seq);
        if (done >= got.toSeq) return 0; // another runner got there first
        if (done < got.fromSeq - 1) throw new Error(`projection ${p.name} ${persistenceId}: checkpoint ${done} went backwards below ${got.fromSeq - 1}`);
        const skip = done - (got.fromSeq - 1);
        const sub: JournalPage = skip === 0 ? got : { persistenceId, fromSeq: done + 1, toSeq: got.toSeq, events: got.events.slice(skip) };
        await p.apply(trx, sub);
        await trx
          .updateTable('projection_checkpoints')
          .set({ seq: sub.toSeq })
          .where('projection', '=', p.name)
          .where('persistence_id', '=', persistenceId)
          .execute();
        return sub.events.length;
      });
    }
    return applied;
  }

  async checkpoint(projection: string, persistenceId: string): Promise<number> {
    const r = await this.db
      .selectFrom('projection_checkpoints')
      .select('seq')
      .where('projection', '=', projection)
      .where('persistence_id', '=', persistenceId)
      .executeTakeFirst();
    return r ? Number(r.seq) : 0;
  }

  /** Polls every `intervalMs` until stopped. Errors are reported and the poll goes on. */
  start(intervalMs = 100, onError: (e: unknown) => void = () => {}): { stop(): Promise<void> } {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        try {
          await this.runOnce();
        } catch (e) {
          onError(e);
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    })();
    return {
      async stop() {
        stopped = true;
        await loop;
      },
    };
  }
}
