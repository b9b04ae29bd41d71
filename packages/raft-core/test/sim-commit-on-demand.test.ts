import { describe } from "vitest";
import { simulateSeeds } from "./sim/suite.js";

// The same chaos with `commitNotice: "on-demand"` (what the rockraft runtime uses): followers
// learn most commits from the next MsgApp or heartbeat instead of a broadcast. Replay one
// seed: SIM_SEED=1234 pnpm --filter @rockraft/raft-core test sim-commit-on-demand
describe("simulator: commitNotice on-demand, 3 nodes, chaos then healing", () => {
  simulateSeeds({ nodes: 3, firstSeed: 300_001, seeds: 300, raft: { commitNotice: "on-demand" } });
});

describe("simulator: commitNotice on-demand, 5 nodes with membership churn and snapshots", () => {
  simulateSeeds({
    nodes: 5,
    firstSeed: 400_001,
    seeds: 300,
    churn: true,
    raft: { commitNotice: "on-demand" },
  });
});

// Seeds that found a sole voter answering reads at a commit index behind what the previous
// configuration had committed (fixed in handleReadIndex; see read-index.test.ts).
describe("simulator: commitNotice on-demand, churn, the seeds of the sole-voter read bug", () => {
  for (const seed of [600_987, 603_265]) {
    simulateSeeds({
      nodes: 3,
      firstSeed: seed,
      seeds: 1,
      churn: true,
      raft: { commitNotice: "on-demand" },
    });
  }
});
