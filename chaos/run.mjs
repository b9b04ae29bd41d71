#!/usr/bin/env node
// `pnpm chaos`: the example's node processes, started as a user starts them, under a
// concurrent put/get/delete/compare-and-swap workload while faults from a seeded schedule
// strike them; every answer is recorded and each key's history checked for
// linearizability (the checker of @rockraft/test-utils, shared with the whole-node
// simulation). Exit status 0 only when every history is linearizable.
//   pnpm chaos [-- --seconds 60 --nodes 3 --faults kill,pause,partition --clients 12 --keys 8 --seed S --read-mode read_index|lease]
// --unsafe local-reads runs the nodes with a known bug switched on (reads without ReadIndex),
// to show that the run catches it.
// Fault classes so far: kill (SIGKILL, then a restart), pause (SIGSTOP for longer than an
// election timeout, then SIGCONT), partition (one node isolated, a majority/minority split,
// or a bridge; needs root for network namespaces). See chaos/README.md.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createPrng } from "@rockraft/raft-core";
import { checkKey, describe, firstViolation } from "@rockraft/test-utils";
import { rockraftStub } from "@rockraft/test-utils/stubs";
import { RockraftClient } from "@rockraft/transport-grpc";
import { ExampleCluster } from "./lib/cluster.mjs";
import { NodeNetwork, namespacesAvailable } from "./lib/netns.mjs";

