#!/usr/bin/env node
// `pnpm chaos`: real node processes under a concurrent put/get/delete/compare-and-swap
// workload while faults from a seeded schedule strike them; every answer is recorded and
// each key's history checked for linearizability (the checker of @rockraft/test-utils,
// shared with the whole-node simulation). Exit status 0 only when every history is
// linearizable. See chaos/README.md.
//   pnpm chaos [-- --seconds 60 --nodes 3|5 --faults kill,pause,partition,slow,disk
//     --clients 12 --keys 8 --seed S --read-mode read_index|lease --target rockraft|etcd
//     --etcd-serializable --unsafe local-reads --retries --keep]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createPrng } from "@rockraft/raft-core";
import { checkKey, describe, ensureEtcd, firstViolation } from "@rockraft/test-utils";
import { RockraftCluster } from "./lib/cluster.mjs";
import { Disks, disksAvailable } from "./lib/disks.mjs";
import { ETCD_PORTS, EtcdCluster } from "./lib/etcd.mjs";
import { FAULT_CLASSES, FaultSchedule } from "./lib/faults.mjs";
import { LinkEmulator, planAddresses } from "./lib/links.mjs";
import { NodeNetwork, namespacesAvailable } from "./lib/netns.mjs";
import { writeReport } from "./lib/report.mjs";
import { Workload } from "./lib/workload.mjs";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    nodes: { type: "string", default: "3" },
    faults: { type: "string", default: FAULT_CLASSES.join(",") },
    clients: { type: "string", default: "12" },
    keys: { type: "string", default: "8" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
    "read-mode": { type: "string", default: "read_index" },
    target: { type: "string", default: "rockraft" },
    "etcd-serializable": { type: "boolean", default: false },
    unsafe: { type: "string" },
    retries: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
});
const fail = (message) => {
  console.error(`chaos: ${message}`);
  process.exit(2);
};
const integer = (name, min, max) => {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < min || value > max)
    fail(
      `--${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(values[name])}`,
    );
  return value;
};
const oneOf = (name, allowed) => {
  if (!allowed.includes(values[name]))
    fail(`--${name}: expected ${allowed.join(" or ")}, got ${JSON.stringify(values[name])}`);
  return values[name];
};
const seconds = integer("seconds", 1, 24 * 3600);
const nodeCount = integer("nodes", 3, 5);
if (nodeCount !== 3 && nodeCount !== 5) fail(`--nodes: expected 3 or 5, got ${nodeCount}`);
const clientCount = integer("clients", 1, 256);
const keyCount = integer("keys", 1, 1000);
const seed = integer("seed", 0, 2 ** 31 - 1);
const readMode = oneOf("read-mode", ["read_index", "lease"]);
const target = oneOf("target", ["rockraft", "etcd"]);
if (values.unsafe !== undefined) oneOf("unsafe", ["local-reads"]);
if (values.unsafe !== undefined && target !== "rockraft") fail("--unsafe: rockraft only");
if (values.retries && target !== "rockraft") fail("--retries: rockraft only");
if (values["etcd-serializable"] && target !== "etcd")
  fail("--etcd-serializable: only with --target etcd");
let faults = values.faults === "" ? [] : [...new Set(values.faults.split(","))];
for (const fault of faults) {
  if (!FAULT_CLASSES.includes(fault))
    fail(
      `--faults: unknown fault class ${JSON.stringify(fault)}; expected some of ${FAULT_CLASSES.join(", ")}`,
    );
}
const requested = faults;
const skipped = [];
const skip = (fault, why) => {
  if (!faults.includes(fault)) return;
  console.log(`${fault}: skipped (${why})`);
  skipped.push(fault);
  faults = faults.filter((f) => f !== fault);
};
const namespaces = namespacesAvailable();
if (!namespaces)
  skip("partition", "it needs root and iproute2 to give each node a network namespace");
