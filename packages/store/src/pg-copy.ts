/**
 * The journal's replay path on a Postgres server: `COPY (select ...) TO STDOUT (FORMAT binary)`.
 *
 * Why: node-postgres reads every result field as a UTF-8 string (its parser has no binary mode; a
 * query with `binary: true` corrupts bytea), so a `bytea` column arrives hex-encoded — twice the
 * bytes on the wire, a JS string of that size, then a hex decode. COPY data messages are handed
 * over as raw bytes, one message per row (the protocol guarantees backend CopyData messages hold
 * single rows), so the payload is copied out once with no text step.
 *
 * COPY takes no bind parameters: callers interpolate only `pg.escapeLiteral` strings and `int8` numbers.
 */
import type pg from 'pg';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** A binary COPY field: null, or the raw bytes (a copy, owned by the caller). */
export type CopyField = Buffer | null;

/** A pg "submittable" that runs one COPY ... TO STDOUT (FORMAT binary) and collects its rows. */
class BinaryCopyOut {
  readonly rows: CopyField[][] = [];
  readonly promise: Promise<CopyField[][]>;
  #resolve!: (rows: CopyField[][]) => void;
  #reject!: (e: Error) => void;
  #header = false;
  #error: Error | undefined;
  #settled = false;

  constructor(readonly text: string) {
    this.promise = new Promise((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
  }

  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    if (this.#error) return;
    try {
      this.#parse(msg.chunk);
    } catch (e) {
      this.#error = e as Error;
    }
  }

  #parse(b: Buffer): void {
    let o = 0;
    if (!this.#header) {
      if (b.length < 19 || !b.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY binary: bad header');
      const ext = b.readUInt32BE(15);
      o = 19 + ext;
      this.#header = true;
    }
    while (o < b.length) {
      const n = b.readInt16BE(o);
      o += 2;
      if (n === -1) return; // trailer
      const row: CopyField[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const len = b.readInt32BE(o);
        o += 4;
        if (len < 0) row[i] = null;
        else {
          if (o + len > b.length) throw new Error('COPY binary: a row spans data messages');
          row[i] = Buffer.from(b.subarray(o, o + len)); // a copy: pg's parser may reuse its buffer
          o += len;
        }
      }
      this.rows.push(row);
    }
  }

  handleError(err: Error): void {
    this.#error ??= err;
    // After a server error ReadyForQuery follows; after a lost connection nothing does: settle now.
    this.#settle();
  }

  handleReadyForQuery(): void {
    this.#settle();
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#error) this.#reject(this.#error);
    else this.#resolve(this.rows);
  }

  handleCopyInResponse(connection: { sendCopyFail(msg: string): void }): void {
    connection.sendCopyFail('bourse: COPY FROM is not expected here');
  }
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
}

/** Runs `COPY (<select>) TO STDOUT (FORMAT binary)` on a pooled client; returns the raw fields. */
export async function copyOutBinary(pool: pg.Pool, select: string): Promise<CopyField[][]> {
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    const q = new BinaryCopyOut(`copy (${select}) to stdout (format binary)`);
    client.query(q as unknown as pg.QueryConfig);
    return await q.promise;
  } catch (e) {
    failed = e as Error;
    throw e;
  } finally {
    // A client that failed mid-COPY is discarded, not returned to the pool.
    client.release(failed);
  }
}

/** A bigint literal from a safe integer (anything else is refused: never interpolate other values). */
export function int8(n: number): string {
  if (!Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${n}`);
  return String(n);
}

/** Reads a binary int8 field as a number. */
export function readInt8(f: CopyField): number {
  if (f === null || f.length !== 8) throw new Error('COPY binary: expected an int8');
  const hi = f.readInt32BE(0);
  const lo = f.readUInt32BE(4);
  const n = hi * 4294967296 + lo;
  if (!Number.isSafeInteger(n)) throw new RangeError('int8 is not a safe integer');
  return n;
}

/** Reads a binary int2 field. */
export function readInt2(f: CopyField): number {
  if (f === null || f.length !== 2) throw new Error('COPY binary: expected an int2');
  return f.readInt16BE(0);
}
