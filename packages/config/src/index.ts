export { loadConfig, parseConfig, type ParseConfigOptions } from "./parse.js";
export { ConfigError, type ConfigErrorCode, type ConfigIssue } from "./errors.js";
export type {
  ClusterConfig,
  ClusterMember,
  Config,
  LimitsConfig,
  LogConfig,
  LogLevel,
  MetricsConfig,
  NodeConfig,
  RaftConfig,
  ReadMode,
  StorageConfig,
  TlsConfig,
} from "./config.js";
export { parseAddress } from "./schema.js";
