#!/usr/bin/env node
// Makes sure the services the test suite and cluster mode need are reachable, starting what is
// missing. It never stops anything it did not start, and binds only to 127.0.0.1.
//
//   node ops/services.mjs ensure [--quiet]   start whatever is missing, write .bourse/services.json
//   node ops/services.mjs status             print what is reachable
//
// Order of preference, per service:
//   1. already listening on the standard port (127.0.0.1:5432 Postgres, 127.0.0.1:4222 NATS);
//   2. the machine's own service, started the way ../shared/SERVICES.md says;
//   3. a private instance on a free port, data under .bourse/ (Postgres via initdb, nats-server -js);
//   4. if the binaries are missing and we are root on Debian: apt-get install, then 2 or 3.
// Tests read the URLs from BOURSE_PG_URL / BOURSE_NATS_URL, else .bourse/services.json, else defaults
// (see packages/store/src/testing.ts and packages/actors/src/testing.ts).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = path.join(root, '.bourse');
const quiet = process.argv.includes('--quiet');
const log = (...a) => { if (!quiet) console.error('[services]', ...a); };

function probe(port, host = '127.0.0.1', timeoutMs = 500) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function waitFor(port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await probe(port)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

function which(bin) {
  try { return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || null; } catch { return null; }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.once('error', reject);
  });
}

function tryRun(cmd, args) {
  try { execFileSync(cmd, args, { stdio: quiet ? 'ignore' : 'inherit', timeout: 60_000 }); return true; } catch { return false; }
}

function aptInstall(pkgs) {
  if (process.getuid?.() !== 0 || !which('apt-get')) return false;
  log(`installing ${pkgs.join(' ')} with apt-get`);
  tryRun('apt-get', ['update', '-qq']);
  return tryRun('apt-get', ['install', '-y', '-qq', ...pkgs]);
}

function pgBinDir() {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(path.join(base, v, 'bin', 'initdb'))) return path.join(base, v, 'bin');
  return null;
}

async function ensurePostgres() {
  if (await probe(5432)) return 'postgres://postgres@127.0.0.1:5432/test';
  if (!pgBinDir() && !which('pg_ctlcluster')) aptInstall(['postgresql']);
  if (which('pg_ctlcluster') && existsSync('/etc/postgresql')) {
    for (const v of readdirSync('/etc/postgresql')) {
      log(`starting the machine's Postgres ${v}`);
      tryRun('pg_ctlcluster', ['--skip-systemctl-redirect', v, 'main', 'start']);
    }
    if (await waitFor(5432, 15_000)) {
      tryRun('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-c', 'CREATE DATABASE test', 'postgres']);
      return 'postgres://postgres@127.0.0.1:5432/test';
    }
  }
  const bin = pgBinDir();
  if (!bin) throw new Error('Postgres is not running and no initdb was found; install postgresql');
  const dir = path.join(stateDir, 'pg');
  const port = await freePort();
  const asUser = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  mkdirSync(dir, { recursive: true });
  if (asUser.length) tryRun('chown', ['-R', 'postgres', dir]);
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    log(`initdb a private Postgres in ${dir}`);
    execFileSync(asUser[0] ?? path.join(bin, 'initdb'), [...asUser.slice(1), ...(asUser.length ? [path.join(bin, 'initdb')] : []), '-D', dir, '-U', 'postgres', '--auth=trust'], { stdio: 'ignore' });
  }
  log(`starting a private Postgres on 127.0.0.1:${port}`);
  const args = ['-D', dir, '-l', path.join(dir, 'log'), '-o', `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir}`, 'start'];
  execFileSync(asUser[0] ?? path.join(bin, 'pg_ctl'), [...asUser.slice(1), ...(asUser.length ? [path.join(bin, 'pg_ctl')] : []), ...args], { stdio: 'ignore' });
  if (!(await waitFor(port, 20_000))) throw new Error('private Postgres did not start');
  tryRun(path.join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'test']);
  return `postgres://postgres@127.0.0.1:${port}/test`;
}

async function ensureNats() {
  if (await probe(4222)) return 'nats://127.0.0.1:4222';
  let bin = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : which('nats-server');
  if (!bin && aptInstall(['nats-server'])) bin = which('nats-server') ?? '/usr/sbin/nats-server';
  if (!bin) throw new Error('NATS is not running and nats-server was not found; install nats-server');
  if (which('start-stop-daemon') && process.getuid?.() === 0 && existsSync('/var/lib')) {
    log("starting the machine's nats-server");
    tryRun('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', bin, '--',
      '-a', '127.0.0.1', '-p', '4222', '-js', '-sd', '/var/lib/nats-server', '-l', '/var/log/nats-server.log']);
    if (await waitFor(4222, 10_000)) return 'nats://127.0.0.1:4222';
  }
  const port = await freePort();
  const dir = path.join(stateDir, 'nats');
  mkdirSync(dir, { recursive: true });
  log(`starting a private nats-server on 127.0.0.1:${port}`);
  const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, '-l', path.join(dir, 'log')], { detached: true, stdio: 'ignore' });
  child.unref();
  writeFileSync(path.join(dir, 'pid'), String(child.pid));
  if (!(await waitFor(port, 10_000))) throw new Error('private nats-server did not start');
  return `nats://127.0.0.1:${port}`;
}

async function main() {
  const cmd = process.argv[2] ?? 'ensure';
  if (cmd === 'status') {
    console.log(JSON.stringify({ postgres5432: await probe(5432), nats4222: await probe(4222) }));
    return;
  }
  if (cmd !== 'ensure') { console.error('usage: node ops/services.mjs ensure|status [--quiet]'); process.exit(2); }
  mkdirSync(stateDir, { recursive: true });
  let previous = {};
  try { previous = JSON.parse(readFileSync(path.join(stateDir, 'services.json'), 'utf8')); } catch { /* first run */ }
  const out = { ...previous };
  const errors = [];
  for (const [key, fn] of [['pgUrl', ensurePostgres], ['natsUrl', ensureNats]]) {
    try { out[key] = await fn(); } catch (e) { errors.push(`${key}: ${e.message}`); delete out[key]; }
  }
  writeFileSync(path.join(stateDir, 'services.json'), JSON.stringify(out, null, 2) + '\n');
  log(JSON.stringify(out));
  if (errors.length) { console.error('[services] not available:', errors.join('; ')); process.exit(1); }
}

main().catch((e) => { console.error('[services]', e); process.exit(1); });
