// Runs the deterministic simulator over many seeds:
//   pnpm --filter @rockraft/raft-core sim -- --seeds 100000 [--start 1] [--nodes 3|5|both] [--steps 3000]
//     [--churn] [--commit-notice broadcast|on-demand] [--faults all|classic]
//     [--read-mode read_index|lease] [--pre-vote on|off] [--check-quorum on|off] [--heal-ticks N]
// --faults all (the default) adds skewed clocks (±20%), stalls of one to three election
// timeouts, messages delayed by up to three election timeouts and leadership transfers to
// the classic faults (loss, duplication, reordering, partitions, crashes).
// Prints a summary and, for each failing seed, what failed and the command that replays it.
import { parseArgs } from "node:util";
import { CHAOS, CHAOS_ALL, SKEWED_LEASE_DRIFT_TICKS } from "../test/sim/cluster.js";
import { runSeed, type RunResult } from "../test/sim/run.js";
import { PRE_VOTE_OFF_HEAL_TICKS } from "../test/sim/variants.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    seeds: { type: "string", default: "1000" },
    start: { type: "string", default: "1" },
    nodes: { type: "string", default: "both" },
    steps: { type: "string", default: "3000" },
    churn: { type: "boolean", default: false },
    "commit-notice": { type: "string", default: "broadcast" },
    faults: { type: "string", default: "all" },
    "read-mode": { type: "string", default: "read_index" },
    "pre-vote": { type: "string", default: "on" },
    "check-quorum": { type: "string", default: "on" },
    "heal-ticks": { type: "string" },
  },
});
function choice<T extends string>(name: string, allowed: readonly T[]): T {
  const value = values[name as keyof typeof values] as string;
  if (!allowed.includes(value as T)) {
    console.error(
      `--${name}: expected ${allowed.map((a) => `"${a}"`).join(" or ")}, got "${value}"`,
    );
    process.exit(2);
  }
  return value as T;
}
const faults = choice("faults", ["all", "classic"] as const);
const readMode = choice("read-mode", ["read_index", "lease"] as const);
const preVote = choice("pre-vote", ["on", "off"] as const) === "on";
const checkQuorum = choice("check-quorum", ["on", "off"] as const) === "on";
const healTicks = Number(values["heal-ticks"] ?? (preVote ? 200 : PRE_VOTE_OFF_HEAL_TICKS));
if (readMode === "lease" && !checkQuorum) {
  console.error("--read-mode lease needs --check-quorum on");
  process.exit(2);
}
const commitNotice = values["commit-notice"];
if (commitNotice !== "broadcast" && commitNotice !== "on-demand") {
  console.error(`--commit-notice: expected "broadcast" or "on-demand", got "${commitNotice}"`);
  process.exit(2);
}
const seeds = Number(values.seeds);
const start = Number(values.start);
const steps = Number(values.steps);
const clusterSizes = values.nodes === "both" ? [3, 5] : [Number(values.nodes)];

const began = performance.now();
let runs = 0;
let failures = 0;
let worstTicksToLeader = 0;
const totals = {
  proposals: 0,
  acked: 0,
  reads: 0,
  readsServed: 0,
  crashes: 0,
  membershipChanges: 0,
  snapshotsInstalled: 0,
  transfers: 0,
  stalls: 0,
};
for (let seed = start; seed < start + seeds; seed++) {
  for (const nodes of clusterSizes) {
    const result: RunResult = runSeed({
      seed,
      nodes,
      steps,
      churn: values.churn,
      faults: faults === "all" ? CHAOS_ALL : CHAOS,
      healTicks,
      raft: {
        commitNotice,
        readMode,
        preVote,
        checkQuorum,
        ...(faults === "all" ? { leaseClockDriftTicks: SKEWED_LEASE_DRIFT_TICKS } : {}),
      },
      replay: `pnpm --filter @rockraft/raft-core sim -- --start ${seed} --seeds 1 --nodes ${nodes} --steps ${steps}${values.churn ? " --churn" : ""} --commit-notice ${commitNotice} --faults ${faults} --read-mode ${readMode} --pre-vote ${preVote ? "on" : "off"} --check-quorum ${checkQuorum ? "on" : "off"} --heal-ticks ${healTicks}`,
    });
    runs++;
    for (const key of Object.keys(totals) as (keyof typeof totals)[])
      totals[key] += result.stats[key];
    worstTicksToLeader = Math.max(worstTicksToLeader, result.ticksToLeader ?? 0);
    if (!result.ok) {
      failures++;
      console.log(result.failure);
    }
  }
  if ((seed - start + 1) % 1000 === 0) {
    console.log(
      `... ${seed - start + 1} seeds, ${failures} failures, ${((performance.now() - began) / 1000).toFixed(0)} s`,
    );
  }
}
const seconds = (performance.now() - began) / 1000;
console.log(
  `${runs} runs (seeds ${start}..${start + seeds - 1}, ${clusterSizes.join("+")} nodes, ${steps} steps each${values.churn ? ", with membership churn and snapshots" : ""}, ${faults} faults, commit notices ${commitNotice}, ${readMode} reads, PreVote ${preVote ? "on" : "off"}, CheckQuorum ${checkQuorum ? "on" : "off"}): ` +
    `${failures} failed in ${seconds.toFixed(1)} s; ` +
    `${totals.acked}/${totals.proposals} writes acknowledged, ${totals.readsServed}/${totals.reads} reads served, ` +
    `${totals.crashes} crashes, ${totals.stalls} stalls, ${totals.transfers} transfers, ${totals.membershipChanges} membership changes, ${totals.snapshotsInstalled} snapshots installed; slowest recovery after healing: ${worstTicksToLeader} ticks to a leader`,
);
process.exit(failures === 0 ? 0 : 1);
