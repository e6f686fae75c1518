export type {
  Journal,
  JournalWrite,
  JournalPage,
  FenceToken,
  AppendOptions,
  ReadOptions,
  Snapshot,
  AppendOutcome,
  SequenceConflict,
} from './journal.js';
export {
  JournalError,
  JournalConflictError,
  JournalFencedError,
  JournalDecodeError,
  JournalGapError,
  JournalUnavailableError,
  JournalOutcomeUnknownError,
  JournalUsageError,
} from './journal.js';
export type { Address } from './address.js';
export { address, parseAddress, kindOf } from './address.js';
export type { Clock, TimerHandle } from './clock.js';
export { RealClock, ManualClock } from './clock.js';
export type { Transport, TransportEndpoint, TransportBinding, TransportFaults, InProcessTransportOptions, RequestSink } from './transport.js';
export { InProcessTransport } from './transport.js';
export type { EntityKind, DecideApply, Outgoing, EffectContext } from './entity.js';
export { fromDecideApply, hashOf, canonicalJson } from './entity.js';
export type { MemoryJournalFaults } from './memory-journal.js';
export { MemoryJournal } from './memory-journal.js';
export type { GroupCommitOptions, CommitParticipant } from './group-commit.js';
export { GroupCommitter } from './group-commit.js';
export type { ActorNodeOptions, PassivationOptions, RestartOptions, ReliableOptions, NodeEvent } from './node.js';
export { ActorNode } from './node.js';
export type { WireTell, WireAsk, WireReply, WireReliable, WireReliableAck } from './wire.js';
export {
  ActorsError,
  AskTimeoutError,
  JournalFailedError,
  StaleWriterError,
  ActorCrashedError,
  RecoveryFailedError,
  MailboxFullError,
  UnknownKindError,
  InvalidAddressError,
  NodeStoppedError,
  UnreachableError,
  RemoteActorError,
} from './errors.js';
export type { ShardId } from './shard.js';
export { ShardMap, fnv1a32 } from './shard.js';
export type { NatsTransportOptions } from './nats-transport.js';
export { NatsTransport, askOver, connectNats } from './nats-transport.js';
export type { ClusterNodeOptions, ClusterLogRecord, LeaseValue, HeartbeatValue } from './cluster.js';
export { ClusterNode, openLeaseBucket, preferenceOrder, bucketOf, prefixOf, leaseKey, nodeKey } from './cluster.js';
export { splitJournal } from './split-journal.js';
export type { ClusterStatus, NodeStatus, ShardLeaseStatus } from './cluster-status.js';
export { clusterStatus, formatClusterStatus } from './cluster-status.js';
