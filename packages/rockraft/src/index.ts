export { RaftNode, RaftNodeBuilder, type BuildOptions } from "./builder.js";
export { RaftApi, type Bytes, type CallOptions, type RaftNodeInfo, type ReadMode } from "./api.js";
export { RockraftError, type RockraftErrorCode } from "./errors.js";
export { Wait, describeMetrics, type LogId, type Member, type NodeMetrics } from "./wait.js";
export { createLogger } from "./logger.js";
export { loadConfig, parseConfig, ConfigError, type Config } from "@rockraft/config";
export {
  RockraftClient,
  RockraftClientError,
  type RockraftClientOptions,
} from "@rockraft/transport-grpc";
