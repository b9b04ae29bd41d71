import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import type { z } from "zod";
import type { Config } from "./config.js";
import { ConfigError, type ConfigIssue } from "./errors.js";
import { knownKeys, parseAddress, sections, type Sections } from "./schema.js";

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Names the text in error messages (a file path); also the base for relative paths. */
  readonly source?: string;
  /** Directory relative paths resolve against; default: the source's directory, else the cwd. */
  readonly baseDir?: string;
}

/** Reads and validates a TOML config file. Relative paths in it resolve against its directory. */
export async function loadConfig(path: string): Promise<Config> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError("loadConfig(path): expected a non-empty file path");
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT"
        ? "file not found"
        : (error as NodeJS.ErrnoException).code === "EISDIR"
          ? "is a directory, expected a TOML file"
          : `cannot be read (${(error as Error).message})`;
    throw new ConfigError("CONFIG_READ", `${path}: ${reason}`, { source: path, cause: error });
  }
  const config = parseConfig(text, { source: path, baseDir: dirname(resolve(path)) });
  const issues = await missingFiles(config);
  if (issues.length > 0) {
    const lines = issues.map((issue) => `${path}: ${issue.path}: ${issue.message}`);
    throw new ConfigError("CONFIG_INVALID", lines.join("\n"), { source: path, issues });
  }
  return config;
}

/** The files a config names must exist when it is loaded from disk, not when a node dials. */
async function missingFiles(config: Config): Promise<ConfigIssue[]> {
  const files: [string, string | undefined][] = [
    ["tls.ca_file", config.tls?.caFile],
    ["tls.cert_file", config.tls?.certFile],
    ["tls.key_file", config.tls?.keyFile],
  ];
  const issues: ConfigIssue[] = [];
  for (const [key, file] of files) {
    if (file === undefined) continue;
    try {
      await access(file, constants.R_OK);
    } catch {
      issues.push({ path: key, message: `file not found or not readable: ${file}` });
    }
  }
  return issues;
}

