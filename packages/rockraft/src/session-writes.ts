// Writes through client sessions (the Raft dissertation, §6.3): a write tagged with its
// session and sequence number is safe to propose again after an unknown outcome, because
// the state machine answers a retry with the first application's response (storage-level's
// sessions.ts). So a tagged write is proposed again, on this node, until its outcome is
// known or the caller's deadline passes; only then is it reported as unknown.
import type { SessionsConfig } from "@rockraft/config";
import type {
  ApplyResult,
  AuthRefusal,
  AuthTag,
  Command,
  SessionRefusal,
} from "@rockraft/storage-level";
import { ClientSessions } from "@rockraft/transport-grpc";
import { RockraftError, withUnknownOutcome, type RockraftErrorCode } from "./errors.js";
import type { AppliedWrite } from "./proposals.js";
import type { Clock } from "./seams.js";

/** A write a session may tag. */
export type SessionWrite = Extract<Command, { op: "put" | "delete" | "cas" }>;

/** What proposing needs of the runtime. */
export interface Proposing {
  readonly clock: Clock;
  /** Proposes a command; resolves once it is applied on this node. */
  write(command: Command, timeoutMs: number): Promise<AppliedWrite>;
}

/** Errors after which proposing the same tagged write again is safe and may succeed. */
const RETRYABLE = new Set<RockraftErrorCode>([
  "RAFT_PROPOSAL_DROPPED",
  "RAFT_NO_LEADER",
  "RAFT_NOT_LEADER",
  "RAFT_TIMEOUT",
]);

const CODES: Record<SessionRefusal | AuthRefusal, RockraftErrorCode> = {
  SESSION_EXPIRED: "RAFT_SESSION_EXPIRED",
  SESSION_LIMIT: "RAFT_SESSION_LIMIT",
  SESSION_STALE: "RAFT_SESSION_STALE",
  AUTH_INVALID: "RAFT_AUTH_INVALID",
  AUTH_UNAUTHENTICATED: "RAFT_UNAUTHENTICATED",
  AUTH_PERMISSION_DENIED: "RAFT_PERMISSION_DENIED",
};

/** A pause between attempts that failed at once (no leader yet, a dropped proposal). */
const PAUSE_MS = 50;

/** How a tagged write is proposed until its outcome is known. */
export interface ProposeOptions {
  /**
   * How long the first attempt waits for its entry to apply before the write is proposed
   * again; each next attempt waits twice as long (a loaded cluster is not flooded with
   * copies of its writes).
   */
  readonly attemptMs: number;
  /**
   * Fail at once with RAFT_NO_LEADER or RAFT_NOT_LEADER rather than wait for a leader (a
   * call from a client, which then tries another node); the error says whether an
   * earlier attempt may have applied.
   */
  readonly failFast?: boolean;
}

/**
 * Proposes `command` until it is applied or `deadline` passes: an attempt whose outcome is
 * unknown (a forwarded proposal lost on the way, a leader that lost its term) is followed
 * by another, which the session makes safe. A write refused for its session's limit of
 * unacknowledged answers is proposed again after a pause (it was not applied, and the
 * answers it waits for are being acknowledged) while at least a quarter of
 * `attemptMs` would be left for the answer; then it rejects with RAFT_SESSION_LIMIT.
 * Any other refusal rejects with
 * RAFT_SESSION_*; `outcomeUnknown` then says whether an earlier attempt may have applied.
 */
export async function proposeUntilKnown(
  node: Proposing,
  command: Command,
  deadline: number,
  options: ProposeOptions,
): Promise<AppliedWrite> {
  const clock = node.clock;
  let unknown = false;
  let last: RockraftError | undefined;
  let attemptMs = options.attemptMs;
  for (;;) {
    const left = deadline - clock.now();
    if (left <= 0) {
      if (last !== undefined && last.code.startsWith("RAFT_SESSION")) {
        throw unknown ? withUnknownOutcome(last) : last;
      }
      throw new RockraftError(
        "RAFT_TIMEOUT",
        unknown
          ? "the write was not confirmed within the deadline; its outcome is unknown"
          : `the write could not be proposed within the deadline${last === undefined ? "" : `: ${last.message}`}`,
        { outcomeUnknown: unknown, cause: last },
      );
    }
    let applied: AppliedWrite;
    try {
      applied = await node.write(command, Math.min(left, attemptMs));
    } catch (error) {
      const fast =
        options.failFast === true &&
        error instanceof RockraftError &&
        (error.code === "RAFT_NO_LEADER" || error.code === "RAFT_NOT_LEADER");
      if (fast || !(error instanceof RockraftError) || !RETRYABLE.has(error.code)) {
        throw unknown ? withUnknownOutcome(error as Error) : error;
      }
      last = error;
      unknown ||= error.outcomeUnknown;
      // A timed-out attempt has waited already (the next one waits longer); one refused at
      // once waits a little.
      if (error.code === "RAFT_TIMEOUT") attemptMs *= 2;
      else await pause(clock, Math.min(PAUSE_MS, left));
      continue;
    }
    const result = applied.result;
    if (result.kind !== "refused") return applied;
    const refused = refusalError(result, unknown);
    if (result.refusal !== "SESSION_LIMIT" || command.op === "session-open") throw refused;
    // Proposed again only while an answer can still come back in time: an attempt cut
    // short by the deadline would turn a known refusal into an unknown outcome.
    const after = deadline - clock.now() - PAUSE_MS;
    if (after < options.attemptMs / 4) throw refused;
    last = refused;
    await pause(clock, PAUSE_MS);
  }
}

