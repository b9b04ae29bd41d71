import { describe } from "vitest";
import { simulateSeeds } from "./sim/suite.js";

// Membership churn among up to 7 node ids (add learner, promote, demote, remove, replace the
// leader), snapshots at random points with compaction, and catch-up by snapshot, on top of
// the network and crash faults. Replay one seed: SIM_SEED=1234 pnpm --filter @rockraft/raft-core test sim
describe("simulator: 3 initial voters, membership churn and snapshots", () => {
  simulateSeeds({ nodes: 3, firstSeed: 200_001, seeds: 500, churn: true });
});
