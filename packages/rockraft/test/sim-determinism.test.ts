import { expect, test } from "vitest";
import { runSeed } from "./sim/run.js";
import { seedOptions } from "./sim/suite.js";

// A seed replays exactly: the same history, byte for byte, and the same faults.
test("the same seed gives the same run, byte for byte", async () => {
  const run = async () => JSON.stringify(await runSeed(seedOptions(42, 3)));
  const first = await run();
  expect(await run()).toBe(first);
  expect((JSON.parse(first) as { operations: number }).operations).toBeGreaterThan(100);
});

test("another seed gives another run", async () => {
  const a = await runSeed(seedOptions(42, 3));
  const b = await runSeed(seedOptions(43, 3));
  expect(a.steps).not.toBe(b.steps);
});
