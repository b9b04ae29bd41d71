// The config file's schema: every key once, with its rule, its default and its doc comment.
// Keys are written in camelCase; the file spells them in snake_case (`tickIntervalMs` is
// `tick_interval_ms`), which `parse.ts` maps. The `Config` types are derived from this
// schema (`config.ts`), so a key is described here and nowhere else.
import { z } from "zod";

const MIB = 1024 * 1024;

function integer(min: number, max: number, expected: string) {
  return z
    .number({ error: expected })
    .int({ error: expected })
    .min(min, { error: expected })
    .max(max, { error: expected });
}

const positiveInteger = (expected = "expected a positive integer") =>
  integer(1, Number.MAX_SAFE_INTEGER, expected);

const boolean = () => z.boolean({ error: "expected true or false" });

const ADDRESS_EXPECTED = 'expected "host:port" with a port from 1 to 65535';
const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/;

/** A `host:port` split in two. */
export interface Address {
  /** Host name or IP address; an IPv6 address keeps its brackets. */
  readonly host: string;
  /** Port, 1 to 65535. */
  readonly port: number;
}

/** Splits `host:port` (IPv6 hosts in brackets); undefined when it does not parse. */
export function parseAddress(address: string): Address | undefined {
  const match = ADDRESS.exec(address);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1]!, port };
}

const address = () =>
  z
    .string({ error: ADDRESS_EXPECTED })
    .refine((value) => parseAddress(value) !== undefined, { error: ADDRESS_EXPECTED });

/**
 * Reports a rule between keys as broken: the message says all (`parse.ts` adds no "got"),
 * and the path names the key to change.
 */
function brokenRule(ctx: z.RefinementCtx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: "custom", path, message, input: undefined, params: { rule: true } });
}

const path = () => z.string({ error: "expected a path" }).min(1, { error: "expected a path" });

const table = <Shape extends z.ZodRawShape>(name: string, shape: Shape) =>
  z.strictObject(shape, { error: `expected a [${name}] table` });

/** The `[node]` table: who this node is and where it listens. */
export const nodeTable = table("node", {
  /** This node's id: a positive integer, unique in the cluster, recorded in its storage. */
  nodeId: positiveInteger(),
  /** `host:port` the gRPC server binds. */
  raftAddr: address(),
  /** `host:port` peers and clients dial, when not `raft_addr` (see the output below). */
  advertiseAddr: address().optional(),
})
  .superRefine((node, ctx) => {
    if (node.advertiseAddr === undefined && isWildcardHost(node.raftAddr)) {
      brokenRule(
        ctx,
        ["advertiseAddr"],
        `required when node.raft_addr listens on a wildcard address (${node.raftAddr}): peers cannot dial it`,
      );
    }
  })
  .transform((node) => ({
    ...node,
    /** `host:port` peers and clients dial: `advertise_addr`, or `raft_addr` when unset. */
    advertiseAddr: node.advertiseAddr ?? node.raftAddr,
  }));

function isWildcardHost(address: string): boolean {
  const host = parseAddress(address)?.host;
  return host === "0.0.0.0" || host === "[::]" || host === "[0:0:0:0:0:0:0:0]";
}

/** The `[rocksdb]` table (the seed's name), mapped to LevelDB options. */
export const rocksdbTable = table("rocksdb", {
  /** Directory of this node's database (`data_path`); absolute, relative paths resolve against the file. */
  dataPath: path(),
  /** LevelDB `maxOpenFiles`; default 1000. */
  maxOpenFiles: integer(16, 1_000_000, "expected an integer from 16 to 1000000").default(1000),
  /** LevelDB block cache size in bytes; default 8 MiB. */
  cacheSize: integer(0, 64 * 1024 * MIB, "expected a size in bytes from 0 to 64 GiB").default(
    8 * MIB,
  ),
  /** LevelDB memtable size in bytes; default 4 MiB. */
  writeBufferSize: integer(
    64 * 1024,
    1024 * MIB,
    "expected a size in bytes from 64 KiB to 1 GiB",
  ).default(4 * MIB),
  /** LevelDB block size in bytes; default 4 KiB. */
  blockSize: integer(1024, 4 * MIB, "expected a size in bytes from 1 KiB to 4 MiB").default(4096),
  /** Snappy compression of LevelDB blocks; default true. */
  compression: boolean().default(true),
});

