/**
 * Cluster throughput and failover: three node processes (the toy bank account kind) on NATS and
 * Postgres, driven by a client in this process.
 *
 *   node packages/actors/dist/bench/cluster.js --pg URL --nats URL
 *   (or through bench/actors.js, which runs the in-process part first)
 *
 * Method: a private Postgres schema and a cluster name of its own on the given NATS server; 64
 * shards, 3000 accounts. Throughput: `window` concurrent callers each ask a Deposit (unique id) and
 * await its reply, which the node releases only after the event is committed to Postgres; counted
 * over a measured span after a warm-up. Failover: while callers keep depositing and transferring, a
 * node is SIGKILLed (and restarted) `kills` times; for each, the time from the kill to the first
 * answer to a command issued after the kill for a shard the dead node served. Then the journal is
 * read back: `lostAcked` = acknowledged deposits or transfers missing from it, `duplicated` = ids
 * applied (or credited) more than once.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { clusterStatus } from '../src/cluster-status.js';
import { median, servedAt, servingIntervals, sleep, sumStats } from '../test/cluster-harness.js';
import { checkLedger, openClusterEnv, readAccounts, type ClusterEnv } from '../test/cluster-workload.js';
import type { ShardMap } from '../src/index.js';

/** CPU time (user + system) of a process so far, in ms, from /proc (Linux). */
function procCpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100; // utime + stime, USER_HZ = 100
  } catch {
    return 0;
  }
}

export interface ClusterBenchResult {
  clusterCommandsPerSec: number;
  failoverMs: number;
  failoversMs: number[];
  lostAcked: number;
  duplicated: number;
  uncredited: number;
  fencedBatches: number;
  sequenceConflicts: number;
  transfersPerSec: number;
}

export interface ClusterBenchOptions {
  pgUrl?: string;
  natsUrl: string;
  measureMs?: number;
  window?: number;
  kills?: number;
  log?: (line: string) => void;
}

