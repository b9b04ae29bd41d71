/** Stable codes of {@link ConfigError}; callers branch on these, never on messages. */
export type ConfigErrorCode =
  /** The file could not be read (missing, a directory, no permission). */
  | "CONFIG_READ"
  /** The text is not valid TOML. */
  | "CONFIG_SYNTAX"
  /** Valid TOML, but keys, types, ranges or cross-field rules are wrong. */
  | "CONFIG_INVALID";

/** One problem in a configuration, located by its key path (`node.node_id`, `cluster.members[1].addr`). */
export interface ConfigIssue {
  /** Key path of the problem, for example `cluster.members[1].addr`. */
  readonly path: string;
  /** What was expected and what was found. */
  readonly message: string;
}

/** What a {@link ConfigError} is built from. */
export interface ConfigErrorOptions {
  /** The file path or source name. */
  readonly source: string;
  /** Every problem found (for `CONFIG_INVALID`). */
  readonly issues?: readonly ConfigIssue[];
  /** 1-based line of a syntax error. */
  readonly line?: number;
  /** 1-based column of a syntax error. */
  readonly column?: number;
  /** The underlying error, kept as `cause`. */
  readonly cause?: unknown;
}

/**
 * Everything wrong with one configuration, reported at once. The message has one line per
 * issue, each naming the source, the key path and what was expected:
 * `conf/node1.toml: node.node_id: expected a positive integer, got "abc"`.
 */
export class ConfigError extends Error {
  /** Always `"ConfigError"`. */
  override readonly name = "ConfigError";
  /** Stable code to branch on. */
  readonly code: ConfigErrorCode;
  /** The file path (or the name given to `parseConfig`) the problems were found in. */
  readonly source: string;
  /** Every problem found; empty for `CONFIG_READ`. */
  readonly issues: readonly ConfigIssue[];
  /** 1-based position of a TOML syntax error. */
  readonly line: number | undefined;
  /** 1-based column of a TOML syntax error. */
  readonly column: number | undefined;

  constructor(code: ConfigErrorCode, message: string, options: ConfigErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.source = options.source;
    this.issues = Object.freeze([...(options.issues ?? [])]);
    this.line = options.line;
    this.column = options.column;
  }
}