/** The `[raft]` table: timing, replication limits, reads and snapshots. Defaults follow etcd and openraft. */
export const raftTable = table("raft", {
  /** Milliseconds per logical tick; default 50. */
  tickIntervalMs: integer(1, 60_000, "expected milliseconds from 1 to 60000").default(50),
  /** Leader heartbeat interval in ms; default 100. */
  heartbeatIntervalMs: integer(1, 60_000, "expected milliseconds from 1 to 60000").default(100),
  /** Lower bound of the randomized election timeout in ms; default 1000. */
  electionTimeoutMinMs: integer(1, 600_000, "expected milliseconds from 1 to 600000").default(1000),
  /** Upper bound (exclusive) of the randomized election timeout in ms; default 2000. */
  electionTimeoutMaxMs: integer(1, 600_000, "expected milliseconds from 1 to 600000").default(2000),
  /** Most entries in one append message; default 300. */
  maxEntriesPerAppend: integer(1, 1_000_000, "expected an integer from 1 to 1000000").default(300),
  /** Most payload bytes in one append message; default 1 MiB. */
  maxBytesPerAppend: integer(
    1024,
    64 * MIB,
    "expected a size in bytes from 1 KiB to 64 MiB",
  ).default(MIB),
  /** Append messages in flight per follower before waiting for acks; default 256. */
  maxInflightAppends: integer(1, 65_536, "expected an integer from 1 to 65536").default(256),
  /** PreVote (thesis §9.6): a partitioned node does not inflate terms; default true. */
  preVote: boolean().default(true),
  /** CheckQuorum (§6.2): a leader out of touch with a quorum steps down; default true. */
  checkQuorum: boolean().default(true),
  /** How linearizable reads confirm leadership: `read_index` (default, a heartbeat round) or `lease` (needs `check_quorum`). */
  readMode: z
    .enum(["read_index", "lease"], { error: 'expected "read_index" or "lease"' })
    .default("read_index"),
  /** Clock drift the leader lease allows for (see the output below); unset: derived. */
  leaseClockDriftMs: integer(0, 600_000, "expected milliseconds from 0 to 600000").optional(),
  /** Build a snapshot once this many entries were applied since the last one; 0 = never; default 5000. */
  snapshotLogsSinceLast: integer(
    0,
    Number.MAX_SAFE_INTEGER,
    "expected a non-negative integer (0 turns automatic snapshots off)",
  ).default(5000),
  /** Entries kept in the log behind a snapshot, so slightly lagging followers need no snapshot; default 1000. */
  snapshotKeepLogs: integer(0, Number.MAX_SAFE_INTEGER, "expected a non-negative integer").default(
    1000,
  ),
  /**
   * A node becomes a voter only if the leader heard from it within the last election
   * timeout and its log is at most this many entries behind the leader's; default 1000.
   */
  promoteMaxLagEntries: integer(
    0,
    Number.MAX_SAFE_INTEGER,
    "expected a non-negative integer",
  ).default(1000),
  /** Bytes per chunk when a snapshot is sent to a follower; default 3 MiB. */
  snapshotChunkBytes: integer(
    1024,
    64 * MIB,
    "expected a size in bytes from 1 KiB to 64 MiB",
  ).default(3 * MIB),
})
  .superRefine((raft, ctx) => {
    const issue = (key: string, message: string) => brokenRule(ctx, [key], message);
    if (raft.heartbeatIntervalMs < raft.tickIntervalMs) {
      issue(
        "heartbeatIntervalMs",
        `expected at least raft.tick_interval_ms (${raft.tickIntervalMs}), got ${raft.heartbeatIntervalMs}`,
      );
    }
    if (raft.electionTimeoutMinMs <= raft.heartbeatIntervalMs) {
      issue(
        "electionTimeoutMinMs",
        `expected more than raft.heartbeat_interval_ms (${raft.heartbeatIntervalMs}), got ${raft.electionTimeoutMinMs}`,
      );
    }
    if (raft.electionTimeoutMaxMs <= raft.electionTimeoutMinMs) {
      issue(
        "electionTimeoutMaxMs",
        `expected more than raft.election_timeout_min_ms (${raft.electionTimeoutMinMs}), got ${raft.electionTimeoutMaxMs}`,
      );
    }
    if (raft.readMode === "lease" && !raft.checkQuorum) {
      issue(
        "readMode",
        `"lease" needs raft.check_quorum = true (a leader must step down before its lease can expire)`,
      );
    }
    const drift = raft.leaseClockDriftMs;
    const driftLimit = raft.electionTimeoutMinMs - 3 * raft.tickIntervalMs;
    if (drift !== undefined && drift >= driftLimit) {
      issue(
        "leaseClockDriftMs",
        `expected less than raft.election_timeout_min_ms - 3 × raft.tick_interval_ms (${driftLimit}), got ${drift}: it would leave no lease`,
      );
    }
  })
  .prefault({})
  .transform((raft) => ({
    ...raft,
    /**
     * Clock drift the leader lease allows for, in ms: the lease lasts one election timeout
     * minus one tick minus this; `lease_clock_drift_ms`, or a fifth of
     * `election_timeout_min_ms` when unset.
     */
    leaseClockDriftMs: raft.leaseClockDriftMs ?? Math.ceil(raft.electionTimeoutMinMs / 5),
  }));