const FAULT_CLASSES = ["kill", "pause", "partition"];
const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    nodes: { type: "string", default: "3" },
    faults: { type: "string", default: FAULT_CLASSES.join(",") },
    clients: { type: "string", default: "12" },
    keys: { type: "string", default: "8" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
    "read-mode": { type: "string", default: "read_index" },
    unsafe: { type: "string" },
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
const seconds = integer("seconds", 1, 24 * 3600);
const nodeCount = integer("nodes", 3, 5);
if (nodeCount !== 3 && nodeCount !== 5) fail(`--nodes: expected 3 or 5, got ${nodeCount}`);
const clientCount = integer("clients", 1, 256);
const keyCount = integer("keys", 1, 1000);
const seed = integer("seed", 0, 2 ** 31 - 1);
const readMode = values["read-mode"];
if (readMode !== "read_index" && readMode !== "lease")
  fail(`--read-mode: expected read_index or lease, got ${JSON.stringify(readMode)}`);
if (values.unsafe !== undefined && values.unsafe !== "local-reads")
  fail(`--unsafe: expected local-reads, got ${JSON.stringify(values.unsafe)}`);
let faults = values.faults === "" ? [] : values.faults.split(",");
for (const fault of faults) {
  if (!FAULT_CLASSES.includes(fault))
    fail(
      `--faults: unknown fault class ${JSON.stringify(fault)}; expected some of ${FAULT_CLASSES.join(", ")}`,
    );
}
const partitions = faults.includes("partition") && namespacesAvailable();
if (faults.includes("partition") && !partitions) {
  console.log(
    "partition: skipped (it needs root and iproute2 to give each node a network namespace)",
  );
  faults = faults.filter((fault) => fault !== "partition");
}

// The fault schedule draws from its own generator, so that a seed replays it whatever the
// workload does meanwhile.
const faultPrng = createPrng(seed);
const random = (n) => faultPrng.nextInt(n);
const workloadPrng = createPrng(seed ^ 0x5bd1e995);
const workloadRandom = (n) => workloadPrng.nextInt(n);
const started = performance.now();
const stamp = () => `[${((performance.now() - started) / 1000).toFixed(3).padStart(8)} s]`;
const say = (line) => console.log(`${stamp()} ${line}`);

const dir = await mkdtemp(join(tmpdir(), "rockraft-chaos-"));
const network = partitions ? new NodeNetwork(nodeCount) : undefined;
const cluster = new ExampleCluster({
  dir,
  nodes: nodeCount,
  readMode,
  network,
  unsafe: values.unsafe,
});
say(
  `seed ${seed}; ${nodeCount} nodes, ${clientCount} clients, ${keyCount} keys, faults ${faults.join(",") || "none"}, read mode ${readMode}; run directory ${dir}`,
);
await cluster.start();
say(`cluster up: ${cluster.endpoints.join(", ")}`);

// ---- The workload ----------------------------------------------------------------------

/** Logical time: every call and every answer gets the next tick, in the order observed. */
let clock = 0;
const history = [];
const counts = { ok: 0, failed: 0, unknown: 0 };
const keys = Array.from({ length: keyCount }, (_, i) => `chaos-${i}`);
const text = (bytes) => (bytes === undefined ? undefined : Buffer.from(bytes).toString());
let stop = false;

/**
 * Client `id`'s calls. Even ids use `RockraftClient`, which starts at its own node and
 * follows the leader; odd ids a plain gRPC stub generated from the proto, one unary call
 * per operation, that stays on its node (a follower forwards its writes).
 */
function connect(id) {
  if (id % 2 === 1) {
    const stub = rockraftStub(cluster.endpoints[id % nodeCount], { timeoutMs: 2_000 });
    return {
      put: (key, value) => stub.put(key, value),
      get: async (key) => {
        const r = await stub.get(key);
        return { value: r.found === true ? (r.value ?? Buffer.alloc(0)) : undefined };
      },
      delete: async (key) => ({ found: (await stub.delete(key)).found === true }),
      compareAndSwap: async (request) => {
        const r = await stub.compareAndSwap(request);
        const found = r.found === true;
        return { succeeded: r.succeeded === true, found, current: r.current ?? Buffer.alloc(0) };
      },
      close: () => stub.close(),
    };
  }
  const endpoints = cluster.endpoints.map((_, j) => cluster.endpoints[(id + j) % nodeCount]);
  return new RockraftClient({ endpoints, timeoutMs: 2_000 });
}

async function runClient(id) {
  const client = connect(id);
  let n = 0;
  try {
    while (!stop) {
      const key = keys[workloadRandom(keyCount)];
      const roll = workloadRandom(100);
      const value = `c${id}-${++n}`;
      let input;
      let call;
      if (roll < 30) {
        input = { op: "put", value };
        call = async () => (await client.put(key, value), { op: "put" });
      } else if (roll < 60) {
        input = { op: "get" };
        call = async () => ({ op: "get", value: text((await client.get(key)).value) });
      } else if (roll < 75) {
        input = { op: "delete" };
        call = async () => ({ op: "delete", found: (await client.delete(key)).found });
      } else {
        const expected =
          workloadRandom(2) === 0
            ? undefined
            : `c${workloadRandom(clientCount)}-${1 + workloadRandom(Math.max(1, n))}`;
        input = { op: "cas", expectFound: expected !== undefined, expected, value };
        call = async () => {
          const r = await client.compareAndSwap({
            key,
            expectFound: expected !== undefined,
            expected: expected ?? "",
            value,
          });
          return {
            op: "cas",
            succeeded: r.succeeded,
            found: r.found,
            current: r.found ? text(r.current) : undefined,
          };
        };
      }
      const callTime = ++clock;
      try {
        const output = await call();
        history.push({ client: id, key, input, output, call: callTime, ret: ++clock });
        counts.ok++;
      } catch (error) {
        const unknown =
          input.op !== "get" &&
          // A plain stub's failed write may have been applied: unknown. So is one of
          // RockraftClient's, unless the cluster answered that it was not.
          (error?.name !== "RockraftClientError" || error.outcomeUnknown !== false);
        if (unknown) {
          // It may take effect at any point after its call, or never.
          history.push({
            client: id,
            key,
            input,
            output: undefined,
            call: callTime,
            ret: Infinity,
          });
          counts.unknown++;
        } else counts.failed++; // a read, or a write the cluster says it did not apply
        // As a real client would: no tight loop against a node that is down or cut off.
        await sleep(50 + workloadRandom(100));
      }
    }
  } finally {
    client.close();
  }
}

// ---- The faults ------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const faultLog = [];
async function runFaults(until) {
  if (faults.length === 0) return;
  while (performance.now() + 8_000 < until && !stop) {
    await sleep(2_000 + random(3_000));
    const fault = faults[random(faults.length)];
    const node = 1 + random(nodeCount);
    if (fault === "kill") {
      say(`fault: kill node ${node} (SIGKILL)`);
      await cluster.kill(node);
      await sleep(500 + random(2_500));
      say(`heal: restart node ${node}`);
      await cluster.restart(node);
    } else if (fault === "partition") {
      const ids = Array.from({ length: nodeCount }, (_, i) => i + 1);
      for (let i = ids.length - 1; i > 0; i--) {
        const j = random(i + 1);
        [ids[i], ids[j]] = [ids[j], ids[i]];
      }
      const kind = ["isolate", "split", "bridge"][random(3)];
      const cuts = [];
      let what;
      if (kind === "bridge") {
        // Two nodes cannot see each other; a third sees both.
        cuts.push([ids[0], ids[1]]);
        what = `bridge: ${ids[0]} and ${ids[1]} cut from each other, ${ids[2]} sees both`;
      } else {
        const minority = kind === "isolate" ? 1 : Math.floor((nodeCount - 1) / 2);
        const small = ids.slice(0, minority);
        const large = ids.slice(minority);
        for (const a of small) for (const b of large) cuts.push([a, b]);
        what = `${kind === "isolate" ? "isolate" : "split"}: {${small.join(",")}} | {${large.join(",")}}`;
      }
      const ms = 3_000 + random(3_000);
      say(`fault: partition ${what} for ${ms} ms`);
      for (const [a, b] of cuts) network.disconnect(a, b);
      await sleep(ms);
      say("heal: every link whole");
      network.healAll();
    } else {
      const ms = 2_500 + random(2_000); // longer than the 2 s maximal election timeout
      say(`fault: pause node ${node} for ${ms} ms (SIGSTOP)`);
      cluster.pause(node);
      await sleep(ms);
      say(`heal: resume node ${node} (SIGCONT)`);
      cluster.resume(node);
    }
    faultLog.push(fault);
  }
}

const end = performance.now() + seconds * 1000;
const workload = Array.from({ length: clientCount }, (_, i) => runClient(i));
const timer = sleep(seconds * 1000).then(() => (stop = true));
await runFaults(end);
await timer;
await Promise.all(workload);

// ---- Heal, then read every key from every node ------------------------------------------

say("healing: every link whole, every node running");
network?.healAll();
await cluster.healAll();
await cluster.waitForLeader();
for (const [i, endpoint] of cluster.endpoints.entries()) {
  const client = new RockraftClient({ endpoints: [endpoint], timeoutMs: 10_000 });
  for (const key of keys) {
    const callTime = ++clock;
    const read = await client.get(key);
    history.push({
      client: 1000 + i,
      key,
      input: { op: "get" },
      output: { op: "get", value: text(read.value) },
      call: callTime,
      ret: ++clock,
    });
  }
  client.close();
}
const terms = await cluster.terms();
await cluster.stop();

// ---- The verdict ------------------------------------------------------------------------

const byKey = new Map(keys.map((key) => [key, []]));
for (const op of history) byKey.get(op.key).push(op);
const violations = [];
let undecided = 0;
for (const [key, ops] of byKey) {
  const result = checkKey(ops);
  if (result.undecided) undecided++;
  if (!result.ok) violations.push({ key, ops, at: firstViolation(ops) });
}
say(
  `operations: ${counts.ok} ok, ${counts.failed} failed (not applied), ${counts.unknown} with an unknown outcome; ${keys.length * nodeCount} final reads`,
);
say(
  `faults: ${faultLog.length} (${FAULT_CLASSES.map((f) => `${faultLog.filter((x) => x === f).length} ${f}`).join(", ")}); final terms ${terms.join(", ")}`,
);
if (violations.length > 0) {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, "history.json"),
    JSON.stringify(history, (_, v) => (v === Infinity ? "Infinity" : v), 1),
  );
  for (const { key, ops, at } of violations) {
    console.log(`key ${key}: not linearizable; the violation lies among the calls up to ${at}:`);
    for (const op of ops.filter((o) => o.call <= (at ?? Infinity)).slice(-12))
      console.log(`  ${describe(op)}`);
  }
  console.log(
    `NOT LINEARIZABLE: ${violations.length} of ${keys.length} keys (history and node logs in ${dir}; replay the schedule with --seed ${seed})`,
  );
  process.exit(1);
}
if (undecided > 0) {
  console.log(
    `UNDECIDED: ${undecided} of ${keys.length} keys too large to decide within the search budget (use more keys or fewer seconds); seed ${seed}`,
  );
  process.exit(1);
}
await rm(dir, { recursive: true, force: true }); // kept only when a check fails
console.log(`LINEARIZABLE: ${history.length} operations on ${keys.length} keys; seed ${seed}`);
