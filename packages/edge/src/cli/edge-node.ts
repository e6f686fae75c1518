/**
 * `bourse edge --nats URL --pg URL --port 8080`: an edge node of a cluster (several may run). The
 * uWebSockets.js edge in front of `ClusterGateway`: commands are asked of the engine entities over
 * NATS, answers and streams come from the nodes' commit notices, private-stream backlogs from the
 * Postgres journal and reads from the Postgres read models (projected by the engine nodes).
 *
 * `--demo` uses the fixed demo API keys and opens and funds the demo accounts (idempotent);
 * `--demo-traders` also runs the demo's market maker and taker through this edge, as `bourse start`
 * does (give it to one edge only). `--keys FILE` adds keys from a JSON array
 * of key specs. Accounts, deposits and keys can also be managed on the HTTP admin API.
 */
import { readFileSync } from 'node:fs';
import { connectNats } from '@bourse/actors';
import { ClusterGateway } from '@bourse/engine';
import { openStore } from '@bourse/store';
import { startEdge } from '../edge.js';
import { cliLogger, engineLogOptions } from '../engine-log.js';
import type { KeySpec } from '../auth.js';
import { loadInstruments, untilStopped } from './cluster-common.js';
import { DEMO_KEYS, runDemoTraders, seedDemo } from './start.js';

export interface EdgeNodeOptions {
  readonly nats: string;
  readonly pg: string;
  readonly schema?: string;
  readonly port: number;
  readonly cluster: string;
  readonly demo: boolean;
  /** Run the demo's market maker and taker through this edge's gateway (as `bourse start` does); needs `demo`. */
  readonly demoTraders?: boolean;
  readonly keysFile?: string;
  readonly instrumentsFile?: string;
  readonly seconds?: number;
  readonly print?: (line: string) => void;
  readonly signal?: AbortSignal;
}

export async function runEdgeNode(o: EdgeNodeOptions): Promise<void> {
  const print = o.print ?? ((l: string) => console.log(l));
  const instruments = loadInstruments(o.instrumentsFile);
  const keys: KeySpec[] = [...(o.demo ? DEMO_KEYS : []), ...(o.keysFile ? (JSON.parse(readFileSync(o.keysFile, 'utf8')) as KeySpec[]) : [])];
  const store = await openStore({ pg: o.pg, ...(o.schema ? { schema: o.schema } : {}), migrate: true, poolMax: 4 });
  const nc = await connectNats(o.nats, 'bourse-edge').catch(async (e: unknown) => {
    await store.close();
    throw e;
  });
  let gateway: ClusterGateway | undefined;
  let edge: Awaited<ReturnType<typeof startEdge>> | undefined;
  let traders: ReturnType<typeof runDemoTraders> | undefined;
  try {
    let errors = 0;
    const logger = cliLogger('bourse-edge');
    gateway = await ClusterGateway.open({
      ...engineLogOptions(logger),
      nc,
      cluster: o.cluster,
      instruments,
      journal: store.journal,
      reads: store.readModels,
      // Wait for the cluster to come up (shards unowned at first: the transport retries).
      askTimeoutMs: 20_000,
      onEvent: (e) => {
        if (e.type === 'error' && errors++ < 20) process.stderr.write(`edge: ${e.where}: ${String((e.error as Error)?.message ?? e.error)}\n`);
      },
    });
    if (o.demo) await seedDemo(gateway);
    edge = await startEdge({ gateway, port: o.port, host: '127.0.0.1', keys, logger });
    print(`Bourse edge is up: ${edge.url} (binary WebSocket), ${edge.httpUrl}/v1 (HTTP), ${edge.httpUrl}/health; cluster '${o.cluster}'`);
    if (o.demo) {
      print('demo API keys (fixed, demo only):');
      for (const k of DEMO_KEYS) print(`  ${k.key.padEnd(13)} ${k.role.padEnd(12)} ${(k.accounts ?? ['*']).join(',')}`);
    }
    if (o.demoTraders) traders = runDemoTraders(gateway, 250, (err) => logger.warn({ err }, 'demo traders: a step failed; trying again'));
    print('ready');
    await untilStopped(o.seconds, o.signal);
  } finally {
    await traders?.stop();
    await edge?.close();
    await gateway?.close();
    await nc.close().catch(() => {});
    await store.close().catch(() => {});
    print('stopped.');
  }
}
