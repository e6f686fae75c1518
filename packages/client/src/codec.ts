/** Frame encoding: plain MessagePack maps, integers beyond 32 bits as int64 (schemas/PROTOCOL.md "Frames"). */
import { Packr, Unpackr } from 'msgpackr';
import { wireValue } from '@bourse/schemas';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'number' }) // 'auto' (number when safe, else BigInt) is in msgpackr 1.11+ but not in its types;

export function encodeFrame(frame: object): Uint8Array {
  return packr.pack(wireValue(frame));
}

export function decodeFrame(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}
