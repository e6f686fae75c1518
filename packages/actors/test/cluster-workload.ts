/**
 * The client side of the multi-process cluster tests and bench: a set of node processes on one
 * private cluster, a NATS client that retries commands until answered, and checks against the
 * Postgres journal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { NatsTransport, ShardMap, askOver, connectNats, type Journal } from '../src/index.js';
import type { AccountEvent } from './bank.js';
import { loadStore, readLog, sigkill, sleep, startNode, waitExit, type LogLine, type NodeConfig, type NodeProc } from './cluster-harness.js';

export interface ClusterEnv {
  readonly natsUrl: string;
  readonly cluster: string;
  readonly shards: number;
  readonly logFile: string;
  readonly pg: { pg: string; schema: string };
  readonly nc: NatsConnection;
  readonly client: NatsTransport;
  readonly journal: Journal;
  readonly procs: Map<string, NodeProc>;
  readonly allProcs: NodeProc[];
  readonly killedAt: Map<number, number>;
  start(nodeId: string): Promise<NodeProc>;
  kill(nodeId: string): number;
  terminate(nodeId: string): Promise<number | null>;
  ask<R = unknown>(to: string, cmd: unknown, timeoutMs?: number): Promise<R>;
  /** Retries (same command) until answered or `deadline`. */
  askRetry<R = unknown>(to: string, cmd: unknown, deadline: number, attemptMs?: number): Promise<R>;
  logs(): LogLine[];
  close(): Promise<void>;
}

