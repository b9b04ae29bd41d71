#!/usr/bin/env node
// `pnpm bench:gc-tail`: what the slowest 1-client writes overlap. Three example nodes as
// processes (as `pnpm bench:cluster` runs them), one client writing 256-byte values one at a
// time; every node and the load generator record their GC pauses (young-generation and
// full collections apart), and each node's LevelDB log (its `LOG` file) says when it flushed
// a memtable or compacted. Prints, for each process, the share of the slowest 1% of writes
// that overlapped one of its pauses (against the share of the other writes) and the p99 of
// the writes that overlapped no pause anywhere (an estimate of the p99 without the
// collector); then the shares that overlapped a LevelDB flush or compaction on any node,
// that fell just after a snapshot (within 300 log entries of the snapshot policy's
// multiple), and that came in bursts (another of the slowest 1% within 30 ms).
//   pnpm bench:gc-tail [-- --seconds 15 --warmup 10 --node-args="--max-semi-space-size=1"]
// --node-args go to each node's `node` after the start script's own flags, so they override
// them (e.g. another young-generation size).
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import {
  buildAll,
  cleanUpOnExit,
  percentile,
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
const { RockraftClient } = await import("@rockraft/transport-grpc");
const { parseConfig } = await import("@rockraft/config");
// The example's default snapshot policy: a snapshot every this many applied entries.
const snapshotEvery = parseConfig(
  '[node]\nnode_id = 1\nraft_addr = "127.0.0.1:1"\n[rocksdb]\ndata_path = "unused"\n',
).raft.snapshotLogsSinceLast;
const gcDir = await mkdtemp(join(tmpdir(), "rockraft-gc-"));
cleanUpOnExit({ dir: gcDir });
process.env.ROCKRAFT_GC_DIR = gcDir; // inherited by the nodes
const observer = join(import.meta.dirname, "lib/gc-observer.mjs");
const cluster = await startExampleCluster({ nodeArgs: ["--import", observer, ...extraArgs] });

const ownPauses = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    ownPauses.push([performance.timeOrigin + entry.startTime, entry.duration, entry.detail.kind]);
  }
}).observe({ entryTypes: ["gc"] });

const value = new Uint8Array(256).fill(120);
const client = new RockraftClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
const put = () => client.put(`key-${Math.floor(Math.random() * 10_000)}`, value);
const warmEnd = performance.now() + warmup * 1000;
while (performance.now() < warmEnd) await put();
const writes = []; // [start, ms since the epoch; duration, ms; log index]
const from = performance.timeOrigin + performance.now();
const end = performance.now() + seconds * 1000;
while (performance.now() < end) {
  const t0 = performance.now();
  const { logId } = await put();
  writes.push([performance.timeOrigin + t0, performance.now() - t0, Number(logId.index)]);
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
const storageWork = []; // the measured seconds' LevelDB flushes and compactions, every node
for (const node of cluster.nodes) {
  for (const window of await levelDbWork(node.data)) {
    if (window[0] + window[1] >= from) storageWork.push(window);
  }
}
await cluster.stop();
await rm(gcDir, { recursive: true, force: true });

/**
 * LevelDB's memtable flushes and compactions in `dir`, as [start, ms] windows (ms since the
 * epoch), from the `LOG` files LevelDB writes there (local time, to the microsecond).
 */
async function levelDbWork(dir) {
  const windows = [];
  const files = (await readdir(dir, { recursive: true })).filter((f) => /(^|\/)LOG$/.test(f));
  for (const file of files) {
    let open;
    for (const line of (await readFile(join(dir, file), "utf8")).split("\n")) {
      const m = /^(\d+)\/(\d+)\/(\d+)-(\d+):(\d+):(\d+)\.(\d+) \S+ (.*)$/.exec(line);
      if (m === null) continue;
      const [, y, mo, d, h, mi, s, us, what] = m;
      const at = new Date(+y, mo - 1, +d, +h, +mi, +s).getTime() + us / 1000;
      if (/^Level-0 table #\d+: started|^Compacting /.test(what)) open ??= at;
      else if (open !== undefined && /bytes OK|^compacted to/.test(what)) {
        windows.push([open, at - open]);
        open = undefined;
      }
    }
  }
  return windows;
}

// 1: a young-generation collection; 2, 4 (incremental marking) and 8 (weak callbacks, mostly
// after a full one) count as full collections.
const isMajor = (kind) => kind !== 1;
const sorted = writes.map(([, ms]) => ms).sort((a, b) => a - b);
const p99 = percentile(sorted, 99);
const slow = writes.filter(([, ms]) => ms >= p99);
const rest = writes.filter(([, ms]) => ms < p99);
const overlaps = ([start, ms], windows) =>
  windows.some(([at, length]) => at < start + ms && at + length > start);
const share = (list, test) => `${((100 * list.filter(test).length) / list.length).toFixed(1)}%`;

console.log(
  `\n${writes.length} writes in ${seconds} s after ${warmup} s of warm-up` +
    `${extraArgs.length > 0 ? `, nodes with ${extraArgs.join(" ")}` : ""}: ` +
    `p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms\n`,
);
console.log(
  "| process | GC pauses (full) | paused ms | longest ms | slowest 1% overlapping | other writes overlapping |",
);
console.log("|---|---:|---:|---:|---:|---:|");
for (const { name, pauses } of processes) {
  const total = pauses.reduce((sum, [, ms]) => sum + ms, 0);
  const longest = pauses.reduce((max, [, ms]) => Math.max(max, ms), 0);
  const full = pauses.filter(([, , kind]) => isMajor(kind)).length;
  const test = (write) => overlaps(write, pauses);
  console.log(
    `| ${name} | ${pauses.length} (${full}) | ${total.toFixed(0)} | ${longest.toFixed(1)} | ${share(slow, test)} | ${share(rest, test)} |`,
  );
}
const anyPause = (write) => processes.some(({ pauses }) => overlaps(write, pauses));
const fullPauses = processes.flatMap(({ pauses }) => pauses.filter(([, , kind]) => isMajor(kind)));
const anyFull = (write) => overlaps(write, fullPauses);
const clean = writes
  .filter((write) => !anyPause(write))
  .map(([, ms]) => ms)
  .sort((a, b) => a - b);
console.log(
  `| any | | | | ${share(slow, anyPause)} | ${share(rest, anyPause)} |\n\n` +
    `p99 of the ${clean.length} writes that overlapped no pause: ${percentile(clean, 99).toFixed(2)} ms\n`,
);

const afterSnapshot = ([, , index]) => snapshotEvery > 0 && index % snapshotEvery < 300;
const inBurst = (write) =>
  slow.some((other) => other !== write && Math.abs(other[0] - write[0]) < 30);
console.log("| the write | slowest 1% | other writes |\n|---|---:|---:|");
for (const [what, test] of [
  ["overlapped a full collection (any process)", anyFull],
  [
    `overlapped a LevelDB flush or compaction (any node; ${storageWork.length} in all)`,
    (w) => overlaps(w, storageWork),
  ],
  [`came within 300 entries after a snapshot (every ${snapshotEvery})`, afterSnapshot],
  ["had another of the slowest 1% within 30 ms", inBurst],
]) {
  console.log(
    `| ${what} | ${share(slow, test)} | ${what.startsWith("had") ? "" : share(rest, test)} |`,
  );
}
process.exit(0);
