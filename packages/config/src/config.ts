// The typed `Config`, derived from the schema: each key's type, default and doc comment are
// written once, in `schema.ts`.
import type { z } from "zod";
import type {
  authTable,
  clusterTable,
  limitsTable,
  sessionsTable,
  logTable,
  memberTable,
  metricsTable,
  nodeTable,
  raftTable,
  rocksdbTable,
  tlsTable,
} from "./schema.js";

/** `T` with every property, array and nested object read-only (a `Config` is frozen). */
type Frozen<T> = {
  readonly [K in keyof T]: T[K] extends readonly (infer E)[]
    ? readonly Frozen<E>[]
    : T[K] extends object
      ? Frozen<T[K]>
      : T[K];
};

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
  /** The `[sessions]` table: client sessions, for writes that are safe to retry. */
  readonly sessions: SessionsConfig;
  /** The `[auth]` table: the tokens this node issues. */
  readonly auth: AuthConfig;
  /** Absent when the file has no `[metrics]` table: no Prometheus endpoint. */
  readonly metrics: MetricsConfig | undefined;
  /** The `[log]` table. */
  readonly log: LogConfig;
}

// Each table's type is its schema's output (see schema.ts for the keys and their docs).
/* eslint-disable @typescript-eslint/no-empty-object-type */

/** The `[node]` table. */
export interface NodeConfig extends Frozen<z.output<typeof nodeTable>> {}

/** The `[rocksdb]` table (the seed's name), mapped to LevelDB options. */
export interface StorageConfig extends Frozen<z.output<typeof rocksdbTable>> {}

/** The `[raft]` table. Defaults follow etcd and openraft. */
export interface RaftConfig extends Frozen<z.output<typeof raftTable>> {}

/** One member of the initial cluster. */
export interface ClusterMember extends Frozen<z.output<typeof memberTable>> {}

/** The `[cluster]` table. */
export interface ClusterConfig extends Frozen<Omit<z.output<typeof clusterTable>, "members">> {
  /** Initial members for `initialize`, sorted by node id; empty when the file lists none. */
  readonly members: readonly ClusterMember[];
}

/** The `[tls]` table: server TLS, and mutual TLS when client certificates are required. */
export interface TlsConfig extends Frozen<z.output<typeof tlsTable>> {}

/** The `[limits]` table. */
export interface LimitsConfig extends Frozen<z.output<typeof limitsTable>> {}

/** The `[sessions]` table. */
export interface SessionsConfig extends Frozen<z.output<typeof sessionsTable>> {}

/** The `[auth]` table. */
export interface AuthConfig extends Frozen<z.output<typeof authTable>> {}

/** The `[metrics]` table: a Prometheus endpoint. */
export interface MetricsConfig extends Frozen<z.output<typeof metricsTable>> {}

/** The `[log]` table. */
export interface LogConfig extends Frozen<z.output<typeof logTable>> {}

/* eslint-enable @typescript-eslint/no-empty-object-type */

/**
 * How linearizable reads confirm leadership: a heartbeat round (ReadIndex) or the leader's lease.
 */
export type ReadMode = RaftConfig["readMode"];

/** pino log levels; `silent` logs nothing. */
export type LogLevel = LogConfig["level"];
