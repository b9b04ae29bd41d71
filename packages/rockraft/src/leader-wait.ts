import type { Config } from "@rockraft/config";
import { RockraftError } from "./errors.js";
import type { Clock } from "./seams.js";
import type { Waiter } from "./wait.js";

/** What waiting for a leader needs of the runtime. */
export interface LeaderWaitContext {
  readonly nodeId: number;
  readonly config: Config;
  readonly clock: Clock;
  readonly waiter: Waiter;
  /** When the runtime started (monotonic ms). */
  readonly startedAt: number;
  /** Whether the node has a configuration. */
  initialized(): boolean;
}

/**
 * Waits for a known leader, until `deadline` but at most one maximal election timeout:
 * by then an election that could succeed has, so the caller learns at once that there is
 * no leader it can reach (RAFT_NO_LEADER) rather than at its deadline. Until three
 * election timeouts after the node started it waits up to then: a new cluster may still
 * be connecting and electing its first leader. A node that is not initialized yet may be
 * about to receive its configuration from a leader, so it waits too (then
 * RAFT_NOT_INITIALIZED).
 */
export async function awaitLeader(node: LeaderWaitContext, deadline: number): Promise<void> {
  const { clock } = node;
  const electionMs = node.config.raft.electionTimeoutMaxMs;
  const grace = Math.max(electionMs, node.startedAt + 3 * electionMs - clock.monotonic());
  const waitMs = Math.min(deadline - clock.now(), grace);
  try {
    await node.waiter.until((m) => m.currentLeader !== undefined, "a leader", Math.max(0, waitMs));
  } catch (error) {
    if (!(error instanceof RockraftError) || error.code !== "RAFT_WAIT_TIMEOUT") throw error;
    if (!node.initialized()) {
      throw new RockraftError(
        "RAFT_NOT_INITIALIZED",
        `node ${node.nodeId}: the cluster is not initialized on this node`,
        { cause: error },
      );
    }
    throw new RockraftError(
      "RAFT_NO_LEADER",
      `node ${node.nodeId}: no leader within ${Math.max(0, Math.round(waitMs))} ms (an election timeout, or the call's deadline): a quorum of the cluster may be down or unreachable`,
      { cause: error },
    );
  }
}
