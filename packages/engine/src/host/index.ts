export { openEmbeddedVenue, EmbeddedVenue, type EmbeddedTarget, type EmbeddedVenueOptions } from './embedded.js';
export { VenueCore, type VenueCoreOptions, type EngineLogRecord } from './core.js';
export {
  startEngineNode,
  ClusterGateway,
  CLUSTER_SHARDS,
  commitSubjects,
  resendable,
  subjectToken,
  type EngineNode,
  type EngineNodeOptions,
  type ClusterGatewayOptions,
} from './cluster.js';
export { HostJournal, InjectedJournalFault, isRuntimeRecord, journalMetricsText, type HostJournalFaults, type CommitTap } from './journal.js';
export { bookKind, ledgerKind, mdKind, registryKind, CLIENT_IDS_MAX, BOOK_REJECTS_MAX, type HostDirectory, type PlaceReply, type BookOutcome } from './kinds.js';
