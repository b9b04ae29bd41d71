import { expect, test } from "vitest";
import { runSeed } from "./sim/run.js";

// Same inputs, same outputs: the core and the simulator take all chance from seeded PRNGs.
test.each([3, 5])("a seed replays exactly (%i nodes)", (nodes) => {
  const first = runSeed({ seed: 4242, nodes });
  const second = runSeed({ seed: 4242, nodes });
  expect(first.ok).toBe(true);
  expect(second).toEqual(first);
  expect(first.stats.acked).toBeGreaterThan(0);
  expect(runSeed({ seed: 4243, nodes }).fingerprint).not.toBe(first.fingerprint);
});
