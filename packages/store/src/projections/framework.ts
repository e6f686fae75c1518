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
  /**
   * Optional: applies pages of several distinct streams at once (fewer statements), with the same
   * effect as `apply` on each. The runner prefers it, so a wrapper that changes `apply` must wrap
   * (or drop) this too.
   */
  applyPages?(trx: Transaction<Database>, pages: readonly JournalPage<E>[]): Promise<void>;
}

export interface StreamProgress {
  readonly persistenceId: string;
  readonly head: number;
  readonly done: number;
}

export interface CatchUpOptions {
  /** Events per stream per page. Default 1000. */
  readonly pageEventsMax?: number;
  /** Stop after this many pages per stream (for tests). Default unlimited. */
  readonly pagesMax?: number;
  /**
   * Events per transaction, over the pages of several streams (at least one page). Default 1000: a
   * journal append waits for at most the transaction in progress (PGlite has one session), so keep it short.
   */
  readonly batchEventsMax?: number;
  /** Streams read in one query. Default 256. */
  readonly batchStreamsMax?: number;
  /**
   * Start no new read or transaction after this many ms (what is left waits for the next call).
   * Default unlimited. `start` uses it to cap the runner's share of the database.
   */
  readonly timeBudgetMs?: number;
  /** Start no new read or transaction once this returns true (after the first transaction). */
  readonly until?: () => boolean;
  /** `runOnce` only: project just the streams this accepts (a cluster node: the streams of the shards it owns). */
  readonly streams?: (persistenceId: string) => boolean;
}

/** `ProjectionRunner.start` options. */
export interface StartOptions {
  /** The runner's share of wall time while appends are arriving. Default 0.25. */
  readonly busyShareMax?: number;
  /**
   * With `appends`: the share while the journal is quiet (at most `idleAppendsMax` appends since the
   * last poll), so read models catch up quickly after a burst; the poll ends when more arrive. Default 0.9.
   */
  readonly idleShareMax?: number;
  /** Appends per poll interval that still count as quiet (a venue's market maker keeps quoting). Default 3. */
  readonly idleAppendsMax?: number;
  /** A count of journal appends that only grows (the host's); without it every poll is busy. */
  readonly appends?: () => number;
}

/** A journal that can read the first page of many streams in one call (`StoreJournal`). */
interface BatchReader {
  readPages(requests: readonly { persistenceId: string; fromSeq: number; toSeq: number }[]): Promise<JournalPage[]>;
}
const batchReader = (j: Journal): BatchReader | undefined =>
  typeof (j as Partial<BatchReader>).readPages === 'function' ? (j as unknown as BatchReader) : undefined;

/** Whether the projection reads the stream `persistenceId`. */
export function projects(p: Projection, persistenceId: string): boolean {
  return prefixesOf(p).some((x) => persistenceId.startsWith(x)) || (p.streamIds ?? []).includes(persistenceId);
}

const prefixesOf = (p: Projection): string[] => (typeof p.streamPrefix === 'string' ? [p.streamPrefix] : [...p.streamPrefix]);

export class ProjectionRunner {
  #turn = 0;

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