/**
 * Proposes `command` without a session: only a proposal that provably went nowhere (no
 * leader yet, or the leader could not be reached) is proposed again, until `deadline`; any
 * other failure is the caller's (a write whose outcome is unknown is not retried). A
 * refusal by the auth table rejects with its RockraftError.
 */
export async function proposeWithoutSession(
  node: Proposing,
  command: Command,
  deadline: number,
): Promise<AppliedWrite> {
  const clock = node.clock;
  for (;;) {
    let applied: AppliedWrite;
    try {
      applied = await node.write(command, Math.max(0, deadline - clock.now()));
    } catch (error) {
      const retry =
        error instanceof RockraftError &&
        error.code === "RAFT_PROPOSAL_DROPPED" &&
        (error.reason === "unreachable" || error.reason === "no-leader");
      if (!retry || clock.now() + PAUSE_MS >= deadline) throw error;
      await pause(clock, PAUSE_MS);
      continue;
    }
    if (applied.result.kind === "refused") throw refusalError(applied.result, false);
    return applied;
  }
}

/**
 * The error for a refusal by the session or auth table; `unknown`: an earlier attempt may
 * have applied.
 */
export function refusalError(
  result: Extract<ApplyResult, { kind: "refused" }>,
  unknown: boolean,
): RockraftError {
  return new RockraftError(
    CODES[result.refusal],
    unknown
      ? `${result.reason}; an earlier attempt of this write may have applied: its outcome is unknown`
      : result.reason,
    { outcomeUnknown: unknown },
  );
}

function pause(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

/**
 * The in-process API's own session (transport-grpc's `ClientSessions`, on the node's
 * clock): opened through the log on the first write, each write numbered in it and
 * proposed until its outcome is known. An expired session is replaced by a new one, and a
 * write it refused that no earlier attempt may have applied is made again in the new one.
 */
export function nodeSession(
  node: Proposing,
  /** The `[sessions]` limits to open a session with (the running config's). */
  config: () => SessionsConfig,
  /** How long the first attempt waits before a write is proposed again. */
  attemptMs: number,
): (command: SessionWrite, deadline: number) => Promise<AppliedWrite> {
  const sessions = new ClientSessions({
    open: (deadline) => openSession(node, config(), deadline, { attemptMs }),
    expired: (error) => ({
      expired: error instanceof RockraftError && error.code === "RAFT_SESSION_EXPIRED",
      outcomeUnknown: error instanceof RockraftError && error.outcomeUnknown,
    }),
    tooLate: () =>
      new RockraftError(
        "RAFT_TIMEOUT",
        "the write's deadline passed while its session was being opened; it was not proposed",
      ),
    // An open made for a write with an earlier deadline may fail (no leader, its deadline)
    // while this one has time; a refusal (too many sessions) is this write's answer too.
    openAgain: (error) => error instanceof RockraftError && RETRYABLE.has(error.code),
    timers: node.clock,
  });
  return (command, deadline) =>
    sessions.write(deadline, (session) =>
      // A node's session is always opened (undefined only from a cluster without sessions).
      proposeUntilKnown(node, { ...command, session: session! }, deadline, { attemptMs }),
    );
}

/**
 * Opens a session with this node's `[sessions]` limits; resolves with its id. An attempt
 * whose outcome is unknown is made again: at worst a session nobody uses, which expires.
 */
export async function openSession(
  node: Proposing,
  config: SessionsConfig,
  deadline: number,
  options: ProposeOptions & { readonly caller?: AuthTag | undefined },
): Promise<number> {
  const open: Command = {
    op: "session-open",
    idleTimeoutMs: config.idleTimeoutMs,
    maxUnacknowledged: config.maxUnacknowledged,
    maxSessions: config.maxSessions,
    ...(options.caller === undefined ? {} : { auth: options.caller }),
  };
  const { result } = await proposeUntilKnown(node, open, deadline, options).catch(
    (error: unknown) => {
      // Nothing depends on a session nobody learnt the id of: the outcome does not matter.
      if (error instanceof RockraftError && error.outcomeUnknown) {
        throw new RockraftError(error.code, `opening a session: ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    },
  );
  if (result.kind !== "session-open") {
    throw new Error(`openSession: unexpected result ${result.kind}`);
  }
  return result.sessionId;
}

/** Closes session `id`; resolves with whether it was open. Safe to retry. */
export async function closeSession(
  node: Proposing,
  id: number,
  deadline: number,
  attemptMs: number,
  /** The user closing it (only its owner's close closes it); none: trusted. */
  caller?: AuthTag,
): Promise<boolean> {
  const close: Command = {
    op: "session-close",
    sessionId: id,
    ...(caller === undefined ? {} : { auth: caller }),
  };
  const { result } = await proposeUntilKnown(node, close, deadline, { attemptMs });
  if (result.kind !== "session-close") {
    throw new Error(`closeSession: unexpected result ${result.kind}`);
  }
  return result.found;
}
