// The node processes of `pnpm chaos`: started, killed, restarted, paused and resumed on
// demand, each with its output in `node<id>.log` in the run directory. ProcessCluster does
// the processes; RockraftCluster starts the example's nodes as a user does (its start
// command and generated config files); EtcdCluster (etcd.mjs) starts etcd members.
import { spawn } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { exampleCommand, waitFor } from "@rockraft/test-utils";
import { RockraftClient } from "@rockraft/transport-grpc";
import { hostPort } from "./links.mjs";

const APP = join(import.meta.dirname, "../../apps/basic-example");
const live = new Set();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

function lastError(output) {
  const lines = output.trimEnd().split("\n");
  return lines.findLast((line) => /^error:/i.test(line)) ?? lines.at(-1) ?? "";
}

export class ProcessCluster {
  /**
   * `dir`: the run directory; `plan`: each node's listen and dial addresses (links.mjs);
   * `network`: a NodeNetwork when each node runs in a namespace of its own; `disks`: where
   * each node's data lives (disks.mjs).
   */
  constructor({ dir, plan, network, disks, say = () => {} }) {
    this.dir = dir;
    this.say = say;
    /** Exits nobody caused: { id, status, error } each (a node must not stop by itself). */
    this.crashes = [];
    this.plan = plan;
    this.network = network;
    this.disks = disks;
    this.count = plan.length;
    /** Where clients dial each node. */
    this.endpoints = plan.map(({ dial }) => hostPort(dial[0]));
    /** Per node id: { child, output, paused }. */
    this.nodes = new Map();
  }

  log(id) {
    return join(this.dir, `node${id}.log`);
  }

  spawn(id) {
    const { argv, cwd, env } = this.command(id);
    // In a namespace, `ip netns exec` execs the program itself: signals reach it.
    const [file, args] =
      this.network === undefined ? [argv[0], argv.slice(1)] : this.network.wrap(id, argv);
    const child = spawn(file, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    // `expected`: the harness stops it (kill, stop) or lets it stop (a full disk).
    const node = { child, output: "", paused: false, expected: false };
    // "close": after the exit and the last of its output.
    const exited = new Promise((resolve) => child.once("close", resolve));
    node.exited = exited.then(() => {
      live.delete(child);
      if (node.expected) return;
      const status = child.signalCode ?? `exit status ${child.exitCode}`;
      const crash = { id, status, error: lastError(node.output) };
      this.crashes.push(crash);
      this.say(`node ${id} exited by itself (${status}): ${crash.error}`);
    });
    const log = createWriteStream(this.log(id), { flags: "a" });
    for (const stream of [child.stdout, child.stderr]) {
      stream.on("data", (chunk) => {
        node.output += chunk;
        log.write(chunk);
      });
    }
    void exited.then(() => log.end());
    this.nodes.set(id, node);
  }

  running(id) {
    const { child } = this.nodes.get(id);
    return child.exitCode === null && child.signalCode === null;
  }

  /** Waits until every node says it serves (after its latest start). */
  async waitRunning(timeoutMs = 60_000) {
    await waitFor(
      () => [...this.nodes.values()].every((node) => this.readyPattern.test(node.output)),
      "every node to say it serves clients",
      timeoutMs,
      50,
    );
  }

  async start() {
    await this.writeConfigs();
    for (let id = 1; id <= this.count; id++) this.spawn(id);
    await this.waitRunning();
  }

  async kill(id) {
    if (!this.running(id)) return;
    this.nodes.get(id).expected = true;
    this.nodes.get(id).child.kill("SIGKILL");
    await this.nodes.get(id).exited;
  }

  /** Whether node `id` may stop by itself (while its disk is full). */
  expectExit(id, expected = true) {
    this.nodes.get(id).expected = expected;
  }

  restart(id) {
    if (!this.running(id)) this.spawn(id);
  }

  pause(id) {
    const node = this.nodes.get(id);
    node.paused = true;
    node.child.kill("SIGSTOP");
  }

  resume(id) {
    const node = this.nodes.get(id);
    node.paused = false;
    node.child.kill("SIGCONT");
  }

  /** Resolves with true when node `id` exits within `timeoutMs`, else false. */
  async exitsWithin(id, timeoutMs) {
    if (!this.running(id)) return true;
    let timer;
    const timeout = new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs, false)));
    const exited = this.nodes.get(id).exited.then(() => true);
    const result = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    return result;
  }

  /** Why node `id` stopped: its last line starting with `error:`, else its last line. */
  lastError(id) {
    return lastError(this.nodes.get(id).output);
  }

  /** Every node resumed and running again. */
  async healAll() {
    for (const [id, node] of this.nodes) {
      if (node.paused) this.resume(id);
      if (!this.running(id)) this.spawn(id);
    }
    await this.waitRunning();
  }

  /** How many terms had a leader, from the nodes' logs. */
  leaderTerms() {
    const terms = new Set();
    for (let id = 1; id <= this.count; id++) {
      let text = "";
      try {
        text = readFileSync(this.log(id), "utf8");
      } catch {
        continue;
      }
      for (const term of this.electedTerms(text)) terms.add(term);
    }
    return terms.size;
  }

  /** Waits until every node knows a leader (`probe` asks each node, as its system does). */
  async waitForLeader(timeoutMs = 30_000) {
    const probes = this.endpoints.map((endpoint) => this.probe(endpoint, 1_000));
    try {
      await waitFor(
        async () => {
          const status = await Promise.all(probes.map((p) => p.status().catch(() => undefined)));
          return status.every((s) => s?.leader === true) || undefined;
        },
        "every node to know a leader",
        timeoutMs,
        100,
      );
    } finally {
      for (const probe of probes) probe.close();
    }
  }

  /** Each node's current term. */
  async terms() {
    const terms = [];
    for (const endpoint of this.endpoints) {
      const probe = this.probe(endpoint, 5_000);
      try {
        terms.push((await probe.status()).term);
      } finally {
        probe.close();
      }
    }
    return terms;
  }

  /** SIGINT to every node, as a user stops them; SIGKILL to one still running 10 s later. */
  async stop() {
    await Promise.all(
      [...this.nodes.keys()].map(async (id) => {
        if (!this.running(id)) return;
        const node = this.nodes.get(id);
        node.expected = true;
        if (node.paused) this.resume(id);
        node.child.kill("SIGINT");
        if (await this.exitsWithin(id, 10_000)) return;
        this.say(`node ${id} still running 10 s after SIGINT: SIGKILL`);
        node.child.kill("SIGKILL");
        await node.exited;
      }),
    );
  }
}

