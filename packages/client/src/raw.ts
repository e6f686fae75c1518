/**
 * A bare protocol connection: send frames (or raw bytes) and read every decoded server frame, with no
 * session logic. For protocol conformance tests and for debugging a venue by hand.
 *
 * @example
 *   const raw = await RawConnection.open('ws://127.0.0.1:8080');
 *   raw.send({ t: 1, id: 1, key: 'mm1.s3cret' });
 *   const ok = await raw.next((f) => f.t === 32);
 *   await raw.close();
 */
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from './codec.js';

export type AnyFrame = { readonly t: number } & Record<string, unknown>;

export class RawConnection {
  readonly frames: AnyFrame[] = [];
  /** Set when the server closed the socket. */
  closed: { code: number; reason: string } | undefined = undefined;
  readonly #ws: WebSocket;
  #waiters: { pred: (f: AnyFrame) => boolean; resolve: (f: AnyFrame) => void; from: number }[] = [];
  #closeWaiters: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const f = (isBinary ? decodeFrame(data) : { t: -1, text: data.toString() }) as AnyFrame;
      this.frames.push(f);
      this.#waiters = this.#waiters.filter((w) => (w.pred(f) ? (w.resolve(f), false) : true));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.#closeWaiters) w();
    });
    ws.on('error', () => {});
  }

  static open(url: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(new RawConnection(ws)));
      ws.once('error', reject);
    });
  }

  /** Encodes and sends a frame (any object; the protocol's rules are not checked here). */
  send(frame: object): void {
    this.#ws.send(encodeFrame(frame));
  }

  sendBytes(bytes: Uint8Array, binary = true): void {
    this.#ws.send(bytes, { binary });
  }

  sendText(text: string): void {
    this.#ws.send(text, { binary: false });
  }

  /** The first frame received so far (or later) that matches; rejects after `timeoutMs`. */
  next(pred: (f: AnyFrame) => boolean, timeoutMs = 5_000): Promise<AnyFrame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, from: this.frames.length };
      this.#waiters.push(w);
      setTimeout(() => {
        if (this.#waiters.includes(w)) {
          this.#waiters = this.#waiters.filter((x) => x !== w);
          reject(new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames.map((f) => f.t))}`));
        }
      }, timeoutMs).unref();
    });
  }

  /** Resolves when the server closes the socket. */
  whenClosed(timeoutMs = 5_000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      this.#closeWaiters.push(() => resolve(this.closed!));
      setTimeout(() => reject(new Error('socket still open')), timeoutMs).unref();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.#ws.close();
    await this.whenClosed().catch(() => this.#ws.terminate());
  }
}
