#!/usr/bin/env node
// `pnpm bench:soak`: one million 256-byte writes at 64 concurrent clients against three
// example node processes with the default snapshot policy; reports each node's peak RSS and
// its data directory's size against the live data once compaction has run.
//   pnpm bench:soak [-- --writes 1000000 --clients 64 --keys 10000]
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const root = join(import.meta.dirname, "..");
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

const build = spawnSync("pnpm", ["exec", "turbo", "run", "build", "--output-logs=errors-only"], {
  cwd: root,
  stdio: "inherit",
});
if (build.status !== 0) process.exit(1);
const { RockraftClient } = await import(join(root, "packages/transport-grpc/dist/index.js"));

async function freePorts(count) {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise((resolve) => {
          const s = createServer();
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}
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

const dir = await mkdtemp(join(tmpdir(), "rockraft-soak-"));
const ports = await freePorts(3);
const members = ports
  .map((p, i) => `[[cluster.members]]\nnode_id = ${i + 1}\naddr = "127.0.0.1:${p}"\n`)
  .join("\n");
const nodes = [];
for (const [i, port] of ports.entries()) {
  const conf = join(dir, `node${i + 1}.toml`);
  await writeFile(
    conf,
    `[node]\nnode_id = ${i + 1}\nraft_addr = "127.0.0.1:${port}"\n\n[rocksdb]\ndata_path = "${join(dir, `data${i + 1}`)}"\n\n[log]\nlevel = "warn"\n\n[cluster]\n${members}`,
  );
  const child = spawn(process.execPath, ["dist/main.js", "--conf", conf], {
    cwd: join(root, "apps/basic-example"),
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  nodes.push({ child, output: () => output, data: join(dir, `data${i + 1}`), peak: 0 });
}
const deadline = Date.now() + 60_000;
while (!nodes.every((n) => /is running/.test(n.output()))) {
  if (Date.now() > deadline) throw new Error("the cluster did not start");
  await new Promise((resolve) => setTimeout(resolve, 100));
}
const sampler = setInterval(() => {
  for (const node of nodes) node.peak = Math.max(node.peak, peakRssMb(node.child.pid));
}, 1000);

const endpoints = ports.map((p) => `127.0.0.1:${p}`);
const clients = Array.from(
  { length: 16 },
  () => new RockraftClient({ endpoints, timeoutMs: 30_000 }),
);
const value = new Uint8Array(256).fill(115);
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
        await client.put(`key-${n % keys}`, value);
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
for (const node of nodes) node.child.kill("SIGINT");
await Promise.all(
  nodes.map(
    (n) =>
      new Promise((resolve) =>
        n.child.exitCode !== null ? resolve() : n.child.on("exit", resolve),
      ),
  ),
);
await rm(dir, { recursive: true, force: true });
