/**
 * Test and bench plumbing for the multi-process cluster: a private nats-server, a private Postgres
 * schema (through `@bourse/store`'s compiled test helpers), node child processes, their logs.
 *
 * `@bourse/store` is not a dependency of `@bourse/actors` (store depends on actors); this test code
 * loads the store's compiled `dist` by path. Build first: `pnpm exec tsc -b packages/actors packages/store`.
 * Every process started here is stopped by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Journal } from '../src/index.js';

export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('repo root not found');
}

/** The parts of `@bourse/store` the cluster tests use (typed locally: no compile-time dependency). */
export interface StoreModule {
  openStore(o: { pg: string; schema: string; poolMax?: number; migrate?: boolean }): Promise<{ journal: Journal; close(): Promise<void> }>;
}
export interface StoreTesting {
  testPgUrl(): string;
  createTestTarget(d: 'pg'): Promise<{ options: { pg: string; schema: string }; drop(): Promise<void> }>;
}

export async function loadStore(): Promise<{ store: StoreModule; testing: StoreTesting }> {
  const dist = path.join(repoRoot(), 'packages/store/dist/src');
  if (!existsSync(path.join(dist, 'index.js'))) throw new Error(`${dist}/index.js missing: run pnpm exec tsc -b packages/actors packages/store`);
  const store = (await import(pathToFileURL(path.join(dist, 'index.js')).href)) as StoreModule;
  const testing = (await import(pathToFileURL(path.join(dist, 'testing.js')).href)) as StoreTesting;
  return { store, testing };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits for a child to exit; SIGKILLs it by pid after `ms`. */
export async function waitExit(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }, ms);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

export interface NatsServer {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** A private nats-server with JetStream on a free 127.0.0.1 port, data in a temporary directory. */
export async function startNatsServer(): Promise<NatsServer> {
  const bin = '/usr/sbin/nats-server';
  if (!existsSync(bin)) throw new Error(`${bin} not found (apt-get install nats-server)`);
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'bourse-nats-'));
  const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
  const url = `nats://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true)); // in use = listening
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('nats-server did not start');
    await sleep(50);
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        await waitExit(child, 5000);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** How a node process is configured (passed as JSON in env `BOURSE_NODE`). */
export interface NodeConfig {
  readonly nodeId: string;
  readonly natsUrl: string;
  readonly cluster: string;
  readonly pg: string;
  readonly schema: string;
  readonly shards: number;
  readonly logFile: string;
  readonly leaseTtlMs?: number;
  readonly windowUs?: number;
}

export interface NodeProc {
  readonly nodeId: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly started: number;
  ready: Promise<void>;
  exited: boolean;
  killedAt?: number;
}

/** The compiled node entry (children run compiled JS: fast start, no tsx in the child). */
export function nodeEntry(): string {
  const f = path.join(repoRoot(), 'packages/actors/dist/test/cluster-node-main.js');
  if (!existsSync(f)) throw new Error(`${f} missing: run pnpm exec tsc -b packages/actors packages/store`);
  return f;
}

export function startNode(cfg: NodeConfig): NodeProc {
  const child = spawn(process.execPath, [...(process.env.BOURSE_NODE_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BOURSE_NODE_PROF}`] : []), nodeEntry()], {
    env: { ...process.env, BOURSE_NODE: JSON.stringify(cfg) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const proc: NodeProc = { nodeId: cfg.nodeId, child, pid: child.pid!, started: Date.now(), ready: Promise.resolve(), exited: false };
  proc.ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (process.env.BOURSE_TEST_VERBOSE) process.stderr.write(`[${cfg.nodeId}] ${d.toString()}`);
    });
    child.once('exit', (code, sig) => {
      proc.exited = true;
      reject(new Error(`node ${cfg.nodeId} exited before ready (${code ?? sig})`));
    });
  });
  proc.ready.catch(() => undefined);
  return proc;
}