export async function openClusterEnv(o: { natsUrl: string; shards?: number; leaseTtlMs?: number; pgUrl?: string; windowUs?: number }): Promise<ClusterEnv> {
  if (o.pgUrl) process.env.BOURSE_PG_URL = o.pgUrl;
  const { store, testing } = await loadStore();
  const target = await testing.createTestTarget('pg');
  const db = await store.openStore({ ...target.options, poolMax: 2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'bourse-cluster-'));
  const cluster = `t${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
  const shards = o.shards ?? 32;
  const nc = await connectNats(o.natsUrl, 'bourse-test-client');
  const client = new NatsTransport({ nc, prefix: `bourse.${cluster}`, shards: new ShardMap({ account: shards }), retryMsMax: 50 });
  const procs = new Map<string, NodeProc>();
  const allProcs: NodeProc[] = [];
  const killedAt = new Map<number, number>();
  const logFile = path.join(dir, 'nodes.log');
  const env: ClusterEnv = {
    natsUrl: o.natsUrl,
    cluster,
    shards,
    logFile,
    pg: target.options,
    nc,
    client,
    journal: db.journal,
    procs,
    allProcs,
    killedAt,
    async start(nodeId) {
      const cfg: NodeConfig = { nodeId, natsUrl: o.natsUrl, cluster, pg: target.options.pg, schema: target.options.schema, shards, logFile, leaseTtlMs: o.leaseTtlMs, windowUs: o.windowUs };
      const p = startNode(cfg);
      procs.set(nodeId, p);
      allProcs.push(p);
      await p.ready;
      return p;
    },
    kill(nodeId) {
      const p = procs.get(nodeId)!;
      const t = sigkill(p);
      killedAt.set(p.pid, t);
      return t;
    },
    async terminate(nodeId) {
      const p = procs.get(nodeId)!;
      if (p.exited) return p.child.exitCode;
      process.kill(p.pid, 'SIGTERM');
      return waitExit(p.child, 20_000);
    },
    ask: (to, cmd, timeoutMs = 5000) => askOver(client, to, cmd, timeoutMs),
    async askRetry(to, cmd, deadline, attemptMs = 4000) {
      for (;;) {
        try {
          return await askOver(client, to, cmd, Math.max(1, Math.min(attemptMs, deadline - Date.now())));
        } catch (e) {
          if (Date.now() >= deadline) throw e;
          await sleep(20);
        }
      }
    },
    logs: () => readLog(logFile),
    async close() {
      // Graceful first (SIGTERM), SIGKILL by pid after a grace period.
      await Promise.all(
        allProcs.map(async (p) => {
          if (p.exited) return;
          try {
            process.kill(p.pid, 'SIGTERM');
          } catch {
            /* gone */
          }
          await waitExit(p.child, 5000);
        }),
      );
      client.close();
      // The lease bucket lives on the (possibly shared) NATS server: remove it.
      await new Kvm(nc)
        .open(`bourse-${cluster}`)
        .then((kv) => kv.destroy())
        .catch(() => undefined);
      await nc.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      await target.drop().catch(() => undefined);
      if (!process.env.BOURSE_KEEP_LOGS) rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

/** Every account's events from the journal. */
export async function readAccounts(journal: Journal, n: number): Promise<Map<string, AccountEvent[]>> {
  const out = new Map<string, AccountEvent[]>();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const events: AccountEvent[] = [];
      for await (const page of journal.read(`account/a${i}`, 1)) for (const e of page.events) if ((e as { $rt?: unknown }).$rt === undefined) events.push(e as AccountEvent);
      out.set(`a${i}`, events);
    }),
  );
  return out;
}

export interface LedgerCheck {
  total: number;
  /** Acknowledged commands whose effect is missing from the journal. */
  lostAcked: number;
  /** Commands or credits applied more than once. */
  duplicated: number;
  /** Debits whose credit is missing. */
  uncredited: number;
  problems: string[];
}

/**
 * Checks the journal against what the client was told: every acknowledged deposit and transfer is in
 * the journal exactly once (debit on the sender, credit on the receiver), and no other debit exists.
 */
export function checkLedger(
  accounts: ReadonlyMap<string, AccountEvent[]>,
  ackedDeposits: ReadonlyMap<string, { account: string; amount: number }>,
  ackedTransfers: ReadonlyMap<string, { from: string; to: string; amount: number; outcome: string }>,
): LedgerCheck {
  const deposits = new Map<string, number>();
  const debits = new Map<string, { from: string; to: string; amount: number; n: number }>();
  const credits = new Map<string, { to: string; amount: number; n: number }>();
  const rejected = new Set<string>();
  let total = 0;
  for (const [acc, events] of accounts) {
    for (const e of events) {
      switch (e.type) {
        case 'Deposited':
          deposits.set(e.depositId, (deposits.get(e.depositId) ?? 0) + 1);
          total += e.amount;
          break;
        case 'Debited': {
          const d = debits.get(e.transferId);
          if (d) d.n++;
          else debits.set(e.transferId, { from: acc, to: e.to, amount: e.amount, n: 1 });
          total -= e.amount;
          break;
        }
        case 'Credited': {
          const c = credits.get(e.transferId);
          if (c) c.n++;
          else credits.set(e.transferId, { to: acc, amount: e.amount, n: 1 });
          total += e.amount;
          break;
        }
        case 'TransferRejected':
          rejected.add(e.transferId);
          break;
      }
    }
  }
  const problems: string[] = [];
  let lostAcked = 0;
  let duplicated = 0;
  let uncredited = 0;
  for (const [id, d] of ackedDeposits) {
    const n = deposits.get(id) ?? 0;
    if (n === 0) {
      lostAcked++;
      if (problems.length < 10) problems.push(`acked deposit ${id} to ${d.account} missing`);
    }
  }
  for (const n of deposits.values()) if (n > 1) duplicated++;
  for (const [id, t] of ackedTransfers) {
    if (t.outcome === 'ok') {
      const d = debits.get(id);
      if (d === undefined || d.from !== t.from || d.amount !== t.amount) {
        lostAcked++;
        if (problems.length < 10) problems.push(`acked transfer ${id} not debited`);
      }
    } else if (!rejected.has(id)) {
      lostAcked++;
      if (problems.length < 10) problems.push(`acked rejection ${id} not journaled`);
    }
  }
  for (const [id, d] of debits) {
    if (d.n > 1) duplicated++;
    const c = credits.get(id);
    if (c === undefined) {
      uncredited++;
      if (problems.length < 10) problems.push(`transfer ${id} debited, never credited`);
    } else if (c.to !== d.to || c.amount !== d.amount) problems.push(`transfer ${id} credited wrongly`);
  }
  for (const [id, c] of credits) {
    if (c.n > 1) {
      duplicated++;
      if (problems.length < 10) problems.push(`transfer ${id} credited ${c.n} times`);
    }
    if (!debits.has(id)) problems.push(`credit ${id} without debit`);
  }
  return { total, lostAcked, duplicated, uncredited, problems };
}

export { sleep };
