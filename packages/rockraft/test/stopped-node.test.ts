import { afterEach, expect, test } from "vitest";
import { pino } from "pino";
import type { Message } from "@rockraft/raft-core";
import { PeerTransport, RockraftClient } from "@rockraft/transport-grpc";
import type { RaftNode } from "../src/index.js";
import { eventually, startCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster | undefined;
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await cluster?.close();
  cluster = undefined;
});

/**
 * Sends raw Raft messages to `address` over the real peer protocol, as a peer with id `from`
 * would (the way a damaged or misbehaving peer reaches a node), until `done` settles: the
 * transport drops what it cannot send before its stream is connected.
 */
async function sendAsPeer<T>(
  from: number,
  to: number,
  address: string,
  messages: Message[],
  done: Promise<T>,
): Promise<T> {
  const transport = new PeerTransport({
    nodeId: from,
    clusterId: "rockraft",
    onUnreachable: () => {},
    onSnapshotStatus: () => {},
    snapshotSource: () => Promise.reject(new Error("no snapshots here")),
    logger: pino({ level: "silent" }),
  });
  closers.push(() => transport.close());
  transport.setPeers([[to, address]]);
  const resend = setInterval(() => transport.send(messages), 50);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("the messages had no effect within 10 s")),
          10_000,
        );
      }),
    ]);
  } finally {
    clearInterval(resend);
    clearTimeout(timer);
  }
}

/**
 * A heartbeat of a newer term telling `node` to commit far past its log: raft-core finds
 * its invariant broken (what a node whose acknowledged entries were lost on disk meets).
 */
function breakInvariant(node: RaftNode, id: number, address: string) {
  const metrics = node.metrics();
  return sendAsPeer(
    9,
    id,
    address,
    [
      {
        type: "MsgHeartbeat",
        from: 9,
        to: id,
        term: metrics.currentTerm + 5,
        commit: metrics.lastLogIndex + 10,
        context: "",
      },
    ],
    node.failed,
  );
}

test(
  "a node stopped by a failure looks stopped: failed, metrics(), the Cluster Metrics reply, the role gauge",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3);
    const leaderId = cluster.leader()!.metrics().nodeId;
    const id = [1, 2, 3].find((n) => n !== leaderId)!;
    const node = cluster.node(id);
    const address = cluster.configs.get(id)!.node.advertiseAddr;
    const error = await breakInvariant(node, id, address);
    expect(error.code).toBe("RAFT_NODE_STOPPED");
    expect(error.message).toMatch(
      new RegExp(
        `^node ${id} stopped after a failure: commit index \\d+ from leader 9 is beyond this node.s last log index \\d+: its log lost entries it had acknowledged`,
      ),
    );
    const metrics = node.metrics();
    expect([metrics.state, metrics.stopped, metrics.currentLeader]).toEqual([
      "stopped",
      true,
      undefined,
    ]);

    const client = new RockraftClient({ endpoints: [address], timeoutMs: 5_000 });
    closers.push(() => client.close());
    const reply = await client.metrics({ endpoint: address });
    expect([reply.nodeId, reply.state, reply.currentLeader]).toEqual([id, "stopped", 0]);

    // What the Prometheus endpoint serves (the exporter's text; the endpoint is its server).
    const exporter = (node as unknown as { exporter: { scrape(): Promise<string> } }).exporter;
    const scrape = await exporter.scrape();
    expect(scrape).toMatch(/rockraft_role\{[^}]*role="stopped"[^}]*\} 1/);
    for (const role of ["follower", "leader"])
      expect(scrape).toMatch(new RegExp(`rockraft_role\\{[^}]*role="${role}"[^}]*\\} 0`));

    // The others go on without it.
    const survivor = cluster.node(leaderId);
    await eventually(
      async () => (await survivor.raft().clientWrite({ key: "k", value: "v" })).logId,
      "a write on the survivors",
    );
  },
);
