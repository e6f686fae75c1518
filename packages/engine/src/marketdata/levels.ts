/** `Levels` (one sorted side of an L2 book) moved to `@bourse/schemas` (schemas/src/l2/levels.ts); re-exported here. */
export { Levels } from '@bourse/schemas';