export async function runClusterBench(o: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const ACCOUNTS = Number(process.env.BENCH_ACCOUNTS ?? 3000);
  const SHARDS = 64;
  const measureMs = o.measureMs ?? 10_000;
  const window = o.window ?? Number(process.env.BENCH_CALLERS ?? 6000);
  const KILLS = o.kills ?? 3;
  const env: ClusterEnv = await openClusterEnv({ natsUrl: o.natsUrl, pgUrl: o.pgUrl, shards: SHARDS, windowUs: 2000 });
  try {
    await Promise.all(['n1', 'n2', 'n3'].map((n) => env.start(n)));
    for (let i = 0; ; i++) {
      const [st] = await clusterStatus(env.nc, { cluster: env.cluster });
      if ((st?.nodes ?? []).reduce((a, n) => a + n.shards.length, 0) === SHARDS && st!.nodes.length === 3 && st!.nodes.every((n) => n.shards.length > 0)) break;
      if (i > 300) throw new Error('shards not spread over three nodes');
      await sleep(100);
    }
    const deposits = new Map<string, { account: string; amount: number }>();
    const transfers = new Map<string, { from: string; to: string; amount: number; outcome: string }>();
    const shards = (env.client as unknown as { shards: ShardMap }).shards;
    const served: { issued: number; replied: number; shard: string }[] = [];
    let recordServed = false;
    let seq = 0;
    let stop = false;
    let acked = 0;
    let transfersAcked = 0;
    let mode: 'deposit' | 'mixed' = 'deposit';
    // Initial money so that transfers can move it.
    await Promise.all(
      Array.from({ length: ACCOUNTS }, async (_, i) => {
        await env.askRetry(`account/a${i}`, { type: 'Deposit', depositId: `init-a${i}`, amount: 1_000_000 }, Date.now() + 30_000);
        deposits.set(`init-a${i}`, { account: `a${i}`, amount: 1_000_000 });
      }),
    );
    const worker = async (w: number): Promise<void> => {
      let k = 0;
      while (!stop) {
        const n = seq++;
        const from = `a${(n * 7919 + w) % ACCOUNTS}`;
        const transfer = mode === 'mixed' && k++ % 2 === 1;
        const id = `${transfer ? 't' : 'd'}${n}`;
        const to = `a${(n * 104729 + 17) % ACCOUNTS}`;
        const cmd = transfer && to !== from ? { type: 'Transfer', transferId: id, to, amount: 1 + (n % 7) } : { type: 'Deposit', depositId: id, amount: 1 };
        for (;;) {
          const issued = Date.now();
          try {
            const r = await env.ask<string>(`account/${from}`, cmd, 3000);
            if (recordServed) served.push({ issued, replied: Date.now(), shard: shards.shardOf(`account/${from}`).key });
            if (cmd.type === 'Transfer') {
              transfers.set(id, { from, to, amount: (cmd as { amount: number }).amount, outcome: r });
              transfersAcked++;
            } else deposits.set(id, { account: from, amount: 1 });
            acked++;
            break;
          } catch {
            if (stop) break; // unanswered: its outcome is unknown, it is not counted as acknowledged
          }
        }
      }
    };
    const workers = Promise.all(Array.from({ length: window }, (_, w) => worker(w)));
    await sleep(2000); // warm-up
    const a0 = acked;
    const pids = ['n1', 'n2', 'n3'].map((n) => env.procs.get(n)!.pid);
    const cpu0 = { client: process.cpuUsage(), nodes: pids.map(procCpuMs) };
    const t0 = performance.now();
    await sleep(measureMs);
    const perSec = ((acked - a0) / (performance.now() - t0)) * 1000;
    const n = acked - a0;
    const clientUs = (((c) => c.user + c.system)(process.cpuUsage(cpu0.client)) / n).toFixed(1);
    const nodesUs = ((pids.map(procCpuMs).reduce((a, b) => a + b, 0) - cpu0.nodes.reduce((a, b) => a + b, 0)) * 1000 / n).toFixed(1);
    log(`  cluster: ${Math.round(perSec).toLocaleString('en-US')} deposits/s persisted and acknowledged (${window} concurrent callers, ${(measureMs / 1000).toFixed(0)} s)`);
    log(`  CPU per acknowledged command: client ${clientUs} us, the three nodes together ${nodesUs} us (plus Postgres and nats-server); host load ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`);
    // Failover under a mixed load, with fewer callers so that the kill, not the queue, dominates.
    mode = 'mixed';
    recordServed = true;
    const kills: { node: string; pid: number; at: number }[] = [];
    const tm0 = Date.now();
    const ta0 = transfersAcked;
    for (let i = 0; i < KILLS; i++) {
      await sleep(3000);
      const node = `n${1 + (i % 3)}`;
      const pid = env.procs.get(node)!.pid;
      kills.push({ node, pid, at: env.kill(node) });
      await sleep(2500);
      await env.start(node);
    }
    await sleep(3000);
    const transfersPerSec = ((transfersAcked - ta0) / (Date.now() - tm0)) * 1000;
    stop = true;
    await workers;
    // Credits drain: wait until the money total stops moving (unanswered deposits may still land).
    let last = -1;
    for (const until = Date.now() + 60_000; Date.now() < until; ) {
      const bal = await Promise.all(Array.from({ length: ACCOUNTS }, (_, i) => env.askRetry<number>(`account/a${i}`, { type: 'Balance' }, Date.now() + 20_000)));
      const sum = bal.reduce((a, b) => a + b, 0);
      if (sum === last) break;
      last = sum;
      await sleep(1000);
    }
    const logs = env.logs();
    const intervals = servingIntervals(logs, env.killedAt, Date.now());
    const failovers: number[] = [];
    for (const k of kills) {
      const s = servedAt(intervals, k.pid, k.at - 1);
      let first = Infinity;
      for (const x of served) if (x.issued >= k.at && s.has(x.shard) && x.replied < first) first = x.replied;
      if (first !== Infinity) failovers.push(first - k.at);
      const serves = logs.filter((l) => l.ev === 'serve' && l.t >= k.at && s.has(l.shard as string) && l.pid !== k.pid);
      const firstServe = Math.min(...serves.map((l) => l.t)) - k.at;
      const claimMs = median(serves.map((l) => l.claimMs as number));
      log(`  kill ${k.node}: ${s.size} shards; new owner serving after ${firstServe} ms (claim took ${claimMs} ms median); first command served after ${first - k.at} ms`);
    }
    const accounts = await readAccounts(env.journal, ACCOUNTS);
    const ledger = checkLedger(accounts, deposits, transfers);
    for (const p of ledger.problems) log(`  problem: ${p}`);
    const stats = sumStats(logs);
    return {
      clusterCommandsPerSec: Math.round(perSec),
      failoverMs: Math.round(median(failovers)),
      failoversMs: failovers,
      lostAcked: ledger.lostAcked,
      duplicated: ledger.duplicated,
      uncredited: ledger.uncredited,
      fencedBatches: stats.fenced,
      sequenceConflicts: stats.conflicts,
      transfersPerSec: Math.round(transfersPerSec),
    };
  } finally {
    await env.close();
  }
}

export function argOf(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1]?.endsWith('/bench/cluster.js') || process.argv[1]?.endsWith('/bench/cluster.ts')) {
  const natsUrl = argOf('--nats') ?? 'nats://127.0.0.1:4222';
  const r = await runClusterBench({ natsUrl, pgUrl: argOf('--pg') });
  console.log(JSON.stringify(r));
}
