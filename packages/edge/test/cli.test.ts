import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { Demo, runStart } from '../src/cli/start.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled tests run from dist/test; tsx runs from test. Either way the compiled CLI is at dist/src/cli.
const pkg = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '..', '..') : path.resolve(here, '..');
const cli = path.join(pkg, 'dist', 'src', 'cli', 'main.js');
const bourse = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('cli - bourse', () => {
  it('cli - help lists the commands and exits 0', () => {
    const r = bourse('help');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.contain('start').and.to.contain('migrate');
  });

  it('cli - bad arguments get a one-line reason and exit 2, never a stack trace', () => {
    for (const args of [['frob'], ['migrate'], ['start', '--seconds', 'x'], ['start', '--nope']]) {
      const r = bourse(...args);
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr, args.join(' ')).to.match(/^bourse/);
      expect(r.stderr, args.join(' ')).to.not.contain('    at ');
    }
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

  it('cli - migrate against an unreachable server fails fast with a clear message', () => {
    const r = bourse('migrate', '--pg', 'postgres://postgres@127.0.0.1:1/test');
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain('unreachable');
  });

  it('cli - start runs the embedded venue: quotes, trades, and every asset conserved each second', async function () {
    this.timeout(30_000);
    const lines: string[] = [];
    await runStart({ seconds: 2, seed: 3, stepsPerSec: 10, print: (l) => lines.push(l) });
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
