import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, parseConfig } from "@rockraft/config";
import { afterEach, expect, test } from "vitest";
import { RaftNodeBuilder, RockraftError } from "../src/index.js";
import {
  freePorts,
  nodeConfigText,
  runtimeOf,
  startCluster,
  type TestCluster,
} from "./helpers/cluster.js";

// reloadConfig: live keys change at once, a key that is not live refuses the whole reload
// (naming it) and changes nothing; the generation moves on only when something changed.
let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

test("a reload changes the live keys, logs them, and refuses a key that needs a restart", async () => {
  cluster = await startCluster(1);
  const node = cluster.node(1);
  const running = cluster.configs.get(1)!;
  const port = Number(running.node.raftAddr.split(":")[1]);
  const config = (extra: string, raft = "", level = "silent") =>
    parseConfig(
      nodeConfigText(1, port, running.storage.dataPath, raft).replace(
        'level = "silent"',
        `level = "${level}"`,
      ) + extra,
      { source: "node1.toml" },
    );
  expect(node.metrics().configGeneration).toBe(1);

  const changes = await node.reloadConfig(
    config("\n[limits]\nmax_value_bytes = 4\n\n[sessions]\nmax_sessions = 7\n", "", "warn"),
  );
  expect(changes.map((c) => c.key)).toEqual([
    "limits.max_value_bytes",
    "sessions.max_sessions",
    "log.level",
  ]);
  expect(node.metrics().configGeneration).toBe(2);
  expect(runtimeOf(node).logger.level).toBe("warn");
  expect(node.config().limits.maxValueBytes).toBe(4);
  const tooBig = await node
    .raft()
    .clientWrite({ key: "k", value: "12345" })
    .catch((e: unknown) => e as RockraftError);
  expect(tooBig).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
  expect((tooBig as Error).message).toContain("limit of 4 (limits.max_value_bytes)");

  // The replication limits are live: from the next append sent.
  const replication = await node.reloadConfig(
    config(
      "\n[limits]\nmax_value_bytes = 4\n\n[sessions]\nmax_sessions = 7\n",
      "max_entries_per_append = 77\nmax_inflight_appends = 8\n",
      "warn",
    ),
  );
  expect(replication.map((c) => c.key)).toEqual([
    "raft.max_entries_per_append",
    "raft.max_inflight_appends",
  ]);
  expect(runtimeOf(node).raw.replicationLimits()).toMatchObject({
    maxEntriesPerMsg: 77,
    maxInflightMsgs: 8,
  });
  expect(node.metrics().configGeneration).toBe(3);

  // Not live: the whole reload is refused, naming the key; the limit above stays.
  const refused = await node
    .reloadConfig(config("\n[limits]\nmax_value_bytes = 100\n", "pre_vote = false\n"))
    .catch((e: unknown) => e as RockraftError);
  expect(refused).toBeInstanceOf(RockraftError);
  expect(refused).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
  expect((refused as Error).message).toMatch(
    /raft\.pre_vote \(true → false\) cannot change while the node runs: restart the node to change it; nothing was changed/,
  );
  expect(node.config().limits.maxValueBytes).toBe(4);
  expect(node.metrics().configGeneration).toBe(3);
  // Raising a limit past the message size the node started with needs a restart.
  const larger = await node
    .reloadConfig(config("\n[limits]\nmax_value_bytes = 8388608\n"))
    .catch((e: unknown) => e as RockraftError);
  expect(larger).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
  expect((larger as Error).message).toMatch(
    /need gRPC messages of \d+ bytes, more than the \d+ this node started with: restart the node to raise them; nothing was changed/,
  );
  expect(node.config().limits.maxValueBytes).toBe(4);
  // The same config again: nothing changes, the generation stays.
  expect(await node.reloadConfig(node.config())).toEqual([]);
  expect(node.metrics().configGeneration).toBe(3);
});

