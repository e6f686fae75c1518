/**
 * Real fsync for PGlite on disk.
 *
 * PGlite runs Postgres in WebAssembly over Emscripten's NODEFS, and none of Postgres's syncs reach the
 * disk there: `fdatasync` (how the WAL is flushed at every commit) is a stub that returns success, and
 * `fsync` forwards to `stream_ops.fsync`, which NODEFS does not have. `strace` saw no fsync or
 * fdatasync at all in 20 committed inserts. A commit was durable only in the OS page cache: it
 * survives a killed process (the kill tests), not an OS crash or a power cut, and an acknowledged
 * order must survive both.
 *
 * `makePGliteDurable` restores the guarantee from outside the WebAssembly:
 * - NODEFS gets `fsync` (a file syncs its host descriptor, a directory the host directory), so the
 *   syncs Postgres does through fsync (checkpoints, pg_control, new WAL segments, directories) work.
 * - Every WAL file (`pg_wal/`) NODEFS writes is remembered, and `syncPGlite` fdatasyncs them. The
 *   journal calls it after each of its statements, so an append's commit (its WAL write) is on disk
 *   before the append resolves, as with `synchronous_commit = on` on a server. Read-model writes do
 *   not wait for it: they are rebuilt from the journal, and the WAL is one log, so the next journal
 *   sync makes them durable too. A WAL descriptor closed while unsynced is synced first (a segment
 *   switch). Data files are not synced at commit, as on a server: their changes are in the WAL, and
 *   Postgres fsyncs them itself at each checkpoint (its sync requests, through the `fsync` above),
 *   before the WAL that covers them is recycled. Syncing them too (as this did first) cost a second
 *   fdatasync on most appends: a growing table writes its new page at every extension.
 * - Files written before the patch (PGlite's start-up, recovery of an existing directory) were
 *   "synced" by the stubs, so the data directory is synced once, at open.
 *
 * Emscripten internals are not a public API: if their shape is not there (a PGlite upgrade), this
 * throws instead of running without durability.
 */
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';

interface EmStream {
  nfd?: number;
  node: unknown;
}
type StreamOp = (this: unknown, stream: EmStream, ...rest: unknown[]) => unknown;
interface EmNodeFs {
  stream_ops: { fsync?: (stream: EmStream) => number; write: StreamOp; close: StreamOp; [DURABLE]?: Durable };
  realPath(node: unknown): string;
}
const DURABLE = Symbol('bourse.durable');
interface Durable {
  /** Host descriptors of WAL files written since their last sync. */
  readonly written: Set<number>;
  /** fdatasync/fsync calls made, for tests and metrics. */
  syncs: number;
  /**
   * The furthest WAL position written (the end of a write into a segment, as a log position), and the
   * first one seen; `pgliteWalBytes` is their difference, the log's advance. Not the bytes written:
   * every commit rewrites the WAL page it ends in, so a run of small commits writes each 8 KiB page
   * many times (measured: 7.1x the log's advance for 3000 small appends), and a checkpoint "every
   * 64 MiB" came every ~9 MiB of log.
   */
  walEnd: number | undefined;
  walStart: number | undefined;
}

/**
 * The log position just past a write of `length` bytes at `position` in the WAL segment file `name`
 * (24 hex digits: timeline, log, segment; the log is 4 GiB in `segmentSize` pieces), or undefined for
 * any other file in pg_wal (`xlogtemp.*`, history and status files).
 */
export function walPositionOf(name: string, segmentSize: number, position: number, length: number): number | undefined {
  if (!/^[0-9A-F]{24}$/.test(name) || !(segmentSize > 0) || !Number.isSafeInteger(position)) return undefined;
  const log = parseInt(name.slice(8, 16), 16);
  const seg = parseInt(name.slice(16, 24), 16);
  return log * 2 ** 32 + seg * segmentSize + position + length;
}
const installed = new WeakMap<PGlite, Durable>();

/** How many host syncs this PGlite's files have had since `makePGliteDurable` (0 if never made durable). */
export function pgliteSyncCount(pglite: PGlite): number {
  return installed.get(pglite)?.syncs ?? 0;
}

/** WAL files this PGlite has written to since they were last synced (0 if never made durable). */
export function pglitePendingWalFiles(pglite: PGlite): number {
  return installed.get(pglite)?.written.size ?? 0;
}

