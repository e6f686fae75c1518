import { expect } from 'chai';
import type { NatsConnection } from '@nats-io/transport-node';
import { clusterStatus, formatClusterStatus } from '../src/cluster-status.js';
import { ClusterNode, MemoryJournal, connectNats } from '../src/index.js';
import { accountKind } from './bank.js';
import { startNatsServer, median, overlaps, servedAt, servingIntervals, sumStats, type NatsServer } from './cluster-harness.js';
import { checkLedger, openClusterEnv, readAccounts, sleep, type ClusterEnv } from './cluster-workload.js';

/**
 * Three node processes, a private nats-server and a private Postgres schema. Needs Postgres (see
 * `node ops/services.mjs ensure`), /usr/sbin/nats-server and the compiled packages
 * (`pnpm exec tsc -b packages/actors packages/store`): the node processes run from dist.
 */
describe('actors - cluster over NATS and Postgres (node processes)', function () {
  this.timeout(240_000);
  let nats: NatsServer | undefined;
  let env: ClusterEnv | undefined;

  before(async () => {
    nats = await startNatsServer();
  });
  after(async () => {
    await nats?.stop();
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  async function shardsByNode(e: ClusterEnv): Promise<Map<string, number>> {
    const [st] = await clusterStatus(e.nc, { cluster: e.cluster });
    return new Map((st?.nodes ?? []).map((n) => [n.node, n.shards.length]));
  }

  it('actors - rebalance: one node, then two more join and the shards spread; a graceful leave hands off with no error and no lost command', async () => {
    const e = (env = await openClusterEnv({ natsUrl: nats!.url, shards: 24 }));
    await e.start('n1');
    await waitFor('n1 owns every shard', async () => (await shardsByNode(e)).get('n1') === 24, 20_000);
    // A client keeps depositing (unique ids) all along; every command must be answered.
    const ACCOUNTS = 60;
    const acked = new Map<string, { account: string; amount: number }>();
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const worker = async (w: number): Promise<void> => {
      for (let k = 0; !stop; k++) {
        const account = `a${(w * 7 + k) % ACCOUNTS}`;
        const id = `w${w}-${k}`;
        sent++;
        try {
          const r = await e.askRetry(`account/${account}`, { type: 'Deposit', depositId: id, amount: 1 }, Date.now() + 20_000);
          expect(r).to.equal('ok');
          acked.set(id, { account, amount: 1 });
        } catch (err) {
          failures.push(`${id}: ${(err as Error).message}`);
        }
      }
    };
    const workers = Array.from({ length: 40 }, (_, w) => worker(w));
    await sleep(500);
    await Promise.all([e.start('n2'), e.start('n3')]);
    await waitFor(
      'shards spread over three nodes',
      async () => {
        const m = await shardsByNode(e);
        return m.size === 3 && [...m.values()].every((n) => n >= 4) && [...m.values()].reduce((a, b) => a + b, 0) === 24;
      },
      20_000,
    );
    const spread = await shardsByNode(e);
    console.log(`      spread after join: ${JSON.stringify(Object.fromEntries(spread))}`);
    await sleep(1000);
    const before = acked.size;
    const code = await e.terminate('n2');
    expect(code, 'n2 exits 0 after a graceful leave').to.equal(0);
    await waitFor(
      'n1 and n3 own every shard',
      async () => {
        const m = await shardsByNode(e);
        return !m.has('n2') && (m.get('n1') ?? 0) + (m.get('n3') ?? 0) === 24;
      },
      20_000,
    );
    await sleep(1000);
    stop = true;
    await Promise.all(workers);
    console.log(`      ${sent} deposits sent, ${acked.size} acknowledged (${acked.size - before} after n2 began leaving)`);
    console.log(formatClusterStatus(await clusterStatus(e.nc, { cluster: e.cluster })).replace(/^/gm, '      ').trimEnd());
    expect(failures, failures.slice(0, 5).join('\n')).to.deep.equal([]);
    expect(acked.size, 'every deposit sent was acknowledged').to.equal(sent);
    const logs = e.logs();
    const errors = logs.filter((l) => l.ev === 'error');
    expect(errors, JSON.stringify(errors.slice(0, 3))).to.deep.equal([]);
    const n2stops = logs.filter((l) => l.ev === 'stop' && l.node === 'n2');
    expect(n2stops.length).to.be.greaterThan(0);
    for (const s of n2stops) expect(String(s.reason), `n2 stopped ${s.shard as string}: ${String(s.reason)}`).to.match(/^(node leaving|handoff to)/);
    expect(overlaps(servingIntervals(logs, new Map(), Date.now())), 'no shard served by two nodes at once').to.deep.equal([]);
    const ledger = checkLedger(await readAccounts(e.journal, ACCOUNTS), acked, new Map());
    expect(ledger.problems, ledger.problems.join('\n')).to.deep.equal([]);
    expect(ledger.lostAcked, 'lost acknowledged deposits').to.equal(0);
    expect(ledger.duplicated, 'duplicated deposits').to.equal(0);
    expect(ledger.total, 'deposits in the journal').to.equal(acked.size);
  });
  it('actors - crash: 50k+ transfers with retries while random nodes are SIGKILLed and restarted (and one paused past its lease); every acked transfer applied exactly once, money conserved, no shard served by two nodes', async () => {
    const e = (env = await openClusterEnv({ natsUrl: nats!.url, shards: 32 }));
    const t0 = Date.now();
    await Promise.all(['n1', 'n2', 'n3'].map((n) => e.start(n)));
    await waitFor('all shards owned', async () => [...(await shardsByNode(e)).values()].reduce((a, b) => a + b, 0) === 32, 20_000);
    const ACCOUNTS = 200;
    const INITIAL = 1_000_000;
    const TRANSFERS = Number(process.env.BOURSE_CRASH_TRANSFERS ?? 50_000);
    const deposits = new Map<string, { account: string; amount: number }>();
    await Promise.all(
      Array.from({ length: ACCOUNTS }, async (_, i) => {
        await e.askRetry(`account/a${i}`, { type: 'Deposit', depositId: `init-a${i}`, amount: INITIAL }, Date.now() + 30_000);
        deposits.set(`init-a${i}`, { account: `a${i}`, amount: INITIAL });
      }),
    );
    // Transfers from a window of concurrent callers, each retried (same id) until answered.
    const transfers = new Map<string, { from: string; to: string; amount: number; outcome: string }>();
    const served: { issued: number; replied: number; shard: string }[] = [];
    const shardsMap = e.client['shards'] as import('../src/index.js').ShardMap;
    let next = 0;
    let rnd = 0x2545f491;
    const rand = (n: number): number => {
      rnd ^= rnd << 13;
      rnd ^= rnd >>> 17;
      rnd ^= rnd << 5;
      return (rnd >>> 0) % n;
    };
    const loadStart = Date.now();
    // The fault plan (bounded): SIGKILL a random node and restart it, or SIGSTOP one past its lease
    // (a paused owner is the split brain the journal fence must stop), every 2.5-4 s. The callers keep
    // going until the plan is done, and at least TRANSFERS transfers.
    const plan: ('kill' | 'pause')[] = ['kill', 'kill', 'pause', 'kill', 'kill'];
    let faultsDone = false;
    const worker = async (): Promise<void> => {
      while (next < TRANSFERS || !faultsDone) {
        const k = next++;
        const from = `a${rand(ACCOUNTS)}`;
        let to = `a${rand(ACCOUNTS)}`;
        if (to === from) to = from === 'a0' ? 'a1' : 'a0';
        const amount = 1 + rand(50);
        const cmd = { type: 'Transfer', transferId: `t${k}`, to, amount };
        const deadline = Date.now() + 90_000;
        for (;;) {
          const issued = Date.now();
          try {
            const r = await e.ask<string>(`account/${from}`, cmd, 3000);
            served.push({ issued, replied: Date.now(), shard: shardsMap.shardOf(`account/${from}`).key });
            transfers.set(`t${k}`, { from, to, amount, outcome: r });
            break;
          } catch (err) {
            if (Date.now() > deadline) throw err;
          }
        }
      }
    };
    const workers = Promise.all(Array.from({ length: 1500 }, worker));
    const kills: { node: string; pid: number; at: number }[] = [];
    const pauses: { node: string; pid: number; at: number; ms: number }[] = [];
    for (const fault of plan) {
      await sleep(2500 + rand(1500));
      const node = `n${1 + rand(3)}`;
      const p = e.procs.get(node)!;
      if (fault === 'kill') {
        const at = e.kill(node);
        kills.push({ node, pid: p.pid, at });
        await sleep(200);
        await e.start(node);
      } else {
        const ms = 2500;
        pauses.push({ node, pid: p.pid, at: Date.now(), ms });
        process.kill(p.pid, 'SIGSTOP');
        await sleep(ms);
        process.kill(p.pid, 'SIGCONT');
      }
    }
    faultsDone = true;
    await workers;
    const loadMs = Date.now() - loadStart;
    // Let the reliable credits drain: the money total converges to the deposits.
    const expected = ACCOUNTS * INITIAL;
    let sum = 0;
    await waitFor(
      'money to converge',
      async () => {
        const bal = await Promise.all(Array.from({ length: ACCOUNTS }, (_, i) => e.askRetry<number>(`account/a${i}`, { type: 'Balance' }, Date.now() + 10_000)));
        sum = bal.reduce((a, b) => a + b, 0);
        return sum === expected;
      },
      60_000,
    ).catch(() => undefined);
    const endT = Date.now();
    const logs = e.logs();
    const intervals = servingIntervals(logs, e.killedAt, endT);
    // Failover: from the SIGKILL to the first command (issued after it) answered for a shard the dead node served.
    const failovers: number[] = [];
    for (const k of kills) {
      const shards = servedAt(intervals, k.pid, k.at - 1);
      let first = Infinity;
      for (const s of served) if (s.issued >= k.at && shards.has(s.shard) && s.replied < first) first = s.replied;
      if (shards.size > 0 && first !== Infinity) failovers.push(first - k.at);
      console.log(`      kill ${k.node} (pid ${k.pid}) at +${((k.at - t0) / 1000).toFixed(1)}s: ${shards.size} shards; first command served by the new owner after ${first - k.at} ms`);
    }
    const stats = sumStats(logs);
    const ok = [...transfers.values()].filter((t) => t.outcome === 'ok').length;
    console.log(
      `      ${transfers.size} transfers acked (${ok} ok) in ${(loadMs / 1000).toFixed(1)} s (${Math.round(transfers.size / (loadMs / 1000))}/s) with ${kills.length} kills; ` +
        `${pauses.length} pause(s) of ${pauses[0]?.ms} ms; failover median ${median(failovers)} ms, max ${Math.max(...failovers)} ms; ` +
        `journal rejected ${stats.fenced} fenced batches and ${stats.conflicts} sequence conflicts (${stats.staleWriters} stale entities)`,
    );
    expect(transfers.size).to.be.at.least(TRANSFERS);
    expect(kills.length).to.be.greaterThan(1);
    expect(sum, 'money conserved (live balances)').to.equal(expected);
    const ledger = checkLedger(await readAccounts(e.journal, ACCOUNTS), deposits, transfers);
    expect(ledger.problems, ledger.problems.join('\n')).to.deep.equal([]);
    expect(ledger.lostAcked).to.equal(0);
    expect(ledger.duplicated).to.equal(0);
    expect(ledger.uncredited).to.equal(0);
    expect(ledger.total, 'money conserved (journal)').to.equal(expected);
    // Each new tenure of a shard carries a higher fence token than every earlier one.
    const byShard = new Map<string, { from: number; token: number }[]>();
    for (const i of intervals) byShard.set(i.shard, [...(byShard.get(i.shard) ?? []), i]);
    for (const [shard, l] of byShard) {
      l.sort((a, b) => a.from - b.from);
      for (let i = 1; i < l.length; i++) expect(l[i]!.token, `${shard} tenure ${i}`).to.be.greaterThan(l[i - 1]!.token);
    }
    const bad = overlaps(intervals);
    expect(bad.map(([a, b]) => `${a.shard}: ${a.node}/${a.pid} [${a.from},${a.to}) vs ${b.node}/${b.pid} [${b.from},${b.to})`)).to.deep.equal([]);
    expect(failovers.length).to.be.greaterThan(0);
  });
  it('actors - after a failover the new owner wakes the entities with unacknowledged messages (shard registry), with no command sent to them', async () => {
    const journal = new MemoryJournal();
    const cluster = `reg${process.pid}x${Math.random().toString(36).slice(2, 7)}`;
    const conns: NatsConnection[] = [];
    const nodes: ClusterNode[] = [];
    const start = async (nodeId: string): Promise<ClusterNode> => {
      const nc = await connectNats(nats!.url);
      conns.push(nc);
      const n = await ClusterNode.start({ nodeId, nc, cluster, kinds: [accountKind], journal, shards: { account: 4 }, node: { reliable: { resendMs: 100 } } });
      nodes.push(n);
      return n;
    };
    try {
      const n1 = await start('n1');
      await waitFor('n1 serves every shard', () => n1.servedShards().length === 4, 10_000);
      expect(await n1.node.ask('account/amy', { type: 'Deposit', depositId: 'd', amount: 100 }, 2000)).to.equal('ok');
      // zed cannot commit (its credit fails and is never acknowledged) while amy's debit commits.
      journal.faults.beforeAppend = (writes) => {
        if (writes.some((w) => w.persistenceId === 'account/zed')) throw new Error('zed is down');
      };
      expect(await n1.node.ask('account/amy', { type: 'Transfer', transferId: 't1', to: 'zed', amount: 30 }, 2000)).to.equal('ok');
      await sleep(300);
      expect(n1.node.inspect('account/amy')!.outPending).to.equal(1);
      const reg = journal.ids().filter((id) => id.startsWith('$reg/'));
      expect(reg.length, 'a registry stream was written').to.equal(1);
      // n1 dies; nobody ever sends amy or zed a command again.
      n1.kill();
      await conns[0]!.close();
      journal.faults.beforeAppend = undefined;
      const n2 = await start('n2');
      await waitFor(
        'zed credited by a resend from the woken sender',
        () => journal.eventsOf('account/zed').some((e) => (e as { type: string }).type === 'Credited'),
        15_000,
      );
      expect(n2.node.inspect('account/amy'), 'amy was woken on n2').to.not.equal(undefined);
      await waitFor('amy acknowledged', () => n2.node.inspect('account/amy')?.outPending === 0, 5000);
      const credits = journal.eventsOf('account/zed').filter((e) => (e as { type: string }).type === 'Credited');
      expect(credits).to.have.length(1);
    } finally {
      for (const n of nodes) n.kill();
      for (const c of conns) await c.close().catch(() => undefined);
    }
  });
});