test("the snapshot policy changes live: a node that never snapshotted starts to", async () => {
  cluster = await startCluster(1);
  const node = cluster.node(1);
  const running = cluster.configs.get(1)!;
  const port = Number(running.node.raftAddr.split(":")[1]);
  for (let i = 0; i < 20; i++) await node.raft().clientWrite({ key: `k${i}`, value: "v" });
  const before = node.metrics().snapshotIndex;
  const text = nodeConfigText(1, port, running.storage.dataPath, "snapshot_logs_since_last = 5\n");
  const changes = await node.reloadConfig(parseConfig(text, { source: "node1.toml" }));
  expect(changes.map((c) => c.key)).toEqual(["raft.snapshot_logs_since_last"]);
  for (let i = 0; i < 10; i++) await node.raft().clientWrite({ key: `j${i}`, value: "v" });
  await node
    .raft()
    .wait({ timeoutMs: 10_000 })
    .metrics((m) => m.snapshotIndex > before, "a snapshot by the new policy");
});

test("config set: a live key set in place of the file's holds through reloads until unset; a key that is not live, or a bad value, changes nothing", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rockraft-config-set-"));
  const [port] = await freePorts(1);
  const file = join(dir, "node1.toml");
  await writeFile(file, nodeConfigText(1, port!, join(dir, "data")));
  const node = await RaftNodeBuilder.build(await loadConfig(file));
  try {
    const changes = await node.setConfig("limits.max_value_bytes", 4);
    expect(changes).toEqual([{ key: "limits.max_value_bytes", old: 1024 * 1024, new: 4 }]);
    expect(node.config().limits.maxValueBytes).toBe(4);
    expect(node.metrics().configGeneration).toBe(2);
    // A reload of the file (SIGHUP) keeps what was set.
    expect(await node.reloadConfigFile()).toEqual([]);
    expect(node.config().limits.maxValueBytes).toBe(4);
    expect(node.configSet()).toEqual(new Map([["limits.max_value_bytes", 4]]));

    const notLive = await node.setConfig("raft.pre_vote", false).catch((e: unknown) => e);
    expect(notLive).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
    expect((notLive as Error).message).toContain(
      "config set raft.pre_vote: not a key that can be set while the node runs",
    );
    const bad = await node.setConfig("limits.max_value_bytes", -1).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
    expect((bad as Error).message).toContain(
      "config set limits.max_value_bytes = -1: " +
        `${file}: limits.max_value_bytes: expected a size in bytes from 0 to 64 MiB, got -1`,
    );
    expect(node.config().limits.maxValueBytes).toBe(4);
    expect(node.metrics().configGeneration).toBe(2);

    // Sets made at once run one after the other: both hold.
    await Promise.all([
      node.setConfig("sessions.max_sessions", 9),
      node.setConfig("auth.token_ttl_ms", 60_000),
    ]);
    expect(node.configSet()).toEqual(
      new Map<string, unknown>([
        ["limits.max_value_bytes", 4],
        ["sessions.max_sessions", 9],
        ["auth.token_ttl_ms", 60_000],
      ]),
    );
    expect(node.config().sessions.maxSessions).toBe(9);
    const table = await node.setConfig("metrics", { addr: "127.0.0.1:1" }).catch((e: unknown) => e);
    expect(table).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
    await node.setConfig("sessions.max_sessions", undefined);
    await node.setConfig("auth.token_ttl_ms", undefined);

    // Unset: back to the file's value.
    await node.setConfig("limits.max_value_bytes", undefined);
    expect(node.config().limits.maxValueBytes).toBe(1024 * 1024);
    expect(node.configSet().size).toBe(0);
  } finally {
    await node.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
});

