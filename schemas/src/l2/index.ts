/**
 * The client side of the L2 feed, shared by the engine (which computes checksums) and the SDK (which
 * verifies them): CRC-32, the checksum over the top 10 levels per side, one sorted side of levels,
 * and `LocalBook`, which rebuilds a book from a snapshot and deltas and says when to resync.
 */
export { crc32, crc32Ascii } from './crc32.js';
export { checksumString, checksumOf, checksumOfLevels } from './checksum.js';
export { Levels } from './levels.js';
export { LocalBook, type LocalBookResult } from './localbook.js';
