import { afterEach, describe, expect, test } from "vitest";
import { RockraftClient, RockraftClientError } from "@rockraft/transport-grpc";
import { RockraftError } from "../src/index.js";
import { eventually, startCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);

describe("a three-node cluster on real gRPC and LevelDB", () => {
  test("writes on any node, linearizable reads on every node", { timeout: 60_000 }, async () => {
    cluster = await startCluster(3);
    for (const id of [1, 2, 3]) {
      const { logId } = await cluster
        .node(id)
        .raft()
        .clientWrite({ key: `k${id}`, value: `v${id}` });
      expect(logId.index).toBeGreaterThan(1);
      for (const reader of [1, 2, 3]) {
        expect(text(await cluster.node(reader).raft().read(`k${id}`))).toBe(`v${id}`);
      }
    }
  });

  test("delete and compare-and-swap through a follower", { timeout: 60_000 }, async () => {
    cluster = await startCluster(3);
    const follower = [1, 2, 3]
      .map((id) => cluster!.node(id))
      .find((n) => n.metrics().state !== "leader")!;
    const api = follower.raft();
    await api.clientWrite({ key: "k", value: "a" });
    expect(
      await api.compareAndSwap({ key: "k", expectFound: true, expected: "a", value: "b" }),
    ).toMatchObject({ succeeded: true, found: true });
    const refused = await api.compareAndSwap({
      key: "k",
      expectFound: true,
      expected: "a",
      value: "c",
    });
    expect([refused.succeeded, text(refused.current)]).toEqual([false, "b"]);
    expect((await api.delete("k")).found).toBe(true);
    expect(await api.read("k")).toBeUndefined();
  });

  test("the gRPC client API works against any node", { timeout: 60_000 }, async () => {
    cluster = await startCluster(3);
    const endpoints = [...cluster.configs.values()].map((c) => c.node.advertiseAddr);
    const client = new RockraftClient({ endpoints: [endpoints[2]!] });
    try {
      await client.put("my_key", "my_value");
      expect(text((await client.get("my_key")).value)).toBe("my_value");
      const metrics = await client.metrics();
      expect(metrics.voters.map((v) => v.nodeId)).toEqual([1, 2, 3]);
      const bad = await client
        .put("", "x")
        .catch((e: unknown) => e as { code: string; message: string });
      expect(bad).toMatchObject({ code: "INVALID_ARGUMENT" });
    } finally {
      client.close();
    }
  });

  test("bad input is refused with RAFT_INVALID_ARGUMENT", { timeout: 60_000 }, async () => {
    cluster = await startCluster(1);
    const api = cluster.node(1).raft();
    await expect(api.clientWrite({ key: "", value: "x" })).rejects.toThrow(
      new RockraftError("RAFT_INVALID_ARGUMENT", "key: expected a non-empty key"),
    );
    await expect(api.clientWrite({ key: "k".repeat(5000), value: "x" })).rejects.toThrow(
      "key: 5000 bytes is over the limit of 4096 (limits.max_key_bytes)",
    );
  });

  test(
    "initialize on an initialized node changes nothing and says so",
    { timeout: 60_000 },
    async () => {
      cluster = await startCluster(1);
      const again = await cluster
        .node(1)
        .raft()
        .initialize([{ nodeId: 1, addr: cluster.configs.get(1)!.node.advertiseAddr }]);
      expect(again).toEqual({ initialized: false });
    },
  );

  test(
    "a write proposed but not committed in time fails RAFT_TIMEOUT with its outcome unknown, and may still be applied",
    { timeout: 60_000 },
    async () => {
      // Without check_quorum the leader stays leader when both followers are gone.
      cluster = await startCluster(3, { extraRaft: "check_quorum = false\n" });
      const leader = cluster.leader()!;
      const leaderId = leader.metrics().nodeId;
      const followers = [1, 2, 3].filter((id) => id !== leaderId);
      const client = new RockraftClient({
        endpoints: [cluster.configs.get(leaderId)!.node.advertiseAddr],
        // The node is given 100 ms less and answers 500 ms before that (services.ts), so its
        // answer comes first, even after a stall of a loaded machine.
        timeoutMs: 6_000,
      });
      try {
        // Both sessions open while a quorum is up: the node's own, and the client's.
        await leader.raft().clientWrite({ key: "warm", value: "1" });
        await client.put("warm", "2");
        for (const id of followers) await cluster.stop(id);

        // In a session, the write was proposed again until the deadline; without one, once.
        for (const [key, session] of [
          ["k1", undefined],
          ["k1b", false],
        ] as const) {
          const inProcess = await leader
            .raft()
            .clientWrite({ key, value: "v1" }, { timeoutMs: 300, session })
            .catch((e: unknown) => e as RockraftError);
          expect(inProcess).toBeInstanceOf(RockraftError);
          expect(inProcess).toMatchObject({ code: "RAFT_TIMEOUT", outcomeUnknown: true });
        }

        const overGrpc = await client
          .put("k2", "v2")
          .catch((e: unknown) => e as RockraftClientError);
        expect(overGrpc).toBeInstanceOf(RockraftClientError);
        expect(overGrpc).toMatchObject({
          code: "DEADLINE_EXCEEDED",
          serverCode: "RAFT_TIMEOUT",
          outcomeUnknown: true,
        });
      } finally {
        client.close();
      }

      // One follower comes back: every entry commits after all. Only one: two followers
      // whose logs both lack the entries could elect one of them, which would rightly
      // overwrite the uncommitted entries. With one, only the old leader can win.
      await cluster.start(followers[0]!);
      await eventually(
        async () =>
          text(await leader.raft().read("k1")) === "v1" &&
          text(await leader.raft().read("k1b")) === "v1" &&
          text(await leader.raft().read("k2")) === "v2",
        "the timed-out writes to be applied",
        20_000,
      );
    },
  );

  test("leader crash and re-election; the data survives", { timeout: 60_000 }, async () => {
    cluster = await startCluster(3);
    await cluster.node(1).raft().clientWrite({ key: "before", value: "1" });
    const leader = cluster.leader()!;
    const leaderId = leader.metrics().nodeId;
    await cluster.stop(leaderId);
    const survivor = [...cluster.nodes.values()][0]!;
    await survivor
      .raft()
      .wait({ timeoutMs: 15_000 })
      .metrics(
        (m) => m.currentLeader !== undefined && m.currentLeader !== leaderId,
        "a new leader",
      );
    await survivor.raft().clientWrite({ key: "after", value: "2" });
    await cluster.start(leaderId);
    const restarted = cluster.node(leaderId);
    await eventually(
      async () => text(await restarted.raft().read("after")) === "2",
      "the restarted node to catch up",
      20_000,
    );
    expect(text(await restarted.raft().read("before"))).toBe("1");
  });
});
