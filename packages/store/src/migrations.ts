/**
 * Schema migrations, run by kysely's Migrator. Each is idempotent under the Migrator's bookkeeping;
 * concurrent runs from several nodes serialize on a Postgres advisory lock taken on the migrating
 * session before the Migrator starts (kysely's own lock is taken only after it has created its
 * bookkeeping tables, which would race).
 *
 * Never edit a migration once committed: add a new one.
 */
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

const m001_journal: Migration = {
  async up(db: Kysely<any>) {
    // One row per persistence id per append: events seq_from..seq_to packed in `payload`.
    // The primary key on seq_from plus the predecessor check in bourse_journal_append make the
    // sequence of each id gapless and unique.
    await sql`
      create table journal (
        persistence_id text not null,
        seq_from bigint not null check (seq_from >= 1),
        seq_to bigint not null,
        format smallint not null,
        payload bytea not null,
        primary key (persistence_id, seq_from),
        check (seq_to >= seq_from)
      ) with (toast_tuple_target = 8160, fillfactor = 100)`.execute(db);
    // Payloads are msgpack: keep them inline and uncompressed up to a page (no TOAST round trip).
    await sql`alter table journal alter column payload set storage external`.execute(db);
    await sql`
      create table journal_fences (
        scope text primary key,
        token bigint not null
      )`.execute(db);
    await sql`
      create table snapshots (
        persistence_id text not null,
        seq bigint not null,
        payload bytea not null,
        created_at timestamptz not null default now(),
        primary key (persistence_id, seq)
      )`.execute(db);
    await sql`
      create table projection_checkpoints (
        projection text not null,
        persistence_id text not null,
        seq bigint not null,
        primary key (projection, persistence_id)
      )`.execute(db);
    // One statement, one round trip, one transaction: raise fences, insert the rows of every id,
    // and fail the whole statement (so nothing is stored) on a fence or sequence conflict.
    // A row with check = true must directly follow the id's latest stored row (or be seq 1).
    await sql.raw(`
      create or replace function bourse_journal_append(
        p_ids text[], p_froms bigint[], p_tos bigint[], p_checks boolean[], p_offs int[], p_lens int[],
        p_payload bytea, p_format smallint, p_scopes text[], p_tokens bigint[]
      ) returns int language plpgsql as $fn$
      declare
        n int := coalesce(array_length(p_ids, 1), 0);
        ok_ids text[];
        inserted int;
        bad text;
      begin
        if coalesce(array_length(p_scopes, 1), 0) > 0 then
          with up as (
            insert into journal_fences as f (scope, token)
            select s.scope, s.token from unnest(p_scopes, p_tokens) as s(scope, token)
            on conflict (scope) do update set token = excluded.token where f.token <= excluded.token
            returning f.scope)
          select json_agg(json_build_object('scope', s.scope, 'token', s.token,
                   'stored', (select f.token from journal_fences f where f.scope = s.scope)))::text
            into bad
            from unnest(p_scopes, p_tokens) as s(scope, token)
            where s.scope not in (select up.scope from up);
          if bad is not null then
            raise exception using errcode = 'BJ002', message = 'bourse journal fenced', detail = bad;
          end if;
        end if;
        if n = 0 then return 0; end if;
        with ins as (
          insert into journal (persistence_id, seq_from, seq_to, format, payload)
          select t.pid, t.sf, t.st, p_format, substring(p_payload from t.off + 1 for t.len)
          from unnest(p_ids, p_froms, p_tos, p_checks, p_offs, p_lens) as t(pid, sf, st, chk, off, len)
          where not t.chk
             or (case when t.sf = 1
                   then not exists (select 1 from journal j where j.persistence_id = t.pid)
                   else (select j.seq_to from journal j where j.persistence_id = t.pid and j.seq_from < t.sf
                         order by j.seq_from desc limit 1) is not distinct from t.sf - 1
                 end)
          on conflict do nothing
          returning persistence_id)
        select count(*), array_agg(ins.persistence_id) into inserted, ok_ids from ins;
        if inserted <> n then
          select json_agg(json_build_object('id', t.pid, 'expected', t.sf - 1, 'actual',
                   coalesce((select j.seq_to from journal j where j.persistence_id = t.pid
                             order by j.seq_from desc limit 1), 0)))::text
            into bad
            from unnest(p_ids, p_froms, p_checks) as t(pid, sf, chk)
            where t.chk and not (t.pid = any(coalesce(ok_ids, '{}')));
          raise exception using errcode = 'BJ001', message = 'bourse journal conflict', detail = coalesce(bad, '[]');
        end if;
        return inserted;
      end
      $fn$`).execute(db);
  },
};

