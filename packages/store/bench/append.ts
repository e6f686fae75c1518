/**
 * bench:append — the cost of one journal append statement, the current append function (migration
 * 005: the expected sequence checked on the id's `journal_heads` row) side by side with 004's (checked
 * by probing the journal's index, the head upserted after). Both run in the same database, interleaved:
 * each round runs `--appends` appends of each, in alternating order, every append `K` ids x one
 * 120-byte row, each id continuing its own stream. PGlite syncs the WAL after every append as the
 * journal does. Prints medians over the rounds: wall ms per append and, for PGlite (which runs in this
 * process), CPU ms per append; for Postgres the server's CPU is not in this process, so wall only.
 *
 *   pnpm exec tsc -b packages/store && node packages/store/dist/bench/append.js [--pg URL | --no-pg] [--no-pglite] [--ids 1,20,200] [--rounds 8] [--appends 40]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../src/migrate.js';
import { APPEND_FUNCTION_004 } from '../src/migrations.js';
import { openStore } from '../src/store.js';
import { syncPGlite } from '../src/pglite-durable.js';
import { testPgUrl, uniqueSchema } from '../src/testing.js';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const flag = (name: string): boolean => argv.includes(`--${name}`);
const idCounts = (opt('ids') ?? '1,20,200').split(',').map(Number);
const rounds = Number(opt('rounds') ?? 8);
const appends = Number(opt('appends') ?? 40);
const ROW = 120;

type Query = (text: string, values: unknown[]) => Promise<unknown>;
const call = (fn: string) =>
  `select ${fn}($1::text[], $2::int8[], $3::int8[], $4::bool[], $5::int4[], $6::int4[], $7::bytea, $8::int2, $9::text[], $10::int8[]) as n`;
const VARIANTS = [
  ['current', call('bourse_journal_append')],
  ['v004', call('bench_append_004')],
] as const;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const round2 = (x: number): number => Math.round(x * 100) / 100;

async function measure(query: Query, after: () => void): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const k of idCounts) {
    const payload = Buffer.alloc(ROW * k, 7);
    const next = new Map<string, number>(); // per variant: the next sequence of its k streams
    const times: Record<string, { wall: number[]; cpu: number[] }> = { current: { wall: [], cpu: [] }, v004: { wall: [], cpu: [] } };
    for (let r = 0; r < rounds + 1; r++) {
      const order = r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const [name, text] of order) {
        const prefix = `${name}/${k}/`;
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        for (let i = 0; i < appends; i++) {
          const seq = next.get(name) ?? 1;
          next.set(name, seq + 1);
          await query(text, [
            Array.from({ length: k }, (_, j) => prefix + j), Array(k).fill(seq), Array(k).fill(seq), Array(k).fill(true),
            Array.from({ length: k }, (_, j) => j * ROW), Array(k).fill(ROW), payload, 2, [], [],
          ]);
          after();
        }
        const cpu = process.cpuUsage(c0);
        if (r === 0) continue; // warm-up round
        times[name]!.wall.push((performance.now() - t0) / appends);
        times[name]!.cpu.push((cpu.user + cpu.system) / 1000 / appends);
      }
    }
    out[`ids${k}`] = Object.fromEntries(
      Object.entries(times).map(([name, t]) => [name, { wallMs: round2(median(t.wall)), cpuMs: round2(median(t.cpu)) }]),
    );
  }
  return out;
}

const result: Record<string, unknown> = { bench: 'append', rounds, appends, rowBytes: ROW };
console.log(`bench:append - ${rounds} rounds (+1 warm-up) x ${appends} appends per variant, K ids x one ${ROW}-byte row per append, K in ${idCounts.join(',')}; medians per append`);

if (!flag('no-pglite')) {
  const dir = mkdtempSync(path.join(tmpdir(), 'bourse-bench-append-'));
  const store = await openStore({ pglite: dir });
  try {
    const lite = store.connection.pglite!;
    await lite.exec(APPEND_FUNCTION_004.replace('bourse_journal_append', 'bench_append_004'));
    result.pglite = await measure((text, values) => lite.query(text, values), () => syncPGlite(lite));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!flag('no-pg')) {
  const url = opt('pg') ?? testPgUrl();
  const schema = uniqueSchema('bourse_bench_append');
  let client: pg.Client | undefined;
  try {
    await migrate(url, { schema, connectTimeoutMs: 5000 });
    client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    await client.connect();
    await client.query(`set search_path = ${schema}`);
    await client.query(APPEND_FUNCTION_004.replace('bourse_journal_append', 'bench_append_004'));
    const c = client;
    result.pg = await measure((text, values) => c.query(text, values), () => {});
  } catch (e) {
    result.pg = { error: (e as Error).message };
  } finally {
    await client?.query(`drop schema if exists ${schema} cascade`).catch(() => {});
    await client?.end().catch(() => {});
  }
}

console.log(JSON.stringify(result));
