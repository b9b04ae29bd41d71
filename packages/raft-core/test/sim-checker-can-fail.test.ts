import { expect, test } from "vitest";
import { runSeed, type RunOptions } from "./sim/run.js";
import { LEASE_READS, NEITHER, VARIANT_SEEDS } from "./sim/variants.js";

/** The first failure among the seeds a suite of `pnpm test` runs, with a rule broken. */
function firstFailure(
  variant: Omit<RunOptions, "seed" | "nodes">,
  unsafe: NonNullable<NonNullable<RunOptions["raft"]>["testingUnsafe"]>,
  suites: readonly { nodes: number; firstSeed: number; seeds: number }[],
): string | undefined {
  for (const { nodes, firstSeed, seeds } of suites) {
    for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
      const result = runSeed({
        ...variant,
        seed,
        nodes,
        raft: { ...variant.raft, testingUnsafe: unsafe },
      });
      if (!result.ok) return result.failure;
    }
  }
  return undefined;
}

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

// Issue 17's two liveness and lease bugs, put back behind test-only switches: the suites
// `pnpm test` runs must catch each. The search for the lease bug takes 9-12 s on a quiet
// machine; a loaded one took 26 s, past the default limit.
test(
  "a lease measured by CheckQuorum alone (served whenever the node leads) is caught by the lease suite's seeds",
  { timeout: 90_000 },
  () => {
    const failure = firstFailure(LEASE_READS, { leaseFromQuorumCheck: true }, [
      { nodes: 3, firstSeed: 1, seeds: VARIANT_SEEDS.lease3 },
      { nodes: 5, firstSeed: 1, seeds: VARIANT_SEEDS.lease5 },
    ]);
    expect(failure).toMatch(
      /linearizable-reads: read .* got index \d+ but write \d+ was acknowledged before it began/,
    );
  },
);

// Since removed members learn of their removal (issue 18), this wedge is rare: about 1 seed
// in 400 (420577 is the first of the suite's 600: a member at a lower term never learns the
// leader's and never applies the write). Searching for it takes about 40 s.
test(
  "ignoring requests of lower terms (no reply, as etcd does with PreVote and CheckQuorum off) is caught by the suites' seeds",
  { timeout: 120_000 },
  () => {
    const failure = firstFailure(NEITHER, { ignoreLowerTerms: true }, [
      { nodes: 3, firstSeed: 420_001, seeds: VARIANT_SEEDS.neither3 },
    ]);
    expect(failure).toMatch(/liveness/);
  },
);