if (!disksAvailable()) skip("disk", "it needs root to give each node a small filesystem");
if (requested.length > 0 && faults.length === 0)
  fail(`--faults: every class asked for was skipped (${skipped.join(", ")}); nothing to test`);

// The fault schedule draws from its own generator, so that a seed replays it whatever the
// workload does meanwhile.
const faultPrng = createPrng(seed);
const workloadPrng = createPrng(seed ^ 0x5bd1e995);
const started = performance.now();
const now = () => performance.now() - started;
// The time of day in UTC, as the nodes' logs print it, and the seconds since the start.
const stamp = () =>
  `[${new Date().toISOString().slice(11, 23)} +${(now() / 1000).toFixed(3).padStart(8)} s]`;
const say = (line) => console.log(`${stamp()} ${line}`);
// Interrupted, the harness still removes what it made (exit handlers: nodes, namespaces, mounts).
for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
]) {
  process.on(signal, () => {
    console.log(`chaos: ${signal}; stopping the nodes and removing what the run made`);
    process.exit(code);
  });
}

const dir = await mkdtemp(join(tmpdir(), "rockraft-chaos-"));
const proxied = faults.includes("slow");
// Each node in a namespace of its own for partitions, and for slow links in both directions.
const network =
  namespaces && (faults.includes("partition") || proxied)
    ? new NodeNetwork(nodeCount, { proxied })
    : undefined;
const links = proxied ? new LinkEmulator() : undefined;
const disks = new Disks(dir, nodeCount, { mounted: faults.includes("disk") });
let cluster;
let workload;
const cleanUp = () => {
  links?.stop();
  disks.unmountAll();
  network?.remove();
};
const settings =
  target === "etcd"
    ? `etcd with ${values["etcd-serializable"] ? "serializable" : "linearizable"} reads`
    : `rockraft, read mode ${readMode}${values.retries ? ", every client retrying in a session" : ""}${values.unsafe ? `, UNSAFE ${values.unsafe}` : ""}`;
