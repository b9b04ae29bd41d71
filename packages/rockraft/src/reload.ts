// Runtime configuration: what a reload (SIGHUP, Cluster.ReloadConfig, `config set`) may
// change while the node runs, and what it may not. A reload compares the running config
// with the new one key by key (in the file's spelling); a change to a key that is not live
// refuses the whole reload, naming each such key, and nothing changes.
import { createHash } from "node:crypto";
import type { CertificateFiles } from "@rockraft/transport-grpc";
import { fileKey, loadConfig, type Config } from "@rockraft/config";
import { RockraftError } from "./errors.js";
import { maxMessageBytesOf, raftOptionsOf } from "./options.js";
import type { NodeMetricsExporter } from "./metrics.js";
import type { NodeRuntime } from "./runtime.js";

/** One key a reload changes: its name in the file, the value before and after. */
export interface ConfigChange {
  /** The key as the file spells it, e.g. `limits.max_value_bytes`. */
  readonly key: string;
  /** The running value. */
  readonly old: unknown;
  /** The new value. */
  readonly new: unknown;
}

/**
 * The keys a reload changes live: the log level, the snapshot policy, the replication
 * limits, Raft's timing (with ReadIndex reads), the largest key and value a client may
 * write, the limits new client sessions are opened with, the token lifetime, the metrics
 * endpoint and the TLS files. Every other key needs a restart.
 */
export const LIVE_KEYS: ReadonlySet<string> = new Set([
  "log.level",
  "raft.snapshot_logs_since_last",
  "raft.snapshot_keep_logs",
  "raft.max_entries_per_append",
  "raft.max_bytes_per_append",
  "raft.max_inflight_appends",
  "raft.heartbeat_interval_ms",
  "raft.election_timeout_min_ms",
  "raft.election_timeout_max_ms",
  "raft.lease_clock_drift_ms",
  "limits.max_key_bytes",
  "limits.max_value_bytes",
  "sessions.idle_timeout_ms",
  "sessions.max_sessions",
  "sessions.max_unacknowledged",
  "auth.token_ttl_ms",
  "metrics",
  "metrics.addr",
  "metrics.path",
  "tls.cert_file",
  "tls.key_file",
  "tls.ca_file",
]);

/** The live keys of the replication limits. */
const REPLICATION_KEYS: ReadonlySet<string> = new Set([
  "raft.max_entries_per_append",
  "raft.max_bytes_per_append",
  "raft.max_inflight_appends",
]);

/** The live keys of Raft's timing (live with ReadIndex reads only). */
const TIMING_KEYS: ReadonlySet<string> = new Set([
  "raft.heartbeat_interval_ms",
  "raft.election_timeout_min_ms",
  "raft.election_timeout_max_ms",
  "raft.lease_clock_drift_ms",
]);

/** The `Config` tables by the name the file gives them. */
const TABLES = {
  node: "node",
  rocksdb: "storage",
  raft: "raft",
  cluster: "cluster",
  tls: "tls",
  limits: "limits",
  sessions: "sessions",
  auth: "auth",
  metrics: "metrics",
  log: "log",
} as const;

/** Every key whose value differs between `current` and `next`, in file order. */
export function configChanges(current: Config, next: Config): ConfigChange[] {
  const changes: ConfigChange[] = [];
  for (const [table, field] of Object.entries(TABLES)) {
    const before = current[field] as Record<string, unknown> | undefined;
    const after = next[field] as Record<string, unknown> | undefined;
    if (before === undefined || after === undefined) {
      if (before !== after) changes.push({ key: table, old: before, new: after });
      continue;
    }
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
        changes.push({ key: `${table}.${fileKey(key)}`, old: before[key], new: after[key] });
      }
    }
  }
  return changes;
}

/**
 * The changes `next` makes to `current`, all of them live; otherwise RAFT_INVALID_ARGUMENT
 * naming every key that needs a restart, its running and its new value.
 */
export function liveChanges(current: Config, next: Config): ConfigChange[] {
  const changes = configChanges(current, next);
  const refused = changes.filter((change) => !LIVE_KEYS.has(change.key));
  if (refused.length > 0) {
    const keys = refused
      .map((c) => `${c.key} (${JSON.stringify(c.old)} → ${JSON.stringify(c.new)})`)
      .join(", ");
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `reload from ${next.source}: ${keys} cannot change while the node runs: restart the node to change ${refused.length === 1 ? "it" : "them"}; nothing was changed`,
    );
  }
  return changes;
}

/** One line for the log: each changed key, its old and new value. */
export function describeChanges(changes: readonly ConfigChange[]): string {
  if (changes.length === 0) return "config reloaded: nothing changed";
  const each = changes.map((c) => `${c.key} ${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`);
  return `config reloaded: ${each.join(", ")}`;
}

