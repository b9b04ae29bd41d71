import { describe } from "vitest";
import { simulateSeeds } from "./sim/suite.js";
import { LEASE_READS, VARIANT_SEEDS } from "./sim/variants.js";

// Lease reads with skewed clocks, stalls, long delays and leadership transfers on top of the
// classic faults. Replay one seed: SIM_SEED=1234 pnpm --filter @rockraft/raft-core test sim
describe("simulator: lease reads under skewed clocks, stalls, long delays and transfers", () => {
  simulateSeeds({ nodes: 3, firstSeed: 1, seeds: VARIANT_SEEDS.lease3, ...LEASE_READS });
  simulateSeeds({ nodes: 5, firstSeed: 1, seeds: VARIANT_SEEDS.lease5, ...LEASE_READS });
});