const m002_orders_trades: Migration = {
  async up(db: Kysely<any>) {
    await sql`
      create table orders (
        instrument text not null,
        order_id bigint not null,
        account text not null,
        client_order_id text,
        side text not null,
        order_type text not null,
        tif text not null,
        price bigint not null,
        stop_price bigint not null,
        qty bigint not null,
        leaves_qty bigint not null,
        filled_qty bigint not null default 0,
        filled_notional bigint not null default 0,
        status text not null,
        cancel_reason text,
        is_open boolean not null,
        created_ts bigint not null,
        updated_ts bigint not null,
        primary key (instrument, order_id)
      )`.execute(db);
    await sql`create index orders_account_history on orders (account, created_ts desc, instrument, order_id)`.execute(db);
    await sql`create index orders_account_open on orders (account, created_ts desc, instrument, order_id) where is_open`.execute(db);
    await sql`
      create table trades (
        instrument text not null,
        trade_id bigint not null,
        ts bigint not null,
        price bigint not null,
        qty bigint not null,
        taker_order_id bigint not null,
        taker_account text not null,
        taker_side text not null,
        maker_order_id bigint not null,
        maker_account text not null,
        taker_fee bigint not null,
        maker_fee bigint not null,
        primary key (instrument, trade_id)
      )`.execute(db);
    await sql`create index trades_instrument_ts on trades (instrument, ts, trade_id)`.execute(db);
    await sql`create index trades_taker_ts on trades (taker_account, ts)`.execute(db);
    await sql`create index trades_maker_ts on trades (maker_account, ts)`.execute(db);
  },
};

const m003_balances_positions_candles: Migration = {
  async up(db: Kysely<any>) {
    // Ledger events carry absolute balances and positions, so each row is simply the latest value;
    // `seq` is the ledger (or market-data) sequence that set it, and an upsert never moves it back.
    await sql`
      create table balances (
        kind text not null,
        account text not null,
        asset text not null,
        available bigint not null,
        held bigint not null,
        updated_ts bigint not null,
        seq bigint not null,
        primary key (kind, account, asset)
      )`.execute(db);
    await sql`
      create table positions (
        account text not null,
        instrument text not null,
        collateral text not null,
        qty bigint not null,
        entry_cost bigint not null,
        realized_pnl bigint not null,
        margin bigint not null,
        updated_ts bigint not null,
        seq bigint not null,
        primary key (account, instrument)
      )`.execute(db);
    await sql`
      create table candles (
        instrument text not null,
        interval text not null,
        start_ts bigint not null,
        open bigint not null,
        high bigint not null,
        low bigint not null,
        close bigint not null,
        volume bigint not null,
        trades bigint not null,
        closed boolean not null,
        updated_ts bigint not null,
        seq bigint not null,
        primary key (instrument, interval, start_ts)
      )`.execute(db);
  },
};

/**
 * The journal's append function as migration 004 created it: the expected sequence checked by probing
 * the journal's index, and the head row upserted after the insert. Kept as text for the migration and
 * for `bench/append.ts`, which compares it with 005's.
 */
