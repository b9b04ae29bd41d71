import { describe } from "vitest";
import { simulateSeeds } from "./sim/suite.js";

// Replay one seed: SIM_SEED=1234 pnpm --filter @rockraft/raft-core test sim
describe("simulator: 3 nodes, chaos then healing", () => {
  simulateSeeds({ nodes: 3, firstSeed: 1, seeds: 500 });
});
