import { afterEach, expect, test } from "vitest";
import { RockraftClient, RockraftError, type RaftNode, type SessionTag } from "../src/index.js";
import { eventually, startCluster, type TestCluster } from "./helpers/cluster.js";

// Client sessions on a real three-node cluster (gRPC, LevelDB): their answers survive a
// restart and a snapshot install, they expire by the log's time alike on every node, and
// their limits refuse with clear errors.
let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);

/** The first compare-and-swap of a counter, tagged `tag`. */
const increment = (node: RaftNode, tag: SessionTag) =>
  node.raft().compareAndSwap({ key: "counter", expectFound: false, value: "1" }, { session: tag });

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as RockraftError,
  );

test(
  "a retry after a snapshot install and after a restart of every node answers as the first attempt did",
  { timeout: 120_000 },
  async () => {
    cluster = await startCluster(3, {
      extraRaft: "snapshot_logs_since_last = 20\nsnapshot_keep_logs = 5\n",
    });
    const leader = cluster.leader()!;
    const leaderId = leader.metrics().nodeId;
    const { sessionId } = await leader.raft().openSession();
    const tag = { id: sessionId, seq: 1, acknowledged: 1 };
    const first = await increment(leader, tag);
    expect(first).toMatchObject({ succeeded: true, found: false });

    // A follower misses the log past a snapshot: it catches up by installing one.
    const followerId = [1, 2, 3].find((id) => id !== leaderId)!;
    await cluster.stop(followerId);
    for (let i = 0; i < 60; i++) await leader.raft().clientWrite({ key: `k${i}`, value: "v" });
    await leader
      .raft()
      .wait({ timeoutMs: 10_000 })
      .metrics((m) => m.snapshotIndex >= 40, "a snapshot on the leader");
    const follower = await cluster.start(followerId);
    await follower
      .raft()
      .wait({ timeoutMs: 20_000 })
      .appliedIndex(leader.metrics().lastApplied!.index, "catching up by snapshot");
    expect(follower.metrics().snapshotIndex).toBeGreaterThan(first.logId.index);

    // The retry through the follower is answered by the follower's own apply, from the
    // session table the snapshot carried: the first attempt's answer, nothing applied again.
    const sameAnswer = {
      succeeded: true,
      found: false,
      logId: { index: first.logId.index, term: first.logId.term },
    };
    expect(await increment(follower, tag)).toMatchObject(sameAnswer);

    // Every node restarts; the table is read back from each store.
    for (const id of [1, 2, 3]) await cluster.stop(id);
    for (const id of [1, 2, 3]) await cluster.start(id);
    await cluster.node(1).raft().wait({ timeoutMs: 15_000 }).leader("after the restart");
    for (const id of [1, 2, 3])
      expect(await increment(cluster.node(id), tag)).toMatchObject(sameAnswer);
    expect(text(await cluster.node(1).raft().read("counter"))).toBe("1");
  },
);

test(
  "idle sessions expire by the log's time on every node; a write on one is refused, and the node's own session is replaced",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3, {
      extraRaft: "\n[sessions]\nidle_timeout_ms = 1000\nclock_interval_ms = 50\n",
    });
    const node = cluster.node(1);
    const { sessionId } = await node.raft().openSession();
    await node
      .raft()
      .clientWrite(
        { key: "a", value: "1" },
        { session: { id: sessionId, seq: 1, acknowledged: 1 } },
      );
    const open = () => [1, 2, 3].map((id) => cluster!.node(id).metrics().openSessions);
    await eventually(
      () => open().every((n) => n === 0),
      "the idle session to expire on every node",
      15_000,
    );

    const error = await refusal(
      node
        .raft()
        .clientWrite(
          { key: "a", value: "2" },
          { session: { id: sessionId, seq: 2, acknowledged: 2 } },
        ),
    );
    expect(error).toBeInstanceOf(RockraftError);
    expect(error).toMatchObject({ code: "RAFT_SESSION_EXPIRED", outcomeUnknown: false });
    expect(error!.message).toContain(`session ${sessionId} has expired`);
    expect(text(await node.raft().read("a"))).toBe("1");

    // The in-process API's own session: opened by the first write, replaced after expiry.
    await node.raft().clientWrite({ key: "b", value: "1" });
    // Open on the node that took the write (it resolves once applied there; the others
    // apply it a moment later, and may not have yet).
    expect(open()[0]).toBe(1);
    await eventually(() => open().every((n) => n === 0), "the node's session to expire", 15_000);
    await node.raft().clientWrite({ key: "b", value: "2" });
    expect(text(await node.raft().read("b"))).toBe("2");
  },
);

