#!/usr/bin/env node
/**
 * The `bourse` CLI: the node's composition root. Run it from the repo root as `pnpm bourse <command>`.
 *
 *   pnpm bourse start [--seconds N] [--seed S]   the embedded venue demo (see `start.ts`)
 *   pnpm bourse migrate --pg URL | --pglite DIR  create or upgrade the store's schema
 *   pnpm bourse help
 *
 * Every command answers bad arguments with a one-line reason and exit code 2, never a stack trace.
 */
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Handler = (argv: string[]) => Promise<void>;

const commands: Record<string, { summary: string; run: Handler }> = {
  start: {
    summary: 'start [--seconds N] [--seed S]   run the embedded venue: book, ledgers, market data and a demo market maker',
    run: async (argv) => {
      const { values } = parseArgs({ args: argv, options: { seconds: { type: 'string' }, seed: { type: 'string' } }, strict: true });
      const { runStart } = await import('./start.js');
      await runStart({ seconds: optionalInt(values.seconds, 'seconds'), seed: optionalInt(values.seed, 'seed') ?? 42 });
    },
  },
  migrate: {
    summary: 'migrate --pg URL | --pglite DIR        create or upgrade the store schema (idempotent, safe concurrently)',
    run: async (argv) => {
      const { values } = parseArgs({ args: argv, options: { pg: { type: 'string' }, pglite: { type: 'string' } }, strict: true });
      if (!values.pg === !values.pglite) throw new UsageError('migrate needs exactly one of --pg URL or --pglite DIR');
      const { runMigrate } = await import('./migrate.js');
      await runMigrate(values.pg ? { pg: values.pg } : { pglite: values.pglite! });
    },
  },
};

function optionalInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

function help(): string {
  return ['usage: pnpm bourse <command> [options]', '', ...Object.values(commands).map((c) => `  ${c.summary}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(help());
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`bourse: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`bourse ${name}: ${err.message}`);
      return 2;
    }
    console.error(`bourse ${name}: ${err.message}`);
    return 1;
  }
}

// Run when executed directly (not when imported by tests).
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
