/**
 * `bourse node --nats URL --pg URL [--id n1]`: an engine node that joins a cluster. It runs the
 * store's migrations (idempotent, safe concurrently), hosts the engine entities of the shards it wins
 * (`ClusterNode`: KV leases with fence tokens over NATS), journals to Postgres, publishes committed
 * facts for the edges on NATS core subjects, ticks the books it serves and projects the read models of
 * the streams it serves. See packages/engine/src/host/cluster.ts.
 */
import { connectNats } from '@bourse/actors';
import { startEngineNode } from '@bourse/engine';
import { openStore } from '@bourse/store';
import { loadInstruments, untilStopped } from './cluster-common.js';

export interface NodeOptions {
  readonly nats: string;
  readonly pg: string;
  readonly schema?: string;
  readonly id: string;
  readonly cluster: string;
  readonly instrumentsFile?: string;
  readonly seconds?: number;
  readonly print?: (line: string) => void;
  readonly signal?: AbortSignal;
}

export async function runNode(o: NodeOptions): Promise<void> {
  const print = o.print ?? ((l: string) => console.log(l));
  const instruments = loadInstruments(o.instrumentsFile);
  const target = { pg: o.pg, ...(o.schema ? { schema: o.schema } : {}) };
  // Appends and fence raises on one pool; entity recoveries and projections on another.
  const store = await openStore({ ...target, migrate: true, poolMax: 3 });
  const readStore = await openStore({ ...target, poolMax: 4 }).catch(async (e: unknown) => {
    await store.close();
    throw e;
  });
  const nc = await connectNats(o.nats, `bourse-node-${o.id}`).catch(async (e: unknown) => {
    await Promise.all([store.close(), readStore.close()]);
    throw e;
  });
  let errors = 0;
  const statusS = 10;
  const node = await startEngineNode({
    nodeId: o.id,
    nc,
    cluster: o.cluster,
    instruments,
    store,
    readStore,
    onEvent: (e) => {
      if (e.type === 'error' && errors++ < 20) process.stderr.write(`node ${o.id}: ${e.where}: ${String((e.error as Error)?.message ?? e.error)}\n`);
    },
  });
  try {
    print(`node ${o.id} joined cluster '${o.cluster}' (nats ${o.nats}, journal pg${o.schema ? ` schema ${o.schema}` : ''}); instruments ${instruments.map((i) => i.symbol).join(', ')}`);
    print('ready');
    let last = { ...node.journal.stats };
    const status = setInterval(() => {
      const served = node.cluster.servedShards();
      const j = node.journal.stats;
      const appends = j.appends - last.appends;
      const per = (x: number) => (appends ? (x / appends).toFixed(1) : '-');
      print(
        `node ${o.id}: ${served.length} shards served, commands ${node.cluster.node.stats.commands}, notices ${node.published.messages}; ` +
          `last ${statusS} s: ${appends} appends, ${per(j.appendMs - last.appendMs)} ms, ${per(j.rows - last.rows)} streams and ${per(j.records - last.records)} records each`,
      );
      last = { ...j };
    }, statusS * 1000);
    status.unref();
    await untilStopped(o.seconds, o.signal);
    clearInterval(status);
  } finally {
    await node.stop().catch((e: unknown) => process.stderr.write(`node ${o.id}: stop: ${String(e)}\n`));
    await nc.close().catch(() => {});
    await Promise.all([store.close(), readStore.close()]).catch(() => {});
    print('stopped.');
  }
}
