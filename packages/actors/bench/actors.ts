/**
 * Actor runtime throughput, in process.
 *
 *   node packages/actors/dist/bench/actors.js            (after `pnpm exec tsc -b packages/actors`)
 *   pnpm exec tsx packages/actors/bench/actors.ts
 *   pnpm run bench:actors --pg URL --nats URL              (adds the cluster part, bench/cluster.ts)
 *
 * Prints its method, then one JSON line last. With `--pg` or `--nats` it then runs the cluster part
 * (three node processes; needs `packages/store` built) and the last line also carries
 * `clusterCommandsPerSec`, `failoverMs`, `lostAcked` and `duplicated`.
 */
import { dispatch, spawn, start, stop } from 'nact';
import type { StateMachine } from '@bourse/schemas';
import { ActorNode, MemoryJournal } from '../src/index.js';

const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 4_000_000);
const CHUNK = 50_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PERSISTED_MESSAGES = Number(process.env.BENCH_PERSISTED_MESSAGES ?? 400_000);

interface Counter {
  n: number;
}
type Add = { by: number };

/** A counter whose step emits one event per command, so the runtime does its full per-event work. */
const counter: StateMachine<Counter, Add, Add> = {
  kind: 'counter',
  init: () => ({ n: 0 }),
  step(s, c, out) {
    s.n += c.by;
    out.push(c);
    return s;
  },
  apply(s, e) {
    s.n += e.by;
    return s;
  },
  snapshot: (s) => ({ n: s.n }),
  restore: (x) => ({ n: (x as Counter).n }),
  stateHash: (s) => String(s.n),
};

const yieldTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function runtimeRun(persistent: boolean, messages: number): Promise<{ perSec: number; appends: number }> {
  const journal = new MemoryJournal();
  const node = new ActorNode({
    nodeId: persistent ? 'bench-p' : 'bench',
    journal,
    kinds: [{ kind: 'counter', machine: counter, persistent }],
    snapshotEventsEvery: 0,
    groupCommit: { windowUs: 500, batchEventsMax: 5000 },
  });
  const addrs = Array.from({ length: ENTITIES }, (_, i) => `counter/c${i}`);
  const cmd: Add = { by: 1 };
  // Warm up: activate every entity (and recover, when persistent).
  for (const a of addrs) node.tell(a, cmd);
  await node.quiescent(60_000);
  const base = node.stats.commands;
  const t0 = performance.now();
  let sent = 0;
  while (sent < messages) {
    const n = Math.min(CHUNK, messages - sent);
    for (let i = 0; i < n; i++) node.tell(addrs[(sent + i) % ENTITIES]!, cmd);
    sent += n;
    await yieldTurn();
  }
  while (node.stats.commands - base < messages || !node.isQuiescent()) await yieldTurn();
  const ms = performance.now() - t0;
  let total = 0;
  for (const a of addrs) total += (node.inspect(a)!.state as Counter).n;
  if (total !== messages + ENTITIES) throw new Error(`lost messages: ${total} != ${messages + ENTITIES}`);
  const appends = journal.appendCalls;
  await node.stop();
  return { perSec: (messages / ms) * 1000, appends };
}

/** Request/reply: `ask` with up to `window` outstanding, replies released after the (in-memory) commit. */
async function askRun(persistent: boolean, asks: number, window: number): Promise<number> {
  const node = new ActorNode({
    nodeId: 'bench-ask',
    journal: new MemoryJournal(),
    kinds: [{ kind: 'counter', machine: counter, persistent, reply: (s: Counter) => s.n }],
    snapshotEventsEvery: 0,
  });
  const addrs = Array.from({ length: ENTITIES }, (_, i) => `counter/c${i}`);
  await Promise.all(addrs.map((a) => node.ask(a, { by: 0 }, 10_000)));
  const cmd: Add = { by: 1 };
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < asks) {
      const i = next++;
      await node.ask(addrs[i % ENTITIES]!, cmd, 10_000);
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const ms = performance.now() - t0;
  await node.stop();
  return (asks / ms) * 1000;
}

