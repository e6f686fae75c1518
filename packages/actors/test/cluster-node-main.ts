/**
 * One cluster node as a process, for the multi-process tests and the bench: the toy bank account kind
 * over NATS, journaled in Postgres. Configured by env `BOURSE_NODE` (JSON, see `NodeConfig`). Prints
 * `ready` once started; SIGTERM leaves gracefully (hands its shards off) and exits 0.
 */
import { appendFileSync } from 'node:fs';
import { ClusterNode, connectNats, splitJournal, type Journal } from '../src/index.js';
import { accountKind } from './bank.js';
import { loadStore, type NodeConfig } from './cluster-harness.js';

const cfg = JSON.parse(process.env.BOURSE_NODE ?? '{}') as NodeConfig;
const pid = process.pid;
const write = (rec: object): void => appendFileSync(cfg.logFile, JSON.stringify({ ...rec, pid }) + '\n');

const { store } = await loadStore();
// Two pools on one database: appends and claims on one, entity recovery reads on the other.
const db = await store.openStore({ pg: cfg.pg, schema: cfg.schema, poolMax: 2 });
const dbRead = await store.openStore({ pg: cfg.pg, schema: cfg.schema, poolMax: 4 });
const nc = await connectNats(cfg.natsUrl, `bourse-${cfg.nodeId}`);
let staleWriters = 0;
/** Append latency and size, for the stats line. */
const appendStats = { n: 0, ms: 0, writes: 0, maxMs: 0 };
function timed(j: Journal): Journal {
  const append = j.append.bind(j);
  j.append = async (writes, options) => {
    const t = performance.now();
    try {
      await append(writes, options);
    } finally {
      const ms = performance.now() - t;
      appendStats.n++;
      appendStats.ms += ms;
      appendStats.writes += writes.length;
      appendStats.maxMs = Math.max(appendStats.maxMs, ms);
    }
  };
  return j;
}
const node = await ClusterNode.start({
  nodeId: cfg.nodeId,
  nc,
  cluster: cfg.cluster,
  kinds: [accountKind],
  journal: timed(splitJournal(db.journal, dbRead.journal)),
  controlJournal: db.journal,
  shards: { account: cfg.shards },
  leaseTtlMs: cfg.leaseTtlMs ?? 1500,
  node: {
    groupCommit: { windowUs: cfg.windowUs ?? 1000, batchEventsMax: 4000 },
    reliable: { resendMs: 1000, attemptTimeoutMs: 3000 },
    snapshotEventsEvery: 500,
    onEvent: (e) => {
      if (e.type === 'stale-writer') staleWriters++;
    },
  },
  onLog: (r) => write(r),
});
const stats = (): void => {
  const gc = node.node.committer!.stats;
  write({ ev: 'stats', node: cfg.nodeId, t: Date.now(), fenced: gc.fenced, conflicts: gc.conflicts, appends: gc.appends, eventsCommitted: gc.eventsCommitted, staleWriters, commands: node.node.stats.commands, appendMsAvg: +(appendStats.ms / Math.max(1, appendStats.n)).toFixed(2), appendMsMax: +appendStats.maxMs.toFixed(1), appendWritesAvg: +(appendStats.writes / Math.max(1, appendStats.n)).toFixed(1), ...node.stats });
};
const timer = setInterval(stats, 500);
process.stdout.write('ready\n');

let leaving = false;
process.on('SIGTERM', () => {
  if (leaving) return;
  leaving = true;
  void (async () => {
    try {
      await node.stop();
      clearInterval(timer);
      stats();
      await nc.close();
      await db.close();
      await dbRead.close();
      process.exit(0);
    } catch (e) {
      process.stderr.write(`stop failed: ${(e as Error).stack}\n`);
      process.exit(1);
    }
  })();
});
