import type { Prng } from "./prng.js";
import type { RaftStorage } from "./storage.js";
import type { NodeId } from "./types.js";

/**
 * How the leader confirms it still leads before serving a read: `read_index` (ReadIndex, a heartbeat
 * round) or `lease` (its leader lease; needs CheckQuorum).
 */
export type ReadMode = "read_index" | "lease";

/** Options of one Raft node. Durations are in ticks of the caller's logical clock. */
export interface RaftOptions {
  /** This node's id: a positive integer. */
  readonly id: NodeId;
  /** The storage view the node reads its durable state from. */
  readonly storage: RaftStorage;
  /** The injected source of election jitter. */
  readonly prng: Prng;
  /** Minimum election timeout, in ticks. */
  readonly electionTick: number;
  /** Election timeouts are drawn from [electionTick, electionTickMax); default 2 × electionTick. */
  readonly electionTickMax?: number;
  /** Heartbeat interval, in ticks; less than electionTick. */
  readonly heartbeatTick: number;
  /** The index the state machine has applied up to (at restart); default 0. */
  readonly applied?: number;
  /** Entries per MsgApp; default 300. */
  readonly maxEntriesPerMsg?: number;
  /** Entry bytes per MsgApp (at least one entry is always sent); default 1 MiB. */
  readonly maxBytesPerMsg?: number;
  /** Unacknowledged MsgApps per follower in replicate state; default 256. */
  readonly maxInflightMsgs?: number;
  /** Unacknowledged entry bytes per follower; 0 = no limit (the default). */
  readonly maxInflightBytes?: number;
  /** Bytes of committed entries handed out per Ready (at least one entry); default 64 MiB. */
  readonly maxCommittedBytesPerReady?: number;
  /** PreVote (thesis §9.6); default true. */
  readonly preVote?: boolean;
  /** CheckQuorum (thesis §6.2); default true. */
  readonly checkQuorum?: boolean;
  /** ReadIndex (`read_index`, thesis §6.4) or leader lease (`lease`, needs checkQuorum); default read_index. */
  readonly readMode?: ReadMode;
  /**
   * How many ticks the lease gives up to clock drift between nodes (`lease` reads only).
   * A lease starts when the heartbeat round a quorum acknowledged was sent and lasts
   * `electionTick - 1 - leaseClockDriftTicks` ticks; default `ceil(electionTick / 5)`.
   */
  readonly leaseClockDriftTicks?: number;
  /** Drop proposals on followers instead of forwarding them to the leader; default false. */
  readonly disableProposalForwarding?: boolean;
  /**
   * When the commit index moves, a leader sends an empty MsgApp carrying it to every
   * follower that has nothing else to receive and was not yet told of it (`broadcast`,
   * etcd's behaviour, the default), or only to those waiting for it (`on-demand`):
   * followers that forwarded the newly committed proposals, or whose read index is not yet
   * committed on their side. The others
   * learn it with their next MsgApp or heartbeat (at most `heartbeatTick` later), as the
   * paper allows (§5.3). With one write at a time this saves two messages per follower per
   * write; nothing that anyone waits for is delayed.
   */
  readonly commitNotice?: "broadcast" | "on-demand";
  /**
   * Deliberate rule breaking, for tests that prove the simulator's checkers can fail.
   * Never set outside tests.
   *
   * @internal
   */
  readonly testingUnsafe?: {
    /** Grant votes without the §5.4.1 up-to-date check. */
    readonly grantVotesWithoutLogCheck?: boolean;
    /** Serve lease reads whenever this node leads (the lease measured by CheckQuorum alone). */
    readonly leaseFromQuorumCheck?: boolean;
    /** Ignore messages of lower terms as etcd does with PreVote and CheckQuorum off. */
    readonly ignoreLowerTerms?: boolean;
  };
}