  /**
   * Brings every projection up to date with what is committed now. Returns events applied.
   *
   * Per projection, in rounds: the lagging streams' next pages are read together (one query with a
   * `StoreJournal`), then applied in as few transactions as `batchEventsMax` allows, each locking
   * and advancing the checkpoints of its streams. So a poll costs a handful of statements, not a
   * handful per stream (on PGlite every statement has a fixed cost of about a millisecond).
   */
  async runOnce(opts: CatchUpOptions = {}): Promise<number> {
    let applied = 0;
    const pageEventsMax = opts.pageEventsMax ?? 1000;
    const batchStreams = opts.batchStreamsMax ?? 256;
    const batchEvents = opts.batchEventsMax ?? 1000;
    const deadline = performance.now() + (opts.timeBudgetMs ?? Infinity);
    // Each call starts with the next projection, so a time budget never starves the last ones.
    const first = this.#turn++ % Math.max(1, this.projections.length);
    const order = [...this.projections.slice(first), ...this.projections.slice(0, first)];
    // At least one transaction per call, whatever the budget, so a slow poll still makes progress.
    let started = false;
    const until = opts.until;
    const inTime = () => !started || (performance.now() < deadline && !(until !== undefined && until()));
    for (const p of order) {
      if (!inTime()) break;
      let lag = await this.lagging(p);
      if (opts.streams) lag = lag.filter((s) => opts.streams!(s.persistenceId));
      for (let round = 0; lag.length > 0 && round < (opts.pagesMax ?? Infinity) && inTime(); round++) {
        const next: StreamProgress[] = [];
        let i = 0;
        while (i < lag.length && inTime()) {
          started = true;
          // As many streams as fit one transaction by their known lag (a page never reads past the head
          // seen by lagging()), so what is read is applied at once and a time budget wastes no read.
          const part: StreamProgress[] = [];
          let estimate = 0;
          while (i < lag.length && part.length < batchStreams) {
            const s = lag[i]!;
            const e = Math.min(pageEventsMax, s.head - s.done);
            if (part.length > 0 && estimate + e > batchEvents) break;
            part.push(s);
            estimate += e;
            i++;
          }
          const pages = await this.#readPages(part, pageEventsMax);
          const done = await this.#applyBatches(p, pages, new Map(part.map((s) => [s.persistenceId, s.done])), Infinity, Infinity);
          for (const [, r] of done) applied += r.applied;
          for (const s of part) {
            const d = done.get(s.persistenceId);
            if (d && d.stored < s.head) next.push({ persistenceId: s.persistenceId, head: s.head, done: d.stored });
          }
        }
        lag = next;
      }
    }
    return applied;
  }