/** The peer: plain nact, one nact message per command. */
async function bareNactRun(messages: number): Promise<number> {
  const system = start();
  let done = 0;
  const refs = Array.from({ length: ENTITIES }, (_, i) =>
    spawn(system, (s: Counter, m: Add) => {
      s.n += m.by;
      done++;
      return s;
    }, `c${i}`, { initialState: { n: 0 } }),
  );
  const cmd: Add = { by: 1 };
  const t0 = performance.now();
  let sent = 0;
  while (sent < messages) {
    const n = Math.min(CHUNK, messages - sent);
    for (let i = 0; i < n; i++) dispatch(refs[(sent + i) % ENTITIES]!, cmd);
    sent += n;
    await yieldTurn();
  }
  while (done < messages) await yieldTurn();
  const ms = performance.now() - t0;
  stop(system);
  return (messages / ms) * 1000;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(
  `method: ${ENTITIES} counter entities on one ActorNode (RealClock, nact-hosted, one event per command); ` +
    `${MESSAGES} tell()s round-robin in chunks of ${CHUNK} with an event-loop turn between chunks; timed from first send ` +
    `until every command is applied; 1 warm-up pass (activation) then median of ${ROUNDS} rounds. ` +
    `Peer: bare nact, one dispatch per command, ${MESSAGES / 4} messages. ` +
    `Persisted: same workload through the group commit into MemoryJournal (window 500 us, 5000 events), ${PERSISTED_MESSAGES} messages. ` +
    `Asks: ${PERSISTED_MESSAGES} ask()s (half that when persisted) from 1000 concurrent callers, each awaiting its reply; no warm-up beyond activation.`,
);
const inProc: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const { perSec } = await runtimeRun(false, MESSAGES);
  inProc.push(perSec);
  console.log(`  round ${r + 1}: runtime in-process ${Math.round(perSec).toLocaleString('en-US')} msgs/s`);
}
const nact = await bareNactRun(MESSAGES / 4);
console.log(`  bare nact (one message per command): ${Math.round(nact).toLocaleString('en-US')} msgs/s`);
const asksMem = await askRun(false, PERSISTED_MESSAGES, 1000);
console.log(`  ask (not persisted, 1000 outstanding): ${Math.round(asksMem).toLocaleString('en-US')} asks/s`);
const asksPersisted = await askRun(true, PERSISTED_MESSAGES / 2, 1000);
console.log(`  ask (persisted via group commit, 1000 outstanding): ${Math.round(asksPersisted).toLocaleString('en-US')} asks/s`);
const persisted = await runtimeRun(true, PERSISTED_MESSAGES);
console.log(`  persisted via group commit (MemoryJournal): ${Math.round(persisted.perSec).toLocaleString('en-US')} cmds/s in ${persisted.appends} appends`);
const inProcess = {
    inProcessMsgsPerSec: Math.round(median(inProc)),
    bareNactMsgsPerSec: Math.round(nact),
    memoryJournalPersistedCmdsPerSec: Math.round(persisted.perSec),
    inProcessAsksPerSec: Math.round(asksMem),
    memoryJournalAsksPerSec: Math.round(asksPersisted),
    entities: ENTITIES,
    messages: MESSAGES,
};
const argOf = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
if (argOf('--pg') === undefined && argOf('--nats') === undefined) console.log(JSON.stringify(inProcess));
else {
  const { runClusterBench } = await import('./cluster.js');
  console.log(
    `cluster method: three node processes (toy bank accounts, 64 shards, 3000 accounts, 6000 closed-loop callers) on NATS ${argOf('--nats') ?? 'nats://127.0.0.1:4222'} ` +
      `and Postgres (private schema); client in this process; deposits acked after commit; then SIGKILLs with restarts under a deposit+transfer load.`,
  );
  const c = await runClusterBench({ natsUrl: argOf('--nats') ?? 'nats://127.0.0.1:4222', pgUrl: argOf('--pg') });
  console.log(
    JSON.stringify({
      inProcessMsgsPerSec: inProcess.inProcessMsgsPerSec,
      clusterCommandsPerSec: c.clusterCommandsPerSec,
      failoverMs: c.failoverMs,
      lostAcked: c.lostAcked,
      duplicated: c.duplicated,
      failoversMs: c.failoversMs,
      uncredited: c.uncredited,
      fencedBatches: c.fencedBatches,
      sequenceConflicts: c.sequenceConflicts,
      clusterTransfersPerSecDuringKills: c.transfersPerSec,
      bareNactMsgsPerSec: inProcess.bareNactMsgsPerSec,
      memoryJournalPersistedCmdsPerSec: inProcess.memoryJournalPersistedCmdsPerSec,
    }),
  );
}
