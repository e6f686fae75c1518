import { expect } from 'chai';
import { clusterStatus, formatClusterStatus } from '../src/cluster-status.js';
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
    expect(acked.size).to.equal(sent);
    const logs = e.logs();
    const errors = logs.filter((l) => l.ev === 'error');
    expect(errors, JSON.stringify(errors.slice(0, 3))).to.deep.equal([]);
    const n2stops = logs.filter((l) => l.ev === 'stop' && l.node === 'n2');
    expect(n2stops.length).to.be.greaterThan(0);
    for (const s of n2stops) expect(String(s.reason)).to.match(/^(node leaving|handoff to)/);
    expect(overlaps(servingIntervals(logs, new Map(), Date.now()))).to.deep.equal([]);
    const ledger = checkLedger(await readAccounts(e.journal, ACCOUNTS), acked, new Map());
    expect(ledger.problems).to.deep.equal([]);
    expect(ledger.lostAcked).to.equal(0);
    expect(ledger.duplicated).to.equal(0);
    expect(ledger.total).to.equal(acked.size);
  });
});