const CLUSTER_ID_EXPECTED =
  "expected 1 to 64 characters of letters, digits, '.', '_' or '-' for the cluster id";

/** One member of the initial cluster (a `[[cluster.members]]` table). */
export const memberTable = z.strictObject(
  {
    /** The member's node id. */
    nodeId: positiveInteger(),
    /** The member's `host:port` for peers and clients. */
    addr: address(),
  },
  { error: "expected a [[cluster.members]] table" },
);

/** The `[cluster]` table: the cluster id and the initial members. */
export const clusterTable = table("cluster", {
  /** Recorded in storage and carried by every peer message; default `"rockraft"`. */
  clusterId: z
    .string({ error: CLUSTER_ID_EXPECTED })
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: CLUSTER_ID_EXPECTED })
    .default("rockraft"),
  /** Initial members for `initialize`; empty when the file lists none. Sorted by node id. */
  members: z
    .array(memberTable, { error: "expected an array of [[cluster.members]] tables" })
    .default([]),
})
  .superRefine((cluster, ctx) => {
    const seenIds = new Map<number, number>();
    const seenAddrs = new Map<string, number>();
    cluster.members.forEach((member, i) => {
      const firstId = seenIds.get(member.nodeId);
      if (firstId === undefined) seenIds.set(member.nodeId, i);
      else {
        brokenRule(
          ctx,
          ["members", i, "nodeId"],
          `duplicate node id ${member.nodeId} (also at cluster.members[${firstId}])`,
        );
      }
      const firstAddr = seenAddrs.get(member.addr);
      if (firstAddr === undefined) seenAddrs.set(member.addr, i);
      else {
        brokenRule(
          ctx,
          ["members", i, "addr"],
          `duplicate address "${member.addr}" (also at cluster.members[${firstAddr}])`,
        );
      }
    });
  })
  .prefault({});

/** The `[tls]` table: server TLS, and mutual TLS when client certificates are required. */
export const tlsTable = table("tls", {
  /** CA bundle that peer and client certificates must chain to; required with `requireClientCert`. Absolute. */
  caFile: path().optional(),
  /** This node's certificate (PEM). Absolute. */
  certFile: path(),
  /** This node's private key (PEM). Absolute. */
  keyFile: path(),
  /** Refuse peers and clients without a certificate from `caFile` (mutual TLS); default false. */
  requireClientCert: boolean().default(false),
  /**
   * With mutual TLS: the common name every peer's certificate has; the peer service refuses
   * any other (a client certificate from the same CA cannot act as a peer). Absent: any
   * certificate from `caFile` is a peer's.
   */
  peerCommonName: z
    .string({ error: "expected a certificate common name" })
    .min(1, { error: "expected a certificate common name" })
    .optional(),
  /**
   * With mutual TLS and authentication on: a call without a token is made as the user named
   * by its client certificate's common name (etcd's `--client-cert-auth`); default false.
   */
  clientCertAuth: boolean().default(false),
}).superRefine((tls, ctx) => {
  if (tls.clientCertAuth && !tls.requireClientCert) {
    brokenRule(
      ctx,
      ["clientCertAuth"],
      "needs tls.require_client_cert = true (only a verified certificate may name a user)",
    );
  }
  if (tls.peerCommonName !== undefined && !tls.requireClientCert) {
    brokenRule(
      ctx,
      ["peerCommonName"],
      "needs tls.require_client_cert = true (peers are told apart by their certificates)",
    );
  }
  if (tls.requireClientCert && tls.caFile === undefined) {
    brokenRule(
      ctx,
      ["caFile"],
      "required when tls.require_client_cert = true (client certificates are verified against it)",
    );
  }
});

/** The `[limits]` table: the largest key and value a client may write. */
export const limitsTable = table("limits", {
  /** Largest key in bytes; default 4096. */
  maxKeyBytes: integer(1, 64 * MIB, "expected a size in bytes from 1 to 64 MiB").default(4096),
  /** Largest value in bytes; default 1 MiB. */
  maxValueBytes: integer(0, 64 * MIB, "expected a size in bytes from 0 to 64 MiB").default(MIB),
}).prefault({});

/**
 * The `[sessions]` table: client sessions, which make every write safe to retry (a retry
 * answers what the first attempt did instead of applying twice). The limits are those of
 * the node that opens a session, kept in the log with it.
 */
