#!/usr/bin/env node
// `pnpm bench:cluster`: three example nodes as processes on 127.0.0.1, and a closed-loop load
// generator (in this process) driving the KV gRPC API with 1, 8, 64 and 256 concurrent
// clients: 256-byte values over 10,000 keys, writes then linearizable reads. Reports
// throughput, p50/p99 latency and CPU seconds per operation (nodes + load generator).
//   pnpm bench:cluster [-- --seconds 10 --warmup 10 --clients 1,8,64,256 --ops write,read --profile DIR --vs-etcd --repeat N --unary --shape]
// rockraft's client sends its calls over each node's KV.Batch stream, as it does by default;
// with --unary it makes one unary gRPC call per operation, as etcd's client does.
// With --vs-etcd, the same load runs, alternating row by row, against a three-member etcd
// cluster on 127.0.0.1 (Debian's etcd-server, installed when missing), and the ratios print.
// With --repeat N (and --vs-etcd), each row runs N times, the systems alternating (rockraft
// first in odd rounds, etcd first in even ones); the ratios are the medians of the N pairs'
// ratios, each pair's listed after it, so that a slow minute of this machine in one row
// does not decide the comparison.
// With --profile, each node process writes a V8 CPU profile (.cpuprofile) into DIR.
// With --shape, more latency percentiles of each row (p75 to p99.9, max) print after the table.
import { spawn, spawnSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  buildAll,
  cleanUpOnExit,
  cpuSeconds,
  freePorts,
  percentile,
  startExampleCluster,
} from "./lib/example-cluster.mjs";
const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "10" },
    clients: { type: "string", default: "1,8,64,256" },
    ops: { type: "string", default: "write,read" },
    profile: { type: "string" },
    unary: { type: "boolean", default: false },
    "vs-etcd": { type: "boolean", default: false },
    shape: { type: "boolean", default: false },
    repeat: { type: "string", default: "1" },
  },
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
});
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const clientCounts = values.clients.split(",").map(Number);
const repeat = Number(values.repeat);
if (!Number.isInteger(repeat) || repeat < 1) {
  console.error(`--repeat: expected a positive integer, got ${JSON.stringify(values.repeat)}`);
  process.exit(2);
}

buildAll();
const { RockraftClient } = await import("@rockraft/transport-grpc");
const profile =
  values.profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${values.profile}`];
const { dir, nodes, endpoints, stop: stopAll } = await startExampleCluster({ nodeArgs: profile });

const value = new Uint8Array(256).fill(120);

/** A system under load: makes client connections that can put and get. */
const rockraftTarget = {
  name: "rockraft",
  cpuPids: () => nodes.map((n) => n.child.pid),
  connect: (i) => {
    // Connection i starts at node i % 3: clients spread over every node, as etcd3's do.
    const rotated = endpoints.map((_, j) => endpoints[(i + j) % endpoints.length]);
    const client = new RockraftClient({
      endpoints: rotated,
      timeoutMs: 10_000,
      unaryCalls: values.unary,
    });
    return {
      put: (k, v) => client.put(k, v),
      get: (k) => client.get(k),
      close: () => client.close(),
    };
  },
};

async function phase(target, kind, concurrency) {
  const clients = Array.from({ length: Math.min(concurrency, 16) }, (_, i) => target.connect(i));
  for (const client of clients) await client.get("warm-up").catch(() => undefined);
  const latencies = [];
  let errors = 0;
  const pids = target.cpuPids();
  // The same load runs for `warmup` seconds first, unmeasured: V8 compiles the hot paths of
  // node and load generator alike during the first seconds of a load (etcd, in Go, needs no
  // warm-up; this keeps JIT compilation out of the comparison). At one client, writes slower
  // than 3 ms fell from about 40 per 500 ms to 6-9 over the first 10 s of load.
  const warmEnd = performance.now() + warmup * 1000;
  const end = warmEnd + seconds * 1000;
  let cpuBefore = 0;
  let selfBefore = process.cpuUsage();
  let began = warmEnd;
  const startMeasuring = () => {
    cpuBefore = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    selfBefore = process.cpuUsage();
    began = performance.now();
  };
  const measuring = warmup > 0 ? setTimeout(startMeasuring, warmup * 1000) : startMeasuring();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      const client = clients[i % clients.length];
      while (performance.now() < end) {
        const key = `key-${Math.floor(Math.random() * 10_000)}`;
        const t0 = performance.now();
        try {
          if (kind === "write") await client.put(key, value);
          else await client.get(key);
          if (t0 >= began) latencies.push(performance.now() - t0);
        } catch {
          if (t0 >= began) errors++;
        }
      }
    }),
  );
  clearTimeout(measuring);
  const elapsed = (performance.now() - began) / 1000;
  const self = process.cpuUsage(selfBefore);
  const cpu =
    pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) -
    cpuBefore +
    (self.user + self.system) / 1e6;
  for (const client of clients) client.close();
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    shape: [75, 90, 95, 98, 99, 99.5, 99.9]
      .map((p) => `p${p} ${percentile(latencies, p).toFixed(2)}`)
      .concat(`max ${(latencies.at(-1) ?? 0).toFixed(2)}`)
      .join(", "),
    cpuPerOp: cpu / Math.max(1, latencies.length),
    errors,
  };
}

/** Three etcd members on 127.0.0.1 (Debian's etcd-server, installed when missing). */
async function startEtcd() {
  if (spawnSync("which", ["etcd"]).status !== 0) {
    console.error("etcd not found: installing Debian's etcd-server...");
    const install = spawnSync("apt-get", ["install", "-y", "etcd-server"], {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    if (install.status !== 0) throw new Error("apt-get install etcd-server failed");
  }
  const [c1, c2, c3, p1, p2, p3] = await freePorts(6);
  const clientPorts = [c1, c2, c3];
  const peerPorts = [p1, p2, p3];
  const initialCluster = peerPorts.map((p, i) => `e${i + 1}=http://127.0.0.1:${p}`).join(",");
  const members = clientPorts.map((port, i) =>
    spawn(
      "etcd",
      [
        "--name",
        `e${i + 1}`,
        "--data-dir",
        join(dir, `etcd${i + 1}`),
        "--listen-client-urls",
        `http://127.0.0.1:${port}`,
        "--advertise-client-urls",
        `http://127.0.0.1:${port}`,
        "--listen-peer-urls",
        `http://127.0.0.1:${peerPorts[i]}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${peerPorts[i]}`,
        "--initial-cluster",
        initialCluster,
        "--initial-cluster-state",
        "new",
        "--log-level",
        "error",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    ),
  );
  for (const member of members) cleanUpOnExit({ child: member });
  const { Etcd3 } = await import("etcd3");
  const hosts = clientPorts.map((p) => `http://127.0.0.1:${p}`);
  const probe = new Etcd3({ hosts });
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await probe.put("warm-up").value("x");
      break;
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  probe.close();
  return {
    target: {
      name: "etcd",
      cpuPids: () => members.map((m) => m.pid),
      connect: () => {
        const client = new Etcd3({ hosts });
        return {
          put: (k, v) => client.put(k).value(Buffer.from(v)),
          get: (k) => client.get(k).buffer(),
          close: () => client.close(),
        };
      },
    },
    stop: async () => {
      for (const m of members) m.kill("SIGTERM");
      await Promise.all(
        members.map(
          (m) =>
            new Promise((resolve) => (m.exitCode !== null ? resolve() : m.on("exit", resolve))),
        ),
      );
    },
  };
}

