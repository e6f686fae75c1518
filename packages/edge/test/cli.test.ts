import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { BourseClient } from '@bourse/client';
import { openStore } from '@bourse/store';
import { Demo, runDemo } from '../src/cli/demo.js';
import { runDemoTraders, runStart } from '../src/cli/start.js';
import { failureOf } from '../src/cli/main.js';
import type { VenueCore } from '@bourse/engine';
import { world } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled tests run from dist/test; tsx runs from test. Either way the compiled CLI is at dist/src/cli.
const pkg = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '..', '..') : path.resolve(here, '..');
const cli = path.join(pkg, 'dist', 'src', 'cli', 'main.js');
const bourse = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('cli - bourse', () => {
  it('cli - help lists the commands and exits 0', function () {
    this.timeout(30_000);
    const r = bourse('help');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.contain('start').and.to.contain('migrate');
  });

  it('cli - bad arguments get a one-line reason and exit 2, never a stack trace', function () {
    this.timeout(60_000);
    for (const args of [['frob'], ['migrate'], ['migrate', '--pglite', os.tmpdir(), '--schema', 's'], ['demo', '--seconds', 'x'], ['start', '--nope'], ['load'], ['load', '--url', 'http://x'], ['sim'], ['sim', '--seed', '1', '--seeds', '1..2'], ['sim', '--seeds', '3..1'], ['sim', '--seed', '1', '--faults', 'bogus'], ['sim', '--seeds', '1..2', '--workers', '0'], ['sim', '--seeds', '1..2', '--workers', 'x'], ['cluster'], ['cluster', 'status'], ['cluster', 'status', '--nats', 'http://x']]) {
      const r = bourse(...args);
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr, args.join(' ')).to.match(/^bourse/);
      expect(r.stderr, args.join(' ')).to.not.contain('    at ');
    }
  });

  it('cli - a failed command prints one line whatever was thrown: a numeric code, a string, an exit code', () => {
    expect(failureOf('load', Object.assign(new Error('invalid API key'), { code: 200 }))).to.deep.equal({ line: 'bourse load: invalid API key (code 200)', exitCode: 1 });
    expect(failureOf('migrate', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).to.deep.equal({ line: 'bourse migrate: connect ECONNREFUSED 127.0.0.1:5432', exitCode: 1 });
    expect(failureOf('sim', 'boom')).to.deep.equal({ line: 'bourse sim: boom', exitCode: 1 });
    expect(failureOf('start', Object.assign(new Error('data directory in use'), { exitCode: 3 })).exitCode).to.equal(3);
    expect(failureOf('load', Object.assign(new Error('bad\nhint'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }))).to.deep.equal({ line: 'bourse load: bad', exitCode: 2 });
  });

  // An error with a numeric code (the client's AuthError: Reject codes are numbers) reached the
  // handler's `code.startsWith`, and the CLI died with a TypeError stack instead of the reason.
  it('cli - load with a key the edge refuses exits 1 with one line naming the key, the code and what to do', async function () {
    this.timeout(60_000);
    const w = await world();
    try {
      const r = await new Promise<{ status: number | null; stderr: string; stdout: string }>((resolve) => {
        const child = spawn(process.execPath, [cli, 'load', '--url', w.edge.url, '--key', 'no-such-key', '--duration', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('exit', (status) => resolve({ status, stderr, stdout }));
      });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.match(/^bourse load: the edge at ws:\/\/127\.0\.0\.1:\d+ refused key 'no-such-key': invalid API key \(code \d+\); pass --key/);
      expect(r.stderr).to.not.contain('    at ');
    } finally {
      await w.close();
    }
  });

  it('cli - sim runs a seed and prints one JSON summary line last; the same seed gives the same hash', function () {
    this.timeout(120_000);
    const runs = [1, 2].map(() => bourse('sim', '--seed', '7', '--steps', '600', '--json'));
    for (const r of runs) expect(r.status, r.stderr).to.equal(0);
    const [a, b] = runs.map((r) => JSON.parse(r.stdout.trim().split('\n').pop()!));
    expect(a).to.include({ seed: 7, steps: 600 });
    expect(a.violations).to.deep.equal([]);
    expect(a.invariantsChecked).to.be.greaterThan(0);
    expect(a.finalStateHash).to.be.a('string').and.equal(b.finalStateHash);
  });

  it('cli - sim --workers 1 and --workers 2 print the same per-seed lines (hashes) in seed order; the JSON summary adds workers and both speeds', function () {
    this.timeout(180_000);
    const lines = (w: string) => {
      const r = bourse('sim', '--seeds', '1..3', '--steps', '400', '--workers', w);
      expect(r.status, r.stderr).to.equal(0);
      return r.stdout.trim().split('\n');
    };
    const one = lines('1');
    const two = lines('2');
    expect(one.slice(0, -1).map((l) => /^seed (\d+): ok \(400 steps, \d+ checks, hash [0-9a-f]+\)$/.exec(l)?.[1])).to.deep.equal(['1', '2', '3']);
    expect(two.slice(0, -1)).to.deep.equal(one.slice(0, -1));
    const [a, b] = [one, two].map((ls) => JSON.parse(ls.at(-1)!));
    expect(a.workers).to.equal(1);
    expect(b.workers).to.equal(2);
    for (const k of ['steps', 'faultsInjected', 'invariantsChecked', 'violations']) expect(b[k], k).to.deep.equal(a[k]);
    expect(b.stepsPerSec).to.be.a('number').above(0);
    expect(b.stepsPerSecPerWorker).to.be.a('number').above(0);
    const json = bourse('sim', '--seeds', '4..5', '--steps', '200', '--workers', '2', '--json');
    expect(json.status, json.stderr).to.equal(0);
    expect(json.stdout.trim().split('\n'), 'one JSON line, nothing else').to.have.length(1);
    expect(JSON.parse(json.stdout)).to.include({ workers: 2, steps: 400 }).and.to.include.keys('stepsPerSec', 'stepsPerSecPerWorker', 'wallMs');
  });

  it('cli - sim with worker threads stops on SIGINT: workers terminated, exit code 130, no hang', async function () {
    this.timeout(60_000);
    const child = spawn(process.execPath, [cli, 'sim', '--seeds', '1..200', '--steps', '2000', '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Interrupt once the sweep is running on its workers (a seed has reported), not after a fixed
    // delay: on a slow machine the CLI was still loading at 2 s, before its SIGINT handler existed.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no seed finished within 40 s; stderr: ${stderr}`)), 40_000);
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (/^seed \d+: ok/m.test(stdout)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const t0 = Date.now();
    child.kill('SIGINT');
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(killer);
    expect(code, stderr).to.equal(130);
    expect(stderr).to.contain('interrupted');
    expect(Date.now() - t0, 'exits promptly, not after the sweep').to.be.below(15_000);
  });

  it('cli - migrate --pglite creates the schema, twice without error', function () {
    this.timeout(120_000);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bourse-cli-'));
    try {
      for (let i = 0; i < 2; i++) {
        const r = bourse('migrate', '--pglite', dir);
        expect(r.status, r.stderr).to.equal(0);
        expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).to.include({ migrated: true });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cli - migrate --pg --schema creates and migrates that schema, twice without error', async function () {
    this.timeout(120_000);
    const testing = (await import(pathToFileURL(path.join(pkg, '..', 'store', 'dist', 'src', 'testing.js')).href)) as { testPgUrl(): string; uniqueSchema(prefix?: string): string };
    const url = testing.testPgUrl();
    const schema = testing.uniqueSchema('bourse_cli');
    try {
      const reports = [0, 1].map(() => {
        const r = bourse('migrate', '--pg', url, '--schema', schema);
        expect(r.status, r.stderr).to.equal(0);
        return JSON.parse(r.stdout.trim().split('\n').pop()!) as { applied: string[]; latest: string };
      });
      expect(reports[0]!.applied, 'a fresh schema gets every migration').to.include('001_journal');
      expect(reports[1]!.applied, 'the second run has nothing left to do').to.deep.equal([]);
    } finally {
      const store = await openStore({ pg: url, schema });
      await store.db.schema.dropSchema(schema).ifExists().cascade().execute();
      await store.close();
    }
  });

  it('cli - migrate against an unreachable server fails fast with a clear message', function () {
    this.timeout(30_000);
    const r = bourse('migrate', '--pg', 'postgres://postgres@127.0.0.1:1/test');
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain('unreachable');
  });

  it('cli - start brings up the embedded venue: /health answers 200 and an SDK client sees a quote within seconds', async function () {
    this.timeout(120_000);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bourse-start-'));
    const lines: string[] = [];
    const stop = new AbortController();
    let resolveUp!: (url: string) => void;
    const up = new Promise<string>((r) => (resolveUp = r));
    const running = runStart({ port: 0, data: dir, demo: true, seconds: 60, signal: stop.signal, print: (l) => { lines.push(l); const m = /^Bourse is up: (ws:\/\/\S+)/.exec(l); if (m) resolveUp(m[1]!); } });
    try {
      const url = await Promise.race([up, running.then(() => { throw new Error(`start ended early:\n${lines.join('\n')}`); })]);
      const health = await fetch(url.replace(/^ws/, 'http') + '/health');
      expect(health.status).to.equal(200);
      expect(lines.join('\n')).to.contain('demo-mm').and.to.contain('demo-alice');
      const client = await BourseClient.connect({ url, key: 'demo-alice', reconnect: false });
      try {
        const quote = await new Promise<{ bidPrice: number; askPrice: number }>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('no quote within 20 s')), 20_000);
          void client.onQuote('BTC-USD', (q) => { if (q.bidPrice > 0 && q.askPrice > 0) { clearTimeout(t); resolve(q); } });
        });
        expect(quote.bidPrice).to.be.below(quote.askPrice);
      } finally {
        await client.close();
      }
    } finally {
      stop.abort();
      await running.catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
    expect(lines.at(-1)).to.equal('stopped.');
  });

  it('cli - the demo traders survive failing steps: counted, reported, the loop goes on, no unhandled rejection', async function () {
    this.timeout(10_000);
    // A venue whose asks fail for a while (as when the store is unavailable and asks time out).
    let calls = 0;
    const failing = (): boolean => ++calls <= 40;
    const venue = {
      cancelOrder: async () => {
        if (failing()) throw new Error('no reply from book/BTC-USD within 15000 ms');
        return { ok: true };
      },
      placeOrder: async () => {
        if (failing()) throw new Error('no reply from account/mm-1 within 15000 ms');
        return { ok: true, orderId: calls };
      },
      l2Snapshot: () => undefined,
      setMarkPrice: async () => ({ ok: true }),
    } as unknown as VenueCore;
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const reported: unknown[] = [];
    try {
      const t = runDemoTraders(venue, 1, (e) => reported.push(e));
      const deadline = Date.now() + 5_000;
      while (t.stats.orders < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      await t.stop();
      await new Promise((r) => setImmediate(r));
      expect(t.stats.failedSteps).to.be.at.least(1);
      expect(reported).to.have.length(t.stats.failedSteps);
      expect(t.stats.orders, 'orders placed after the failures').to.be.at.least(100);
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('cli - demo runs the engine core in memory: quotes, trades, and every asset conserved each second', async function () {
    this.timeout(30_000);
    const lines: string[] = [];
    await runDemo({ seconds: 2, seed: 3, stepsPerSec: 10, print: (l) => lines.push(l) });
    const ticks = lines.filter((l) => /^\[\s*\d+s\]/.test(l));
    expect(ticks).to.have.length(2);
    for (const l of ticks) {
      expect(l).to.contain('assets conserved');
      expect(l).to.match(/BTC-USD \$\d+\.\d\d x \d+ \/ \$\d+\.\d\d x \d+/);
    }
    expect(lines.at(-1)).to.match(/stopped: \d+ orders, [1-9]\d* trades/);
  });

  it('cli - the demo is deterministic: the same seed gives the same books and ledgers', () => {
    const hashes = (seed: number) => {
      const d = new Demo(seed);
      for (let i = 0; i < 200; i++) d.step(50);
      return [...d.venue.books.values(), ...d.venue.ledgers.values(), ...d.venue.marketData.values()].map((h) => (h.machine as { stateHash(s: unknown): string }).stateHash(h.state));
    };
    expect(hashes(11)).to.deep.equal(hashes(11));
    expect(hashes(11)).to.not.deep.equal(hashes(12));
  });
});
