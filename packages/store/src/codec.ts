/**
 * Event payload encoding. A journal row holds the events `seq_from..seq_to` of one persistence id; the
 * row's `format` column says how to read its payload. Every row decodes on its own, with no shared
 * state: a cache here only saves work, never supplies data.
 *
 * Formats (add a number for any change; never reuse one; every format ever written stays readable):
 * - 1: one msgpackr value, the events array, with msgpackr records defined inside the row (`0xd4 0x72 id`
 *   then the key list, where a shape is first used). Written until format 2.
 * - 2 (current): `u32 big-endian H`, then H bytes: a plain msgpack array of up to 32 key lists (each an
 *   array of strings), then one msgpackr value, the events array, in which record ids `0x40 + i` refer
 *   to key list `i` of the header. Shapes past the 32nd are defined inside the value as in format 1.
 *
 * Why format 2: decoding format 1 pays for every row's record definitions again (read the keys, build
 * a reader, compile it after three objects). With the key lists up front, a decoder keys a cache on the
 * header's bytes and reuses the compiled readers of any earlier row with the same shapes. Measured on
 * Fill-shaped events (15 fields): decoding rows of 32 events 0.53 -> 0.34 µs per event, one-event rows
 * 2.6 -> 1.5 µs; encoding a one-event row costs about 2.3 µs more (the shapes are learned per row),
 * rows of 32 the same. `bench:journal` replay: 1.30-1.36 -> 1.00-1.05 µs of CPU per event.
 */
import { Packr, Unpackr } from 'msgpackr';
import { JournalDecodeError } from './errors.js';

export const FORMAT_MSGPACK_ARRAY_V1 = 1;
export const FORMAT_MSGPACK_KEYED_RECORDS_V2 = 2;
export const CURRENT_FORMAT = FORMAT_MSGPACK_KEYED_RECORDS_V2;

/** msgpackr's shared-structure list: key lists by record id - 0x40, plus its own bookkeeping. */
type Structures = string[][] & { sharedLength?: number };
/** Header lists a row may hold: msgpackr's one-byte shared record ids 0x40..0x5f. */
const HEADER_LISTS_MAX = 32;
/** Distinct headers whose readers are kept; past it the cache starts over (only speed is lost). */
const HEADER_CACHE_MAX = 4096;

export class EventCodec {
  /** Format 1 (decode only now). */
  readonly #unpackrV1 = new Unpackr({ useRecords: true, moreTypes: false });
  /** Format 2 body: given a fresh shared-structure list per row, it fills it with the row's shapes. */
  readonly #packr = new Packr({ useRecords: true, moreTypes: false, structures: [] });
  readonly #headerPackr = new Packr({ useRecords: false, moreTypes: false });
  readonly #headerUnpackr = new Unpackr({ useRecords: false, moreTypes: false });
  readonly #unpackr = new Unpackr({ useRecords: true, moreTypes: false, structures: [] });
  readonly #readers = new Map<string, Structures>();

  /** Encodes the events of one row in `CURRENT_FORMAT`. Deterministic: the same events give the same bytes. */
  encode(events: readonly unknown[]): Uint8Array {
    const parts = this.encodeParts(events);
    const out = new Uint8Array(parts[0].length + parts[1].length + parts[2].length);
    out.set(parts[0], 0);
    out.set(parts[1], parts[0].length);
    out.set(parts[2], parts[0].length + parts[1].length);
    return out;
  }

  /**
   * `encode` as the three pieces to lay end to end (header length, header, body), for a caller that
   * copies rows into one buffer anyway. The pieces are views the next call does not overwrite.
   */
  encodeParts(events: readonly unknown[]): [Uint8Array, Uint8Array, Uint8Array] {
    const structures: Structures = [];
    (this.#packr as unknown as { structures: Structures }).structures = structures;
    const body = this.#packr.pack(events);
    const header = this.#headerPackr.pack(structures.slice(0, structures.sharedLength ?? 0));
    const n = header.length;
    return [new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]), header, body];
  }

  /** Decodes one row; throws JournalDecodeError naming the id and first sequence of the row. */
  decode(persistenceId: string, seqFrom: number, seqTo: number, format: number, payload: Uint8Array): unknown[] {
    let events: unknown;
    if (format === FORMAT_MSGPACK_KEYED_RECORDS_V2) events = this.#decodeV2(persistenceId, seqFrom, payload);
    else if (format === FORMAT_MSGPACK_ARRAY_V1) events = this.#unpack(persistenceId, seqFrom, payload, this.#unpackrV1, payload);
    else {
      throw new JournalDecodeError(persistenceId, seqFrom, `unknown payload format version ${format} (this code reads ${FORMAT_MSGPACK_ARRAY_V1} and ${FORMAT_MSGPACK_KEYED_RECORDS_V2})`);
    }
    const count = seqTo - seqFrom + 1;
    if (!Array.isArray(events) || events.length !== count) {
      throw new JournalDecodeError(
        persistenceId,
        seqFrom,
        `payload holds ${Array.isArray(events) ? events.length : typeof events} events, row seq ${seqFrom}..${seqTo} needs ${count}`,
      );
    }
    return events;
  }

  #decodeV2(persistenceId: string, seqFrom: number, payload: Uint8Array): unknown {
    const bad = (why: string, cause?: unknown) => new JournalDecodeError(persistenceId, seqFrom, `format 2 payload (${payload.length} bytes): ${why}`, cause === undefined ? undefined : { cause });
    if (payload.length < 4) throw bad('shorter than its 4-byte header length');
    const headerLength = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0);
    if (headerLength < 1 || 4 + headerLength >= payload.length) throw bad(`header length ${headerLength} does not fit`);
    const key = Buffer.from(payload.buffer, payload.byteOffset + 4, headerLength).toString('latin1');
    let structures = this.#readers.get(key);
    if (!structures) {
      let lists: unknown;
      try {
        lists = this.#headerUnpackr.unpack(payload.subarray(4, 4 + headerLength));
      } catch (e) {
        throw bad(`undecodable header: ${(e as Error).message}`, e);
      }
      if (!Array.isArray(lists) || lists.length > HEADER_LISTS_MAX) throw bad(`the header is not an array of at most ${HEADER_LISTS_MAX} key lists`);
      structures = lists.map((keys: unknown) => {
        if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw bad('a header key list is not an array of strings');
        // Shared: a record defined inside a row under the same id is undone after that row, not kept here.
        return Object.assign(keys.slice() as string[], { isShared: true });
      });
      structures.sharedLength = structures.length;
      if (this.#readers.size >= HEADER_CACHE_MAX) this.#readers.clear();
      this.#readers.set(key, structures);
    }
    (this.#unpackr as unknown as { structures: Structures }).structures = structures;
    return this.#unpack(persistenceId, seqFrom, payload.subarray(4 + headerLength), this.#unpackr, payload);
  }

  #unpack(persistenceId: string, seqFrom: number, bytes: Uint8Array, unpackr: Unpackr, payload: Uint8Array): unknown {
    try {
      return unpackr.unpack(bytes);
    } catch (e) {
      throw new JournalDecodeError(persistenceId, seqFrom, `undecodable msgpack payload (${payload.length} bytes): ${(e as Error).message}`, { cause: e });
    }
  }
}
