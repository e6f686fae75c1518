/**
 * The Postgres journal (pg or PGlite). See `Journal` in `@bourse/actors` for the contract.
 *
 * Storage: one `journal` row per persistence id per append, holding events `seq_from..seq_to`
 * msgpack-packed (codec.ts). An append is ONE statement, `bourse_journal_append(...)` (migrations.ts):
 * one round trip and one transaction for the whole batch, however many ids it holds. Its inputs are
 * arrays plus one binary blob of all payloads that the server slices, so the statement text and the
 * parameter count do not grow with the batch.
 *
 * Why sequences cannot fork: the primary key is `(persistence_id, seq_from)` and a row may only be
 * inserted when the id's latest visible row ends at `seq_from - 1`. Two writers with the same
 * expectation insert the same `seq_from`; the unique index lets one commit and the other conflicts.
 */
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import type {
  AppendOptions,
  AppendOutcome,
  FenceToken,
  Journal,
  JournalPage,
  JournalWrite,
  ReadOptions,
  SequenceConflict,
  Snapshot,
} from '@bourse/actors';
import { protocol, type PGlite } from '@electric-sql/pglite';
import { CURRENT_FORMAT, EventCodec } from './codec.js';
import { copyOutBinary, int8, readInt2, readInt8 } from './pg-copy.js';
import { pgliteWalBytes, syncPGlite } from './pglite-durable.js';
import { backoffMs, defaultRetry, isTransient, sleep, type Connection, type RetryPolicy } from './connect.js';
import {
  JournalConflictError,
  JournalError,
  JournalFencedError,
  JournalGapError,
  JournalOutcomeUnknownError,
  JournalUnavailableError,
  JournalUsageError,
} from './errors.js';

export interface JournalOptions {
  readonly retry?: RetryPolicy;
  /** Most events packed in one row; longer writes are split. Default 4096. */
  readonly rowEventsMax?: number;
  /** Default page bound for `read`. Default 8192. */
  readonly pageEventsMax?: number;
  /** pg only: read pages through binary COPY (no hex decoding of bytea). Default true. */
  readonly copyReads?: boolean;
  /**
   * PGlite only: run a `CHECKPOINT` once the WAL has advanced this many bytes since the last one (the
   * log's advance, not the bytes written: `pgliteWalBytes`).
   * Default 64 MiB; 0 = never. PGlite has no checkpointer process and never checkpoints on its own
   * while open, so without this its WAL grows without bound (1.5 GB in 6 minutes of appends here), a
   * new 1 MB segment is created and synced all the time, and a restart after a crash replays all of it.
   * After a checkpoint Postgres recycles the segments it freed. A checkpoint holds the session for
   * ~75 ms per 32 MiB of WAL here; it runs after the append that crossed the mark has resolved, ahead of
   * the read models but behind appends already waiting.
   */
  readonly checkpointWalBytes?: number;
}

/**
 * A batch ready to send: the arrays `bourse_journal_append` takes, the events already encoded into
 * one payload. Plain data (structured-cloneable; `payload` owns its buffer, so it can be transferred):
 * a host whose journal runs on another thread prepares on its own thread with `prepareAppend` and
 * sends this to `StoreJournal.appendPrepared`, instead of cloning the event objects across.
 */
export interface PreparedAppend {
  ids: string[];
  froms: number[];
  tos: number[];
  checks: boolean[];
  offs: number[];
  lens: number[];
  payload: Uint8Array;
  scopes: string[];
  tokens: number[];
  /** Per id: expected seq and event count (after merging). */
  heads: Map<string, { expected: number; count: number }>;
}

const APPEND_SQL =
  'select bourse_journal_append($1::text[], $2::int8[], $3::int8[], $4::bool[], $5::int4[], $6::int4[], $7::bytea, $8::int2, $9::text[], $10::int8[]) as n';

/** The name `APPEND_SQL` is prepared under: once per pg session, once per PGlite instance (those in `appendPreparedOn`). */
const APPEND_STATEMENT = 'bourse_journal_append';
const { serialize } = protocol;
const appendPreparedOn = new WeakSet<PGlite>();
const BYTEA_OID = 17;
/** The types of `APPEND_SQL`'s parameters (text[], int8[], int8[], bool[], int4[], int4[], bytea, int2, text[], int8[]). */
const APPEND_PARAM_TYPES = [1009, 1016, 1016, 1000, 1007, 1007, BYTEA_OID, 21, 1009, 1016] as const;

