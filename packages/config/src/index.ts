export { loadConfig, parseConfig, type ParseConfigOptions } from "./parse.js";
export {
  ConfigError,
  type ConfigErrorCode,
  type ConfigErrorOptions,
  type ConfigIssue,
} from "./errors.js";
export type {
  AuthConfig,
  ClusterConfig,
  ClusterMember,
  Config,
  LimitsConfig,
  SessionsConfig,
  LogConfig,
  LogLevel,
  MetricsConfig,
  NodeConfig,
  RaftConfig,
  ReadMode,
  StorageConfig,
  TlsConfig,
} from "./config.js";
export { fileKey, parseAddress, type Address } from "./schema.js";