  /** The next page (events beyond `done`, at most `pageEventsMax`) of each stream; read outside any transaction. */
  async #readPages(streams: readonly StreamProgress[], pageEventsMax: number): Promise<JournalPage[]> {
    const req = streams.map((s) => ({ persistenceId: s.persistenceId, fromSeq: s.done + 1, toSeq: Math.min(s.done + pageEventsMax, s.head) }));
    const batch = batchReader(this.journal);
    if (batch) return batch.readPages(req);
    const out: JournalPage[] = [];
    for (const r of req) {
      for await (const page of this.journal.read(r.persistenceId, r.fromSeq, { pageEventsMax, toSeq: r.toSeq })) {
        out.push(page);
        break;
      }
    }
    return out;
  }

  /**
   * Applies pages (distinct streams) in transactions of at most `batchEventsMax` events (at least one
   * page each). Each transaction locks its streams' checkpoint rows (in id order, so concurrent runners
   * wait rather than deadlock), skips what another runner applied meanwhile, applies the rest and
   * advances the checkpoints: events and checkpoint commit together or not at all.
   */
  async #applyBatches(
    p: Projection,
    pages: readonly JournalPage[],
    known: ReadonlyMap<string, number>,
    batchEventsMax: number,
    deadline: number,
  ): Promise<Map<string, { applied: number; stored: number }>> {
    const out = new Map<string, { applied: number; stored: number }>();
    let i = 0;
    while (i < pages.length && (i === 0 || performance.now() < deadline)) {
      const group: JournalPage[] = [];
      let events = 0;
      while (i < pages.length && (group.length === 0 || events + pages[i]!.events.length <= batchEventsMax)) {
        events += pages[i]!.events.length;
        group.push(pages[i++]!);
      }
      group.sort((a, b) => (a.persistenceId < b.persistenceId ? -1 : a.persistenceId > b.persistenceId ? 1 : 0));
      const ids = group.map((g) => g.persistenceId);
      const result = await this.db.transaction().execute(async (trx) => {
        // A checkpoint row exists once a stream has been applied; create the missing ones at 0.
        const fresh = ids.filter((id) => (known.get(id) ?? 0) === 0);
        if (fresh.length > 0) {
          await sql`insert into projection_checkpoints (projection, persistence_id, seq)
                    select ${p.name}, x.id, 0 from unnest(${fresh}::text[]) as x(id) order by x.id
                    on conflict do nothing`.execute(trx);
        }
        const { rows } = await sql<{ persistence_id: string; seq: number }>`
          select persistence_id, seq from projection_checkpoints
           where projection = ${p.name} and persistence_id = any(${ids}::text[])
           order by persistence_id for update`.execute(trx);
        const stored = new Map(rows.map((r) => [r.persistence_id, Number(r.seq)]));
        const subs: JournalPage[] = [];
        const res = new Map<string, { applied: number; stored: number }>();
        for (const got of group) {
          const id = got.persistenceId;
          const s = stored.get(id);
          if (s === undefined) throw new Error(`projection ${p.name} ${id}: no checkpoint row`);
          if (s >= got.toSeq) {
            res.set(id, { applied: 0, stored: s }); // another runner got there first
            continue;
          }
          if (s < got.fromSeq - 1) throw new Error(`projection ${p.name} ${id}: checkpoint ${s} went backwards below ${got.fromSeq - 1}`);
          const skip = s - (got.fromSeq - 1);
          const sub: JournalPage = skip === 0 ? got : { persistenceId: id, fromSeq: s + 1, toSeq: got.toSeq, events: got.events.slice(skip) };
          subs.push(sub);
          res.set(id, { applied: sub.events.length, stored: sub.toSeq });
        }
        if (subs.length === 0) return res;
        if (p.applyPages) await p.applyPages(trx, subs);
        else for (const sub of subs) await p.apply(trx, sub);
        await sql`update projection_checkpoints c set seq = v.seq
                    from unnest(${subs.map((x) => x.persistenceId)}::text[], ${subs.map((x) => x.toSeq)}::int8[]) as v(id, seq)
                   where c.projection = ${p.name} and c.persistence_id = v.id`.execute(trx);
        return res;
      });
      for (const [id, r] of result) out.set(id, r);
    }
    return out;
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

  /**
   * Polls every `intervalMs` until stopped. Errors are reported and the poll goes on.
   *
   * `busyShareMax` (default 0.25) caps the runner's share of wall time while it is behind: a poll
   * starts no new work after `intervalMs * share / (1 - share)` ms, then sleeps `intervalMs`. Under a
   * burst of appends the read models fall behind instead of slowing the journal (on PGlite both share
   * one session and one thread). Given `appends`, a poll that starts after a quiet interval (at most
   * `idleAppendsMax` appends) runs at `idleShareMax` (default 0.9) until more arrive, so they catch
   * up quickly once the burst is over; without it they catch up at the busy share.
   */
  start(intervalMs = 100, onError: (e: unknown) => void = () => {}, opts: StartOptions = {}): { stop(): Promise<void> } {
    let stopped = false;
    const budget = (share: number) => {
      const x = Math.min(0.95, Math.max(0.01, share));
      return (intervalMs * x) / (1 - x);
    };
    const busyBudgetMs = budget(opts.busyShareMax ?? 0.25);
    const idleBudgetMs = budget(opts.idleShareMax ?? 0.9);
    const appends = opts.appends;
    const idleAppends = Math.max(0, opts.idleAppendsMax ?? 3);
    let seen = appends?.() ?? 0;
    const loop = (async () => {
      while (!stopped) {
        try {
          // A quiet journal (at most `idleAppendsMax` appends since the last poll): catch up at the idle
          // share, until more appends than that arrive.
          const now = appends?.() ?? 0;
          const idle = appends !== undefined && now - seen <= idleAppends;
          seen = now;
          await this.runOnce(idle ? { timeBudgetMs: idleBudgetMs, until: () => appends() - now > idleAppends } : { timeBudgetMs: busyBudgetMs });
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
