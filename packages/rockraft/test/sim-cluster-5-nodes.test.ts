import { test } from "vitest";
import { expectSeedsPass } from "./sim/suite.js";

// As sim-cluster-3-nodes, with 5 nodes (majority and minority splits of two and three).
test(
  "5 nodes: seeds 1-150 keep every invariant and every answer linearizable",
  { timeout: 240_000 },
  async () => {
    await expectSeedsPass(1, 150, 5);
  },
);
