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
  type RockraftClientOptions,
} from "./client.js";
export {
  ERROR_CODE_METADATA,
  LEADER_ADDR_METADATA,
  LEADER_ID_METADATA,
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
  type KvHandler,
  type LogId,
  type Member,
  type PeerHandler,
  type ReplicationStatus,
  type SnapshotSink,
  type SnapshotSource,
  type TransportLogger,
} from "./handlers.js";
export type { TlsOptions } from "./tls.js";
