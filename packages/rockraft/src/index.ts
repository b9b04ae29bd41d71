export { RaftNode, RaftNodeBuilder, type BuildOptions } from "./builder.js";
export {
  RaftApi,
  type Bytes,
  type CallOptions,
  type CloseSessionResult,
  type CompareAndSwapRequest,
  type CompareAndSwapResult,
  type DeleteResult,
  type MembershipTarget,
  type OpenSessionResult,
  type ReadConsistency,
  type SessionTag,
  type WriteOptions,
  type WriteRequest,
  type WriteResult,
} from "./api.js";
export {
  AuthApi,
  type AuthChangeOptions,
  type AuthRequest,
  type AuthRoleInfo,
  type AuthStatus,
  type AuthToken,
  type AuthUserInfo,
} from "./auth-api.js";
export type { Caller } from "./auth.js";
export type {
  AuthGrantRequest,
  AuthPasswordRequest,
  AuthRevision,
  AuthRevokeRequest,
  AuthRoleRequest,
  AuthSwitch,
  AuthUserRequest,
  AuthUserRoleRequest,
  AuthPermission,
} from "@rockraft/transport-grpc";
export { RockraftError, type LeaderInfo, type RockraftErrorCode } from "./errors.js";
export {
  Wait,
  describeMetrics,
  type LogId,
  type Member,
  type Membership,
  type NodeMetrics,
  type NodeState,
  type ReplicationProgress,
} from "./wait.js";
export { createLogger } from "./logger.js";
export { LIVE_KEYS, type ConfigChange } from "./reload.js";
export { loadConfig, parseConfig, ConfigError, type Config } from "@rockraft/config";
export {
  RockraftClient,
  RockraftClientError,
  AuthCalls,
  type ClientCredentials,
  type InitializeResult,
  type MembershipResult,
  type RockraftClientOptions,
  type SnapshotResult,
} from "@rockraft/transport-grpc";
