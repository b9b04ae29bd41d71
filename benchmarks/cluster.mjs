#!/usr/bin/env node
// `pnpm bench:cluster`: three example nodes as processes on 127.0.0.1, and a closed-loop load
// generator (in this process) driving the KV gRPC API with 1, 8, 64 and 256 concurrent
// clients over up to 16 connections: 256-byte values over 10,000 keys, writes then
// linearizable reads. Reports throughput, p50/p99 latency, and CPU per operation of the
// servers (the three processes, from /proc) apart from the load generator's.
//   pnpm bench:cluster [-- --seconds 10 --warmup 10 --clients 1,8,64,256 --ops write,read --profile DIR --vs-etcd --vs-no-sessions --vs-auth --vs-self --unary --floor --replication-floor --leader --repeat N --shape]
// By default each system is driven by its own client: rockraft's RockraftClient (its calls
// over each node's KV.Batch stream) and etcd's etcd3 package. With --unary both are driven
// by the identical client instead: plain grpc-js stubs generated at run time from each
// system's own proto (@rockraft/test-utils/stubs), one unary call per operation, as a user of any
// language calls them.
// With --vs-etcd, the same load runs, alternating row by row, against a three-member etcd
// cluster on 127.0.0.1 (Debian's etcd-server, installed when missing), and the ratios print.
// With --floor (implies --unary), it also runs against three bare grpc-js servers of
// rockraft's KV service that answer at once (lib/echo-server.mjs): the cost of a unary call
// through grpc-js on this machine, the floor for any grpc-js service.
// With --repeat N, each row runs N times, the systems alternating (the first system rotates
// each round); the ratios are the medians of the N rounds' ratios, each round's listed after
// it, so that a slow minute of this machine in one row does not decide the comparison.
// With --vs-no-sessions, the same load alternates with RockraftClients that write without a
// client session (sessions: false): what sessions cost.
// With --vs-self, the same load alternates with itself (rockraft again, the same clients):
// the ratios this machine's noise alone gives, to read the other comparisons against.
// With --vs-auth, the same load alternates with authentication enabled (switched on and off
// through the log before each row): RockraftClients of a user whose role may read and write
// the bench's keys, each call carrying a token the node verifies and checks: what auth costs.
// With --replication-floor (implies --unary and --leader), it also runs against three
// processes of lib/replication-floor.mjs: the least work a replicated, durable write (a
// synced LevelDB append on the leader and on a follower, a round trip between them, the
// data written) and a linearizable read (one heartbeat round trip) need with grpc-js and
// LevelDB, without Raft; its first process leads, so every system gets leader-targeted calls.
// With --leader, every connection goes to the leader (the floor: to its first server)
// instead of connection i to server i % 3.
// With --profile, each node process writes a V8 CPU profile (.cpuprofile) into DIR.
// With --shape, more latency percentiles of each row (p75 to p99.9, max) print after the table.
import { spawn } from "node:child_process";
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
import { ensureEtcd } from "@rockraft/test-utils";
import { etcdStub, rockraftStub } from "@rockraft/test-utils/stubs";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "10" },
    clients: { type: "string", default: "1,8,64,256" },
    ops: { type: "string", default: "write,read" },
    profile: { type: "string" },
    unary: { type: "boolean", default: false },
    "vs-etcd": { type: "boolean", default: false },
    "vs-no-sessions": { type: "boolean", default: false },
    "vs-auth": { type: "boolean", default: false },
    "vs-self": { type: "boolean", default: false },
    floor: { type: "boolean", default: false },
    "replication-floor": { type: "boolean", default: false },
    leader: { type: "boolean", default: false },
    shape: { type: "boolean", default: false },
    repeat: { type: "string", default: "1" },
  },
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
});
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const clientCounts = values.clients.split(",").map(Number);
const unary = values.unary || values.floor || values["replication-floor"];
const leaderOnly = values.leader || values["replication-floor"];
const repeat = Number(values.repeat);
if (values["vs-no-sessions"] && unary) {
  console.error("--vs-no-sessions: RockraftClient only (a unary stub writes without a session)");
  process.exit(2);
}
if (values["vs-auth"] && unary) {
  console.error("--vs-auth: RockraftClient only (a unary stub sends no token)");
  process.exit(2);
}
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

/** The node that leads now (for --leader). */
async function findRockraftLeader() {
  for (const endpoint of endpoints) {
    const client = new RockraftClient({ endpoints: [endpoint], timeoutMs: 10_000 });
    try {
      await client.put("warm-up", "x");
      if ((await client.metrics()).state === "leader") return endpoint;
    } finally {
      client.close();
    }
  }
  throw new Error("no rockraft node says it leads");
}
const rockraftLeader = leaderOnly ? await findRockraftLeader() : undefined;

