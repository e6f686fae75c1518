import { expect } from 'chai';
import { ActorNode, AskTimeoutError, InProcessTransport, MemoryJournal, RemoteActorError, UnreachableError } from '../src/index.js';
import { accountKind, sleep } from './bank.js';

/** Two nodes on one in-process transport, splitting the accounts by a fixed placement. */
describe('actors - nodes over a transport', () => {
  const nodes: ActorNode[] = [];
  afterEach(() => {
    for (const n of nodes.splice(0)) n.kill();
  });

  it('actors - asks and reliable transfers cross nodes over the transport, and survive a node kill', async () => {
    const journal = new MemoryJournal();
    const transport = new InProcessTransport();
    const owner = (a: string): string => (a < 'account/m' ? 'n1' : 'n2');
    const make = (id: string): ActorNode => {
      const n = new ActorNode({ nodeId: id, journal, transport, kinds: [accountKind], serves: (a) => owner(a) === id, reliable: { resendMs: 5 } });
      nodes.push(n);
      return n;
    };
    const n1 = make('n1');
    let n2 = make('n2');
    // n1 asks an account n2 hosts: the reply crosses the transport.
    expect(await n1.ask('account/zed', { type: 'Deposit', depositId: 'd', amount: 100 }, 1000)).to.equal('ok');
    expect(n1.inspect('account/zed')).to.equal(undefined);
    expect(n2.inspect('account/zed')!.committedSeq).to.equal(1);
    await n1.ask('account/amy', { type: 'Deposit', depositId: 'd', amount: 100 }, 1000);
    // Transfers both ways, with n2 killed and replaced while they are in flight.
    const ps: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      ps.push(n1.ask('account/amy', { type: 'Transfer', transferId: `a${i}`, to: 'zed', amount: 1 }, 1000));
      ps.push(n1.ask('account/zed', { type: 'Transfer', transferId: `z${i}`, to: 'amy', amount: 2 }, 1000).catch((e: unknown) => e));
    }
    await sleep(1);
    n2.kill();
    n2 = make('n2');
    n2.wake(['account/zed']);
    const answers = await Promise.all(ps);
    // Asks that hit the killed node failed (outcome unknown); retry them: answered, never re-run.
    for (let i = 0; i < 20; i++) {
      const r = answers[2 * i + 1];
      if (r instanceof Error) {
        expect(r).to.satisfy((e: unknown) => e instanceof RemoteActorError || e instanceof UnreachableError || e instanceof AskTimeoutError);
        expect(await n1.ask('account/zed', { type: 'Transfer', transferId: `z${i}`, to: 'amy', amount: 2 }, 1000)).to.equal('ok');
      }
    }
    for (const n of nodes) await n.quiescent();
    const amy = (await n1.ask('account/amy', { type: 'Balance' }, 1000)) as number;
    const zed = (await n1.ask('account/zed', { type: 'Balance' }, 1000)) as number;
    expect(amy + zed).to.equal(200);
    expect(amy).to.equal(100 - 20 + 40);
  });

  it('actors - handoff: the old owner releases (commits what it decided, forwards its queue), then the new owner serves', async () => {
    let slow = true;
    const journal = new MemoryJournal({ faults: { beforeAppend: () => (slow ? sleep(5) : undefined) } });
    const transport = new InProcessTransport();
    const owners = new Map<string, string>([
      ['account/x', 'n1'],
      ['account/y', 'n1'],
    ]);
    const make = (id: string): ActorNode => {
      const n = new ActorNode({ nodeId: id, journal, transport, kinds: [accountKind], serves: (a) => (owners.get(a) ?? 'n1') === id });
      nodes.push(n);
      return n;
    };
    const n1 = make('n1');
    const n2 = make('n2');
    await n1.ask('account/x', { type: 'Deposit', depositId: 'd0', amount: 1 }, 1000);
    // Commands in flight and queued on n1 when the shard moves.
    const ps: Promise<unknown>[] = [];
    for (let i = 1; i <= 50; i++) ps.push(n1.ask('account/x', { type: 'Deposit', depositId: `d${i}`, amount: 1 }, 5000));
    // account/y is still recovering on n1 (slow read), so its commands wait in n1's stash.
    let readGate!: () => void;
    const readOpen = new Promise<void>((r) => (readGate = r));
    journal.faults.beforeRead = (id) => (id === 'account/y' ? readOpen : undefined);
    const ys: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) ys.push(n1.ask('account/y', { type: 'Deposit', depositId: `y${i}`, amount: 1 }, 5000));
    await sleep(1);
    expect(n1.inspect('account/y')!.status).to.equal('recovering');
    owners.set('account/x', 'n2');
    owners.set('account/y', 'n2');
    journal.faults.beforeRead = undefined;
    const released = await n1.release((a) => owners.get(a) === 'n2');
    expect(released).to.equal(2);
    readGate();
    for (const r of await Promise.all(ys)) expect(r).to.equal('ok');
    expect(await n2.ask('account/y', { type: 'Balance' }, 1000)).to.equal(10);
    expect(n1.inspect('account/x')).to.equal(undefined);
    slow = false;
    for (let i = 51; i <= 60; i++) ps.push(n1.ask('account/x', { type: 'Deposit', depositId: `d${i}`, amount: 1 }, 5000));
    for (const r of await Promise.all(ps)) expect(r).to.equal('ok');
    expect(await n2.ask('account/x', { type: 'Balance' }, 1000)).to.equal(61);
    const ids = journal.eventsOf('account/x').map((e) => (e as { depositId: string }).depositId);
    expect(new Set(ids).size).to.equal(61);
  });
});