/** What a reload needs to know of how the node was built. */
export interface ReloadContext {
  /** The gRPC message limit the server and peer streams were started with. */
  readonly messageBytes: number;
  /** Whether the logger was made from `[log]` (a reload then sets its level). */
  readonly ownLogger: boolean;
  /** The node's TLS files (read again at each reload: certificate rotation). */
  readonly certificates?: CertificateFiles | undefined;
  /** Keys set by `config set` in place of the file's, until the node restarts. */
  readonly overrides: Map<string, unknown>;
  /** The Prometheus endpoint, moved by a reload of `[metrics]`. */
  readonly exporter?: NodeMetricsExporter | undefined;
  /** Reloads run one at a time, in call order: the last one queued. */
  queue?: Promise<unknown>;
}

/** Runs `work` once the reloads queued before it are done (each sees the last one's result). */
export function serialized<T>(context: ReloadContext, work: () => Promise<T>): Promise<T> {
  const run = (context.queue ?? Promise.resolve()).then(work, work);
  context.queue = run.catch(() => undefined);
  return run;
}

/** A short fingerprint of a PEM file's bytes, to log which one is in use (never a secret). */
const fingerprint = (bytes: Buffer | null) =>
  bytes === null ? null : `sha256:${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}`;

/**
 * Reads the TLS files again (at `next`'s paths): connections made from now on present the
 * new certificate and verify against the new CA. The changes in their contents, by
 * fingerprint (`tls.certificate`, `tls.ca`); unusable files are RAFT_INVALID_ARGUMENT.
 */
function rotateCertificates(
  certificates: CertificateFiles | undefined,
  next: Config,
): ConfigChange[] {
  if (certificates === undefined || next.tls === undefined) return [];
  const before = certificates.current();
  try {
    if (!certificates.reload(next.tls)) return [];
  } catch (error) {
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `reload from ${next.source}: ${(error as Error).message}; nothing was changed`,
      { cause: error },
    );
  }
  const after = certificates.current();
  const changes: ConfigChange[] = [];
  for (const [key, old, now] of [
    ["tls.certificate", fingerprint(before.cert), fingerprint(after.cert)],
    ["tls.ca", fingerprint(before.ca), fingerprint(after.ca)],
  ] as const) {
    if (old !== now) changes.push({ key, old, new: now });
  }
  return changes;
}

/**
 * Runs `runtime` with `next` from now on (see `RaftNode.reloadConfig`): only live keys may
 * change, `[limits]` no further than the message size the node started with; otherwise
 * RAFT_INVALID_ARGUMENT and nothing changes. Logs the changes (before a new level applies)
 * and moves the generation on when something changed.
 */
export function applyReload(
  runtime: NodeRuntime,
  next: Config,
  context: ReloadContext,
): Promise<ConfigChange[]> {
  return serialized(context, () => applyConfig(runtime, next, context));
}

async function applyConfig(
  runtime: NodeRuntime,
  next: Config,
  context: ReloadContext,
): Promise<ConfigChange[]> {
  if (runtime.metrics().stopped) {
    throw new RockraftError("RAFT_NODE_STOPPED", `node ${runtime.nodeId} is stopped`);
  }
  const changes = liveChanges(runtime.config, next);
  // Larger limits would need larger messages than the server and peers were started with.
  const needed = maxMessageBytesOf(next);
  if (needed > context.messageBytes) {
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `reload from ${next.source}: raft.max_bytes_per_append + limits.max_key_bytes + limits.max_value_bytes (${next.raft.maxBytesPerAppend} + ${next.limits.maxKeyBytes} + ${next.limits.maxValueBytes}) need gRPC messages of ${needed} bytes, more than the ${context.messageBytes} this node started with: restart the node to raise them; nothing was changed`,
    );
  }
  // Timing is live with ReadIndex reads only: the lease rests on the election timeout.
  const timing = changes.filter((c) => TIMING_KEYS.has(c.key));
  if (timing.length > 0 && next.raft.readMode === "lease") {
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `reload from ${next.source}: ${timing.map((c) => c.key).join(", ")} cannot change while the node runs with raft.read_mode = "lease" (the lease rests on the election timeout): restart the nodes to change it; nothing was changed`,
    );
  }
  // A moved metrics endpoint is bound first, the old one still serving; it takes over
  // only once nothing else can refuse the reload.
  const metrics = await moveMetrics(runtime.config, next, context);
  try {
    // The TLS files are read again (a reload refused here changes nothing either).
    changes.push(...rotateCertificates(context.certificates, next));
  } catch (error) {
    await metrics?.discard();
    throw error;
  }
  await metrics?.activate();
  const generation = runtime.configGeneration + (changes.length > 0 ? 1 : 0);
  // Logged before a new level applies: a less verbose one would drop the line.
  runtime.logger.info({ generation }, describeChanges(changes));
  if (changes.length > 0) {
    runtime.config = next;
    runtime.configGeneration = generation;
    const raft = raftOptionsOf(next);
    // The replication limits: from the next append sent (a smaller in-flight window holds
    // what is in flight until it is acknowledged).
    if (changes.some((c) => REPLICATION_KEYS.has(c.key))) {
      const { maxEntriesPerMsg, maxBytesPerMsg, maxInflightMsgs } = raft;
      runtime.raw.setReplicationLimits({ maxEntriesPerMsg, maxBytesPerMsg, maxInflightMsgs });
    }
    // The timing, from the next tick (checked above: not in the lease read mode).
    if (timing.length > 0) {
      const { heartbeatTick, electionTick, electionTickMax } = raft;
      runtime.raw.setTiming({ heartbeatTick, electionTick, electionTickMax });
    }
    if (context.ownLogger) runtime.logger.level = next.log.level;
  }
  return changes;
}