/** Connection i to rockraft: a RockraftClient (writing in a session, or not), or a stub. */
function connectRockraft(i, { sessions = true, auth = undefined } = {}) {
  // Connection i goes to node i % 3: clients spread over every node, as etcd3's do.
  const first = leaderOnly ? endpoints.indexOf(rockraftLeader) : i % endpoints.length;
  if (unary) return rockraftStub(endpoints[first]);
  const rotated = endpoints.map((_, j) => endpoints[(first + j) % endpoints.length]);
  const client = new RockraftClient({
    endpoints: rotated,
    timeoutMs: 10_000,
    sessions,
    ...(auth === undefined ? {} : { auth }),
  });
  return {
    put: (k, v) => client.put(k, v),
    get: (k) => client.get(k),
    close: () => client.close(),
  };
}

/**
 * Authentication on or off in the cluster (--vs-auth), through the log; the first time on,
 * a root user and a user "bench" whose role may read and write the bench's keys are added.
 */
const ROOT = { user: "root", password: "bench-root" };
const BENCH_USER = { user: "bench", password: "bench-user" };
let authOn = false;
let authUsers = false;
async function switchAuth(on) {
  if (on === authOn) return;
  const admin = new RockraftClient({
    endpoints,
    timeoutMs: 10_000,
    ...(authOn ? { auth: ROOT } : {}),
  });
  try {
    if (!authUsers) {
      const { auth } = admin;
      await auth.change({ op: "user-add", ...ROOT });
      await auth.change({ op: "user-grant", user: "root", role: "root" });
      await auth.change({ op: "role-add", role: "bench" });
      for (const prefix of ["key-", "warm-up"]) {
        const key = new TextEncoder().encode(prefix);
        const permission = { type: "readwrite", key, prefix: true };
        await auth.change({ op: "role-grant", role: "bench", permission });
      }
      await auth.change({ op: "user-add", ...BENCH_USER });
      await auth.change({ op: "user-grant", user: "bench", role: "bench" });
      authUsers = true;
    }
    await admin.auth.change({ op: on ? "enable" : "disable" });
    authOn = on;
  } finally {
    admin.close();
  }
}

/** A system under load: makes client connections that can put and get. */
const rockraftTarget = {
  name: "rockraft",
  cpuPids: () => nodes.map((n) => n.child.pid),
  prepare: () => switchAuth(false),
  connect: (i) => connectRockraft(i),
};

/** The same cluster with authentication on (--vs-auth). */
const authTarget = {
  name: "rockraft with auth",
  cpuPids: rockraftTarget.cpuPids,
  prepare: () => switchAuth(true),
  connect: (i) => connectRockraft(i, { auth: BENCH_USER }),
};

/** The same cluster, its clients writing without sessions (--vs-no-sessions). */
const noSessionsTarget = {
  name: "rockraft without sessions",
  cpuPids: rockraftTarget.cpuPids,
  connect: (i) => connectRockraft(i, { sessions: false }),
};

/** rockraft again, under another name (--vs-self): the comparison's own noise. */
const selfTarget = { ...rockraftTarget, name: "rockraft again" };