export const sessionsTable = table("sessions", {
  /**
   * Whether this node offers client sessions (opens them for clients, and writes its
   * in-process API's writes through one); default true. False while a cluster is upgraded
   * from a version without sessions: see the `rockraft` package's README, "Upgrades".
   */
  enabled: boolean().default(true),
  /**
   * A session expires after this long without a write, in the log's time (the leaders'
   * measured intervals, the same on every node); default 600000 (10 minutes), at least 1000
   * and at least 4 × `clock_interval_ms`.
   */
  idleTimeoutMs: integer(
    1000,
    365 * 24 * 3600 * 1000,
    "expected milliseconds from 1000 to a year",
  ).default(600_000),
  /** Most sessions open in the cluster: opening another is refused; default 4096. */
  maxSessions: integer(1, 1_000_000, "expected an integer from 1 to 1000000").default(4096),
  /**
   * Most writes of one session whose responses are kept for retries until the client
   * acknowledges them: another write is refused; default 1024.
   */
  maxUnacknowledged: integer(1, 1_000_000, "expected an integer from 1 to 1000000").default(1024),
  /** How often the leader moves the log's time on while sessions are open; default 1000. */
  clockIntervalMs: integer(10, 60_000, "expected milliseconds from 10 to 60000").default(1000),
})
  .superRefine((sessions, ctx) => {
    // A session may expire up to one interval early: the timeout must span several.
    if (sessions.idleTimeoutMs < 4 * sessions.clockIntervalMs) {
      brokenRule(
        ctx,
        ["idleTimeoutMs"],
        `expected at least 4 × sessions.clock_interval_ms (${4 * sessions.clockIntervalMs}), got ${sessions.idleTimeoutMs}: a session may expire up to one interval early`,
      );
    }
  })
  .prefault({});

/**
 * The `[auth]` table: the tokens this node issues (users, roles and whether auth is on live
 * in the replicated state, changed through the Auth service).
 */
export const authTable = table("auth", {
  /** How long a token from Authenticate is valid; default 300000 (5 minutes). */
  tokenTtlMs: integer(
    1000,
    7 * 24 * 3600 * 1000,
    "expected milliseconds from 1000 to a week",
  ).default(300_000),
}).prefault({});

/** The `[metrics]` table: a Prometheus endpoint. */
export const metricsTable = table("metrics", {
  /** `host:port` the HTTP endpoint binds. */
  addr: address(),
  /** URL path of the metrics; default `/metrics`. */
  path: z
    .string({ error: 'expected a URL path starting with "/"' })
    .regex(/^\/\S*$/, { error: 'expected a URL path starting with "/"' })
    .default("/metrics"),
});

/** pino's log levels; `silent` logs nothing. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** The `[log]` table. */
export const logTable = table("log", {
  /** Lowest level logged; default `info`. */
  level: z
    .enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.map((l) => `"${l}"`).join(", ")}` })
    .default("info"),
  /** `"auto"` (the default): pretty when standard output is a terminal. */
  pretty: z
    .union([z.boolean(), z.literal("auto")], { error: 'expected true, false or "auto"' })
    .default("auto"),
}).prefault({});

/**
 * Every table, in file order, by its name in the file. Required tables have no default;
 * optional tables whose keys all have defaults use `prefault({})`, so that their keys'
 * defaults apply when the table is absent; tables with a required key (tls, metrics) stay
 * undefined when absent.
 */
export const sections = {
  node: nodeTable,
  rocksdb: rocksdbTable,
  raft: raftTable,
  cluster: clusterTable,
  tls: tlsTable.optional(),
  limits: limitsTable,
  sessions: sessionsTable,
  auth: authTable,
  metrics: metricsTable.optional(),
  log: logTable,
};

/** `tickIntervalMs` → `tick_interval_ms`: how the file spells a schema key. */
export function fileKey(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** The schema's keys per table (`""` for the tables, `cluster.members[]` for a member). */
export const schemaKeys: Record<string, readonly string[]> = {
  "": Object.keys(sections),
  node: Object.keys(nodeTable.in.shape),
  rocksdb: Object.keys(rocksdbTable.shape),
  raft: Object.keys(raftTable.in.unwrap().shape),
  cluster: Object.keys(clusterTable.unwrap().shape),
  "cluster.members[]": Object.keys(memberTable.shape),
  tls: Object.keys(tlsTable.shape),
  limits: Object.keys(limitsTable.unwrap().shape),
  sessions: Object.keys(sessionsTable.unwrap().shape),
  auth: Object.keys(authTable.unwrap().shape),
  metrics: Object.keys(metricsTable.shape),
  log: Object.keys(logTable.unwrap().shape),
};

/** Every table, validated, in the schema's (camelCase) keys. */
export type Sections = { [Name in keyof typeof sections]: z.output<(typeof sections)[Name]> };
