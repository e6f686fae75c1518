import { expect } from 'chai';
import fc from 'fast-check';
import { JournalDecodeError } from '@bourse/actors';
import { CURRENT_FORMAT, EventCodec, FORMAT_MSGPACK_ARRAY_V1, FORMAT_MSGPACK_KEYED_RECORDS_V2 } from '../src/codec.js';
import { FORMAT_1_EVENTS, FORMAT_1_ROW_HEX } from './fixtures/format1.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const decodeError = (f: () => unknown): JournalDecodeError => {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(JournalDecodeError);
    return e as JournalDecodeError;
  }
  throw new Error('no error');
};

/** Events shaped like the engine's: objects over a small key pool (shapes repeat within and across rows), nested objects, arrays and scalars. */
const KEYS = ['type', 'qty', 'px', 'acc', 'hold', 'id', 'amount', 'side', 'fills', 'ts', 'k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
const scalar = fc.oneof(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.string({ maxLength: 12 }), fc.boolean(), fc.constant(null));
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('object'), fc.array(tie('value'), { maxLength: 3 })),
  object: fc.dictionary(fc.constantFrom(...KEYS), tie('value'), { maxKeys: 6 }),
}));
const event = fc.oneof(fc.dictionary(fc.constantFrom(...KEYS), value, { minKeys: 1, maxKeys: 8 }), scalar);

describe('store codec', function () {
  it('format 2 round-trips any events, with a warm decoder or a fresh one, and encodes deterministically', function () {
    const warm = new EventCodec();
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 40 }), (events) => {
        const bytes = new EventCodec().encode(events);
        expect(hex(new EventCodec().encode(events))).to.equal(hex(bytes));
        expect(warm.decode('p/1', 7, 6 + events.length, CURRENT_FORMAT, bytes)).to.deep.equal(events);
        expect(new EventCodec().decode('p/1', 7, 6 + events.length, CURRENT_FORMAT, bytes)).to.deep.equal(events);
      }),
      { numRuns: 300 },
    );
  });

  it('format 2 rows with more shapes than the header holds (past 32, and past msgpackr’s 64 ids) round-trip', function () {
    const codec = new EventCodec();
    for (const shapes of [31, 32, 33, 64, 65, 100]) {
      const events = Array.from({ length: shapes * 2 }, (_, i) => ({ [`s${i % shapes}`]: i, nested: { [`n${i % shapes}`]: [i, { deep: `v${i}` }] } }));
      const bytes = codec.encode(events);
      expect(codec.decode('p/2', 1, events.length, CURRENT_FORMAT, bytes), `${shapes} shapes`).to.deep.equal(events);
      expect(new EventCodec().decode('p/2', 1, events.length, CURRENT_FORMAT, bytes), `${shapes} shapes, fresh`).to.deep.equal(events);
    }
  });

  it('format 1 rows (written before format 2) still decode', function () {
    expect(new EventCodec().decode('p/3', 1, 5, FORMAT_MSGPACK_ARRAY_V1, Buffer.from(FORMAT_1_ROW_HEX, 'hex'))).to.deep.equal(FORMAT_1_EVENTS);
    expect(CURRENT_FORMAT).to.equal(FORMAT_MSGPACK_KEYED_RECORDS_V2);
  });

  it('a row cannot change how a later row with the same header decodes (the reader cache holds no row data)', function () {
    const codec = new EventCodec();
    const good = codec.encode([{ a: 1, b: 2 }, { a: 3, b: 4 }]);
    expect(codec.decode('p/4', 1, 2, 2, good)).to.deep.equal([{ a: 1, b: 2 }, { a: 3, b: 4 }]);
    // Same header ([["a","b"]]), but the body defines record 0x40 itself as ["x","y"] and uses it.
    const headerLength = new DataView(good.buffer, good.byteOffset).getUint32(0);
    const header = good.subarray(0, 4 + headerLength);
    const body = Buffer.from([0x92, 0xd4, 0x72, 0x40, 0x92, 0xa1, 0x78, 0xa1, 0x79, 0x05, 0x06, 0x40, 0x07, 0x08]);
    const hostile = Buffer.concat([header, body]);
    expect(codec.decode('p/4', 1, 2, 2, hostile)).to.deep.equal([{ x: 5, y: 6 }, { x: 7, y: 8 }]);
    expect(codec.decode('p/4', 1, 2, 2, good)).to.deep.equal([{ a: 1, b: 2 }, { a: 3, b: 4 }]);
    // A row whose body ends early leaves no trace either.
    decodeError(() => codec.decode('p/4', 1, 2, 2, Buffer.concat([header, body.subarray(0, 8)])));
    expect(codec.decode('p/4', 1, 2, 2, good)).to.deep.equal([{ a: 1, b: 2 }, { a: 3, b: 4 }]);
  });

  it('a malformed format 2 payload is a JournalDecodeError naming the id and the row’s first sequence', function () {
    const codec = new EventCodec();
    const good = Buffer.from(codec.encode([{ a: 1 }]));
    const withHeader = (h: number[], rest: Uint8Array = good.subarray(good.readUInt32BE(0) + 4)) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(h.length);
      return Buffer.concat([len, Buffer.from(h), rest]);
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty', new Uint8Array(0), /shorter than/],
      ['header length past the end', Buffer.from([0, 0, 0, 9, 0x90]), /does not fit/],
      ['zero header length', Buffer.from([0, 0, 0, 0, 0x90]), /does not fit/],
      ['header is not an array', withHeader([0xa1, 0x61]), /not an array/],
      ['a key list holds a number', withHeader([0x91, 0x91, 0x01]), /array of strings/],
      ['33 key lists', withHeader([0xdc, 0x00, 0x21, ...Array.from({ length: 33 }, () => 0x90)]), /at most 32/],
      ['undecodable header', withHeader([0x91, 0xa5, 0x61]), /undecodable header/],
      ['undecodable body', withHeader([0x90], Buffer.from([0x92, 0xa5, 0x61])), /undecodable msgpack/],
      ['body holds the wrong count', withHeader([0x90], Buffer.from([0x92, 0x01, 0x02])), /needs 1/],
    ];
    for (const [name, bytes, message] of cases) {
      const e = decodeError(() => codec.decode('p/5', 42, 42, 2, bytes));
      expect(e, name).to.include({ persistenceId: 'p/5', seq: 42 });
      expect(e.message, name).to.match(message);
    }
    expect(codec.decode('p/5', 42, 42, 2, good)).to.deep.equal([{ a: 1 }]);
  });
});
