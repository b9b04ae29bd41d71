#!/usr/bin/env node
// `pnpm bench:soak`: one million 256-byte writes at 64 concurrent clients against three
// example node processes with the default snapshot policy; reports each node's peak RSS and
// its data directory's size against the live data once compaction has run. Values are
// random, so that compression does not flatter the disk numbers.
//   pnpm bench:soak [-- --writes 1000000 --clients 64 --keys 10000]
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildAll, startExampleCluster } from "./lib/example-cluster.mjs";
const { values } = parseArgs({
  options: {
    writes: { type: "string", default: "1000000" },
    clients: { type: "string", default: "64" },
    keys: { type: "string", default: "10000" },
  },
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
});
const totalWrites = Number(values.writes);
const concurrency = Number(values.clients);
const keys = Number(values.keys);

buildAll();
const { RockraftClient } = await import("@rockraft/transport-grpc");
const peakRssMb = (pid) =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
async function du(path) {
  let size = 0;
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    size += entry.isDirectory() ? await du(full) : (await stat(full)).size;
  }
  return size;
}

const cluster = await startExampleCluster({ prefix: "rockraft-soak-" });
const { endpoints } = cluster;
const nodes = cluster.nodes.map((node) => ({ ...node, peak: 0 }));
const sampler = setInterval(() => {
  for (const node of nodes) node.peak = Math.max(node.peak, peakRssMb(node.child.pid));
}, 1000);

const clients = Array.from(
  { length: 16 },
  () => new RockraftClient({ endpoints, timeoutMs: 30_000 }),
);
// Random values: compressible ones would flatter the disk numbers (LevelDB uses Snappy).
let issued = 0;
let done = 0;
let errors = 0;
const began = performance.now();
const progress = setInterval(() => {
  const elapsed = (performance.now() - began) / 1000;
  console.log(
    `${done.toLocaleString("en-US")} writes, ${Math.round(done / elapsed)} /s, ${errors} errors, RSS peak ${nodes.map((n) => n.peak.toFixed(0)).join("/")} MB`,
  );
}, 10_000);
await Promise.all(
  Array.from({ length: concurrency }, async (_, i) => {
    const client = clients[i % clients.length];
    while (issued < totalWrites) {
      const n = issued++;
      try {
        await client.put(`key-${n % keys}`, randomBytes(256));
        done++;
      } catch {
        errors++;
      }
    }
  }),
);
clearInterval(progress);
const seconds = (performance.now() - began) / 1000;
// Let snapshots and compaction catch up, then measure.
await new Promise((resolve) => setTimeout(resolve, 5000));
clearInterval(sampler);
for (const node of nodes) node.peak = Math.max(node.peak, peakRssMb(node.child.pid));
const live = keys * (256 + 16);
const sizes = await Promise.all(nodes.map((n) => du(n.data)));
console.log("");
console.log(
  `soak: ${done.toLocaleString("en-US")} writes (${errors} errors) in ${seconds.toFixed(0)} s = ${Math.round(done / seconds)} writes/s, ${concurrency} clients, ${keys} keys of 256 bytes; ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
);
console.log("| node | peak RSS (MB) | data dir (MB) | data dir / live data |");
console.log("|---:|---:|---:|---:|");
nodes.forEach((n, i) =>
  console.log(
    `| ${i + 1} | ${n.peak.toFixed(0)} | ${(sizes[i] / 2 ** 20).toFixed(1)} | ${(sizes[i] / live).toFixed(2)}× |`,
  ),
);
for (const client of clients) client.close();
await cluster.stop();
