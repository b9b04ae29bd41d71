import { afterEach, expect, test } from "vitest";
import type { Message } from "@rockraft/raft-core";
import { eventually, runtimeOf, startCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

test(
  "a follower that restarts with a read pending at the leader: its new read covers every write acknowledged before it",
  { timeout: 60_000 },
  async () => {
    // CheckQuorum off: the leader keeps leading while it hears no heartbeat responses.
    cluster = await startCluster(3, { extraRaft: "check_quorum = false" });
    const leader = cluster.leader()!;
    const leaderId = leader.metrics().nodeId;
    const [reader, other] = [1, 2, 3].filter((id) => id !== leaderId);
    await cluster.stop(other!); // the leader's quorum is now itself and the reader

    // The leader hears no heartbeat responses: its ReadIndex rounds cannot complete, while
    // appends (and so writes) still commit. Nor does it hear votes: the restarted reader,
    // whose log is as long as its own, could otherwise win an election (no CheckQuorum, so
    // no lease refuses it) and serve its read itself.
    const runtime = runtimeOf(leader);
    const receive = runtime.receive.bind(runtime);
    let heartbeatsHeard = false;
    let readsArrived = 0;
    const votes = new Set<Message["type"]>(["MsgPreVote", "MsgVote"]);
    runtime.receive = (messages: Message[], from: number, fromAddr: string) => {
      readsArrived += messages.filter((m) => m.type === "MsgReadIndex").length;
      const heard = messages.filter(
        (m) => !votes.has(m.type) && (heartbeatsHeard || m.type !== "MsgHeartbeatResp"),
      );
      receive(heard, from, fromAddr);
    };

    const lost = runtimeOf(cluster.node(reader!))
      .readIndex(30_000)
      .catch(() => undefined);
    // (Unanswered, it is asked again every 500 ms: the count may go on.)
    await eventually(() => readsArrived >= 1, "the read to reach the leader");

    // The reader restarts (a new runtime, as a new process would be) and a write commits.
    await cluster.stop(reader!);
    await lost;
    const restarted = await cluster.start(reader!);
    await restarted.raft().wait({ timeoutMs: 10_000 }).leader("after the restart");
    const { logId } = await leader.raft().clientWrite({ key: "k", value: "acknowledged" });

    // The restarted reader reads; once its request is at the leader, heartbeats flow again.
    const before = readsArrived; // the old process's requests, which stopped with it
    const readPoint = runtimeOf(restarted).readIndex(10_000);
    await eventually(() => readsArrived > before, "the new read to reach the leader");
    heartbeatsHeard = true;
    expect(await readPoint).toBeGreaterThanOrEqual(logId.index);
  },
);
