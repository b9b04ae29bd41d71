import { RaftError } from "@rockraft/raft-core";
/** Stable codes of {@link RockraftError}; callers branch on these, never on messages. */
export type RockraftErrorCode =
  /** This node is not the leader and the call must go to the leader (see `leader`). */
  | "RAFT_NOT_LEADER"
  /** No leader is known within the call's deadline. Retry later. */
  | "RAFT_NO_LEADER"
  /** The proposal was not accepted, or a newer leader replaced it before it committed. Retry. */
  | "RAFT_PROPOSAL_DROPPED"
  /** The call's deadline passed (see `outcomeUnknown`: whether the write may be applied). */
  | "RAFT_TIMEOUT"
  /** Bad input: empty key, key or value over the configured limit, bad members. */
  | "RAFT_INVALID_ARGUMENT"
  /** The cluster is not initialized on this node yet. */
  | "RAFT_NOT_INITIALIZED"
  /** A membership change or transfer was refused (see `reason`). */
  | "RAFT_REQUEST_REFUSED"
  /** A `wait()` condition did not hold within its timeout. */
  | "RAFT_WAIT_TIMEOUT"
  /** The node was shut down, or stopped after a fatal failure (see `cause`). */
  | "RAFT_NODE_STOPPED"
  /**
   * The write's client session expired (idle longer than `[sessions] idle_timeout_ms`),
   * was closed, or never existed: the write was not applied this time (see
   * `outcomeUnknown` for an earlier attempt). Open a new session.
   */
  | "RAFT_SESSION_EXPIRED"
  /** Too many sessions open, or too many unacknowledged writes in one: nothing was applied. */
  | "RAFT_SESSION_LIMIT"
  /** A write below what its session already acknowledged (a late duplicate): not applied. */
  | "RAFT_SESSION_STALE"
  /** This node does not open client sessions (`[sessions] enabled = false`). */
  | "RAFT_SESSIONS_DISABLED"
  /**
   * Authentication is enabled and the call has no valid token (none, forged, expired, or
   * its user is gone or changed its password), or Authenticate was given a wrong password.
   */
  | "RAFT_UNAUTHENTICATED"
  /** The caller's roles do not allow the call on its key (or it needs the root role). */
  | "RAFT_PERMISSION_DENIED"
  /**
   * A change to the users and roles that does not fit them (a user that exists, a role that
   * does not, an empty prefix, removing the last root user…): nothing changed.
   */
  | "RAFT_AUTH_INVALID"
  /** `authenticate` while authentication is disabled: calls need no token. */
  | "RAFT_AUTH_NOT_ENABLED"
  /** Too many `authenticate` calls at once on this node (each hashes a password): retry. */
  | "RAFT_AUTH_BUSY";

/** The leader a node knows of: where to retry. */
export interface LeaderInfo {
  /** The leader's node id. */
  readonly id: number;
  /** The leader's address, when this node knows it. */
  readonly addr: string | undefined;
}

/** An error of a rockraft call, with a stable `code`. */
export class RockraftError extends Error {
  /** Always `"RockraftError"`. */
  override readonly name = "RockraftError";
  /** Stable code to branch on. */
  readonly code: RockraftErrorCode;
  /** The leader, when known: where to retry. */
  readonly leader: LeaderInfo | undefined;
  /** A finer reason for dropped or refused requests (raft-core's reason). */
  readonly reason: string | undefined;
  /**
   * The write (or membership change) was proposed and the call stopped waiting for it (its
   * deadline passed, the node stopped, a forwarded call lost its answer): it may or may not
   * be applied. When `false`, a failed write was not applied.
   */
  readonly outcomeUnknown: boolean;

  constructor(
    code: RockraftErrorCode,
    message: string,
    options: {
      leader?: RockraftError["leader"];
      reason?: string | undefined;
      outcomeUnknown?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.leader = options.leader;
    this.reason = options.reason;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}

/** `error`, marked as the failure of a change that may or may not be made. */
export function withUnknownOutcome(error: Error): Error {
  if (!(error instanceof RockraftError) || error.outcomeUnknown) return error;
  return new RockraftError(error.code, error.message, {
    leader: error.leader,
    reason: error.reason,
    outcomeUnknown: true,
    cause: error.cause,
  });
}

/**
 * What raft-core's refusal of a request (a RaftError) means to a caller: not the leader
 * (`notLeader()`, with the leader to follow), or RAFT_REQUEST_REFUSED with its reason.
 */
export function refusalOf(error: unknown, notLeader: () => RockraftError): Error {
  if (!(error instanceof RaftError)) return error as Error;
  if (error.reason === "not-leader" || error.reason === "no-leader") return notLeader();
  return new RockraftError("RAFT_REQUEST_REFUSED", error.message, {
    reason: error.reason,
    cause: error,
  });
}
