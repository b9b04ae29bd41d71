import { describe, expect, test } from "vitest";
import { firstCatch } from "./sim/suite.js";

// Mutation proof: known bugs re-introduced behind test-only switches are caught by the
// whole-node simulation within the seeds CI runs (1-150, 3 and 5 nodes).
describe("the simulation catches", () => {
  test.each([
    ["waiter-by-index-only", "a write waiter keyed by index only"],
    ["answer-before-apply", "answering a write before its entry is committed and applied"],
    ["skip-fsync", "a Ready whose fsync is skipped"],
    ["read-context-collision", "read contexts that repeat after a restart"],
    ["session-blind", "a state machine that ignores writes' sessions (retries apply twice)"],
  ] as const)("%s: %s", { timeout: 240_000 }, async (mutation, _what) => {
    const caught =
      (await firstCatch(mutation, 1, 150, 3)) ?? (await firstCatch(mutation, 1, 150, 5));
    expect(caught, `${mutation} was not caught by seeds 1-150`).toBeDefined();
  });
});
