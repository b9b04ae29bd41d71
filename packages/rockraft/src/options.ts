import type { Config } from "@rockraft/config";
import type { RaftOptions } from "@rockraft/raft-core";

/** raft-core's options from a config file: milliseconds become ticks. */
export function raftOptionsOf(
  config: Config,
): Omit<RaftOptions, "id" | "storage" | "prng" | "applied"> &
  Required<
    Pick<
      RaftOptions,
      | "electionTick"
      | "electionTickMax"
      | "heartbeatTick"
      | "maxEntriesPerMsg"
      | "maxBytesPerMsg"
      | "maxInflightMsgs"
    >
  > {
  const raft = config.raft;
  const ticks = (ms: number) => Math.max(1, Math.round(ms / raft.tickIntervalMs));
  const heartbeatTick = ticks(raft.heartbeatIntervalMs);
  const electionTick = Math.max(heartbeatTick + 1, ticks(raft.electionTimeoutMinMs));
  const electionTickMax = Math.max(electionTick + 1, ticks(raft.electionTimeoutMaxMs));
  return {
    electionTick,
    electionTickMax,
    heartbeatTick,
    maxEntriesPerMsg: raft.maxEntriesPerAppend,
    maxBytesPerMsg: raft.maxBytesPerAppend,
    maxInflightMsgs: raft.maxInflightAppends,
    preVote: raft.preVote,
    checkQuorum: raft.checkQuorum,
    readMode: raft.readMode,
    leaseClockDriftTicks: Math.ceil(raft.leaseClockDriftMs / raft.tickIntervalMs),
    // Commit notices only to followers waiting for them (their forwarded writes, their
    // reads): the others learn the commit index with the next append or heartbeat.
    commitNotice: "on-demand",
  };
}

/**
 * The largest gRPC message a node sends or accepts: a full append batch (which may exceed
 * max_bytes_per_append by one entry of the largest key and value) or a snapshot chunk, plus
 * framing.
 */
export function maxMessageBytesOf(config: Config): number {
  const append =
    config.raft.maxBytesPerAppend + config.limits.maxKeyBytes + config.limits.maxValueBytes;
  return Math.max(append, config.raft.snapshotChunkBytes) + 1024 * 1024;
}
