/** Validated, frozen settings of one rockraft node. Paths are absolute. */
export interface Config {
  /** Absolute path of the file this was loaded from, or the name given to `parseConfig`. */
  readonly source: string;
  readonly node: NodeConfig;
  /** The `[rocksdb]` table (the seed's name); its options map to LevelDB's. */
  readonly storage: StorageConfig;
  readonly raft: RaftConfig;
  readonly cluster: ClusterConfig;
  /** Absent when the file has no `[tls]` table: plaintext gRPC. */
  readonly tls: TlsConfig | undefined;
  readonly limits: LimitsConfig;
  /** Absent when the file has no `[metrics]` table: no Prometheus endpoint. */
  readonly metrics: MetricsConfig | undefined;
  readonly log: LogConfig;
}

export interface NodeConfig {
  readonly nodeId: number;
  /** `host:port` the gRPC server binds. */
  readonly raftAddr: string;
  /** `host:port` peers and clients dial; `raftAddr` unless set. */
  readonly advertiseAddr: string;
}

export interface StorageConfig {
  readonly dataPath: string;
  readonly maxOpenFiles: number;
  readonly cacheSize: number;
  readonly writeBufferSize: number;
  readonly blockSize: number;
  readonly compression: boolean;
}

export type ReadMode = "read_index" | "lease";

export interface RaftConfig {
  readonly tickIntervalMs: number;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
  readonly maxEntriesPerAppend: number;
  readonly maxBytesPerAppend: number;
  readonly maxInflightAppends: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readMode: ReadMode;
  /** Build a snapshot once this many entries were applied since the last one; 0 = never. */
  readonly snapshotLogsSinceLast: number;
  /** Entries kept in the log behind a snapshot, so slightly lagging followers need no snapshot. */
  readonly snapshotKeepLogs: number;
  readonly snapshotChunkBytes: number;
}

export interface ClusterMember {
  readonly nodeId: number;
  readonly addr: string;
}

export interface ClusterConfig {
  readonly clusterId: string;
  /** Initial members for `initialize`; empty when the file lists none. Sorted by node id. */
  readonly members: readonly ClusterMember[];
}

export interface TlsConfig {
  readonly caFile: string | undefined;
  readonly certFile: string;
  readonly keyFile: string;
  readonly requireClientCert: boolean;
}

export interface LimitsConfig {
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
}

export interface MetricsConfig {
  readonly addr: string;
  readonly path: string;
}

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface LogConfig {
  readonly level: LogLevel;
  /** `"auto"`: pretty when standard output is a terminal. */
  readonly pretty: boolean | "auto";
}