/**
 * Protocol messages on PGlite's session, then a Sync, which ends the implicit transaction (committing
 * it, or rolling it back after an error; Postgres skips the messages after an error until the Sync).
 * Throws the first error Postgres reported.
 */
async function protocolCalls(pglite: PGlite, messages: readonly Uint8Array[]): Promise<void> {
  try {
    for (const m of messages) await pglite.execProtocol(m, { syncToFs: false });
  } finally {
    await pglite.execProtocol(serialize.sync(), { syncToFs: false });
  }
}

const isSafeSeq = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
const DEFAULT_ROW_EVENTS_MAX = 4096;
/** pg sends a Buffer as bytea (a plain Uint8Array would go out as text); PGlite takes either. */
const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The codec `prepareAppend` uses when none is given (rows are self-contained, so any instance decodes them). */
const sharedCodec = new EventCodec();

/**
 * Validates and encodes a batch for `bourse_journal_append`: merges the writes of one id, splits rows
 * at `rowEventsMax` events, packs each row's events and concatenates the payloads. Throws
 * JournalUsageError on a malformed batch (nothing is sent then).
 */
export function prepareAppend<E>(writes: readonly JournalWrite<E>[], fences: readonly FenceToken[] = [], rowEventsMax = DEFAULT_ROW_EVENTS_MAX, codec: EventCodec = sharedCodec): PreparedAppend {
  const merged = new Map<string, { expected: number; events: E[] }>();
  for (const w of writes) {
    if (typeof w.persistenceId !== 'string' || w.persistenceId.length === 0) throw new JournalUsageError('append: persistenceId must be a non-empty string');
    if (!isSafeSeq(w.expectedSeq)) throw new JournalUsageError(`append ${w.persistenceId}: expectedSeq must be a safe integer >= 0, got ${w.expectedSeq}`);
    if (!Array.isArray(w.events) || w.events.length === 0) throw new JournalUsageError(`append ${w.persistenceId}: events must be a non-empty array`);
    const m = merged.get(w.persistenceId);
    if (!m) merged.set(w.persistenceId, { expected: w.expectedSeq, events: [...w.events] });
    else if (m.expected + m.events.length === w.expectedSeq) m.events.push(...w.events);
    else throw new JournalUsageError(`append ${w.persistenceId}: two writes in one batch are not contiguous (expected ${m.expected + m.events.length}, got ${w.expectedSeq})`);
  }
  const p: PreparedAppend = { ids: [], froms: [], tos: [], checks: [], offs: [], lens: [], payload: new Uint8Array(0), scopes: [], tokens: [], heads: new Map() };
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const [id, m] of merged) {
    p.heads.set(id, { expected: m.expected, count: m.events.length });
    for (let i = 0; i < m.events.length; i += rowEventsMax) {
      const slice = m.events.length <= rowEventsMax ? m.events : m.events.slice(i, i + rowEventsMax);
      const [a, b, c] = codec.encodeParts(slice);
      const length = a.length + b.length + c.length;
      p.ids.push(id);
      p.froms.push(m.expected + i + 1);
      p.tos.push(m.expected + i + slice.length);
      p.checks.push(i === 0);
      p.offs.push(off);
      p.lens.push(length);
      chunks.push(a, b, c);
      off += length;
    }
  }
  // A buffer of its own (Buffer.concat may return a slice of the shared pool), so it can be transferred.
  p.payload = new Uint8Array(off);
  off = 0;
  for (const c of chunks) {
    p.payload.set(c, off);
    off += c.length;
  }
  const seen = new Set<string>();
  for (const f of fences) {
    if (typeof f.scope !== 'string' || !isSafeSeq(f.token)) throw new JournalUsageError('append: a fence needs a string scope and a safe integer token >= 0');
    if (seen.has(f.scope)) throw new JournalUsageError(`append: fence scope ${f.scope} given twice`);
    seen.add(f.scope);
    p.scopes.push(f.scope);
    p.tokens.push(f.token);
  }
  return p;
}

