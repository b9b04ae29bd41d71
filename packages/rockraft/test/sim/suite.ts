// The whole-node simulation as vitest tests: a range of seeds, every violation reported
// with the command that replays its seed.
import { expect } from "vitest";
import { FAULT_CLASSES } from "./faults.js";
import { replayCommand, runSeed, type Mutation, type SimOptions } from "./run.js";

/** The settings `pnpm sim:cluster` uses for `seed` (see scripts/sim-cluster.ts). */
export function seedOptions(seed: number, nodes: 3 | 5, mutation?: Mutation): SimOptions {
  return {
    seed,
    nodes,
    readMode: Math.floor(seed / 2) % 2 === 0 ? "read_index" : "lease",
    checkQuorum: seed % 4 !== 3,
    faults: new Set(FAULT_CLASSES),
    durationMs: 6_000,
    clients: 6,
    keys: 4,
    mutation,
  };
}

/**
 * Runs seeds `from`..`to` and fails with every violation found (among them a clock entry
 * that expired different sessions on two nodes); returns how many sessions expired.
 */
export async function expectSeedsPass(from: number, to: number, nodes: 3 | 5): Promise<number> {
  const failures: string[] = [];
  let expired = 0;
  for (let seed = from; seed <= to; seed++) {
    const options = seedOptions(seed, nodes);
    const result = await runSeed(options);
    expired += result.sessionsExpired;
    if (result.violations.length > 0) {
      failures.push(
        [
          `seed ${seed}:`,
          ...result.violations.map((v) => `  ${v}`),
          ...result.detail.slice(0, 80).map((line) => `  ${line}`),
          `  replay: ${replayCommand(options)}`,
        ].join("\n"),
      );
    }
  }
  expect(failures.join("\n\n")).toBe("");
  return expired;
}

/** The first seed in `from`..`to` at which `mutation` is caught, or undefined. */
export async function firstCatch(
  mutation: Mutation,
  from: number,
  to: number,
  nodes: 3 | 5,
): Promise<{ seed: number; violation: string } | undefined> {
  for (let seed = from; seed <= to; seed++) {
    const result = await runSeed(seedOptions(seed, nodes, mutation));
    // Only a wrong answer, a stale read point or diverged state proves the bug was seen
    // (not a slow node).
    const violation = result.violations.find(
      (v) =>
        v.startsWith("linearizability") ||
        v.startsWith("read index") ||
        v.startsWith("state machine safety"),
    );
    if (violation !== undefined) return { seed, violation };
  }
  return undefined;
}
