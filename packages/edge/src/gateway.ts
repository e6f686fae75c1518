/**
 * The engine boundary the edge runs against. `VenueGateway` and its types live in
 * packages/engine/src/venue/gateway.ts; the engine's public index does not export them yet, so they are
 * imported (types only, erased at runtime) from the engine's build output. When `@bourse/engine`
 * exports them, this file becomes `export type { ... } from '@bourse/engine'` and nothing else changes.
 */
export type {
  VenueGateway,
  VenueReads,
  GatewayResult,
  CommandContext,
  PrivateEvent,
  PublicEvent,
  Unsubscribe,
} from '../../engine/dist/src/venue/gateway.js';
export type { OrderRequest } from '../../engine/dist/src/venue/venue.js';

import type { RiskLimits, Instrument } from '@bourse/schemas';
import type { CommandContext, GatewayResult } from '../../engine/dist/src/venue/gateway.js';

/**
 * Optional extras a gateway may implement; the edge uses them when present (duck-typed) and answers
 * 501 on the HTTP API when not.
 */
export interface GatewayExtras {
  /** Prometheus text lines to append to `/metrics` (journal batch size and latency, shard ownership, ...). */
  metricsText?(): string;
  setRiskLimits?(account: string, limits: RiskLimits, ctx: CommandContext): Promise<GatewayResult>;
  /**
   * Defines an instrument at run time from an untrusted definition (the HTTP body), durably: the
   * definition in force (new, or the identical one defined before), or a typed reject.
   */
  addInstrument?(definition: unknown, ctx: CommandContext): Promise<GatewayResult<{ instrument: Instrument }>>;
}