/** Starts `node lib/SCRIPT ...args` and waits until it says it is running. */
async function startServerProcess(script, args) {
  const child = spawn(process.execPath, [join(import.meta.dirname, "lib", script), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  cleanUpOnExit({ child });
  await new Promise((resolve) => child.stdout.on("data", (d) => /is running/.test(d) && resolve()));
  return child;
}

/** A target of server processes started by startServerProcess, and how to stop them. */
function serverTarget(name, servers, connect) {
  return {
    target: { name, cpuPids: () => servers.map((child) => child.pid), connect },
    stop: async () => {
      for (const child of servers) child.kill("SIGINT");
      await Promise.all(
        servers.map((child) => new Promise((resolve) => child.on("exit", resolve))),
      );
    },
  };
}

/** Three bare grpc-js servers of rockraft's KV service that answer at once (the floor). */
async function startFloor() {
  const ports = await freePorts(3);
  const servers = await Promise.all(
    ports.map((port) => startServerProcess("echo-server.mjs", [port])),
  );
  return serverTarget("grpc-js floor", servers, (i) =>
    rockraftStub(`127.0.0.1:${ports[leaderOnly ? 0 : i % ports.length]}`),
  );
}

/** Three replication-floor processes (lib/replication-floor.mjs); the first leads. */
async function startReplicationFloor() {
  const ports = await freePorts(3);
  const servers = [];
  // Followers first: the leader opens its streams to them as it starts.
  for (const i of [1, 2, 0]) {
    servers.push(
      await startServerProcess("replication-floor.mjs", [i, join(dir, `floor${i}`), ...ports]),
    );
  }
  return serverTarget("replication floor", servers, () => rockraftStub(`127.0.0.1:${ports[0]}`));
}

async function phase(target, kind, concurrency) {
  await target.prepare?.();
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
  const serverCpu = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpuBefore;
  const clientCpu = (self.user + self.system) / 1e6;
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
    serverCpuPerOp: serverCpu / Math.max(1, latencies.length),
    clientCpuPerOp: clientCpu / Math.max(1, latencies.length),
    errors,
  };
}

/** Three etcd members on 127.0.0.1 (Debian's etcd-server, installed when missing). */
async function startEtcd() {
  ensureEtcd();
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
  let leaderPort;
  if (leaderOnly) {
    for (const port of clientPorts) {
      const one = new Etcd3({ hosts: [`http://127.0.0.1:${port}`] });
      const status = await one.maintenance.status();
      one.close();
      if (status.leader === status.header.member_id) leaderPort = port;
    }
    if (leaderPort === undefined) throw new Error("no etcd member says it leads");
  }
  return {
    target: {
      name: "etcd",
      cpuPids: () => members.map((m) => m.pid),
      connect: (i) => {
        const port = leaderPort ?? clientPorts[i % clientPorts.length];
        if (unary) return etcdStub(`127.0.0.1:${port}`);
        const client = new Etcd3({
          hosts: leaderPort === undefined ? hosts : [`http://127.0.0.1:${port}`],
        });
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

const clientName = unary
  ? "every system through a plain grpc-js stub from its own proto, one unary call per operation (--unary)"
  : "each system through its own client: RockraftClient over KV.Batch streams, etcd3 for etcd";
console.log(
  `cluster bench: 3 servers + load generator on one machine (${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}); ${seconds} s per row after ${warmup} s of unmeasured warm-up; 256-byte values, 10,000 keys; default configs; ${clientName}`,
);
console.log("");
const etcd = values["vs-etcd"] ? await startEtcd() : undefined;
const floor = values.floor ? await startFloor() : undefined;
const replicationFloor = values["replication-floor"] ? await startReplicationFloor() : undefined;
const systems = [
  rockraftTarget,
  values["vs-no-sessions"] ? noSessionsTarget : undefined,
  values["vs-auth"] ? authTarget : undefined,
  values["vs-self"] ? selfTarget : undefined,
  etcd?.target,
  floor?.target,
  replicationFloor?.target,
].filter((t) => t !== undefined);
const others = systems.slice(1);
const shapes = [];
const ms = (seconds) => (seconds * 1000).toFixed(3);
const row = (name, kind, concurrency, r) => {
  shapes.push(`${name} ${kind} @ ${concurrency} clients: p50 ${r.p50.toFixed(2)}, ${r.shape}`);
  return `| ${name} | ${kind} | ${concurrency} | ${Math.round(r.ops).toLocaleString("en-US")} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${ms(r.serverCpuPerOp)} | ${ms(r.clientCpuPerOp)} | ${r.errors} |`;
};
console.log(
  "| system | op | clients | ops/s | p50 ms | p99 ms | server CPU ms/op | load generator CPU ms/op | errors |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
const ratios = [];
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
};
const times = (values) => values.map((v) => `${v.toFixed(2)}×`).join(", ");
for (const concurrency of clientCounts) {
  for (const kind of values.ops.split(",")) {
    const rounds = new Map(others.map((t) => [t.name, { ops: [], p99: [], cpu: [] }]));
    for (let round = 0; round < (others.length === 0 ? 1 : repeat); round++) {
      // The systems alternate row by row, the first one rotating each round, so that all
      // see the same machine conditions.
      const order = systems.map((_, j) => systems[(j + round) % systems.length]);
      const results = new Map();
      for (const target of order) {
        const result = await phase(target, kind, concurrency);
        results.set(target.name, result);
        console.log(row(target.name, kind, concurrency, result));
      }
      const ours = results.get("rockraft");
      for (const other of others) {
        const theirs = results.get(other.name);
        const ratio = rounds.get(other.name);
        ratio.ops.push(ours.ops / theirs.ops);
        ratio.p99.push(ours.p99 / theirs.p99);
        ratio.cpu.push(ours.serverCpuPerOp / theirs.serverCpuPerOp);
      }
    }
    for (const [name, r] of rounds) {
      const of = (list) =>
        repeat === 1 ? times(list) : `${median(list).toFixed(2)}× (${times(list)})`;
      ratios.push(
        `${kind} @ ${concurrency} clients, rockraft / ${name}: throughput ${of(r.ops)}, p99 ${of(r.p99)}, server CPU per op ${of(r.cpu)}${repeat === 1 ? "" : `; medians of ${repeat}`}`,
      );
    }
  }
}
if (ratios.length > 0) console.log(`\nratios:\n${ratios.join("\n")}`);
if (values.shape) console.log(`\nlatency percentiles, ms:\n${shapes.join("\n")}`);
await etcd?.stop();
await floor?.stop();
await replicationFloor?.stop();
await stopAll();
