/**
 * Ports free right now on 127.0.0.1, for servers that bind them later: below the kernel's
 * ephemeral range where there is room (no outgoing connection takes one meanwhile).
 */
export function freePorts(count: number): Promise<number[]>;

/**
 * Polls `condition` until it returns a value other than undefined or false, or the deadline
 * passes; resolves with that value. The error names what was awaited, and the condition's
 * last error if it threw.
 */
export function waitFor<T>(
  condition: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs?: number,
  pollMs?: number,
): Promise<T>;

/**
 * The example's `pnpm start` command line after `node` (its V8 flags and script, relative
 * to apps/basic-example), so that the benchmarks and `pnpm demo` run the nodes exactly as a
 * user does.
 */
export function exampleCommand(): string[];

// The linearizability checker (linearizability.js): shared by the whole-node simulation
// and the real-process chaos runs.

/** One client call on one key. Values are strings; undefined is "absent". */
export type KvInput =
  | { readonly op: "put"; readonly value: string }
  | { readonly op: "get" }
  | { readonly op: "delete" }
  | {
      readonly op: "cas";
      readonly expectFound: boolean;
      readonly expected: string | undefined;
      readonly value: string;
    };

export type KvOutput =
  | { readonly op: "put" }
  | { readonly op: "get"; readonly value: string | undefined }
  | { readonly op: "delete"; readonly found: boolean }
  | {
      readonly op: "cas";
      readonly succeeded: boolean;
      readonly found: boolean;
      readonly current: string | undefined;
    };

export interface Operation {
  readonly client: number;
  /** The node the call went to, and where the write landed in the log (for reports). */
  readonly node?: number;
  readonly index?: number;
  readonly key: string;
  readonly input: KvInput;
  /** Undefined: the outcome is unknown. */
  readonly output: KvOutput | undefined;
  /** Logical time of the call and of the answer (Infinity when unknown); all distinct. */
  readonly call: number;
  readonly ret: number;
}

export interface CheckResult {
  readonly ok: boolean;
  /** When not ok: the most operations linearized at once before the search gave up. */
  readonly linearizedUpTo?: number;
  /**
   * When not ok: the call time of the first operation the deepest attempt could not
   * linearize (where to look).
   */
  readonly stuckAt?: number;
  /** The search ran out of its step budget: neither proven nor refuted. */
  readonly undecided?: boolean;
}

/** The register model: is `output` possible for `input` in `state`, and the state after. */
export function step(
  state: string | undefined,
  input: KvInput,
  output: KvOutput | undefined,
): { ok: boolean; next: string | undefined };

/** Whether one key's history is linearizable from the absent state. */
export function checkKey(operations: readonly Operation[], budget?: number): CheckResult;

/** Describes an operation for a report. */
export function describe(op: Operation): string;

/**
 * Where a history that is not linearizable first goes wrong: the call time of the first
 * call by which a prefix of the history is already not linearizable.
 */
export function firstViolation(operations: readonly Operation[]): number | undefined;

/** Makes sure etcd is on the PATH: installs Debian's etcd-server when it is missing. */
export function ensureEtcd(): void;
