import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, test } from "vitest";
import { RockraftServer, RpcError } from "@rockraft/transport-grpc";
import { main } from "../src/cli.js";
import { startCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster;
let endpoints: string;
beforeAll(async () => {
  cluster = await startCluster(3);
  endpoints = [...cluster.configs.values()].map((c) => c.node.advertiseAddr).join(",");
}, 60_000);
afterAll(() => cluster.close());

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    [...args, "--endpoints", endpoints],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join("\n"), err: err.join("\n") };
}

test("kv put, get, cas and del, with exit codes", async () => {
  expect(await run("kv", "put", "city", "Lyon")).toMatchObject({
    code: 0,
    out: expect.stringMatching(/^OK \(index \d+, term \d+\)$/),
  });
  expect(await run("kv", "get", "city")).toEqual({ code: 0, out: "Lyon", err: "" });
  expect(await run("kv", "cas", "city", "Paris", "Nice")).toEqual({
    code: 4,
    out: 'not swapped: the key is "Lyon"',
    err: "",
  });
  expect(await run("kv", "cas", "city", "Lyon", "Nice")).toEqual({
    code: 0,
    out: "swapped",
    err: "",
  });
  expect(await run("kv", "cas", "--absent", "town", "Arles")).toEqual({
    code: 0,
    out: "swapped",
    err: "",
  });
  expect(await run("kv", "del", "city")).toEqual({ code: 0, out: "deleted", err: "" });
  expect(await run("kv", "get", "city")).toEqual({ code: 3, out: "(not found)", err: "" });
  expect(JSON.parse((await run("kv", "get", "town", "--json")).out)).toEqual({
    found: true,
    value: "Arles",
  });
});

test("cluster status and members", async () => {
  const status = await run("cluster", "status");
  expect(status.code).toBe(0);
  expect(status.out.split("\n")).toHaveLength(3);
  expect(status.out).toMatch(/node 1 {2}(leader|follower) +term \d+ {2}leader \d/);
  const members = JSON.parse((await run("cluster", "members", "--json")).out) as {
    voters: { nodeId: number }[];
  };
  expect(members.voters.map((v) => v.nodeId)).toEqual([1, 2, 3]);
});

test("config get shows each node's running config; config reload of a file that is not there changes nothing", async () => {
  const got = JSON.parse((await run("config", "get", "--json")).out) as {
    endpoint: string;
    generation: number;
    source: string;
    config: { node: { nodeId: number }; limits: { maxValueBytes: number } };
  }[];
  expect(got.map((r) => [r.config.node.nodeId, r.generation, r.source])).toEqual(
    [1, 2, 3].map((id) => [id, 1, `${process.cwd()}/node${id}.toml`]),
  );
  expect(got[0]!.config.limits.maxValueBytes).toBe(1024 * 1024);
  // These nodes' configs were parsed from text, not read from a file.
  const reload = await run("config", "reload");
  expect(reload.code).toBe(1);
  expect(reload.err).toMatch(
    /^rockraft: .*node1\.toml.* \[INVALID_ARGUMENT RAFT_INVALID_ARGUMENT\]$/,
  );
  expect(cluster.node(1).metrics().configGeneration).toBe(1);
  // config set reads the file as well, with the key in place of its value.
  const set = await run("config", "set", "limits.max_value_bytes", "4");
  expect(set.code).toBe(1);
  expect(set.err).toMatch(
    /^rockraft: .*config set limits\.max_value_bytes = 4: .*node1\.toml: file not found \[INVALID_ARGUMENT RAFT_INVALID_ARGUMENT\]$/,
  );
  const notLive = await run("config", "set", "raft.pre_vote", "false");
  expect(notLive.err).toContain("config set raft.pre_vote: not a key that can be set");
  expect(await run("config", "set", "log.level")).toMatchObject({
    code: 2,
    err: "rockraft: config set expects <key> <value>",
  });
  expect(cluster.node(1).metrics().configGeneration).toBe(1);
});

test("bad usage exits 2 with a message; an unreachable cluster exits 1", async () => {
  expect(await run("kv", "put", "only-a-key")).toMatchObject({
    code: 2,
    err: "rockraft: kv put expects <key> <value>",
  });
  expect(await run("cluster", "promote", "x")).toMatchObject({
    code: 2,
    err: 'rockraft: expected a node id (a positive integer), got "x"',
  });
  expect(await run("dance", "now")).toMatchObject({
    code: 2,
    err: expect.stringMatching(/^rockraft: unknown command "dance now"/),
  });
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ["kv", "get", "k", "--endpoints", "127.0.0.1:1", "--timeout", "300"],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  expect(code).toBe(1);
  // Refused at once (UNAVAILABLE after retries) or still connecting at the deadline.
  expect(err.join("\n")).toMatch(
    /^rockraft: .*127\.0\.0\.1:1.* \[(UNAVAILABLE|DEADLINE_EXCEEDED)\]$/,
  );
});

test("the installed bin runs as a command", async () => {
  const bin = join(import.meta.dirname, "../bin/rockraft.js");
  const { stdout } = await promisify(execFile)(process.execPath, [
    bin,
    "kv",
    "get",
    "town",
    "--endpoints",
    endpoints,
  ]);
  expect(stdout).toBe("Arles\n");
});

const never = () => new Promise<never>(() => {});

/** A node whose KV put is `put` and whose other calls never answer. */
function stubNode(put: () => Promise<never>): Promise<RockraftServer> {
  return RockraftServer.start({
    nodeId: 9,
    clusterId: "cli-test",
    address: "127.0.0.1:0",
    kv: {
      put,
      get: never,
      delete: never,
      compareAndSwap: never,
      openSession: () => Promise.resolve({ sessionId: 1 }),
      closeSession: () => Promise.resolve({ found: true }),
    },
    cluster: {
      initialize: never,
      metrics: never,
      addLearner: never,
      changeMembership: never,
      transferLeader: never,
      triggerSnapshot: never,
      getConfig: never,
      reloadConfig: never,
      setConfig: never,
    },
    peer: {
      receive: () => undefined,
      beginSnapshot: never,
    },
  });
}

async function putAt(server: RockraftServer): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const code = await main(
    ["kv", "put", "k", "v", "--endpoints", `127.0.0.1:${server.port}`, "--timeout", "5000"],
    () => undefined,
    (l) => err.push(l),
  );
  return { code, err: err.join("\n") };
}

test("a write whose node vanished after taking it says its outcome is unknown", async () => {
  const server: RockraftServer = await stubNode(() => {
    // The node takes the write, then dies before answering.
    setTimeout(() => void server.shutdown(0), 50);
    return never();
  });
  const { code, err } = await putAt(server);
  expect(code).toBe(1);
  expect(err).toMatch(
    /the call stream broke.*\[UNAVAILABLE\] \(the request may have reached the node but no answer came back: it may or may not have been applied\)$/,
  );
});

test("a write the node proposed but could not confirm says its outcome is unknown", async () => {
  const server = await stubNode(() =>
    Promise.reject(
      new RpcError("DEADLINE_EXCEEDED", "the write was not applied within the deadline", {
        code: "RAFT_TIMEOUT",
        outcomeUnknown: true,
      }),
    ),
  );
  try {
    const { code, err } = await putAt(server);
    expect(code).toBe(1);
    expect(err).toMatch(
      /the write was not applied within the deadline \[DEADLINE_EXCEEDED RAFT_TIMEOUT\] \(the node had proposed it but could not confirm it: it may or may not have been applied\)$/,
    );
  } finally {
    await server.shutdown(0);
  }
});