/** How far this PGlite's WAL has advanced (log bytes, not bytes written) since `makePGliteDurable` (0 if never made durable). */
export function pgliteWalBytes(pglite: PGlite): number {
  const d = installed.get(pglite);
  return d?.walEnd === undefined ? 0 : d.walEnd - d.walStart!;
}

/**
 * fdatasyncs every WAL file this PGlite wrote since the last sync. Call it after a commit and before
 * acknowledging it: the commit's WAL write is then on disk, and with it all earlier WAL (one log).
 * A no-op (an empty set) after reads, and on a PGlite that was never made durable.
 */
export function syncPGlite(pglite: PGlite): void {
  const d = installed.get(pglite);
  if (!d || d.written.size === 0) return;
  for (const fd of d.written) {
    fdatasyncSync(fd);
    d.syncs++;
  }
  d.written.clear();
}

/** Installs the syncs on this PGlite's NODEFS and syncs `dataDir` as it is now. */
export function makePGliteDurable(pglite: PGlite, dataDir: string): void {
  const fs = (pglite as unknown as { mod?: { FS?: { filesystems?: { NODEFS?: EmNodeFs } } } }).mod?.FS;
  const nodefs = fs?.filesystems?.NODEFS;
  const ops = nodefs?.stream_ops;
  if (!nodefs || typeof ops?.write !== 'function' || typeof ops.close !== 'function' || typeof nodefs.realPath !== 'function') {
    throw new Error('PGlite: cannot reach Emscripten NODEFS to install fsync; commits would not be durable (PGlite version changed?)');
  }
  let d = ops[DURABLE];
  if (!d) {
    const state: Durable = { written: new Set(), syncs: 0, walEnd: undefined, walStart: undefined };
    d = state;
    ops[DURABLE] = state;
    const { write, close } = ops;
    // Host descriptor -> whether it is a WAL file, and for a segment the log position it starts at
    // (looked up once per open descriptor; segments are created at full size, zero-filled).
    const isWal = new Map<number, { base: number | undefined } | false>();
    ops.write = function (stream, ...rest) {
      const n = write.call(this, stream, ...rest);
      const fd = stream.nfd;
      if (fd !== undefined) {
        let wal = isWal.get(fd);
        if (wal === undefined) {
          const real = nodefs.realPath(stream.node);
          wal = isWalPath(real) ? { base: walPositionOf(path.basename(real), fstatSync(fd).size, 0, 0) } : false;
          isWal.set(fd, wal);
        }
        if (wal) {
          state.written.add(fd);
          // rest: buffer, offset, length, position.
          if (wal.base !== undefined && typeof n === 'number') {
            const at = wal.base + (rest[3] as number) + n;
            state.walStart ??= at;
            if (state.walEnd === undefined || at > state.walEnd) state.walEnd = at;
          }
        }
      }
      return n;
    };
    ops.close = function (stream) {
      if (stream.nfd !== undefined) {
        isWal.delete(stream.nfd);
        if (state.written.delete(stream.nfd)) {
          fdatasyncSync(stream.nfd);
          state.syncs++;
        }
      }
      return close.call(this, stream);
    };
    ops.fsync = (stream) => {
      // WAL first. Postgres's own WAL flushes (fdatasync) are stubs here, so before it makes anything
      // else durable (data files and pg_control at a checkpoint, a new segment, a directory), the WAL
      // written so far is synced: a synced pg_control never points at a checkpoint record that is not
      // on disk, and a data file synced at a checkpoint never runs ahead of its WAL.
      for (const fd of state.written) {
        if (fd === stream.nfd) continue;
        fdatasyncSync(fd);
        state.syncs++;
      }
      state.written.clear();
      if (stream.nfd !== undefined) {
        state.written.delete(stream.nfd);
        fdatasyncSync(stream.nfd);
      } else syncDir(nodefs.realPath(stream.node));
      state.syncs++;
      return 0;
    };
  }
  installed.set(pglite, d);
  syncTree(dataDir);
}

const WAL_DIR = `${path.sep}pg_wal${path.sep}`;
const isWalPath = (p: string): boolean => p.includes(WAL_DIR);

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync every file and directory under `dir` (depth first, the directory after its entries). */
function syncTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) syncTree(p);
    else if (e.isFile()) {
      const fd = openSync(p, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  }
  syncDir(dir);
}
