import { afterAll, expect, test } from "vitest";
import { crashPlan, crashRound } from "./helpers/crash.js";
import { TempDirs } from "./helpers/store.js";

// Real processes killed with SIGKILL at random moments, including mid-snapshot-install and
// between staging and switching; after each kill the store is reopened and checked.
// More rounds: pnpm --filter @rockraft/storage-level crash -- --rounds 500
const dirs = new TempDirs();
afterAll(() => dirs.cleanup());

test(
  "SIGKILL at random moments loses no acknowledged write and shows no partial batch",
  // Each round starts a process (tsx compiles the worker): 3–7 s a round on a loaded
  // 2-core machine, so the whole test is given ten minutes.
  { timeout: 600_000 },
  async () => {
    const dataPath = await dirs.make("rockraft-crash-");
    const outcomes: string[] = [];
    for (const [i, round] of crashPlan(7, 24).entries()) {
      outcomes.push(await crashRound(dataPath, 1000 + i, round));
    }
    expect(outcomes).toHaveLength(24);
  },
);