/** Validates TOML text; throws one {@link ConfigError} listing every problem. */
export function parseConfig(text: string, options: ParseConfigOptions = {}): Config {
  if (typeof text !== "string") throw new TypeError("parseConfig(text): expected a string");
  const source = options.source ?? "<config>";
  const baseDir =
    options.baseDir ?? (options.source === undefined ? process.cwd() : dirname(resolve(source)));

  let document: Record<string, unknown>;
  try {
    document = parseToml(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    const [headline] = error.message.split("\n");
    const reason = (headline ?? "").replace(/^Invalid TOML document: /, "");
    const lineText = text.split(/\r?\n/)[error.line - 1] ?? "";
    const pointer = `${" ".repeat(Math.max(0, error.column - 1))}^`;
    throw new ConfigError(
      "CONFIG_SYNTAX",
      `${source}:${error.line}:${error.column}: invalid TOML: ${reason}\n  ${lineText}\n  ${pointer}`,
      { source, line: error.line, column: error.column, cause: error },
    );
  }

  const issues: ConfigIssue[] = [];
  for (const key of Object.keys(document)) {
    if (!(key in sections)) issues.push(unknownKey([], key));
  }
  // Each table is validated on its own, so that cross-field rules whose tables are valid
  // still run when another table has errors: the user sees every problem at once.
  const parsed: Partial<Sections> = {};
  for (const [name, schema] of Object.entries(sections) as [keyof Sections, z.ZodType][]) {
    const result = schema.safeParse(document[name], { reportInput: true });
    if (result.success) {
      (parsed as Record<string, unknown>)[name] = result.data;
    } else {
      for (const issue of result.error.issues)
        issues.push(...describeIssue([name, ...issue.path], issue));
    }
  }
  issues.push(...crossFieldIssues(parsed));

  if (issues.length > 0) {
    const lines = issues.map((issue) => `${source}: ${issue.path}: ${issue.message}`);
    throw new ConfigError("CONFIG_INVALID", lines.join("\n"), { source, issues });
  }
  const resolvedSource = options.source === undefined ? source : resolve(options.source);
  return deepFreeze(toConfig(parsed as Sections, resolvedSource, baseDir));
}

function crossFieldIssues(parsed: Partial<Sections>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const { node, raft, cluster, tls } = parsed;
  if (raft) {
    if (raft.heartbeat_interval_ms < raft.tick_interval_ms) {
      issues.push({
        path: "raft.heartbeat_interval_ms",
        message: `expected at least raft.tick_interval_ms (${raft.tick_interval_ms}), got ${raft.heartbeat_interval_ms}`,
      });
    }
    if (raft.election_timeout_min_ms <= raft.heartbeat_interval_ms) {
      issues.push({
        path: "raft.election_timeout_min_ms",
        message: `expected more than raft.heartbeat_interval_ms (${raft.heartbeat_interval_ms}), got ${raft.election_timeout_min_ms}`,
      });
    }
    if (raft.election_timeout_max_ms <= raft.election_timeout_min_ms) {
      issues.push({
        path: "raft.election_timeout_max_ms",
        message: `expected more than raft.election_timeout_min_ms (${raft.election_timeout_min_ms}), got ${raft.election_timeout_max_ms}`,
      });
    }
    if (raft.read_mode === "lease" && !raft.check_quorum) {
      issues.push({
        path: "raft.read_mode",
        message: `"lease" needs raft.check_quorum = true (a leader must step down before its lease can expire)`,
      });
    }
    const drift = raft.lease_clock_drift_ms;
    const driftLimit = raft.election_timeout_min_ms - 3 * raft.tick_interval_ms;
    if (drift !== undefined && drift >= driftLimit) {
      issues.push({
        path: "raft.lease_clock_drift_ms",
        message: `expected less than raft.election_timeout_min_ms - 3 × raft.tick_interval_ms (${driftLimit}), got ${drift}: it would leave no lease`,
      });
    }
  }
  if (node && node.advertise_addr === undefined && isWildcardHost(node.raft_addr)) {
    issues.push({
      path: "node.advertise_addr",
      message: `required when node.raft_addr listens on a wildcard address (${node.raft_addr}): peers cannot dial it`,
    });
  }
  if (cluster) {
    const seenIds = new Map<number, number>();
    const seenAddrs = new Map<string, number>();
    cluster.members.forEach((member, i) => {
      const firstId = seenIds.get(member.node_id);
      if (firstId === undefined) seenIds.set(member.node_id, i);
      else {
        issues.push({
          path: `cluster.members[${i}].node_id`,
          message: `duplicate node id ${member.node_id} (also at cluster.members[${firstId}])`,
        });
      }
      const firstAddr = seenAddrs.get(member.addr);
      if (firstAddr === undefined) seenAddrs.set(member.addr, i);
      else {
        issues.push({
          path: `cluster.members[${i}].addr`,
          message: `duplicate address "${member.addr}" (also at cluster.members[${firstAddr}])`,
        });
      }
    });
    if (node && cluster.members.length > 0) {
      const self = cluster.members.findIndex((member) => member.node_id === node.node_id);
      const advertised = node.advertise_addr ?? node.raft_addr;
      if (self < 0) {
        issues.push({
          path: "cluster.members",
          message: `expected an entry for this node (node.node_id = ${node.node_id})`,
        });
      } else if (cluster.members[self]!.addr !== advertised) {
        issues.push({
          path: `cluster.members[${self}].addr`,
          message: `expected this node's advertised address "${advertised}", got "${cluster.members[self]!.addr}"`,
        });
      }
    }
  }
  if (tls && tls.require_client_cert && tls.ca_file === undefined) {
    issues.push({
      path: "tls.ca_file",
      message:
        "required when tls.require_client_cert = true (client certificates are verified against it)",
    });
  }
  return issues;
}

function isWildcardHost(address: string): boolean {
  const host = parseAddress(address)?.host;
  return host === "0.0.0.0" || host === "[::]" || host === "[0:0:0:0:0:0:0:0]";
}

/** TOML-style key path: `cluster.members[1].addr`. */
function keyPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const part of path) {
    if (typeof part === "number") text += `[${part}]`;
    else text += text === "" ? String(part) : `.${String(part)}`;
  }
  return text;
}

