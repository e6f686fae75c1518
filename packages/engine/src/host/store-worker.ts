/**
 * The store on its own thread: opens `@bourse/store` (PGlite or pg) in a worker and serves the
 * `Journal`, the read models and the projection runner to the engine thread over messages.
 *
 * Why: PGlite runs its WASM Postgres and its file I/O synchronously on the thread that calls it. In
 * the engine's thread it took about half of the CPU at full load (bench/gateway.ts profile), so the
 * actors, the machines and the store queued behind each other on one core. Here they overlap on two.
 *
 * Protocol: `{ id, op, args }` → `{ id, ok, value }` or `{ id, ok: false, error }`; journal errors
 * keep their class (see `toError` in worker-store.ts) so the group commit can tell a conflict from
 * a failure.
 */
import { parentPort } from 'node:worker_threads';
import type { JournalPage } from '@bourse/actors';
import { JournalConflictError, JournalFencedError } from '@bourse/actors';
import { openStore, ProjectionRunner, allProjections } from '@bourse/store';
import type { Store } from '@bourse/store';
import { forHostJournal } from './projections.js';

interface Request {
  readonly id: number;
  readonly op: string;
  readonly args: unknown[];
}

let store: Store | undefined;
let projections: { stop(): Promise<void> } | undefined;
/** Appends received: the projection runner catches up faster while this stands still. */
let appendsSeen = 0;
const cursors = new Map<number, AsyncIterator<JournalPage>>();
let nextCursor = 1;

function errorOf(e: unknown): unknown {
  if (e instanceof JournalConflictError) return { name: e.name, message: e.message, conflicts: e.conflicts };
  if (e instanceof JournalFencedError) return { name: e.name, message: e.message, scope: e.scope, token: e.token, storedToken: e.storedToken };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

async function handle(r: Request): Promise<unknown> {
  const a = r.args;
  if (r.op === 'open') {
    store = await openStore(a[0] as never);
    return store.dialect;
  }
  const s = store!;
  const j = s.journal;
  switch (r.op) {
    case 'appendPrepared':
      appendsSeen++;
      await j.appendPrepared(a[0] as never);
      return { ...j.checkpointStats }; // for the engine thread's /metrics
    case 'readOpen': {
      const id = nextCursor++;
      cursors.set(id, j.read(a[0] as string, a[1] as number, a[2] as never)[Symbol.asyncIterator]());
      return id;
    }
    case 'readNext': {
      const it = cursors.get(a[0] as number);
      if (!it) return null;
      const n = await it.next();
      if (n.done) {
        cursors.delete(a[0] as number);
        return null;
      }
      return n.value;
    }
    case 'readClose': {
      const it = cursors.get(a[0] as number);
      cursors.delete(a[0] as number);
      await it?.return?.();
      return null;
    }
    case 'highestSeq':
      return j.highestSeq(a[0] as string);
    case 'highestSeqs':
      return j.highestSeqs(a[0] as string[]);
    case 'resolveAppend':
      return j.resolveAppend(a[0] as never);
    case 'saveSnapshot':
      return j.saveSnapshot(a[0] as never);
    case 'loadSnapshot':
      return j.loadSnapshot(a[0] as string, a[1] as number | undefined);
    case 'keepSnapshots':
      return j.keepSnapshots(a[0] as string, a[1] as number);
    case 'deleteEventsTo':
      return j.deleteEventsTo(a[0] as string, a[1] as number);
    case 'reads': {
      const m = (s.readModels as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[a[0] as string];
      if (typeof m !== 'function') throw new Error(`no read model ${String(a[0])}`);
      return m.apply(s.readModels, a.slice(1));
    }
    case 'projections': {
      const runner = new ProjectionRunner(s.db, s.journal, allProjections.map(forHostJournal));
      projections = runner.start(a[0] as number, (e) => parentPort!.postMessage({ id: 0, ok: false, error: errorOf(e) }), { appends: () => appendsSeen });
      return null;
    }
    case 'close':
      await projections?.stop();
      projections = undefined;
      await s.close();
      store = undefined;
      return null;
    default:
      throw new Error(`unknown op ${r.op}`);
  }
}

parentPort!.on('message', (r: Request) => {
  handle(r).then(
    (value) => parentPort!.postMessage({ id: r.id, ok: true, value }),
    (e: unknown) => parentPort!.postMessage({ id: r.id, ok: false, error: errorOf(e) }),
  );
});