/** Throws RangeError (TypeError for the prng) naming the option that is wrong. */
export function validateOptions(options: Omit<RaftOptions, "storage">): void {
  const positive = (name: string, value: number | undefined, optional = true) => {
    if (value === undefined && optional) return;
    if (!Number.isSafeInteger(value) || (value as number) <= 0) {
      throw new RangeError(
        `RaftOptions.${name}: expected a positive integer, got ${String(value)}`,
      );
    }
  };
  positive("id", options.id, false);
  positive("electionTick", options.electionTick, false);
  positive("heartbeatTick", options.heartbeatTick, false);
  positive("electionTickMax", options.electionTickMax);
  positive("maxEntriesPerMsg", options.maxEntriesPerMsg);
  positive("maxBytesPerMsg", options.maxBytesPerMsg);
  positive("maxInflightMsgs", options.maxInflightMsgs);
  positive("maxCommittedBytesPerReady", options.maxCommittedBytesPerReady);
  if (options.heartbeatTick >= options.electionTick) {
    throw new RangeError(
      `RaftOptions.electionTick (${options.electionTick}) must be greater than heartbeatTick (${options.heartbeatTick})`,
    );
  }
  const max = options.electionTickMax ?? 2 * options.electionTick;
  if (max <= options.electionTick) {
    throw new RangeError(
      `RaftOptions.electionTickMax (${max}) must be greater than electionTick (${options.electionTick})`,
    );
  }
  if (
    options.commitNotice !== undefined &&
    options.commitNotice !== "broadcast" &&
    options.commitNotice !== "on-demand"
  ) {
    throw new RangeError(
      `RaftOptions.commitNotice: expected "broadcast" or "on-demand", got ${JSON.stringify(options.commitNotice)}`,
    );
  }
  if (options.readMode === "lease" && options.checkQuorum === false) {
    throw new RangeError(`RaftOptions.readMode "lease" requires checkQuorum`);
  }
  const drift = options.leaseClockDriftTicks;
  if (drift !== undefined && (!Number.isSafeInteger(drift) || drift < 0)) {
    throw new RangeError(
      `RaftOptions.leaseClockDriftTicks: expected a non-negative integer, got ${String(drift)}`,
    );
  }
  if (
    options.readMode === "lease" &&
    options.electionTick - 1 - (drift ?? Math.ceil(options.electionTick / 5)) < 1
  ) {
    throw new RangeError(
      `RaftOptions.leaseClockDriftTicks (${String(drift ?? Math.ceil(options.electionTick / 5))}) leaves no lease: it must be less than electionTick - 1 (${options.electionTick - 1})`,
    );
  }
  if (typeof options.prng?.nextInt !== "function") {
    throw new TypeError("RaftOptions.prng: expected a Prng (see createPrng)");
  }
}

/** The tuning options with their defaults filled in. */
export type ResolvedOptions = Required<
  Omit<RaftOptions, "testingUnsafe" | "storage" | "prng" | "id">
>;

/** Validates `options` (see `validateOptions`) and fills in the defaults. */
export function resolveOptions(options: Omit<RaftOptions, "storage">): ResolvedOptions {
  validateOptions(options);
  return {
    electionTick: options.electionTick,
    electionTickMax: options.electionTickMax ?? 2 * options.electionTick,
    heartbeatTick: options.heartbeatTick,
    applied: options.applied ?? 0,
    maxEntriesPerMsg: options.maxEntriesPerMsg ?? 300,
    maxBytesPerMsg: options.maxBytesPerMsg ?? 1024 * 1024,
    maxInflightMsgs: options.maxInflightMsgs ?? 256,
    maxInflightBytes: options.maxInflightBytes ?? 0,
    maxCommittedBytesPerReady: options.maxCommittedBytesPerReady ?? 64 * 1024 * 1024,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    readMode: options.readMode ?? "read_index",
    leaseClockDriftTicks: options.leaseClockDriftTicks ?? Math.ceil(options.electionTick / 5),
    disableProposalForwarding: options.disableProposalForwarding ?? false,
    commitNotice: options.commitNotice ?? "broadcast",
  };
}