export function sigkill(p: NodeProc): number {
  const t = Date.now();
  p.killedAt = t;
  try {
    process.kill(p.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  return t;
}

/** A log line a node wrote (ClusterLogRecord or stats, with its pid). */
export type LogLine = { ev: string; node: string; pid: number; t: number; [k: string]: unknown };

export function readLog(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        return undefined; // a line cut by SIGKILL
      }
    })
    .filter((x): x is LogLine => x !== undefined);
}

export interface Interval {
  readonly shard: string;
  readonly node: string;
  readonly pid: number;
  readonly token: number;
  readonly from: number;
  readonly to: number;
}

/**
 * Serving intervals per shard from the nodes' logs. An interval a SIGKILLed process left open ends
 * at the earlier of its kill time and its last renewal deadline for that tenure; one still open at
 * the end ends at `endT`.
 */
export function servingIntervals(lines: readonly LogLine[], killedAt: ReadonlyMap<number, number>, endT: number): Interval[] {
  const open = new Map<string, { node: string; pid: number; token: number; from: number; deadline: number }>();
  const out: Interval[] = [];
  const k = (pid: number, shard: string): string => `${pid}|${shard}`;
  for (const l of lines) {
    if (l.ev === 'serve') open.set(k(l.pid, l.shard as string), { node: l.node, pid: l.pid, token: l.token as number, from: l.t, deadline: Infinity });
    else if (l.ev === 'stop') {
      const o = open.get(k(l.pid, l.shard as string));
      if (o !== undefined && o.token === l.token) {
        out.push({ shard: l.shard as string, node: o.node, pid: o.pid, token: o.token, from: o.from, to: l.t });
        open.delete(k(l.pid, l.shard as string));
      }
    } else if (l.ev === 'renew') {
      for (const [shard, token, deadline] of l.deadlines as [string, number, number][]) {
        const o = open.get(k(l.pid, shard));
        if (o !== undefined && o.token === token) o.deadline = deadline;
      }
    }
  }
  for (const [key, o] of open) {
    const killed = killedAt.get(o.pid);
    const end = killed !== undefined ? Math.min(killed, o.deadline) : endT;
    out.push({ shard: key.slice(key.indexOf('|') + 1), node: o.node, pid: o.pid, token: o.token, from: o.from, to: end });
  }
  return out;
}

/** Pairs of intervals of one shard, on different processes, that overlap in time. */
export function overlaps(intervals: readonly Interval[]): [Interval, Interval][] {
  const byShard = new Map<string, Interval[]>();
  for (const i of intervals) {
    const l = byShard.get(i.shard) ?? [];
    l.push(i);
    byShard.set(i.shard, l);
  }
  const bad: [Interval, Interval][] = [];
  for (const l of byShard.values()) {
    l.sort((a, b) => a.from - b.from);
    for (let i = 0; i < l.length; i++)
      for (let j = i + 1; j < l.length; j++) {
        const a = l[i]!;
        const b = l[j]!;
        if (a.pid !== b.pid && b.from < a.to) bad.push([a, b]);
      }
  }
  return bad;
}

/** The shards a process was serving at time `t`. */
export function servedAt(intervals: readonly Interval[], pid: number, t: number): Set<string> {
  return new Set(intervals.filter((i) => i.pid === pid && i.from <= t && t < i.to).map((i) => i.shard));
}

/** The last stats line of each process, summed. */
export function sumStats(lines: readonly LogLine[]): { fenced: number; conflicts: number; staleWriters: number; claims: number; losses: number } {
  const last = new Map<number, LogLine>();
  for (const l of lines) if (l.ev === 'stats') last.set(l.pid, l);
  const s = { fenced: 0, conflicts: 0, staleWriters: 0, claims: 0, losses: 0 };
  for (const l of last.values()) {
    s.fenced += (l.fenced as number) ?? 0;
    s.conflicts += (l.conflicts as number) ?? 0;
    s.staleWriters += (l.staleWriters as number) ?? 0;
    s.claims += (l.claims as number) ?? 0;
    s.losses += (l.losses as number) ?? 0;
  }
  return s;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
