/**
 * Frame encoding: plain MessagePack maps (no msgpackr records or extensions), as schemas/PROTOCOL.md
 * specifies. Integers beyond 32 bits are written as int64/uint64 (see `wireValue`), never as float64.
 */
import { Packr, Unpackr } from 'msgpackr';
import { wireValue } from '@bourse/schemas';
import type { ServerFrame } from '@bourse/schemas';

const packr = new Packr({ useRecords: false, variableMapSize: true, useFloat32: 0 });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'number' }) // 'auto' (number when safe, else BigInt) is in msgpackr 1.11+ but not in its types;

/** Encodes a frame; the bytes are a fresh copy (safe to keep, publish or send later). */
export function encodeFrame(frame: ServerFrame | Record<string, unknown>): Uint8Array {
  return packr.pack(wireValue(frame));
}

/** Decodes one frame; throws on bytes that are not exactly one MessagePack value. */
export function decodeFrame(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}
