/** `LocalBook` moved to `@bourse/schemas` (schemas/src/l2/localbook.ts) for the SDK; re-exported here. */
export { LocalBook, type LocalBookResult } from '@bourse/schemas';
