/**
 * The L2 checksum moved to `@bourse/schemas` (schemas/src/l2/checksum.ts): the SDK verifies with the
 * same code the engine computes with (DESIGN: client -> schemas). Re-exported here.
 */
export { checksumString, checksumOf, checksumOfLevels } from '@bourse/schemas';