test("the metrics endpoint moves with a reload: the new address serves before the old one closes; a port in use changes nothing", async () => {
  const [first, second, taken] = await freePorts(3);
  const metrics = (port: number) => `\n[metrics]\naddr = "127.0.0.1:${port}"\n`;
  cluster = await startCluster(1, { extraRaft: metrics(first!) });
  const node = cluster.node(1);
  const running = cluster.configs.get(1)!;
  const port = Number(running.node.raftAddr.split(":")[1]);
  const config = (extra: string) =>
    parseConfig(nodeConfigText(1, port, running.storage.dataPath, extra), {
      source: "node1.toml",
    });
  const scrape = (at: number) =>
    fetch(`http://127.0.0.1:${at}/metrics`).then(
      async (response) => (await response.text()).includes("rockraft_config_generation"),
      () => false,
    );
  expect(node.metricsPort).toBe(first);
  expect(await scrape(first!)).toBe(true);

  const moved = await node.reloadConfig(config(metrics(second!)));
  expect(moved.map((c) => c.key)).toEqual(["metrics.addr"]);
  expect(node.metricsPort).toBe(second);
  expect(await scrape(second!)).toBe(true);
  expect(await scrape(first!)).toBe(false);

  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(taken, "127.0.0.1", () => resolve()));
  try {
    const refused = await node.reloadConfig(config(metrics(taken!))).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
    expect((refused as Error).message).toContain(`127.0.0.1:${taken} is already in use`);
    expect(node.metricsPort).toBe(second);
    expect(await scrape(second!)).toBe(true);
  } finally {
    blocker.close();
  }

  // Only the path moves: the same server serves it there from now on.
  const pathMoved = await node.reloadConfig(config(`${metrics(second!)}path = "/m2"\n`));
  expect(pathMoved.map((c) => c.key)).toEqual(["metrics.path"]);
  const served = await fetch(`http://127.0.0.1:${second}/m2`);
  expect(served.status).toBe(200);
  expect((await fetch(`http://127.0.0.1:${second}/metrics`)).status).toBe(404);

  const removed = await node.reloadConfig(config(""));
  expect(removed.map((c) => c.key)).toEqual(["metrics"]);
  expect(node.metricsPort).toBeUndefined();
  expect(await scrape(second!)).toBe(false);
});

test("Raft timing changes with a reload under ReadIndex reads, from the next tick; in the lease read mode it is refused", async () => {
  const retimed = (text: string) =>
    text
      .replace("heartbeat_interval_ms = 50", "heartbeat_interval_ms = 60")
      .replace("election_timeout_min_ms = 400", "election_timeout_min_ms = 500")
      .replace("election_timeout_max_ms = 800", "election_timeout_max_ms = 900");
  for (const mode of ["read_index", "lease"] as const) {
    const extra = `read_mode = "${mode}"\n`;
    cluster = await startCluster(1, { extraRaft: extra });
    const node = cluster.node(1);
    const running = cluster.configs.get(1)!;
    const port = Number(running.node.raftAddr.split(":")[1]);
    const text = retimed(nodeConfigText(1, port, running.storage.dataPath, extra));
    const next = parseConfig(text, { source: "node1.toml" });
    if (mode === "read_index") {
      const changes = await node.reloadConfig(next);
      expect(changes.map((c) => c.key)).toEqual([
        "raft.heartbeat_interval_ms",
        "raft.election_timeout_min_ms",
        "raft.election_timeout_max_ms",
        "raft.lease_clock_drift_ms", // its default follows the election timeout
      ]);
      // 10 ms ticks: 6 per heartbeat, 50 to 90 per election timeout.
      expect(runtimeOf(node).raw.timing()).toEqual({
        heartbeatTick: 6,
        electionTick: 50,
        electionTickMax: 90,
      });
      await node.raft().clientWrite({ key: "after", value: "retimed" });
    } else {
      const refused = await node.reloadConfig(next).catch((e: unknown) => e as RockraftError);
      expect(refused).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
      expect((refused as Error).message).toContain(
        'cannot change while the node runs with raft.read_mode = "lease"',
      );
      expect(runtimeOf(node).raw.timing().heartbeatTick).toBe(5);
      expect(node.metrics().configGeneration).toBe(1);
    }
    await cluster.close();
    cluster = undefined;
  }
});
