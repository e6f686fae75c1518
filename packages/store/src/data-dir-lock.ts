/**
 * One process per PGlite data directory.
 *
 * PGlite runs Postgres inside this process, so, unlike a server, nothing stops a second process from
 * opening the same directory: two `bourse start --data ./data` would both write the same WAL and data
 * files, and each would overwrite what the other acknowledged. PGlite's `postmaster.pid` always says
 * pid 42, so it cannot tell either. (Found when a benchmark script left a node running, deleted its
 * directory and started a second node on the same path: the first node's appends failed with "could
 * not create file pg_wal/xlogtemp.42". No lock survives `rm -rf`, but nothing refused the second node.)
 *
 * `lockDataDir` creates `bourse.lock` in the directory (exclusively), holding this process's pid. A
 * lock whose pid is still running, in another process, refuses the open with `StoreConfigError`; a
 * lock left by a process that has gone (killed, crashed) is taken over. The same process may open the
 * directory again (a reopen after close, or the store's worker thread): it is one writer.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { StoreConfigError } from './errors.js';

export const LOCK_FILE = 'bourse.lock';

/** Whether a process with this pid is running here (EPERM: it is, under another user). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid a lock file names, or undefined when it names none (empty or torn: a crash while writing it). */
function pidIn(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the directory's lock for this process. Returns the release function: it deletes the lock if
 * it is still this process's. Throws `StoreConfigError` naming the other process when one holds it.
 */
export function lockDataDir(dir: string): () => void {
  const file = path.join(dir, LOCK_FILE);
  const body = `${process.pid}\n${hostname()}\n${new Date().toISOString()}\n`;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreConfigError(`PGlite data directory ${dir}: cannot create ${LOCK_FILE}: ${(e as Error).message}`, { cause: e });
      const pid = pidIn(file);
      if (pid !== undefined && pid !== process.pid && running(pid)) {
        throw new StoreConfigError(
          `PGlite data directory ${dir} is in use by process ${pid} (${file}); two processes on one data directory would overwrite each other's commits. Stop that process, or give another --data. If no Bourse process uses it (the pid now belongs to something else), delete ${file}.`,
        );
      }
      // Ours already, or left by a process that has gone: take it over (once; a second EEXIST means
      // another process took it over at the same moment, and the loop looks again).
      if (attempt >= 3) throw new StoreConfigError(`PGlite data directory ${dir}: ${LOCK_FILE} keeps changing; is another process starting on it?`);
      try {
        unlinkSync(file);
      } catch {
        // Gone already: another opener removed it first.
      }
      continue;
    }
    try {
      writeSync(fd, body);
    } finally {
      closeSync(fd);
    }
    return () => {
      try {
        if (pidIn(file) === process.pid) unlinkSync(file);
      } catch {
        // Already gone: nothing to release.
      }
    };
  }
}