export class StoreJournal<E = unknown> implements Journal<E> {
  readonly #conn: Connection;
  readonly #codec = new EventCodec();
  readonly #retry: RetryPolicy;
  readonly #rowEventsMax: number;
  readonly #pageEventsMax: number;
  readonly #copyReads: boolean;
  #closed = false;
  readonly #checkpointWalBytes: number;
  /** WAL bytes written at the last checkpoint (or at open). */
  #walAtCheckpoint = 0;
  #checkpointing: Promise<void> | undefined;
  /** PGlite: checkpoints run by `checkpointWalBytes`, the ms the session spent in them, and the ones that failed (retried at the next append). */
  readonly checkpointStats = { checkpoints: 0, ms: 0, failures: 0 };

  constructor(conn: Connection, opts: JournalOptions = {}) {
    this.#conn = conn;
    this.#retry = opts.retry ?? defaultRetry;
    this.#rowEventsMax = opts.rowEventsMax ?? DEFAULT_ROW_EVENTS_MAX;
    this.#pageEventsMax = opts.pageEventsMax ?? 8192;
    this.#copyReads = opts.copyReads ?? true;
    this.#checkpointWalBytes = Math.max(0, opts.checkpointWalBytes ?? 64 * 1024 * 1024);
    if (conn.pglite) this.#walAtCheckpoint = pgliteWalBytes(conn.pglite);
  }

  // ------------------------------------------------------------ append

