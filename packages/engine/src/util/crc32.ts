/** CRC-32 moved to `@bourse/schemas` (schemas/src/l2/crc32.ts) so the SDK can use it; re-exported here. */
export { crc32, crc32Ascii } from '@bourse/schemas';
