export {
  RockraftServer,
  SERVICE_NAMES,
  DEFAULT_MAX_MESSAGE_BYTES,
  type ServerOptions,
} from "./server.js";
export { PeerTransport, type PeerTransportOptions } from "./peers.js";
export {
  RockraftClient,
  RockraftClientError,
  type Bytes,
  type CallOptions,
  type ClientTlsOptions,
  type MembershipTarget,
  type ReadResult,
  type RockraftClientOptions,
  type SwapRequest,
  type SwapResult,
} from "./client.js";
export {
  ANSWERED_METADATA,
  ERROR_CODE_METADATA,
  LEADER_ADDR_METADATA,
  LEADER_ID_METADATA,
  OUTCOME_UNKNOWN_METADATA,
  RpcError,
  TransportError,
  type LeaderHint,
  type RpcStatus,
  type TransportErrorCode,
} from "./errors.js";
export {
  SILENT_LOGGER,
  routeGrpcLogs,
  type CallContext,
  type ClusterHandler,
  type ClusterMetrics,
  type CompareAndSwapRequest,
  type CompareAndSwapResult,
  type DeleteResult,
  type GetResult,
  type InitializeResult,
  type KvHandler,
  type LogId,
  type Member,
  type MembershipChange,
  type MembershipResult,
  type PutResult,
  type PeerHandler,
  type ReplicationProgress,
  type SnapshotResult,
  type SnapshotSink,
  type SnapshotSource,
  type SnapshotSourceChunk,
  type TransportLogger,
} from "./handlers.js";
export { SessionSequence, type SessionTag } from "./client-session.js";
export type { TlsOptions } from "./tls.js";
