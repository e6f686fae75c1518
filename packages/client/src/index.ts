/**
 * @bourse/client: the TypeScript SDK for Bourse's binary WebSocket protocol (schemas/PROTOCOL.md).
 * See README.md for a runnable example.
 */
export { BourseClient, AuthError, type ClientOptions, type PlaceRequest, type PrivateMessage, type Result, type BookHandle } from './client.js';
export { encodeFrame, decodeFrame } from './codec.js';
export { RawConnection, type AnyFrame } from './raw.js';
export { LocalBook } from '@bourse/schemas';
export { rejectName as rejectNameOf, Reject } from '@bourse/schemas';
