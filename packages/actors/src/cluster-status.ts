/**
 * Cluster membership as the KV bucket shows it: nodes (heartbeats), the shards each owns, lease ages.
 *
 *   node packages/actors/dist/src/cluster-status.js --nats nats://127.0.0.1:4222 [--cluster NAME] [--json]
 *
 * `clusterStatus(natsUrl)` returns the data and `formatClusterStatus` the text, for the `bourse` CLI.
 */
import { pathToFileURL } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import type { HeartbeatValue, LeaseValue } from './cluster.js';
import { connectNats } from './nats-transport.js';

export interface ShardLeaseStatus {
  readonly shard: string;
  readonly revision: number;
  /** Fence token of the tenure (its first revision). */
  readonly token: number;
  /** Time since the last renewal (ms). */
  readonly leaseAgeMs: number;
  /** Time since the tenure began (ms). */
  readonly heldMs: number;
}

export interface NodeStatus {
  readonly node: string;
  readonly pid: number | undefined;
  /** Time since the last heartbeat (ms); undefined when the node has no live heartbeat but holds leases. */
  readonly heartbeatAgeMs: number | undefined;
  readonly upMs: number | undefined;
  readonly shards: readonly ShardLeaseStatus[];
}

export interface ClusterStatus {
  readonly cluster: string;
  readonly bucket: string;
  readonly leaseTtlMs: number;
  readonly nodes: readonly NodeStatus[];
  readonly at: number;
}

/** Reads every cluster bucket (`bourse-*`) on the server, or only `options.cluster`. */
export async function clusterStatus(natsUrl: string | NatsConnection, options: { cluster?: string } = {}): Promise<ClusterStatus[]> {
  const nc = typeof natsUrl === 'string' ? await connectNats(natsUrl, 'bourse-status') : natsUrl;
  try {
    const kvm = new Kvm(nc);
    const names: string[] = [];
    if (options.cluster !== undefined) names.push(`bourse-${options.cluster}`);
    else for await (const s of kvm.list()) if (s.bucket.startsWith('bourse-')) names.push(s.bucket);
    const out: ClusterStatus[] = [];
    for (const bucket of names.sort()) {
      const kv = await kvm.open(bucket);
      const st = await kv.status();
      const ttl = st.ttl;
      const now = Date.now();
      const dec = new TextDecoder();
      const beats = new Map<string, { v: HeartbeatValue; age: number }>();
      const leases = new Map<string, ShardLeaseStatus[]>();
      const keys: string[] = [];
      for await (const k of await kv.keys()) keys.push(k);
      for (const k of keys) {
        const e = await kv.get(k);
        if (e === null || e.operation !== 'PUT') continue;
        const age = now - e.created.getTime();
        if (ttl > 0 && age >= ttl) continue;
        if (k.startsWith('node.')) beats.set(k.slice(5), { v: JSON.parse(dec.decode(e.value)) as HeartbeatValue, age });
        else if (k.startsWith('shard.')) {
          const v = JSON.parse(dec.decode(e.value)) as LeaseValue;
          const list = leases.get(v.node) ?? [];
          list.push({ shard: k.slice(6), revision: e.revision, token: v.token || e.revision, leaseAgeMs: age, heldMs: now - v.since });
          leases.set(v.node, list);
        }
      }
      const nodes: NodeStatus[] = [];
      for (const id of [...new Set([...beats.keys(), ...leases.keys()])].sort()) {
        const b = beats.get(id);
        const shards = (leases.get(id) ?? []).sort((x, y) => shardOrder(x.shard, y.shard));
        nodes.push({ node: id, pid: b?.v.pid, heartbeatAgeMs: b?.age, upMs: b ? now - b.v.started : undefined, shards });
      }
      out.push({ cluster: bucket.slice('bourse-'.length), bucket, leaseTtlMs: ttl, nodes, at: now });
    }
    return out;
  } finally {
    if (typeof natsUrl === 'string') await nc.close();
  }
}

function shardOrder(a: string, b: string): number {
  const [ka, na] = [a.slice(0, a.lastIndexOf('.')), Number(a.slice(a.lastIndexOf('.') + 1))];
  const [kb, nb] = [b.slice(0, b.lastIndexOf('.')), Number(b.slice(b.lastIndexOf('.') + 1))];
  return ka < kb ? -1 : ka > kb ? 1 : na - nb;
}

const secs = (ms: number | undefined): string => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`);

/** Human-readable text, one block per cluster. */
export function formatClusterStatus(all: readonly ClusterStatus[]): string {
  if (all.length === 0) return 'no clusters (no bourse-* KV bucket on this server)\n';
  const lines: string[] = [];
  for (const c of all) {
    const owned = c.nodes.reduce((n, x) => n + x.shards.length, 0);
    lines.push(`cluster ${c.cluster}  bucket ${c.bucket}  lease ttl ${c.leaseTtlMs} ms  nodes ${c.nodes.length}  shards owned ${owned}`);
    for (const n of c.nodes) {
      const ages = n.shards.map((s) => s.leaseAgeMs);
      const maxAge = ages.length ? Math.max(...ages) : undefined;
      lines.push(
        `  node ${n.node}  pid ${n.pid ?? '-'}  up ${secs(n.upMs)}  heartbeat ${secs(n.heartbeatAgeMs)} ago  shards ${n.shards.length}  oldest lease renewal ${secs(maxAge)} ago`,
      );
      for (const s of n.shards) lines.push(`    ${s.shard.padEnd(14)} token ${String(s.token).padEnd(8)} renewed ${secs(s.leaseAgeMs)} ago  held ${secs(s.heldMs)}`);
    }
  }
  return lines.join('\n') + '\n';
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const url = arg('--nats') ?? process.env.BOURSE_NATS_URL ?? 'nats://127.0.0.1:4222';
  const cluster = arg('--cluster');
  const all = await clusterStatus(url, cluster ? { cluster } : {});
  process.stdout.write(argv.includes('--json') ? JSON.stringify(all) + '\n' : formatClusterStatus(all));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`cluster status: ${(e as Error).message}`);
    process.exit(1);
  });
}
