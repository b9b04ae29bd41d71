import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import type { z } from "zod";
import type { Config } from "./config.js";
import { ConfigError, type ConfigIssue } from "./errors.js";
import { fileKey, schemaKeys, sections, type Sections } from "./schema.js";

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Names the text in error messages (a file path); also the base for relative paths. */
  readonly source?: string;
  /** Directory relative paths resolve against; default: the source's directory, else the cwd. */
  readonly baseDir?: string;
  /**
   * Values that replace the text's, by the file's key (`"limits.max_value_bytes"`), before
   * validation: a node's `config set`. Validated as the text's are.
   */
  readonly overrides?: Readonly<Record<string, unknown>>;
}

/** Reads and validates a TOML config file. Relative paths in it resolve against its directory. */
export async function loadConfig(
  path: string,
  options: Pick<ParseConfigOptions, "overrides"> = {},
): Promise<Config> {
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
  const config = parseConfig(text, { ...options, source: path, baseDir: dirname(resolve(path)) });
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

  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    const [table, name, ...rest] = key.split(".");
    if (table === undefined || name === undefined || rest.length > 0)
      throw new TypeError(`parseConfig: override ${JSON.stringify(key)}: expected "table.key"`);
    const current = document[table];
    const fields =
      typeof current === "object" && current !== null && !Array.isArray(current)
        ? (current as Record<string, unknown>)
        : {};
    document[table] = { ...fields, [name]: value };
  }

  const issues: ConfigIssue[] = [];
  for (const key of Object.keys(document)) {
    if (!(key in sections)) issues.push(unknownKey([], key));
  }
  // Each table is validated on its own, so that cross-field rules whose tables are valid
  // still run when another table has errors: the user sees every problem at once.
  const parsed: Partial<Sections> = {};
  for (const [name, schema] of Object.entries(sections) as [keyof Sections, z.ZodType][]) {
    const unknownKeys: ConfigIssue[] = [];
    const table = inSchemaKeys(name, document[name], [name], unknownKeys);
    const result = schema.safeParse(table, { reportInput: true });
    if (result.success) {
      (parsed as Record<string, unknown>)[name] = result.data;
    } else {
      for (const issue of result.error.issues)
        issues.push(...describeIssue([name, ...issue.path], issue));
    }
    issues.push(...unknownKeys);
  }
  issues.push(...crossTableIssues(parsed));

  if (issues.length > 0) {
    const lines = issues.map((issue) => `${source}: ${issue.path}: ${issue.message}`);
    throw new ConfigError("CONFIG_INVALID", lines.join("\n"), { source, issues });
  }
  const resolvedSource = options.source === undefined ? source : resolve(options.source);
  return deepFreeze(toConfig(parsed as Sections, resolvedSource, baseDir));
}

/** The rules between tables (the rules within one are the schema's). */
function crossTableIssues(parsed: Partial<Sections>): ConfigIssue[] {
  const { node, cluster } = parsed;
  if (node === undefined || cluster === undefined || cluster.members.length === 0) return [];
  const self = cluster.members.findIndex((member) => member.nodeId === node.nodeId);
  if (self < 0) {
    return [
      {
        path: "cluster.members",
        message: `expected an entry for this node (node.node_id = ${node.nodeId})`,
      },
    ];
  }
  const advertised = node.advertiseAddr;
  if (cluster.members[self]!.addr !== advertised) {
    return [
      {
        path: `cluster.members[${self}].addr`,
        message: `expected this node's advertised address "${advertised}", got "${cluster.members[self]!.addr}"`,
      },
    ];
  }
  return [];
}

/**
 * One table of the file with the schema's keys: `tick_interval_ms` becomes `tickIntervalMs`.
 * A key the schema does not know (including one spelled in camelCase) becomes an issue and
 * is left out; a value that is not a table is left for the schema to refuse.
 */
function inSchemaKeys(
  table: string,
  value: unknown,
  path: readonly PropertyKey[],
  issues: ConfigIssue[],
): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  if (value instanceof Date) return value;
  const keys = schemaKeys[table] ?? [];
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const schemaKey = keys.find((candidate) => fileKey(candidate) === key);
    if (schemaKey === undefined) issues.push(unknownKey(path, key));
    else out[schemaKey] = child;
  }
  if (table === "cluster" && Array.isArray(out.members)) {
    out.members = out.members.map((member: unknown, i) =>
      inSchemaKeys("cluster.members[]", member, [...path, "members", i], issues),
    );
  }
  return out;
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
  const known = (schemaKeys[table] ?? []).map(fileKey);
  const suggestion = known.includes(fileKey(key)) ? fileKey(key) : closest(key, known);
  const where = table === "" ? "unknown table" : "unknown key";
  return {
    path: keyPath([...tablePath, key]),
    message:
      suggestion === undefined
        ? `${where}; expected one of ${known.join(", ")}`
        : `${where}; did you mean "${suggestion}"?`,
  };
}

function describeIssue(schemaPath: PropertyKey[], issue: z.core.$ZodIssue): ConfigIssue[] {
  const path = schemaPath.map((part) => (typeof part === "string" ? fileKey(part) : part));
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => unknownKey(path, key));
  }
  if (issue.code === "custom" && issue.params?.["rule"] === true) {
    return [{ path: keyPath(path), message: issue.message }];
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

function toConfig(tables: Sections, source: string, baseDir: string): Config {
  const { node, rocksdb, raft, cluster, tls, limits, sessions, auth, metrics, log } = tables;
  const absolute = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  return {
    source,
    node,
    storage: { ...rocksdb, dataPath: absolute(rocksdb.dataPath) },
    raft,
    cluster: { ...cluster, members: [...cluster.members].sort((a, b) => a.nodeId - b.nodeId) },
    tls:
      tls === undefined
        ? undefined
        : {
            ...tls,
            caFile: tls.caFile === undefined ? undefined : absolute(tls.caFile),
            certFile: absolute(tls.certFile),
            keyFile: absolute(tls.keyFile),
          },
    limits,
    sessions,
    auth,
    metrics,
    log,
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