say(
  `seed ${seed}; ${nodeCount} nodes (${settings}), ${clientCount} clients, ${keyCount} keys, faults ${faults.join(",") || "none"}; run directory ${dir}`,
);
try {
  network?.create();
  const ports = target === "etcd" ? ETCD_PORTS : [7000];
  const plan = await planAddresses({ count: nodeCount, ports, network, proxied });
  await links?.start(plan, network);
  disks.create();
  if (target === "etcd") ensureEtcd();
  const options = { dir, plan, network, disks, say };
  cluster =
    target === "etcd"
      ? new EtcdCluster(options)
      : new RockraftCluster({ ...options, readMode, unsafe: values.unsafe });
  await cluster.start();
  say(`cluster up: ${cluster.endpoints.join(", ")}`);

  workload = new Workload({
    target,
    endpoints: cluster.endpoints,
    clients: clientCount,
    keys: keyCount,
    random: (n) => workloadPrng.nextInt(n),
    now,
    serializable: values["etcd-serializable"],
    retries: values.retries,
  });
  const schedule = new FaultSchedule({
    faults,
    cluster,
    network,
    links,
    disks,
    random: (n) => faultPrng.nextInt(n),
    say,
    now,
  });
  const running = workload.run();
  const end = now() + seconds * 1000;
  let timeUp = false;
  const timer = new Promise((resolve) => setTimeout(resolve, seconds * 1000)).then(
    () => (timeUp = true),
  );
  await schedule.run(end, () => timeUp);
  await timer;
  await workload.stop();
  await running;

  say("healing: every link whole, every node running, every disk with room");
  network?.healAll();
  links?.heal();
  links?.healCuts();
  await cluster.healAll();
  await cluster.waitForLeader();
  await workload.finalReads();
  const terms = await cluster.terms();
  const leaderTerms = cluster.leaderTerms();
  await cluster.stop();

  const byKey = new Map(workload.keys.map((key) => [key, []]));
  for (const op of workload.history) byKey.get(op.key).push(op);
  const violations = [];
  let undecided = 0;
  for (const [key, ops] of byKey) {
    const result = checkKey(ops);
    if (result.undecided) undecided++;
    if (!result.ok) violations.push({ key, ops, at: firstViolation(ops) });
  }
  const { counts } = workload;
  say(
    `operations: ${counts.ok} ok, ${counts.failed} failed (not applied), ${counts.unknown} with an unknown outcome; ${workload.keys.length * nodeCount} final reads`,
  );
  const byClass = FAULT_CLASSES.map(
    (f) => `${schedule.events.filter((e) => e.fault === f).length} ${f}`,
  );
  say(
    `faults: ${schedule.events.length} (${byClass.join(", ")}${skipped.length > 0 ? `; skipped: ${skipped.join(", ")}` : ""}); leaders elected in ${leaderTerms} terms; final terms ${terms.join(", ")}`,
  );
  // A node that stopped by itself, or kept running on a full disk, fails the run whatever
  // the histories say.
  // With --retries every write is retried until its outcome is known: none may stay unknown.
  const unknownWrites =
    values.retries && counts.unknown > 0
      ? [`${counts.unknown} writes ended with an unknown outcome although every client retries`]
      : [];
  const problems = [
    ...cluster.crashes.map((c) => `node ${c.id} exited by itself (${c.status}): ${c.error}`),
    ...schedule.anomalies,
    ...unknownWrites,
  ];
  for (const problem of problems) say(`problem: ${problem}`);
  const unstruck =
    faults.length > 0 && schedule.events.length === 0
      ? "; no fault struck (a fault needs about 10 s of run)"
      : "";
  const tail = `seed ${seed}${skipped.length > 0 ? `; skipped: ${skipped.join(", ")}` : ""}${unstruck}`;
  if (violations.length > 0) {
    const page = await writeReport({
      dir,
      history: workload.history,
      violations,
      faults: schedule.events,
      title: `pnpm chaos, seed ${seed}: ${violations.length} of ${workload.keys.length} keys not linearizable (${settings})`,
    });
    for (const { key, ops, at } of violations) {
      console.log(`key ${key}: not linearizable; the violation lies among the calls up to ${at}:`);
      for (const op of ops.filter((o) => o.call <= (at ?? Infinity)).slice(-12))
        console.log(`  ${describe(op)}`);
    }
    console.log(
      `NOT LINEARIZABLE: ${violations.length} of ${workload.keys.length} keys (${page}; history and node logs beside it; replay the schedule with --seed ${seed})`,
    );
    process.exitCode = 1;
  } else if (undecided > 0) {
    console.log(
      `UNDECIDED: ${undecided} of ${workload.keys.length} keys too large to decide within the search budget (use more keys or fewer seconds); ${tail}`,
    );
    process.exitCode = 1;
  } else if (problems.length > 0) {
    console.log(
      `FAILED: linearizable, but ${problems.length} problem(s) above (node logs in ${dir}); ${tail}`,
    );
    process.exitCode = 1;
  } else {
    cleanUp();
    // Kept when a check fails, or when asked.
    if (!values.keep) await rm(dir, { recursive: true, force: true });
    console.log(
      `LINEARIZABLE: ${workload.history.length} operations on ${workload.keys.length} keys; ${tail}`,
    );
  }
} catch (error) {
  console.error(`chaos: ${error?.stack ?? error}`);
  console.log(`ERROR: the run did not finish (node logs in ${dir}); seed ${seed}`);
  process.exitCode = 2;
} finally {
  await workload?.stop()?.catch(() => undefined);
  await cluster?.stop().catch(() => undefined);
  cleanUp();
}
// Whatever still holds the event loop (a timer of an interrupted run, a client's retry), the
// run is over: its output is written (pipes and files are synchronous on Linux).
process.exit();
