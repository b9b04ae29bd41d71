import { describe } from "vitest";
import { simulateSeeds } from "./sim/suite.js";

// Replay one seed: SIM_SEED=1234 pnpm --filter @rockraft/raft-core test sim
describe("simulator: 5 nodes, chaos then healing", () => {
  simulateSeeds({ nodes: 5, firstSeed: 100_001, seeds: 500 });
});
