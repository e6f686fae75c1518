#!/usr/bin/env node
/**
 * The `bourse` CLI: the node's composition root. Run it from the repo root as `pnpm bourse <command>`.
 *
 *   pnpm bourse start [--port 8080] [--data ./data] [--no-demo]   one node, embedded (start.ts)
 *   pnpm bourse demo [--seconds N]                               the engine core alone, in memory (demo.ts)
 *   pnpm bourse node --nats URL --pg URL [--id n1]               an engine node joining a cluster (node.ts)
 *   pnpm bourse edge --nats URL --pg URL [--port 8080] [--demo]  an edge node of a cluster (edge-node.ts)
 *   pnpm bourse migrate --pg URL [--schema S] | --pglite DIR     create or upgrade the store's schema
 *   pnpm bourse load --url ws://HOST:PORT --rate N ...           load generator over the SDK
 *   pnpm bourse sim --seed S | --seeds A..B [--workers W] ...    the deterministic simulator (QA)
 *   pnpm bourse cluster status --nats URL                        shard ownership and lease ages
 *   pnpm bourse help
 *
 * It lives in packages/edge because it composes everything (edge -> engine -> store -> actors ->
 * schemas); in packages/engine it would have to import the edge, against DESIGN.md's arrows.
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
    summary: 'start [--port 8080] [--data ./data] [--no-demo] [--seconds N]   one node on the embedded default: engine actors, PGlite journal, edge',
    run: async (argv) => {
      const { values } = parseArgs({
        args: argv,
        options: { port: { type: 'string' }, data: { type: 'string' }, 'no-demo': { type: 'boolean' }, seconds: { type: 'string' } },
        strict: true,
      });
      const { runStart } = await import('./start.js');
      const seconds = optionalInt(values.seconds, 'seconds');
      await runStart({ port: optionalInt(values.port, 'port') ?? 8080, data: values.data ?? './data', demo: !values['no-demo'], ...(seconds !== undefined && { seconds }) });
    },
  },
  node: {
    summary: 'node --nats URL --pg URL [--id n1] [--cluster NAME] [--schema S] [--instruments FILE] [--seconds N]   an engine node: joins the cluster, hosts the shards it wins, journals to Postgres (migrates at start)',
    run: async (argv) => {
      const { values } = parseArgs({
        args: argv,
        options: { nats: { type: 'string' }, pg: { type: 'string' }, id: { type: 'string' }, cluster: { type: 'string' }, schema: { type: 'string' }, instruments: { type: 'string' }, seconds: { type: 'string' } },
        strict: true,
      });
      const c = clusterArgs('node', values);
      if (values.id !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(values.id)) throw new UsageError('--id must be 1-64 of [A-Za-z0-9_-]');
      const { runNode } = await import('./node.js');
      const seconds = optionalInt(values.seconds, 'seconds');
      await runNode({ ...c, id: values.id ?? 'n1', ...(values.instruments !== undefined && { instrumentsFile: values.instruments }), ...(seconds !== undefined && { seconds }) });
      exitSoon();
    },
  },
  edge: {
    summary: 'edge --nats URL --pg URL [--port 8080] [--cluster NAME] [--schema S] [--demo [--demo-traders]] [--keys FILE] [--instruments FILE] [--seconds N]   an edge node of a cluster (several may run); --demo: demo keys and funded demo accounts, --demo-traders: the demo market maker and taker on this edge',
    run: async (argv) => {
      const { values } = parseArgs({
        args: argv,
        options: {
          nats: { type: 'string' }, pg: { type: 'string' }, port: { type: 'string' }, cluster: { type: 'string' }, schema: { type: 'string' },
          demo: { type: 'boolean' }, 'demo-traders': { type: 'boolean' }, keys: { type: 'string' }, instruments: { type: 'string' }, seconds: { type: 'string' },
        },
        strict: true,
      });
      const c = clusterArgs('edge', values);
      if (values['demo-traders'] && !values.demo) throw new UsageError('--demo-traders needs --demo');
      const { runEdgeNode } = await import('./edge-node.js');
      const seconds = optionalInt(values.seconds, 'seconds');
      await runEdgeNode({
        ...c,
        port: optionalInt(values.port, 'port') ?? 8080,
        demo: values.demo === true,
        demoTraders: values['demo-traders'] === true,
        ...(values.keys !== undefined && { keysFile: values.keys }),
        ...(values.instruments !== undefined && { instrumentsFile: values.instruments }),
        ...(seconds !== undefined && { seconds }),
      });
      exitSoon();
    },
  },
  demo: {
    summary: 'demo [--seconds N] [--seed S]                  the engine core alone, in memory: book, ledgers, market data and a market maker',
    run: async (argv) => {
      const { values } = parseArgs({ args: argv, options: { seconds: { type: 'string' }, seed: { type: 'string' } }, strict: true });
      const { runDemo } = await import('./demo.js');
      await runDemo({ seconds: optionalInt(values.seconds, 'seconds'), seed: optionalInt(values.seed, 'seed') ?? 42 });
    },
  },
  migrate: {
    summary: 'migrate --pg URL [--schema S] | --pglite DIR    create or upgrade the store schema (idempotent, safe concurrently); --schema as for node and edge',
    run: async (argv) => {
      const { values } = parseArgs({ args: argv, options: { pg: { type: 'string' }, pglite: { type: 'string' }, schema: { type: 'string' } }, strict: true });
      if (!values.pg === !values.pglite) throw new UsageError('migrate needs exactly one of --pg URL or --pglite DIR');
      if (values.schema !== undefined && !values.pg) throw new UsageError('migrate --schema needs --pg (a PGlite directory has one schema)');
      const { runMigrate } = await import('./migrate.js');
      await runMigrate(values.pg ? { pg: values.pg, ...(values.schema !== undefined && { schema: values.schema }) } : { pglite: values.pglite! });
    },
  },
  sim: {
    summary: 'sim --seed S | --seeds A..B [--steps N] [--nodes K] [--faults crash,partition,drop,dup,delay,store|none] [--workers W] [--seed-timeout S] [--json] [--long] [--no-shrink]   deterministic fault-injecting simulation; a sweep runs whole seeds on W worker threads (default one per CPU, at most one per seed; 1 = in this thread), same results in seed order; a seed past S wall seconds (default with workers: max(120, steps/100); 0 = none) is stopped and reported; exit 1 on a violation or a seed error',
    run: async (argv) => {
      const { values } = parseArgs({
        args: argv,
        options: {
          seed: { type: 'string' }, seeds: { type: 'string' }, steps: { type: 'string' }, nodes: { type: 'string' }, faults: { type: 'string' },
          workers: { type: 'string' }, 'seed-timeout': { type: 'string' }, json: { type: 'boolean' }, long: { type: 'boolean' }, 'no-shrink': { type: 'boolean' },
        },
        strict: true,
      });
      const { runSim, defaultWorkers, FAULT_KINDS } = await import('@bourse/engine');
      if ((values.seed === undefined) === (values.seeds === undefined)) throw new UsageError('sim needs exactly one of --seed S or --seeds A..B');
      let seeds: [number, number] | undefined;
      if (values.seeds !== undefined) {
        const m = /^(\d+)\.\.(\d+)$/.exec(values.seeds);
        if (!m || Number(m[1]) > Number(m[2])) throw new UsageError(`--seeds must be A..B with A <= B, got '${values.seeds}'`);
        seeds = [Number(m[1]), Number(m[2])];
      }
      const faults = values.faults === undefined ? undefined : values.faults === 'none' ? [] : values.faults.split(',');
      for (const f of faults ?? []) if (!(FAULT_KINDS as readonly string[]).includes(f)) throw new UsageError(`unknown fault '${f}' (one of ${FAULT_KINDS.join(', ')}, or none)`);
      const seed = optionalInt(values.seed, 'seed');
      const steps = optionalInt(values.steps, 'steps');
      const nodes = optionalInt(values.nodes, 'nodes');
      const requested = optionalInt(values.workers, 'workers');
      const seedTimeoutS = optionalInt(values['seed-timeout'], 'seed-timeout');
      if (requested === 0) throw new UsageError('--workers must be at least 1');
      const seedCount = seeds ? seeds[1] - seeds[0] + 1 : 1;
      const workers = Math.min(requested ?? defaultWorkers(seedCount), seedCount);
      // With worker threads, Ctrl-C terminates them and exits 130 (after the sweep, while a failure is
      // shrunk in this thread, the timer ends the process); with 1 worker the default SIGINT
      // behaviour stays: the process ends at once. A second Ctrl-C always ends it at once.
      const interrupt = new AbortController();
      const onSigint = (): void => {
        interrupt.abort(Object.assign(new Error('interrupted (SIGINT): the sweep stopped and its worker threads were terminated'), { exitCode: 130 }));
        setTimeout(() => process.exit(130), 2_000).unref();
      };
      if (workers > 1) process.once('SIGINT', onSigint);
      try {
        const { exitCode } = await runSim({
          ...(seed !== undefined && { seed }),
          ...(seeds && { seeds }),
          ...(steps !== undefined && { steps }),
          ...(nodes !== undefined && { nodes }),
          ...(faults && { faults: faults as (typeof FAULT_KINDS)[number][] }),
          workers,
          ...(seedTimeoutS !== undefined && { seedTimeoutS }),
          signal: interrupt.signal,
          json: values.json === true,
          long: values.long === true,
          shrink: !values['no-shrink'],
        });
        if (exitCode !== 0) throw Object.assign(new Error('violations or seed errors found (see above for the replay command)'), { exitCode });
      } finally {
        process.off('SIGINT', onSigint);
      }
    },
  },
  cluster: {
    summary: 'cluster status --nats URL [--cluster NAME] [--json]   nodes, the shards each owns, fence tokens and lease ages',
    run: async (argv) => {
      const [sub, ...rest] = argv;
      if (sub !== 'status') throw new UsageError("cluster takes a subcommand: 'status'");
      const { values } = parseArgs({ args: rest, options: { nats: { type: 'string' }, cluster: { type: 'string' }, json: { type: 'boolean' } }, strict: true });
      if (!values.nats || !/^nats:\/\//.test(values.nats)) throw new UsageError('cluster status needs --nats nats://HOST:PORT');
      const { clusterStatus, formatClusterStatus } = await import('@bourse/actors');
      const status = await clusterStatus(values.nats, values.cluster ? { cluster: values.cluster } : {});
      process.stdout.write(values.json ? JSON.stringify(status) + '\n' : formatClusterStatus(status));
    },
  },
  load: {
    summary: 'load --url ws://HOST:PORT [--key KEY] --rate N --duration S --clients C [--window W] [--fsync-probe DIR]   order load over the binary protocol (one JSON line last)',
    run: async (argv) => {
      const { values } = parseArgs({
        args: argv,
        options: { url: { type: 'string' }, key: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' }, clients: { type: 'string' }, symbol: { type: 'string' }, window: { type: 'string' }, 'fsync-probe': { type: 'string' } },
        strict: true,
      });
      if (!values.url || !/^wss?:\/\//.test(values.url)) throw new UsageError('load needs --url ws://HOST:PORT');
      const { runLoad } = await import('../load.js');
      await runLoad({
        url: values.url,
        key: values.key ?? 'demo-load',
        rate: optionalInt(values.rate, 'rate') ?? 0,
        durationS: optionalInt(values.duration, 'duration') ?? 10,
        clients: Math.max(1, optionalInt(values.clients, 'clients') ?? 2),
        ...(values.symbol !== undefined && { symbol: values.symbol }),
        ...(values.window !== undefined && { window: Math.max(1, optionalInt(values.window, 'window') ?? 1) }),
        ...(values['fsync-probe'] !== undefined && { fsyncProbeDir: values['fsync-probe'] }),
      });
    },
  },
};

/**
 * After a clean stop of `node`/`edge`: exit even if a client library left a handle open (the NATS
 * and Postgres clients are closed by then; nothing is lost by not waiting for their sockets).
 */
