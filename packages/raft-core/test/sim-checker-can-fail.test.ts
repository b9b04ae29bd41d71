import { expect, test } from "vitest";
import { runSeed } from "./sim/run.js";

// Proof that the simulator's checkers can fail: with the §5.4.1 up-to-date check switched
// off (votes granted to any candidate), a stale node wins an election and the missing
// committed entries are caught.
test("granting votes without the §5.4.1 log check is caught within the seed budget", () => {
  const failures: string[] = [];
  for (let seed = 1; seed <= 100 && failures.length === 0; seed++) {
    const result = runSeed({
      seed,
      nodes: 3,
      raft: { testingUnsafe: { grantVotesWithoutLogCheck: true } },
    });
    if (!result.ok) failures.push(result.failure!);
  }
  expect(failures).toHaveLength(1);
  expect(failures[0]).toMatch(
    /leader-completeness|state-machine-safety|log-matching|RAFT_INVARIANT/,
  );
  expect(failures[0]).toMatch(/replay: SIM_SEED=\d+ pnpm --filter @rockraft\/raft-core test sim/);
});

test("a failure names the replay command its caller gives", () => {
  let failure: string | undefined;
  for (let seed = 1; seed <= 100 && failure === undefined; seed++) {
    failure = runSeed({
      seed,
      nodes: 3,
      raft: { testingUnsafe: { grantVotesWithoutLogCheck: true } },
      replay: `the script's own command for seed ${seed}`,
    }).failure;
  }
  expect(failure).toMatch(/\n {2}replay: the script's own command for seed \d+$/);
  expect(failure).not.toContain("SIM_SEED");
});