export const APPEND_FUNCTION_004 = `
      create or replace function bourse_journal_append(
        p_ids text[], p_froms bigint[], p_tos bigint[], p_checks boolean[], p_offs int[], p_lens int[],
        p_payload bytea, p_format smallint, p_scopes text[], p_tokens bigint[]
      ) returns int language plpgsql as $fn$
      declare
        n int := coalesce(array_length(p_ids, 1), 0);
        ok_ids text[];
        inserted int;
        bad text;
      begin
        if coalesce(array_length(p_scopes, 1), 0) > 0 then
          with up as (
            insert into journal_fences as f (scope, token)
            select s.scope, s.token from unnest(p_scopes, p_tokens) as s(scope, token)
            on conflict (scope) do update set token = excluded.token where f.token <= excluded.token
            returning f.scope)
          select json_agg(json_build_object('scope', s.scope, 'token', s.token,
                   'stored', (select f.token from journal_fences f where f.scope = s.scope)))::text
            into bad
            from unnest(p_scopes, p_tokens) as s(scope, token)
            where s.scope not in (select up.scope from up);
          if bad is not null then
            raise exception using errcode = 'BJ002', message = 'bourse journal fenced', detail = bad;
          end if;
        end if;
        if n = 0 then return 0; end if;
        with ins as (
          insert into journal (persistence_id, seq_from, seq_to, format, payload)
          select t.pid, t.sf, t.st, p_format, substring(p_payload from t.off + 1 for t.len)
          from unnest(p_ids, p_froms, p_tos, p_checks, p_offs, p_lens) as t(pid, sf, st, chk, off, len)
          where not t.chk
             or (case when t.sf = 1
                   then not exists (select 1 from journal j where j.persistence_id = t.pid)
                   else (select j.seq_to from journal j where j.persistence_id = t.pid and j.seq_from < t.sf
                         order by j.seq_from desc limit 1) is not distinct from t.sf - 1
                 end)
          on conflict do nothing
          returning persistence_id)
        select count(*), array_agg(ins.persistence_id) into inserted, ok_ids from ins;
        if inserted <> n then
          select json_agg(json_build_object('id', t.pid, 'expected', t.sf - 1, 'actual',
                   coalesce((select j.seq_to from journal j where j.persistence_id = t.pid
                             order by j.seq_from desc limit 1), 0)))::text
            into bad
            from unnest(p_ids, p_froms, p_checks) as t(pid, sf, chk)
            where t.chk and not (t.pid = any(coalesce(ok_ids, '{}')));
          raise exception using errcode = 'BJ001', message = 'bourse journal conflict', detail = coalesce(bad, '[]');
        end if;
        -- The per-id high-water mark, for readers that look for streams with new events (projections).
        -- In id order, so two appends never wait on each other's head rows in opposite orders.
        insert into journal_heads as h (persistence_id, seq_to)
        select t.pid, max(t.st) from unnest(p_ids, p_tos) as t(pid, st) group by t.pid order by t.pid
        on conflict (persistence_id) do update set seq_to = greatest(h.seq_to, excluded.seq_to);
        return inserted;
      end
      $fn$`;

/**
 * The append function as migration 005 creates it (see m005_append_checks_heads). `p_checks` only
 * picks the path now: every id's first row is checked either way. When all rows are checked (one row
 * per id, the usual batch) the heads are moved row by row; a batch with a split id (a continuation row,
 * `check = false`) takes the grouped path (per id: first `seq_from`, last `seq_to`). The grouped path
 * alone would do for both, but it cost 10-30% more per append on PGlite (interleaved, 1/20/200 ids:
 * 3.99 / 3.77 / 15.7 ms against 3.03 / 2.89 / 13.8), so the common batch keeps its own path.
 */
export const APPEND_FUNCTION_005 = `
      create or replace function bourse_journal_append(
        p_ids text[], p_froms bigint[], p_tos bigint[], p_checks boolean[], p_offs int[], p_lens int[],
        p_payload bytea, p_format smallint, p_scopes text[], p_tokens bigint[]
      ) returns int language plpgsql as $fn$
      declare
        n int := coalesce(array_length(p_ids, 1), 0);
        ids int;
        moved int;
        created int;
        inserted int;
        bad text;
      begin
        if coalesce(array_length(p_scopes, 1), 0) > 0 then
          with up as (
            insert into journal_fences as f (scope, token)
            select s.scope, s.token from unnest(p_scopes, p_tokens) as s(scope, token)
            on conflict (scope) do update set token = excluded.token where f.token <= excluded.token
            returning f.scope)
          select json_agg(json_build_object('scope', s.scope, 'token', s.token,
                   'stored', (select f.token from journal_fences f where f.scope = s.scope)))::text
            into bad
            from unnest(p_scopes, p_tokens) as s(scope, token)
            where s.scope not in (select up.scope from up);
          if bad is not null then
            raise exception using errcode = 'BJ002', message = 'bourse journal fenced', detail = bad;
          end if;
        end if;
        if n = 0 then return 0; end if;
        moved := 0;
        created := 0;
        if false = any(p_checks) then
          -- Some id has more than one row (a long write split): its head moves to its last row.
          select count(distinct t.pid) into ids from unnest(p_ids) as t(pid);
          update journal_heads h set seq_to = g.st
            from (select t.pid, min(t.sf) as sf, max(t.st) as st from unnest(p_ids, p_froms, p_tos) as t(pid, sf, st)
                   group by t.pid having min(t.sf) > 1 order by t.pid) as g
           where h.persistence_id = g.pid and h.seq_to = g.sf - 1;
          get diagnostics moved = row_count;
          insert into journal_heads (persistence_id, seq_to)
          select t.pid, max(t.st) from unnest(p_ids, p_froms, p_tos) as t(pid, sf, st)
           group by t.pid having min(t.sf) = 1 order by t.pid
          on conflict do nothing;
          get diagnostics created = row_count;
        else
          ids := n;
          if 1 < any(p_froms) then
            update journal_heads h set seq_to = t.st
              from (select t.pid, t.sf, t.st from unnest(p_ids, p_froms, p_tos) as t(pid, sf, st) where t.sf > 1 order by t.pid) as t
             where h.persistence_id = t.pid and h.seq_to = t.sf - 1;
            get diagnostics moved = row_count;
          end if;
          if 1 = any(p_froms) then
            insert into journal_heads (persistence_id, seq_to)
            select t.pid, t.st from unnest(p_ids, p_froms, p_tos) as t(pid, sf, st) where t.sf = 1 order by t.pid
            on conflict do nothing;
            get diagnostics created = row_count;
          end if;
        end if;
        if moved + created = ids then
          insert into journal (persistence_id, seq_from, seq_to, format, payload)
          select t.pid, t.sf, t.st, p_format, substring(p_payload from t.off + 1 for t.len)
            from unnest(p_ids, p_froms, p_tos, p_offs, p_lens) as t(pid, sf, st, off, len)
          on conflict do nothing;
          get diagnostics inserted = row_count;
          if inserted = n then return n; end if;
        end if;
        select json_agg(json_build_object('id', g.pid, 'expected', g.sf - 1, 'actual', g.actual))::text
          into bad
          from (select t.pid, min(t.sf) as sf,
                       coalesce((select j.seq_to from journal j where j.persistence_id = t.pid order by j.seq_from desc limit 1), 0) as actual
                  from unnest(p_ids, p_froms) as t(pid, sf) group by t.pid) as g
         where g.actual <> g.sf - 1;
        raise exception using errcode = 'BJ001', message = 'bourse journal conflict', detail = coalesce(bad, '[]');
      end
      $fn$`;