/**
 * When `[metrics]` moves (another address or path, added or removed): the new endpoint,
 * bound but not serving yet (`activate()` makes it the one; none when removed).
 */
async function moveMetrics(
  current: Config,
  next: Config,
  context: ReloadContext,
): Promise<{ activate(): Promise<void>; discard(): Promise<void> } | undefined> {
  const exporter = context.exporter;
  const [before, after] = [current.metrics, next.metrics];
  if (exporter === undefined || JSON.stringify(before) === JSON.stringify(after)) return undefined;
  if (after === undefined) return { activate: () => exporter.close(), discard: async () => {} };
  // The same address (only the path moved): served by the same server from now on.
  if (before !== undefined && before.addr === after.addr) {
    const swap = () => {
      exporter.setPath(after.path);
      return Promise.resolve();
    };
    return { activate: swap, discard: async () => {} };
  }
  try {
    return await exporter.bind(after.addr, after.path);
  } catch (error) {
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `reload from ${next.source}: ${(error as Error).message}; nothing was changed`,
      { cause: error },
    );
  }
}

/**
 * Reads `runtime`'s config file (its `source`) again and applies it (see applyReload); a
 * file that cannot be read or does not parse is RAFT_INVALID_ARGUMENT with its own message.
 */
export function reloadFromFile(
  runtime: NodeRuntime,
  context: ReloadContext,
): Promise<ConfigChange[]> {
  return serialized(context, () => reloadWith(runtime, context, context.overrides));
}

async function reloadWith(
  runtime: NodeRuntime,
  context: ReloadContext,
  overrides: ReadonlyMap<string, unknown>,
): Promise<ConfigChange[]> {
  const next = await loadConfig(runtime.config.source, {
    overrides: Object.fromEntries(overrides),
  }).catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    throw new RockraftError("RAFT_INVALID_ARGUMENT", message, { cause: error });
  });
  return applyConfig(runtime, next, context);
}

/**
 * Sets live key `key` (the file's spelling, e.g. `limits.max_value_bytes`) to `value` in
 * place of the file's, or with `undefined` goes back to the file's, and reloads the file
 * with every key set so (see reloadFromFile). A key that is not live, or a value the
 * schema refuses, is RAFT_INVALID_ARGUMENT, and nothing changes. The keys set hold through
 * later reloads until the node restarts; the file is not changed.
 */
export async function setConfigKey(
  runtime: NodeRuntime,
  context: ReloadContext,
  key: string,
  value: unknown,
): Promise<ConfigChange[]> {
  if (!LIVE_KEYS.has(key) || key.startsWith("tls.") || !key.includes(".")) {
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `config set ${key}: not a key that can be set while the node runs (${[...LIVE_KEYS].filter((k) => !k.startsWith("tls.") && k.includes(".")).join(", ")}); for any other, change the file and restart the node`,
    );
  }
  return serialized(context, async () => {
    const overrides = new Map(context.overrides);
    if (value === undefined) overrides.delete(key);
    else overrides.set(key, value);
    const changes = await reloadWith(runtime, context, overrides).catch((error: unknown) => {
      if (error instanceof RockraftError && error.code === "RAFT_NODE_STOPPED") throw error;
      const shown = value === undefined ? "(the file's)" : JSON.stringify(value);
      throw new RockraftError(
        "RAFT_INVALID_ARGUMENT",
        `config set ${key} = ${shown}: ${(error as Error).message}`,
        { cause: error },
      );
    });
    context.overrides.clear();
    for (const [name, set] of overrides) context.overrides.set(name, set);
    return changes;
  });
}