test(
  "limits: too many unacknowledged writes in a session, or too many sessions, are refused and change nothing; closing a session frees it",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3, {
      extraRaft: "\n[sessions]\nmax_sessions = 2\nmax_unacknowledged = 2\n",
    });
    const api = cluster.node(1).raft();
    const { sessionId: id } = await api.openSession();
    await api.clientWrite({ key: "k", value: "1" }, { session: { id, seq: 1, acknowledged: 1 } });
    await api.clientWrite({ key: "k", value: "2" }, { session: { id, seq: 2, acknowledged: 1 } });
    // Refused for the session's limit, and proposed again until the deadline.
    const tooMany = await refusal(
      api.clientWrite(
        { key: "k", value: "3" },
        // 2 s: every attempt has at least 400 ms (a quarter of attemptMs) to be refused, on
        // a loaded machine too; one cut short would report an unknown outcome instead.
        { session: { id, seq: 3, acknowledged: 1 }, timeoutMs: 2_000 },
      ),
    );
    expect(tooMany).toMatchObject({ code: "RAFT_SESSION_LIMIT", outcomeUnknown: false });
    expect(tooMany!.message).toContain("max_unacknowledged");
    expect(text(await api.read("k"))).toBe("2");
    // Acknowledging the first two frees their room.
    await api.clientWrite({ key: "k", value: "3" }, { session: { id, seq: 3, acknowledged: 3 } });
    // Below what was acknowledged: a late duplicate, refused.
    const stale = await refusal(
      api.clientWrite({ key: "k", value: "x" }, { session: { id, seq: 1, acknowledged: 1 } }),
    );
    expect(stale).toMatchObject({ code: "RAFT_SESSION_STALE", outcomeUnknown: false });

    await api.openSession();
    const third = await refusal(api.openSession());
    expect(third).toMatchObject({ code: "RAFT_SESSION_LIMIT" });
    expect(third!.message).toContain("max_sessions");
    expect(await api.closeSession(id)).toEqual({ found: true });
    expect(await api.closeSession(id)).toEqual({ found: false });
    await api.openSession();
    const closed = await refusal(
      api.clientWrite({ key: "k", value: "y" }, { session: { id, seq: 4, acknowledged: 4 } }),
    );
    expect(closed).toMatchObject({ code: "RAFT_SESSION_EXPIRED" });
    expect(text(await api.read("k"))).toBe("3");
    // Bad tags are refused before anything is proposed.
    const bad = await refusal(
      api.clientWrite({ key: "k", value: "z" }, { session: { id, seq: 0, acknowledged: 0 } }),
    );
    expect(bad).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
  },
);

test(
  "with [sessions] enabled = false a node opens no session: a RockraftClient writes without one",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3, { extraRaft: "\n[sessions]\nenabled = false\n" });
    const api = cluster.node(1).raft();
    expect(await refusal(api.openSession())).toMatchObject({ code: "RAFT_SESSIONS_DISABLED" });
    await api.clientWrite({ key: "a", value: "1" }); // in process: no session either
    const client = new RockraftClient({
      endpoints: [cluster.configs.get(1)!.node.advertiseAddr],
    });
    try {
      await client.put("b", "2");
      expect(text((await client.get("b")).value)).toBe("2");
    } finally {
      client.close();
    }
    expect(cluster.node(1).metrics().openSessions).toBe(0);
  },
);
