#!/usr/bin/env node
// `pnpm bench:gc-tail`: how much of the 1-client write tail is garbage collection. Three
// example nodes as processes (as `pnpm bench:cluster` runs them), one client writing
// 256-byte values one at a time; every node and the load generator record their GC pauses.
// Prints, for each process, the share of the slowest 1% of writes that overlapped one of its
// pauses (against the share of the other writes), and the p99 of the writes that overlapped
// no pause anywhere: an estimate of the p99 without the collector.
//   pnpm bench:gc-tail [-- --seconds 15 --warmup 10 --node-args="--max-semi-space-size=1"]
// --node-args go to each node's `node` after the start script's own flags, so they override
// them (e.g. another young-generation size).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import {
  buildAll,
  cleanUpOnExit,
  percentile,
  root,
  startExampleCluster,
} from "./lib/example-cluster.mjs";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "15" },
    warmup: { type: "string", default: "10" },
    "node-args": { type: "string", default: "" },
  },
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
});
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const extraArgs = values["node-args"].split(/\s+/).filter((arg) => arg !== "");

buildAll();
const { RockraftClient } = await import(join(root, "packages/transport-grpc/dist/index.js"));
const gcDir = await mkdtemp(join(tmpdir(), "rockraft-gc-"));
cleanUpOnExit({ dir: gcDir });
process.env.ROCKRAFT_GC_DIR = gcDir; // inherited by the nodes
const observer = join(import.meta.dirname, "lib/gc-observer.mjs");
const cluster = await startExampleCluster({ nodeArgs: ["--import", observer, ...extraArgs] });

const ownPauses = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    ownPauses.push([performance.timeOrigin + entry.startTime, entry.duration]);
  }
}).observe({ entryTypes: ["gc"] });

const value = new Uint8Array(256).fill(120);
const client = new RockraftClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
const put = () => client.put(`key-${Math.floor(Math.random() * 10_000)}`, value);
const warmEnd = performance.now() + warmup * 1000;
while (performance.now() < warmEnd) await put();
const writes = []; // [start, ms since the epoch; duration, ms]
const from = performance.timeOrigin + performance.now();
const end = performance.now() + seconds * 1000;
while (performance.now() < end) {
  const t0 = performance.now();
  await put();
  writes.push([performance.timeOrigin + t0, performance.now() - t0]);
}
client.close();

for (const node of cluster.nodes) node.child.kill("SIGUSR2");
const processes = [];
for (const [i, node] of cluster.nodes.entries()) {
  const file = join(gcDir, `${node.child.pid}.json`);
  const deadline = Date.now() + 10_000;
  let pauses;
  while (pauses === undefined) {
    try {
      pauses = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  processes.push({ name: `node ${i + 1}`, pauses: pauses.filter(([start]) => start >= from) });
}
processes.push({ name: "load generator", pauses: ownPauses.filter(([start]) => start >= from) });
await cluster.stop();
await rm(gcDir, { recursive: true, force: true });

const sorted = writes.map(([, ms]) => ms).sort((a, b) => a - b);
const p99 = percentile(sorted, 99);
const slow = writes.filter(([, ms]) => ms >= p99);
const rest = writes.filter(([, ms]) => ms < p99);
const overlaps = ([start, ms], pauses) =>
  pauses.some(([at, pause]) => at < start + ms && at + pause > start);
const share = (list, test) => `${((100 * list.filter(test).length) / list.length).toFixed(1)}%`;

console.log(
  `\n${writes.length} writes in ${seconds} s after ${warmup} s of warm-up` +
    `${extraArgs.length > 0 ? `, nodes with ${extraArgs.join(" ")}` : ""}: ` +
    `p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms\n`,
);
console.log(
  "| process | GC pauses | paused ms | slowest 1% overlapping | other writes overlapping |",
);
console.log("|---|---:|---:|---:|---:|");
for (const { name, pauses } of processes) {
  const total = pauses.reduce((sum, [, ms]) => sum + ms, 0);
  const test = (write) => overlaps(write, pauses);
  console.log(
    `| ${name} | ${pauses.length} | ${total.toFixed(0)} | ${share(slow, test)} | ${share(rest, test)} |`,
  );
}
const anyPause = (write) => processes.some(({ pauses }) => overlaps(write, pauses));
const clean = writes
  .filter((write) => !anyPause(write))
  .map(([, ms]) => ms)
  .sort((a, b) => a - b);
console.log(
  `| any | | | ${share(slow, anyPause)} | ${share(rest, anyPause)} |\n\n` +
    `p99 of the ${clean.length} writes that overlapped no pause: ${percentile(clean, 99).toFixed(2)} ms`,
);
process.exit(0);
