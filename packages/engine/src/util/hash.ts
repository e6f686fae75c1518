/** The engine's state hash: `hashOf(machine.snapshot(s))`. The hash itself lives in @bourse/schemas, shared with the actor runtime. */
export { hashOf, hashString } from '@bourse/schemas';
