/**
 * @bourse/edge: the uWebSockets.js gateway (binary WebSocket protocol, HTTP JSON API, metrics) and the
 * `bourse load` generator. See README.md.
 */
export { startEdge, type Edge, type EdgeOptions } from './edge.js';
export { KeyStore, roleDefaults, type KeySpec, type KeyInfo, type Principal } from './auth.js';
export { EdgeMetrics } from './metrics.js';
export { runLoad, type LoadOptions, type LoadResult } from './load.js';
export { startFsyncProbe, summarizeSyncs, type FsyncProbe, type FsyncProbeResult } from './fsync-probe.js';
export type { GatewayExtras } from './gateway.js';