  async append(writes: readonly JournalWrite<E>[], options: AppendOptions = {}): Promise<void> {
    return this.appendPrepared(this.#prepare(writes, options.fences ?? []));
  }

  /** `append` of a batch `prepareAppend` made (possibly on another thread, with the same `rowEventsMax`). */
  async appendPrepared(prep: PreparedAppend): Promise<void> {
    if (prep.ids.length === 0 && prep.scopes.length === 0) return;
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const params = [prep.ids, prep.froms, prep.tos, prep.checks, prep.offs, prep.lens, asBuffer(prep.payload), CURRENT_FORMAT, prep.scopes, prep.tokens];
        const pool = this.#conn.pool;
        if (pool) {
          // A named statement: each pooled session parses and plans it once, then only binds and runs it.
          if (this.#closed) throw new JournalUsageError('journal is closed');
          await pool.query({ name: APPEND_STATEMENT, text: APPEND_SQL, values: params });
        } else if (this.#conn.pglite) await this.#appendPGlite(params);
        else await this.#query(APPEND_SQL, params);
        return;
      } catch (e) {
        const typed = this.#appendError(e);
        if (typed) throw typed;
        if (!isTransient(e)) throw new JournalError(`journal append failed: ${(e as Error).message}`, { cause: e });
        // The connection broke: the commit may or may not have happened. Find out, then retry if absent.
        if (prep.ids.length > 0) {
          const outcome = await this.#resolveWithRetry(prep, started, e);
          if (outcome === 'committed') return;
        }
        if (Date.now() - started > this.#retry.budgetMs) {
          throw new JournalUnavailableError(`journal append: database unavailable for ${Date.now() - started} ms (nothing was stored): ${(e as Error).message}`, { cause: e });
        }
        await sleep(backoffMs(this.#retry, attempt));
      }
    }
  }

  async resolveAppend(writes: readonly JournalWrite<E>[]): Promise<AppendOutcome> {
    return this.#resolve(this.#prepare(writes, []));
  }

  #prepare(writes: readonly JournalWrite<E>[], fences: readonly FenceToken[]): PreparedAppend {
    return prepareAppend(writes, fences, this.#rowEventsMax, this.#codec);
  }

  #appendError(e: unknown): JournalError | undefined {
    const err = e as { code?: string; detail?: string };
    if (err?.code === 'BJ001') {
      let list: Array<{ id: string; expected: number; actual: number }> = [];
      try {
        list = JSON.parse(err.detail ?? '[]');
      } catch {
        /* keep empty */
      }
      return new JournalConflictError(
        list.map((c) => ({ persistenceId: c.id, expectedSeq: Number(c.expected), actualSeq: Number(c.actual) })),
        { cause: e },
      );
    }
    if (err?.code === 'BJ002') {
      let list: Array<{ scope: string; token: number; stored: number }> = [];
      try {
        list = JSON.parse(err.detail ?? '[]');
      } catch {
        /* keep empty */
      }
      const f = list[0] ?? { scope: '?', token: -1, stored: -1 };
      return new JournalFencedError(f.scope, Number(f.token), Number(f.stored));
    }
    return undefined;
  }

  async #resolveWithRetry(prep: PreparedAppend, started: number, first: unknown): Promise<AppendOutcome> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#resolve(prep);
      } catch (e) {
        if (e instanceof JournalError) throw e;
        if (!isTransient(e) || Date.now() - started > this.#retry.budgetMs) {
          throw new JournalOutcomeUnknownError(
            `journal append: the connection was lost during commit and the outcome could not be re-checked (${(first as Error).message}); resolve it with resolveAppend()`,
            { cause: e },
          );
        }
        await sleep(backoffMs(this.#retry, attempt));
      }
    }
  }

  /** Compares the stored rows at the batch's sequences with the prepared ones, byte for byte. */
  async #resolve(prep: PreparedAppend): Promise<AppendOutcome> {
    const rows = await this.#query<{ id: string; sf: number; seq_to: number | null; format: number | null; payload: Uint8Array | null; head: number }>(
      `select t.id, t.sf, j.seq_to, j.format, j.payload,
              coalesce((select h.seq_to from journal h where h.persistence_id = t.id order by h.seq_from desc limit 1), 0) as head
         from unnest($1::text[], $2::int8[]) as t(id, sf)
         left join journal j on j.persistence_id = t.id and j.seq_from = t.sf`,
      [prep.ids, prep.froms],
    );
    const state = new Map<string, 'ours' | 'absent' | 'other'>();
    const heads = new Map<string, number>();
    rows.forEach((r) => {
      const i = prep.ids.findIndex((id, k) => id === r.id && prep.froms[k] === Number(r.sf));
      heads.set(r.id, Number(r.head));
      let s: 'ours' | 'absent' | 'other';
      if (r.seq_to === null) s = 'absent';
      else {
        const mine = prep.payload.subarray(prep.offs[i], prep.offs[i]! + prep.lens[i]!);
        s = Number(r.seq_to) === prep.tos[i] && r.format === CURRENT_FORMAT && Buffer.from(r.payload!.buffer, r.payload!.byteOffset, r.payload!.byteLength).equals(mine) ? 'ours' : 'other';
      }
      const prev = state.get(r.id);
      state.set(r.id, prev === undefined || prev === s ? s : 'other');
    });
    const values = new Set(state.values());
    if (values.has('other')) {
      const conflicts: SequenceConflict[] = [];
      for (const [id, s] of state) if (s === 'other') conflicts.push({ persistenceId: id, expectedSeq: prep.heads.get(id)!.expected, actualSeq: heads.get(id) ?? 0 });
      throw new JournalConflictError(conflicts);
    }
    if (values.size === 1 && values.has('ours')) return 'committed';
    if (values.size === 1 && values.has('absent')) return 'absent';
    throw new JournalError('journal resolveAppend: the batch is partly stored, which one transaction cannot produce; the journal was changed by something else');
  }

  // ------------------------------------------------------------ read

  async *read(persistenceId: string, fromSeq: number, options: ReadOptions = {}): AsyncIterable<JournalPage<E>> {
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw new JournalUsageError(`read ${persistenceId}: fromSeq must be a safe integer >= 1`);
    const toSeq = Math.min(Number.MAX_SAFE_INTEGER - 1, Math.floor(options.toSeq ?? Number.MAX_SAFE_INTEGER));
    if (!(toSeq >= 0)) throw new JournalUsageError(`read ${persistenceId}: toSeq must be a number >= 0`);
    const pageEvents = Math.max(1, Math.floor(options.pageEventsMax ?? this.#pageEventsMax) || 1);
    let next = fromSeq;
    let first = true;
    while (next <= toSeq) {
      const hi = Math.min(next + pageEvents, toSeq + 1);
      const rows = await this.#retrying(() => this.#pageRows(persistenceId, next, hi, first));
      if (rows.length === 0) return;
      const events: E[] = [];
      const pageFrom = next;
      for (const r of rows) {
        const sf = Number(r.seq_from);
        const st = Number(r.seq_to);
        if (first ? sf > next : sf !== next) throw new JournalGapError(persistenceId, next, sf);
        if (st < next) continue;
        const decoded = this.#codec.decode(persistenceId, sf, st, r.format, r.payload) as E[];
        const a = next - sf;
        const b = Math.min(st, toSeq) - sf + 1;
        if (a === 0 && b === decoded.length && events.length === 0 && rows.length === 1) {
          events.push(...decoded);
        } else {
          for (let i = a; i < b; i++) events.push(decoded[i]!);
        }
        next = sf + b;
        first = false;
        if (next > toSeq) break;
      }
      first = false;
      if (events.length > 0) yield { persistenceId, fromSeq: pageFrom, toSeq: next - 1, events };
      // The page ended before its bound: a further row would have started at `next` and been in it.
      if (next < hi) return;
    }
  }

  /**
   * The first page of several streams in ONE query (for projections catching up on many streams):
   * for each request, the events `fromSeq..toSeq` that are committed, or fewer; streams with nothing
   * there are left out. Same checks as `read` (gaps, decoding); on PGlite, on the journal's urgent lane
   * like every journal call.
   */
  async readPages(requests: readonly { persistenceId: string; fromSeq: number; toSeq: number }[]): Promise<JournalPage<E>[]> {
    for (const r of requests) {
      if (!Number.isSafeInteger(r.fromSeq) || r.fromSeq < 1) throw new JournalUsageError(`readPages ${r.persistenceId}: fromSeq must be a safe integer >= 1`);
      if (!Number.isSafeInteger(r.toSeq) || r.toSeq < r.fromSeq) throw new JournalUsageError(`readPages ${r.persistenceId}: toSeq must be a safe integer >= fromSeq`);
    }
    if (requests.length === 0) return [];
    const rows = await this.#retrying(() =>
      this.#query<Row & { i: number }>(
        `select t.i::int4 as i, j.seq_from, j.seq_to, j.format, j.payload
           from unnest($1::text[], $2::int8[], $3::int8[]) with ordinality as t(id, f, hi, i)
           cross join lateral (
             select seq_from, seq_to, format, payload from journal j
              where j.persistence_id = t.id and j.seq_from <= t.hi
                and j.seq_from >= coalesce((select seq_from from journal where persistence_id = t.id and seq_from <= t.f order by seq_from desc limit 1), t.f)
              order by j.seq_from) j
          order by t.i, j.seq_from`,
        [requests.map((r) => r.persistenceId), requests.map((r) => r.fromSeq), requests.map((r) => r.toSeq)],
      ),
    );
    const out: JournalPage<E>[] = [];
    let k = 0;
    while (k < rows.length) {
      const i = Number(rows[k]!.i);
      const req = requests[i - 1]!;
      const id = req.persistenceId;
      const events: E[] = [];
      let next = req.fromSeq;
      for (; k < rows.length && Number(rows[k]!.i) === i; k++) {
        const r = rows[k]!;
        const sf = Number(r.seq_from);
        const st = Number(r.seq_to);
        if (events.length === 0 ? sf > next : sf !== next) throw new JournalGapError(id, next, sf);
        if (st < next || next > req.toSeq) continue;
        const decoded = this.#codec.decode(id, sf, st, r.format, r.payload) as E[];
        const b = Math.min(st, req.toSeq) - sf + 1;
        for (let x = next - sf; x < b; x++) events.push(decoded[x]!);
        next = sf + b;
      }
      if (events.length > 0) out.push({ persistenceId: id, fromSeq: req.fromSeq, toSeq: next - 1, events });
    }
    return out;
  }

  /**
   * The rows of one page: those starting in [next, hi), plus on the first page the row holding `next`.
   * On a Postgres server through binary COPY (see pg-copy.ts: no hex text step); on PGlite a query.
   */
  async #pageRows(persistenceId: string, next: number, hi: number, first: boolean): Promise<Row[]> {
    if (this.#closed) throw new JournalUsageError('journal is closed');
    const sql = (id: string, from: string, below: string) =>
      `select seq_from, seq_to, format, payload from journal
        where persistence_id = ${id} and seq_from < ${below}
          and seq_from >= ${first ? `coalesce((select seq_from from journal where persistence_id = ${id} and seq_from <= ${from} order by seq_from desc limit 1), ${from})` : from}
        order by seq_from`;
    const pool = this.#conn.pool;
    if (!pool || !this.#copyReads) return this.#query<Row>(sql('$1', '$2::int8', '$3::int8'), [persistenceId, next, hi]);
    // COPY takes no parameters: the id goes in as a literal escaped by pg, the bounds as checked integers.
    const raw = await copyOutBinary(pool, sql(pg.escapeLiteral(persistenceId), int8(next), int8(hi)));
    return raw.map((f) => ({ seq_from: readInt8(f[0]!), seq_to: readInt8(f[1]!), format: readInt2(f[2]!), payload: f[3]! }));
  }

  async highestSeq(persistenceId: string): Promise<number> {
    const rows = await this.#retrying(() =>
      this.#query<{ seq_to: number }>('select seq_to from journal where persistence_id = $1 order by seq_from desc limit 1', [persistenceId]),
    );
    return rows.length ? Number(rows[0]!.seq_to) : 0;
  }

  async highestSeqs(persistenceIds: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (persistenceIds.length === 0) return out;
    const rows = await this.#retrying(() =>
      this.#query<{ id: string; seq: number }>(
        `select t.id, coalesce((select j.seq_to from journal j where j.persistence_id = t.id order by j.seq_from desc limit 1), 0) as seq
           from unnest($1::text[]) as t(id)`,
        [[...persistenceIds]],
      ),
    );
    for (const r of rows) out.set(r.id, Number(r.seq));
    return out;
  }

  // ------------------------------------------------------------ snapshots

  async saveSnapshot(s: Snapshot): Promise<void> {
    if (!(s.data instanceof Uint8Array)) throw new JournalUsageError('saveSnapshot: data must be bytes');
    if (!Number.isSafeInteger(s.seq) || s.seq < 1) throw new JournalUsageError('saveSnapshot: seq must be >= 1');
    await this.#retrying(() =>
      this.#query(
        `insert into snapshots (persistence_id, seq, payload) values ($1, $2, $3)
         on conflict (persistence_id, seq) do update set payload = excluded.payload, created_at = now()`,
        [s.persistenceId, s.seq, Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength)],
      ),
    );
  }

  async loadSnapshot(persistenceId: string, maxSeq?: number): Promise<Snapshot | undefined> {
    const rows = await this.#retrying(() =>
      this.#query<{ seq: number; payload: Uint8Array }>(
        'select seq, payload from snapshots where persistence_id = $1 and seq <= $2 order by seq desc limit 1',
        [persistenceId, maxSeq ?? Number.MAX_SAFE_INTEGER],
      ),
    );
    const r = rows[0];
    return r ? { persistenceId, seq: Number(r.seq), data: new Uint8Array(r.payload) } : undefined;
  }

  async keepSnapshots(persistenceId: string, keep: number): Promise<number> {
    if (!Number.isSafeInteger(keep) || keep < 1) throw new JournalUsageError('keepSnapshots: keep must be >= 1');
    const rows = await this.#retrying(() =>
      this.#query<{ n: number }>(
        `with d as (
           delete from snapshots where persistence_id = $1
              and seq < (select seq from snapshots where persistence_id = $1 order by seq desc offset $2 limit 1)
           returning 1)
         select count(*)::int as n from d`,
        [persistenceId, keep - 1],
      ),
    );
    const n = Number(rows[0]?.n ?? 0);
    if (n > 0 && this.#conn.pglite) {
      // PGlite runs no autovacuum: without this, the deleted snapshots' space (out of line, in the
      // TOAST table) would never be reused and the file would grow by every snapshot ever taken. On
      // the normal lane, so waiting appends go first. A failure leaves only the space unreclaimed.
      await this.#conn.db.executeQuery(CompiledQuery.raw('vacuum snapshots')).catch(() => {});
    }
    return n;
  }

  async deleteEventsTo(persistenceId: string, toSeq: number): Promise<number> {
    const rows = await this.#retrying(() =>
      this.#query<{ n: number }>(
        `with d as (
           delete from journal where persistence_id = $1
              and seq_to <= least($2::int8, (select coalesce(max(seq), 0) from snapshots where persistence_id = $1))
              and seq_from < (select max(seq_from) from journal where persistence_id = $1)
           returning seq_to - seq_from + 1 as n)
         select coalesce(sum(n), 0)::int8 as n from d`,
        [persistenceId, toSeq],
      ),
    );
    return Number(rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#checkpointing;
  }

  // ------------------------------------------------------------ plumbing

  async #query<R>(text: string, params: readonly unknown[]): Promise<R[]> {
    if (this.#closed) throw new JournalUsageError('journal is closed');
    if (this.#conn.pglite) return this.#onPGlite(async (pglite) => (await pglite.query<R>(text, params as unknown[])).rows);
    const res = await this.#conn.db.executeQuery<R>(CompiledQuery.raw(text, params as unknown[]));
    return res.rows;
  }

  /**
   * Runs `fn` on PGlite's one session, on the urgent lane (the journal goes before queued read-model
   * work), and syncs the WAL before it resolves: PGlite's own fsyncs never reach the disk
   * (pglite-durable.ts). Then starts a checkpoint if enough WAL has been written since the last.
   */
  async #onPGlite<R>(fn: (pglite: PGlite) => Promise<R>): Promise<R> {
    const { pglite, lock } = this.#conn;
    if (!pglite || !lock) throw new JournalUsageError('not a PGlite journal');
    const result = await lock.run(true, async () => {
      const r = await fn(pglite);
      syncPGlite(pglite);
      return r;
    });
    if (this.#checkpointWalBytes > 0 && this.#checkpointing === undefined && pgliteWalBytes(pglite) - this.#walAtCheckpoint >= this.#checkpointWalBytes) {
      this.#checkpointing = this.#checkpoint().finally(() => (this.#checkpointing = undefined));
    }
    return result;
  }

  /**
   * PGlite: the append as a named statement, parsed once per PGlite instance; each append then costs
   * three protocol calls (bind, execute, sync) where `pglite.query` makes six (parse, describe, bind,
   * describe, execute, sync) and parses the results. Measured with two-row appends (1000 in a row):
   * 1.53-1.87 -> 1.04-1.20 ms for one event per row, 1.71-1.87 -> 1.34-1.45 ms for 85. Errors are
   * PGlite's DatabaseError with Postgres's code and detail, as from `query` (`#appendError` maps them).
   */
  async #appendPGlite(params: readonly unknown[]): Promise<void> {
    if (this.#closed) throw new JournalUsageError('journal is closed');
    await this.#onPGlite(async (pglite) => {
      if (!appendPreparedOn.has(pglite)) {
        try {
          await protocolCalls(pglite, [serialize.parse({ name: APPEND_STATEMENT, text: APPEND_SQL })]);
        } catch (e) {
          // 42P05: another journal on this session (or a wrapper of this PGlite) prepared it already.
          if ((e as { code?: string }).code !== '42P05') throw e;
        }
        appendPreparedOn.add(pglite);
      }
      const serializers = (pglite as unknown as { serializers: Record<number, (v: unknown) => unknown> }).serializers;
      const values = params.map((v, i) => {
        const oid = APPEND_PARAM_TYPES[i]!;
        return oid === BYTEA_OID ? v : serializers[oid]!(v);
      }) as string[];
      await protocolCalls(pglite, [serialize.bind({ statement: APPEND_STATEMENT, values }), serialize.execute({})]);
    });
  }

  /**
   * PGlite: a checkpoint on the urgent lane (appends already waiting go first). It flushes the dirty
   * pages, syncs the data files (through pglite-durable's fsync) and lets Postgres recycle the WAL
   * segments before it. A failure changes nothing that was committed; the next append tries again.
   */
  async #checkpoint(): Promise<void> {
    const { pglite, lock } = this.#conn;
    if (!pglite || !lock) return;
    try {
      await lock.run(true, async () => {
        if (this.#closed || pglite.closed) return;
        const at = pgliteWalBytes(pglite);
        const t0 = performance.now(); // the session's time in the checkpoint, not the wait for it
        try {
          await pglite.exec('CHECKPOINT');
        } finally {
          this.checkpointStats.ms += performance.now() - t0;
        }
        this.#walAtCheckpoint = at;
        this.checkpointStats.checkpoints++;
      });
    } catch {
      this.checkpointStats.failures++;
    }
  }

  /** Retries an idempotent operation on transient connection loss, with backoff, within the budget. */
  async #retrying<T>(op: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if (e instanceof JournalError) throw e;
        if (!isTransient(e)) throw new JournalError(`journal: ${(e as Error).message}`, { cause: e });
        if (Date.now() - started > this.#retry.budgetMs) {
          throw new JournalUnavailableError(`journal: database unavailable for ${Date.now() - started} ms: ${(e as Error).message}`, { cause: e });
        }
        await sleep(backoffMs(this.#retry, attempt));
      }
    }
  }
}

interface Row {
  seq_from: number;
  seq_to: number;
  format: number;
  payload: Uint8Array;
}