function exitSoon(): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
}

/** The arguments `node` and `edge` share: where NATS and Postgres are, and the cluster's name. */
function clusterArgs(cmd: string, v: { nats?: string | undefined; pg?: string | undefined; cluster?: string | undefined; schema?: string | undefined }) {
  if (!v.nats || !/^nats:\/\//.test(v.nats)) throw new UsageError(`${cmd} needs --nats nats://HOST:PORT`);
  if (!v.pg || !/^postgres(ql)?:\/\//.test(v.pg)) throw new UsageError(`${cmd} needs --pg postgres://...`);
  if (v.cluster !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(v.cluster)) throw new UsageError('--cluster must be 1-64 of [A-Za-z0-9_-]');
  if (v.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(v.schema)) throw new UsageError('--schema must match [a-z_][a-z0-9_]*');
  return { nats: v.nats, pg: v.pg, cluster: v.cluster ?? 'bourse', ...(v.schema !== undefined && { schema: v.schema }) };
}

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
    const f = failureOf(name, e);
    console.error(f.line);
    return f.exitCode;
  }
}

/**
 * What a failed command prints (one line, never a stack) and its exit code: 2 for bad usage, else the
 * error's numeric `exitCode`, else 1. Anything may be thrown: a string, or an error whose `code` is a
 * number (Reject codes are; `code.startsWith` on one used to kill the CLI with a TypeError).
 */
export function failureOf(command: string, e: unknown): { line: string; exitCode: number } {
  const err = (e instanceof Error ? e : new Error(String(e))) as Error & { code?: unknown; exitCode?: unknown };
  if (err instanceof UsageError || (typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS'))) {
    return { line: `bourse ${command}: ${err.message.split('\n')[0]}`, exitCode: 2 }; // one line (parseArgs adds hints on more)
  }
  const code = typeof err.code === 'number' || typeof err.code === 'string' ? String(err.code) : undefined;
  const line = `bourse ${command}: ${err.message}${code !== undefined && !err.message.includes(code) ? ` (code ${code})` : ''}`;
  return { line, exitCode: typeof err.exitCode === 'number' ? err.exitCode : 1 };
}

// Run when executed directly (not when imported by tests).
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
