import { CHAOS_ALL, SKEWED_LEASE_DRIFT_TICKS } from "./cluster.js";
import type { RunOptions } from "./run.js";

type Variant = Omit<RunOptions, "seed" | "nodes">;

/**
 * Lease reads under every fault of time: clocks skewed by ±20% (the lease's drift bound
 * set to cover them), stalls longer than an election timeout, messages delayed by up to
 * three, and leadership transfers.
 */
export const LEASE_READS: Variant = {
  faults: CHAOS_ALL,
  raft: { readMode: "lease", leaseClockDriftTicks: SKEWED_LEASE_DRIFT_TICKS },
};

/**
 * Ticks after healing within which a leader must appear with PreVote off. A node with a
 * stale log and configuration that never learned it must not lead (say, a voter being
 * added that missed the joint entry) keeps campaigning and raising its term; the voter
 * that can win must time out before it, which random timeouts give within a few hundred
 * ticks (the longest seen: about 450). With PreVote on, such a node never raises its term.
 */
export const PRE_VOTE_OFF_HEAL_TICKS = 1000;

/** Membership churn and every fault, with PreVote off. */
export const NO_PRE_VOTE: Variant = {
  faults: CHAOS_ALL,
  churn: true,
  healTicks: PRE_VOTE_OFF_HEAL_TICKS,
  raft: { preVote: false },
};

/** Membership churn and every fault, with CheckQuorum off. */
export const NO_CHECK_QUORUM: Variant = {
  faults: CHAOS_ALL,
  churn: true,
  raft: { checkQuorum: false },
};

/** Membership churn and every fault, with PreVote and CheckQuorum off. */
export const NEITHER: Variant = {
  faults: CHAOS_ALL,
  churn: true,
  healTicks: PRE_VOTE_OFF_HEAL_TICKS,
  raft: { preVote: false, checkQuorum: false },
};

/** The seeds `pnpm test` runs of each variant (the mutation tests search the same ones). */
export const VARIANT_SEEDS = {
  lease3: 300,
  lease5: 150,
  /** PreVote and CheckQuorum both off, 3 nodes. */
  neither3: 600,
  /** One of them off, 3 nodes. */
  options3: 200,
  /** Each of the three, 5 nodes. */
  options5: 100,
} as const;