console.log(
  `cluster bench: 3 nodes + load generator on one machine (${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}); ${seconds} s per row after ${warmup} s of unmeasured warm-up; 256-byte values, 10,000 keys; default configs; rockraft's client ${values.unary ? "with one unary call per operation (--unary)" : "over KV.Batch streams (its default)"}`,
);
console.log("");
const etcd = values["vs-etcd"] ? await startEtcd() : undefined;
const shapes = [];
const row = (name, kind, concurrency, r) => {
  shapes.push(`${name} ${kind} @ ${concurrency} clients: p50 ${r.p50.toFixed(2)}, ${r.shape}`);
  return `| ${name} | ${kind} | ${concurrency} | ${Math.round(r.ops).toLocaleString("en-US")} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.cpuPerOp * 1000).toFixed(3)} | ${r.errors} |`;
};
console.log("| system | op | clients | ops/s | p50 ms | p99 ms | CPU ms/op | errors |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|");
const ratios = [];
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
};
const times = (values) => values.map((v) => `${v.toFixed(2)}×`).join(", ");
for (const concurrency of clientCounts) {
  for (const kind of values.ops.split(",")) {
    const throughput = [];
    const p99 = [];
    for (let round = 0; round < (etcd === undefined ? 1 : repeat); round++) {
      // The systems alternate row by row, so that both see the same machine conditions.
      const order =
        round % 2 === 0 ? [rockraftTarget, etcd?.target] : [etcd.target, rockraftTarget];
      const results = new Map();
      for (const target of order) {
        if (target === undefined) continue;
        const result = await phase(target, kind, concurrency);
        results.set(target.name, result);
        console.log(row(target.name, kind, concurrency, result));
      }
      if (etcd === undefined) continue;
      const [ours, theirs] = [results.get("rockraft"), results.get("etcd")];
      throughput.push(ours.ops / theirs.ops);
      p99.push(ours.p99 / theirs.p99);
    }
    if (etcd === undefined) continue;
    ratios.push(
      repeat === 1
        ? `${kind} @ ${concurrency} clients: throughput ${times(throughput)}, p99 ${times(p99)} etcd's`
        : `${kind} @ ${concurrency} clients: throughput ${median(throughput).toFixed(2)}× (${times(throughput)}), p99 ${median(p99).toFixed(2)}× (${times(p99)}) etcd's, medians of ${repeat}`,
    );
  }
}
if (ratios.length > 0) console.log(`\nrockraft / etcd:\n${ratios.join("\n")}`);
if (values.shape) console.log(`\nlatency percentiles, ms:\n${shapes.join("\n")}`);
await etcd?.stop();
await stopAll();
