import { expect, test } from "vitest";
import { expectSeedsPass } from "./sim/suite.js";

// The whole node under seeded simulation (test/sim): 3 nodes, every fault class, ReadIndex
// and lease reads, CheckQuorum on and off; every client answer checked for linearizability.
// `pnpm sim:cluster -- --nodes 3 --seeds N` runs more.
test(
  "3 nodes: seeds 1-150 keep every invariant and every answer linearizable; sessions expire alike on every node",
  { timeout: 240_000 },
  async () => {
    // Sessions expire in these runs (idle 1.5 s of the log's time), and every node expires
    // the same ones at the same index (a violation otherwise).
    expect(await expectSeedsPass(1, 150, 3)).toBeGreaterThan(0);
  },
);