const m004_journal_heads: Migration = {
  async up(db: Kysely<any>) {
    // The newest sequence per persistence id, kept by the append in the same statement, so "which
    // streams have events beyond a checkpoint" reads one small row per stream instead of probing
    // the journal's index twice per stream. Only a hint for readers here: the journal's own primary key
    // and predecessor check still decide every append (until 005, which checks on this row).
    // Appends wait while this runs (share mode conflicts with their row-exclusive lock), so none
    // lands between the backfill and the new append function.
    await sql`lock table journal in share mode`.execute(db);
    await sql`
      create table journal_heads (
        persistence_id text primary key,
        seq_to bigint not null
      ) with (fillfactor = 80)`.execute(db);
    await sql`
      insert into journal_heads (persistence_id, seq_to)
      select persistence_id, max(seq_to) from journal group by persistence_id`.execute(db);
    await sql.raw(APPEND_FUNCTION_004).execute(db);
  },
};

const m005_append_checks_heads: Migration = {
  async up(db: Kysely<any>) {
    // The predecessor check moves from the journal's index to journal_heads, which the append has kept
    // in the same transaction since 004: an id's head row moves from expected to its new last sequence
    // only where it still holds expected (a row lock: a concurrent writer of the id waits, re-reads the
    // row and fails the condition), and is created only for a stream starting at 1 (a concurrent creator
    // meets the unique key). So the check and the head's upkeep are one row operation instead of an
    // index probe plus an upsert (bench/append.ts compares the two: 200-id appends took about 40% less
    // time on both dialects here). So the head row is now the authority on an id's newest sequence:
    // whatever writes journal rows must move it in the same transaction (only this function writes
    // either). The primary key still refuses a row at an existing row's start (a conflict too), but it
    // would not catch a head set back by hand. Heads of rows deleted behind a snapshot stay where they
    // are (deleteEventsTo keeps the newest row of each id).
    // Head rows are visited in id order where the planner keeps its input's order (004 guaranteed it with
    // an ordered insert; an update's join need not). Two appends meet on one id only when one writer is
    // stale, and a deadlock between them aborts one: that writer's append fails with nothing stored.
    await sql.raw(APPEND_FUNCTION_005).execute(db);
  },
};

/** Migrations by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '001_journal': m001_journal,
  '002_orders_trades': m002_orders_trades,
  '003_balances_positions_candles': m003_balances_positions_candles,
  '004_journal_heads': m004_journal_heads,
  '005_append_checks_heads': m005_append_checks_heads,
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};

export const latestMigration = Object.keys(migrations).sort().at(-1)!;
