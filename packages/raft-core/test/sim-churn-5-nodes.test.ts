import { describe } from "vitest";
import { simulateSeeds } from "./sim/suite.js";

// As sim-churn-3-nodes, starting from five voters.
// Replay one seed: SIM_SEED=1234 pnpm --filter @rockraft/raft-core test sim
describe("simulator: 5 initial voters, membership churn and snapshots", () => {
  simulateSeeds({ nodes: 5, firstSeed: 300_001, seeds: 500, churn: true });
});
