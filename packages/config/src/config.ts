/** Validated, frozen settings of one rockraft node. Paths are absolute. */
export interface Config {
  /** Absolute path of the file this was loaded from, or the name given to `parseConfig`. */
  readonly source: string;
  /** The `[node]` table: who this node is and where it listens. */
  readonly node: NodeConfig;
  /** The `[rocksdb]` table (the seed's name); its options map to LevelDB's. */
  readonly storage: StorageConfig;
  /** The `[raft]` table: timing, replication limits, reads and snapshots. */
  readonly raft: RaftConfig;
  /** The `[cluster]` table: the cluster id and the initial members. */
  readonly cluster: ClusterConfig;
  /** Absent when the file has no `[tls]` table: plaintext gRPC. */
  readonly tls: TlsConfig | undefined;
  /** The `[limits]` table: the largest key and value a client may write. */
  readonly limits: LimitsConfig;
  /** Absent when the file has no `[metrics]` table: no Prometheus endpoint. */
  readonly metrics: MetricsConfig | undefined;
  /** The `[log]` table. */
  readonly log: LogConfig;
}

/** The `[node]` table. */
export interface NodeConfig {
  /** This node's id: a positive integer, unique in the cluster, recorded in its storage. */
  readonly nodeId: number;
  /** `host:port` the gRPC server binds. */
  readonly raftAddr: string;
  /** `host:port` peers and clients dial; `raftAddr` unless set. */
  readonly advertiseAddr: string;
}

/** The `[rocksdb]` table (the seed's name), mapped to LevelDB options. */
export interface StorageConfig {
  /** Absolute directory of this node's database (`data_path`, relative to the file). */
  readonly dataPath: string;
  /** LevelDB `maxOpenFiles` (`max_open_files`); default 1000. */
  readonly maxOpenFiles: number;
  /** LevelDB block cache size in bytes (`cache_size`); default 8 MiB. */
  readonly cacheSize: number;
  /** LevelDB memtable size in bytes (`write_buffer_size`); default 4 MiB. */
  readonly writeBufferSize: number;
  /** LevelDB block size in bytes (`block_size`); default 4 KiB. */
  readonly blockSize: number;
  /** Snappy compression of LevelDB blocks (`compression`); default true. */
  readonly compression: boolean;
}

/**
 * How linearizable reads confirm leadership: a heartbeat round (ReadIndex) or the leader's lease.
 */
export type ReadMode = "read_index" | "lease";

/** The `[raft]` table. Defaults follow etcd and openraft. */
export interface RaftConfig {
  /** Milliseconds per logical tick (`tick_interval_ms`); default 50. */
  readonly tickIntervalMs: number;
  /** Leader heartbeat interval in ms (`heartbeat_interval_ms`); default 100. */
  readonly heartbeatIntervalMs: number;
  /** Lower bound of the randomized election timeout in ms; default 1000. */
  readonly electionTimeoutMinMs: number;
  /** Upper bound (exclusive) of the randomized election timeout in ms; default 2000. */
  readonly electionTimeoutMaxMs: number;
  /** Most entries in one append message (`max_entries_per_append`); default 300. */
  readonly maxEntriesPerAppend: number;
  /** Most payload bytes in one append message (`max_bytes_per_append`); default 1 MiB. */
  readonly maxBytesPerAppend: number;
  /** Append messages in flight per follower before waiting for acks; default 256. */
  readonly maxInflightAppends: number;
  /** PreVote (thesis §9.6): a partitioned node does not inflate terms; default true. */
  readonly preVote: boolean;
  /** CheckQuorum (§6.2): a leader out of touch with a quorum steps down; default true. */
  readonly checkQuorum: boolean;
  /** `read_index` (default) or `lease` (needs `check_quorum`). */
  readonly readMode: ReadMode;
  /**
   * Clock drift the leader lease allows for (`lease_clock_drift_ms`): the lease lasts one
   * election timeout minus one tick minus this; default a fifth of `election_timeout_min_ms`.
   */
  readonly leaseClockDriftMs: number;
  /** Build a snapshot once this many entries were applied since the last one; 0 = never. */
  readonly snapshotLogsSinceLast: number;
  /** Entries kept in the log behind a snapshot, so slightly lagging followers need no snapshot. */
  readonly snapshotKeepLogs: number;
  /** Bytes per chunk when a snapshot is sent to a follower; default 3 MiB. */
  readonly snapshotChunkBytes: number;
  /**
   * A node becomes a voter only if the leader heard from it within the last election
   * timeout and its log is at most this many entries behind the leader's; default 1000.
   */
  readonly promoteMaxLagEntries: number;
}

/** One member of the initial cluster. */
export interface ClusterMember {
  /** The member's node id. */
  readonly nodeId: number;
  /** The member's `host:port` for peers and clients. */
  readonly addr: string;
}

/** The `[cluster]` table. */
export interface ClusterConfig {
  /** Recorded in storage and carried by every peer message; default `"rockraft"`. */
  readonly clusterId: string;
  /** Initial members for `initialize`; empty when the file lists none. Sorted by node id. */
  readonly members: readonly ClusterMember[];
}

/** The `[tls]` table: server TLS, and mutual TLS when client certificates are required. */
export interface TlsConfig {
  /**
   * CA bundle that peer and client certificates must chain to; required with `requireClientCert`.
   */
  readonly caFile: string | undefined;
  /** This node's certificate (PEM). */
  readonly certFile: string;
  /** This node's private key (PEM). */
  readonly keyFile: string;
  /** Refuse peers and clients without a certificate from `caFile` (mutual TLS); default false. */
  readonly requireClientCert: boolean;
}

/** The `[limits]` table. */
export interface LimitsConfig {
  /** Largest key in bytes; default 4096. */
  readonly maxKeyBytes: number;
  /** Largest value in bytes; default 1 MiB. */
  readonly maxValueBytes: number;
}

/** The `[metrics]` table: a Prometheus endpoint. */
export interface MetricsConfig {
  /** `host:port` the HTTP endpoint binds. */
  readonly addr: string;
  /** URL path of the metrics; default `/metrics`. */
  readonly path: string;
}

/** pino log levels; `silent` logs nothing. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/** The `[log]` table. */
export interface LogConfig {
  /** Lowest level logged; default `info`. */
  readonly level: LogLevel;
  /** `"auto"`: pretty when standard output is a terminal. */
  readonly pretty: boolean | "auto";
}
