// The TOML document's shape, section by section, with every default in one place.
// Keys are the file's own snake_case names; `config.ts` maps them to the typed `Config`.
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

const path = () => z.string({ error: "expected a path" }).min(1, { error: "expected a path" });

const table = <Shape extends z.ZodRawShape>(name: string, shape: Shape) =>
  z.strictObject(shape, { error: `expected a [${name}] table` });

export const nodeShape = {
  node_id: positiveInteger(),
  raft_addr: address(),
  advertise_addr: address().optional(),
};

export const rocksdbShape = {
  data_path: path(),
  max_open_files: integer(16, 1_000_000, "expected an integer from 16 to 1000000").default(1000),
  cache_size: integer(0, 64 * 1024 * MIB, "expected a size in bytes from 0 to 64 GiB").default(
    8 * MIB,
  ),
  write_buffer_size: integer(
    64 * 1024,
    1024 * MIB,
    "expected a size in bytes from 64 KiB to 1 GiB",
  ).default(4 * MIB),
  block_size: integer(1024, 4 * MIB, "expected a size in bytes from 1 KiB to 4 MiB").default(4096),
  compression: boolean().default(true),
};

export const raftShape = {
  tick_interval_ms: integer(1, 60_000, "expected milliseconds from 1 to 60000").default(50),
  heartbeat_interval_ms: integer(1, 60_000, "expected milliseconds from 1 to 60000").default(100),
  election_timeout_min_ms: integer(1, 600_000, "expected milliseconds from 1 to 600000").default(
    1000,
  ),
  election_timeout_max_ms: integer(1, 600_000, "expected milliseconds from 1 to 600000").default(
    2000,
  ),
  max_entries_per_append: integer(1, 1_000_000, "expected an integer from 1 to 1000000").default(
    300,
  ),
  max_bytes_per_append: integer(
    1024,
    64 * MIB,
    "expected a size in bytes from 1 KiB to 64 MiB",
  ).default(MIB),
  max_inflight_appends: integer(1, 65_536, "expected an integer from 1 to 65536").default(256),
  pre_vote: boolean().default(true),
  check_quorum: boolean().default(true),
  read_mode: z
    .enum(["read_index", "lease"], { error: 'expected "read_index" or "lease"' })
    .default("read_index"),
  lease_clock_drift_ms: integer(0, 600_000, "expected milliseconds from 0 to 600000").optional(),
  snapshot_logs_since_last: integer(
    0,
    Number.MAX_SAFE_INTEGER,
    "expected a non-negative integer (0 turns automatic snapshots off)",
  ).default(5000),
  snapshot_keep_logs: integer(
    0,
    Number.MAX_SAFE_INTEGER,
    "expected a non-negative integer",
  ).default(1000),
  promote_max_lag_entries: integer(
    0,
    Number.MAX_SAFE_INTEGER,
    "expected a non-negative integer",
  ).default(1000),
  snapshot_chunk_bytes: integer(
    1024,
    64 * MIB,
    "expected a size in bytes from 1 KiB to 64 MiB",
  ).default(3 * MIB),
};

const CLUSTER_ID_EXPECTED =
  "expected 1 to 64 characters of letters, digits, '.', '_' or '-' for the cluster id";

export const memberShape = {
  node_id: positiveInteger(),
  addr: address(),
};

export const clusterShape = {
  cluster_id: z
    .string({ error: CLUSTER_ID_EXPECTED })
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: CLUSTER_ID_EXPECTED })
    .default("rockraft"),
  members: z
    .array(z.strictObject(memberShape, { error: "expected a [[cluster.members]] table" }), {
      error: "expected an array of [[cluster.members]] tables",
    })
    .default([]),
};

export const tlsShape = {
  ca_file: path().optional(),
  cert_file: path(),
  key_file: path(),
  require_client_cert: boolean().default(false),
};

export const limitsShape = {
  max_key_bytes: integer(1, 64 * MIB, "expected a size in bytes from 1 to 64 MiB").default(4096),
  max_value_bytes: integer(0, 64 * MIB, "expected a size in bytes from 0 to 64 MiB").default(MIB),
};

export const metricsShape = {
  addr: address(),
  path: z
    .string({ error: 'expected a URL path starting with "/"' })
    .regex(/^\/\S*$/, { error: 'expected a URL path starting with "/"' })
    .default("/metrics"),
};

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export const logShape = {
  level: z
    .enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.map((l) => `"${l}"`).join(", ")}` })
    .default("info"),
  pretty: z
    .union([z.boolean(), z.literal("auto")], { error: 'expected true, false or "auto"' })
    .default("auto"),
};

/**
 * Every section, in file order. Required sections have no default; optional sections
 * with all-defaulted keys use `prefault({})` so their keys' defaults apply when absent;
 * sections with a required key (tls, metrics) stay undefined when absent.
 */
export const sections = {
  node: table("node", nodeShape),
  rocksdb: table("rocksdb", rocksdbShape),
  raft: table("raft", raftShape).prefault({}),
  cluster: table("cluster", clusterShape).prefault({}),
  tls: table("tls", tlsShape).optional(),
  limits: table("limits", limitsShape).prefault({}),
  metrics: table("metrics", metricsShape).optional(),
  log: table("log", logShape).prefault({}),
};

/** Known keys per table, for "unknown key" messages and their suggestions. */
export const knownKeys: Record<string, readonly string[]> = {
  "": Object.keys(sections),
  node: Object.keys(nodeShape),
  rocksdb: Object.keys(rocksdbShape),
  raft: Object.keys(raftShape),
  cluster: Object.keys(clusterShape),
  "cluster.members[]": Object.keys(memberShape),
  tls: Object.keys(tlsShape),
  limits: Object.keys(limitsShape),
  metrics: Object.keys(metricsShape),
  log: Object.keys(logShape),
};

export type Sections = { [Name in keyof typeof sections]: z.output<(typeof sections)[Name]> };