function unknownKey(tablePath: readonly PropertyKey[], key: string): ConfigIssue {
  const table = keyPath(tablePath.map((part) => (typeof part === "number" ? "[]" : part))).replace(
    /\.\[\]/g,
    "[]",
  );
  const known = knownKeys[table] ?? [];
  const suggestion = closest(key, known);
  const where = table === "" ? "unknown table" : "unknown key";
  return {
    path: keyPath([...tablePath, key]),
    message:
      suggestion === undefined
        ? `${where}; expected one of ${known.join(", ")}`
        : `${where}; did you mean "${suggestion}"?`,
  };
}

function describeIssue(path: PropertyKey[], issue: z.core.$ZodIssue): ConfigIssue[] {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => unknownKey(path, key));
  }
  const input = (issue as { input?: unknown }).input;
  const suffix = input === undefined ? ", but it is missing" : `, got ${describeValue(input)}`;
  return [{ path: keyPath(path), message: `${issue.message}${suffix}` }];
}

function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date-time";
  if (typeof value === "object" && value !== null) return "a table";
  return String(value);
}

/** The nearest known key, if it is a plausible typo of `key` (one edit per four characters). */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(key.length / 4)) + 1;
  for (const candidate of known) {
    const distance = editDistance(key, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function toConfig(sectionsData: Sections, source: string, baseDir: string): Config {
  const { node, rocksdb, raft, cluster, tls, limits, metrics, log } = sectionsData;
  const absolute = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  return {
    source,
    node: {
      nodeId: node.node_id,
      raftAddr: node.raft_addr,
      advertiseAddr: node.advertise_addr ?? node.raft_addr,
    },
    storage: {
      dataPath: absolute(rocksdb.data_path),
      maxOpenFiles: rocksdb.max_open_files,
      cacheSize: rocksdb.cache_size,
      writeBufferSize: rocksdb.write_buffer_size,
      blockSize: rocksdb.block_size,
      compression: rocksdb.compression,
    },
    raft: {
      tickIntervalMs: raft.tick_interval_ms,
      heartbeatIntervalMs: raft.heartbeat_interval_ms,
      electionTimeoutMinMs: raft.election_timeout_min_ms,
      electionTimeoutMaxMs: raft.election_timeout_max_ms,
      maxEntriesPerAppend: raft.max_entries_per_append,
      maxBytesPerAppend: raft.max_bytes_per_append,
      maxInflightAppends: raft.max_inflight_appends,
      preVote: raft.pre_vote,
      checkQuorum: raft.check_quorum,
      readMode: raft.read_mode,
      leaseClockDriftMs: raft.lease_clock_drift_ms ?? Math.ceil(raft.election_timeout_min_ms / 5),
      snapshotLogsSinceLast: raft.snapshot_logs_since_last,
      snapshotKeepLogs: raft.snapshot_keep_logs,
      snapshotChunkBytes: raft.snapshot_chunk_bytes,
      promoteMaxLagEntries: raft.promote_max_lag_entries,
    },
    cluster: {
      clusterId: cluster.cluster_id,
      members: cluster.members
        .map((member) => ({ nodeId: member.node_id, addr: member.addr }))
        .sort((a, b) => a.nodeId - b.nodeId),
    },
    tls:
      tls === undefined
        ? undefined
        : {
            caFile: tls.ca_file === undefined ? undefined : absolute(tls.ca_file),
            certFile: absolute(tls.cert_file),
            keyFile: absolute(tls.key_file),
            requireClientCert: tls.require_client_cert,
          },
    limits: { maxKeyBytes: limits.max_key_bytes, maxValueBytes: limits.max_value_bytes },
    metrics: metrics === undefined ? undefined : { addr: metrics.addr, path: metrics.path },
    log: { level: log.level, pretty: log.pretty },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
