import { expect, test } from "vitest";
import { runSeed, type RunOptions } from "./run.js";

const BATCH = 50;

/**
 * Registers simulator runs as tests, in batches of seeds. With SIM_SEED set, runs only that
 * seed (the replay command a failure prints).
 */
export function simulateSeeds(
  options: { nodes: number; firstSeed: number; seeds: number } & Omit<RunOptions, "seed" | "nodes">,
): void {
  const { firstSeed, seeds, ...run } = options;
  const only = process.env.SIM_SEED;
  if (only !== undefined) {
    const seed = Number(only);
    test(`seed ${seed} (${run.nodes} nodes) keeps every invariant and recovers after healing`, () => {
      const result = runSeed({ ...run, seed });
      expect(result.failure).toBeUndefined();
    });
    return;
  }
  for (let start = firstSeed; start < firstSeed + seeds; start += BATCH) {
    const end = Math.min(start + BATCH, firstSeed + seeds) - 1;
    test(
      `seeds ${start}..${end} (${run.nodes} nodes) keep every invariant and recover after healing`,
      { timeout: 120_000 },
      () => {
        const failures: string[] = [];
        for (let seed = start; seed <= end; seed++) {
          const result = runSeed({ ...run, seed });
          if (!result.ok) failures.push(result.failure!);
        }
        expect(failures, failures.join("\n")).toEqual([]);
      },
    );
  }
}
