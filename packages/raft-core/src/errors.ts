/** Stable codes of {@link RaftError}; callers branch on these, never on messages. */
export type RaftErrorCode =
  /** A proposal was not accepted; `reason` says why. Safe to retry elsewhere or later. */
  | "RAFT_PROPOSAL_DROPPED"
  /** A ReadIndex request was not accepted; `reason` says why. */
  | "RAFT_READ_DROPPED"
  /** A leadership transfer or membership request was refused; `reason` says why. */
  | "RAFT_REQUEST_REFUSED"
  /** `bootstrap` on a node that already has state: never a reset. */
  | "RAFT_ALREADY_INITIALIZED"
  /** Storage asked for entries before its first index (compacted into a snapshot). */
  | "RAFT_LOG_COMPACTED"
  /** Storage asked for entries after its last index. */
  | "RAFT_LOG_UNAVAILABLE"
  /** A safety invariant does not hold; the node must stop. */
  | "RAFT_INVARIANT";

/** Why a proposal, read or request was dropped or refused. */
export type DropReason =
  | "no-leader"
  | "transfer-in-progress"
  | "not-a-member"
  | "forwarding-disabled"
  | "config-change-in-progress"
  | "not-leader";

/** An error from the core, with a stable `code`. */
export class RaftError extends Error {
  /** Always `"RaftError"`. */
  override readonly name = "RaftError";
  /** Stable code to branch on. */
  readonly code: RaftErrorCode;
  /** For dropped or refused requests: a stable reason; the leader's id when one is known. */
  readonly reason: DropReason | undefined;
  /** The leader this node knows, or 0 ({@link NONE}). */
  readonly leader: number;

  constructor(
    code: RaftErrorCode,
    message: string,
    options: { reason?: DropReason; leader?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = options.reason;
    this.leader = options.leader ?? 0;
  }
}