export class RockraftCluster extends ProcessCluster {
  /** `readMode`: the config's `read_mode`; `unsafe`: a test-only switch for the nodes. */
  constructor({ readMode, unsafe, ...rest }) {
    super(rest);
    this.readMode = readMode;
    this.unsafe = unsafe;
    this.readyPattern = /is running/;
  }

  conf(id) {
    return join(this.dir, `node${id}.toml`);
  }

  async writeConfigs() {
    const members = this.plan
      .map(
        ({ dial }, i) => `[[cluster.members]]\nnode_id = ${i + 1}\naddr = "${hostPort(dial[0])}"\n`,
      )
      .join("\n");
    for (const [i, { listen, dial }] of this.plan.entries()) {
      const id = i + 1;
      // Human-readable logs, their times (UTC) in the harness's format.
      await writeFile(
        this.conf(id),
        `[node]\nnode_id = ${id}\nraft_addr = "${hostPort(listen[0])}"\nadvertise_addr = "${hostPort(dial[0])}"\n\n` +
          `[rocksdb]\ndata_path = "${join(this.disks.path(id), "data")}"\n\n` +
          `[raft]\nread_mode = "${this.readMode}"\n\n[log]\nlevel = "info"\npretty = true\n\n[cluster]\n${members}`,
      );
    }
  }

  command(id) {
    return {
      argv: [process.execPath, ...exampleCommand(), "--conf", this.conf(id)],
      cwd: APP,
      env:
        this.unsafe === undefined
          ? process.env
          : { ...process.env, ROCKRAFT_TESTING_UNSAFE: this.unsafe },
    };
  }

  electedTerms(log) {
    // pino-pretty: "[time] INFO: leader is node 2" and then the fields, "    term: 5".
    const terms = [];
    for (const match of log.matchAll(/: leader is node \d+\n(?: {4}.*\n)*? {4}term: (\d+)/g))
      terms.push(Number(match[1]));
    return terms;
  }

  /** A probe of the node at `endpoint`: its status is `{ leader, term }` (`leader`: known). */
  probe(endpoint, timeoutMs) {
    const client = new RockraftClient({ endpoints: [endpoint], timeoutMs });
    return {
      status: async () => {
        const m = await client.metrics();
        return { leader: m.currentLeader > 0, term: m.currentTerm };
      },
      close: () => client.close(),
    };
  }
}
