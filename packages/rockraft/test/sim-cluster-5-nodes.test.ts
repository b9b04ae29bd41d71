import { expect, test } from "vitest";
import { expectSeedsPass } from "./sim/suite.js";

// As sim-cluster-3-nodes, with 5 nodes (majority and minority splits of two and three).
test(
  "5 nodes: seeds 1-150 keep every invariant and every answer linearizable; sessions expire alike on every node",
  { timeout: 240_000 },
  async () => {
    // Sessions expire in these runs (idle 1.5 s of the log's time), and every node expires
    // the same ones at the same index (a violation otherwise).
    expect(await expectSeedsPass(1, 150, 5)).toBeGreaterThan(0);
  },
);
