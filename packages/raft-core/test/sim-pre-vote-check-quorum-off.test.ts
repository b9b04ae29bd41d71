import { describe } from "vitest";
import { simulateSeeds } from "./sim/suite.js";
import { NEITHER, NO_CHECK_QUORUM, NO_PRE_VOTE, VARIANT_SEEDS } from "./sim/variants.js";

// Every configuration the config file allows must stay live: PreVote off, CheckQuorum off,
// and both off, each with membership churn and every fault (time faults included).
// Replay one seed: SIM_SEED=1234 pnpm --filter @rockraft/raft-core test sim
describe("simulator: PreVote off, with churn", () => {
  simulateSeeds({ nodes: 3, firstSeed: 400_001, seeds: VARIANT_SEEDS.options3, ...NO_PRE_VOTE });
  simulateSeeds({ nodes: 5, firstSeed: 400_001, seeds: VARIANT_SEEDS.options5, ...NO_PRE_VOTE });
});

describe("simulator: CheckQuorum off, with churn", () => {
  simulateSeeds({
    nodes: 3,
    firstSeed: 410_001,
    seeds: VARIANT_SEEDS.options3,
    ...NO_CHECK_QUORUM,
  });
  simulateSeeds({
    nodes: 5,
    firstSeed: 410_001,
    seeds: VARIANT_SEEDS.options5,
    ...NO_CHECK_QUORUM,
  });
});

describe("simulator: PreVote and CheckQuorum off, with churn", () => {
  simulateSeeds({ nodes: 3, firstSeed: 420_001, seeds: VARIANT_SEEDS.neither3, ...NEITHER });
  simulateSeeds({ nodes: 5, firstSeed: 420_001, seeds: VARIANT_SEEDS.options5, ...NEITHER });
});
