// The whole-node simulation over many seeds (see test/sim/run.ts):
//   pnpm sim:cluster -- --seeds N [--start S] [--nodes 3|5|both] [--faults all|none|crash,pause,...]
//     [--read-mode read_index|lease|both] [--check-quorum on|off|both] [--duration-ms 6000]
//     [--clients 6] [--keys 4]
//     [--mutation read-context-collision|waiter-by-index-only|answer-before-apply|skip-fsync]
// Prints a summary and, for each failing seed, what failed, the faults that struck, the
// history of a key that is not linearizable, and the command that replays it exactly.
import { parseArgs } from "node:util";
import { parseFaults } from "../test/sim/faults.js";
import {
  MUTATIONS,
  replayCommand,
  runSeed,
  type Mutation,
  type SimOptions,
} from "../test/sim/run.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    seeds: { type: "string", default: "100" },
    start: { type: "string", default: "1" },
    nodes: { type: "string", default: "both" },
    faults: { type: "string", default: "all" },
    "read-mode": { type: "string", default: "both" },
    "check-quorum": { type: "string", default: "both" },
    "duration-ms": { type: "string", default: "6000" },
    clients: { type: "string", default: "6" },
    keys: { type: "string", default: "4" },
    mutation: { type: "string" },
    verbose: { type: "boolean", default: false },
  },
});

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}
function integer(name: keyof typeof values, min: number): number {
  const value = Number(values[name]);
  if (!Number.isSafeInteger(value) || value < min)
    fail(`--${name}: expected an integer >= ${min}, got "${String(values[name])}"`);
  return value;
}

const seeds = integer("seeds", 1);
const start = integer("start", 0);
const durationMs = integer("duration-ms", 100);
const clients = integer("clients", 1);
const keys = integer("keys", 1);
const nodeCounts: (3 | 5)[] =
  values.nodes === "both"
    ? [3, 5]
    : values.nodes === "3"
      ? [3]
      : values.nodes === "5"
        ? [5]
        : fail(`--nodes: expected 3, 5 or both, got "${values.nodes}"`);
const readModes: ("read_index" | "lease")[] =
  values["read-mode"] === "both"
    ? ["read_index", "lease"]
    : values["read-mode"] === "read_index" || values["read-mode"] === "lease"
      ? [values["read-mode"]]
      : fail(`--read-mode: expected read_index, lease or both, got "${values["read-mode"]}"`);
const checkQuorums: boolean[] =
  values["check-quorum"] === "both"
    ? [true, false]
    : values["check-quorum"] === "on"
      ? [true]
      : values["check-quorum"] === "off"
        ? [false]
        : fail(`--check-quorum: expected on, off or both, got "${values["check-quorum"]}"`);
let faults;
try {
  faults = parseFaults(values.faults);
} catch (error) {
  fail((error as Error).message);
}
const mutation = values.mutation;
if (mutation !== undefined && !(MUTATIONS as readonly string[]).includes(mutation)) {
  fail(`--mutation: expected one of ${MUTATIONS.join(", ")}, got "${mutation}"`);
}

const began = performance.now();
let failures = 0;
let operations = 0;
let expired = 0;
let steps = 0;
let undecided = 0;
for (let i = 0; i < seeds; i++) {
  const seed = start + i;
  // Alternate node counts and read modes across seeds, so that any range covers each.
  const options: SimOptions = {
    seed,
    nodes: nodeCounts[seed % nodeCounts.length]!,
    readMode: readModes[Math.floor(seed / nodeCounts.length) % readModes.length]!,
    // Every fourth seed runs without CheckQuorum (and so with ReadIndex reads).
    checkQuorum: checkQuorums.length === 1 ? checkQuorums[0]! : seed % 4 !== 3,
    faults,
    durationMs,
    clients,
    keys,
    mutation: mutation as Mutation | undefined,
  };
  const result = await runSeed(options);
  operations += result.operations;
  expired += result.sessionsExpired;
  steps += result.steps;
  undecided += result.undecidedKeys;
  if (values.verbose) {
    console.log(
      `seed ${seed}: ${result.violations.length === 0 ? "ok" : "FAILED"}, ${result.operations} operations (${result.answers.ok} ok, ${result.answers.failed} failed, ${result.answers.unknown} unknown), ${result.sessionsExpired} sessions expired, ${result.steps} events`,
    );
  }
  if (result.violations.length > 0) {
    failures++;
    console.log(
      `\nseed ${seed} FAILED (${options.nodes} nodes, ${options.checkQuorum ? options.readMode : "check_quorum off"}):`,
    );
    for (const violation of result.violations) console.log(`  ${violation}`);
    for (const line of result.detail.slice(0, 200)) console.log(`  ${line}`);
    console.log(`  replay: ${replayCommand(options)}`);
  }
}
const seconds = (performance.now() - began) / 1000;
console.log(
  `\n${seeds} seeds (${start}..${start + seeds - 1}), ${failures} failed; ${operations} checked operations, ${expired} sessions expired, ${steps} events, ${undecided} undecided keys; ${seconds.toFixed(1)} s`,
);
process.exit(failures > 0 ? 1 : 0);
