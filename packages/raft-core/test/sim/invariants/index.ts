import type { Observer } from "../cluster.js";
import { committedConfig } from "./committed-config.js";
import { electionSafety } from "./election-safety.js";
import { leaderAppendOnly } from "./leader-append-only.js";
import { leaderCompleteness } from "./leader-completeness.js";
import { linearizableReads } from "./linearizable-reads.js";
import { logMatching } from "./log-matching.js";
import { monotonicIndexes } from "./monotonic-indexes.js";
import { stateMachineSafety } from "./state-machine-safety.js";

/** Every safety invariant, in the order they run after each step. */
export function allInvariants(): Observer[] {
  return [
    logMatching(), // first: keeps the log hashes the others read current
    electionSafety(),
    leaderAppendOnly(),
    leaderCompleteness(),
    stateMachineSafety(),
    monotonicIndexes(),
    linearizableReads(),
    committedConfig(),
  ];
}
