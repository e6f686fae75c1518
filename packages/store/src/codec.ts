/**
 * Event payload encoding. A journal row holds the events `seq_from..seq_to` of one persistence id as
 * one msgpack array; the row's `format` column says how to read it. Records (msgpackr structures) are
 * defined inside each row, so every row decodes on its own with no shared state.
 *
 * Formats: 1 = msgpackr array with in-row records. Add a number for any change; never reuse one.
 */
import { Packr, Unpackr } from 'msgpackr';
import { JournalDecodeError } from './errors.js';

export const FORMAT_MSGPACK_ARRAY_V1 = 1;
export const CURRENT_FORMAT = FORMAT_MSGPACK_ARRAY_V1;

export class EventCodec {
  readonly #packr = new Packr({ useRecords: true, moreTypes: false });
  readonly #unpackr = new Unpackr({ useRecords: true, moreTypes: false });

  /** Encodes the events of one row. */
  encode(events: readonly unknown[]): Uint8Array {
    return this.#packr.pack(events);
  }

  /** Decodes one row; throws JournalDecodeError naming the id and first sequence of the row. */
  decode(persistenceId: string, seqFrom: number, seqTo: number, format: number, payload: Uint8Array): unknown[] {
    if (format !== FORMAT_MSGPACK_ARRAY_V1) {
      throw new JournalDecodeError(persistenceId, seqFrom, `unknown payload format version ${format} (this code reads ${FORMAT_MSGPACK_ARRAY_V1})`);
    }
    let events: unknown;
    try {
      events = this.#unpackr.unpack(payload);
    } catch (e) {
      throw new JournalDecodeError(persistenceId, seqFrom, `undecodable msgpack payload (${payload.length} bytes): ${(e as Error).message}`, { cause: e });
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
}
