import { Server, ServerCredentials, credentials, type ServerReadableStream } from "@grpc/grpc-js";
import { afterEach, describe, expect, test } from "vitest";
import type { Entry, Message } from "@rockraft/raft-core";
import { PeerTransport, type RockraftServer, type SnapshotSource } from "../src/index.js";
import {
  RaftServiceClient,
  RaftServiceService,
  type SendRequest,
} from "../src/gen/rockraft/v1/raft.js";
import { freePorts } from "@rockraft/test-utils";
import { recordingLogger, startServer, waitFor } from "./helpers/servers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function transport(overrides: Partial<ConstructorParameters<typeof PeerTransport>[0]> = {}) {
  const unreachable: number[] = [];
  const dropped: Message[] = [];
  const snapshotStatus: [number, boolean][] = [];
  const peers = new PeerTransport({
    nodeId: 1,
    clusterId: "test",
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    onUnreachable: (peer) => unreachable.push(peer),
    onDropped: (_peer, messages) => dropped.push(...messages),
    onSnapshotStatus: (peer, ok) => snapshotStatus.push([peer, ok]),
    snapshotSource: () => Promise.reject(new Error("no snapshot")),
    ...overrides,
  });
  cleanups.push(() => peers.close());
  return { peers, unreachable, dropped, snapshotStatus };
}

async function server(overrides: Parameters<typeof startServer>[0] = {}) {
  const started = await startServer(overrides);
  cleanups.push(() => started.server.shutdown(100));
  return started;
}

const entry = (index: number, size = 3): Entry => ({
  index,
  term: 2,
  type: "normal",
  data: new Uint8Array(size).fill(index % 256),
});

const app = (to: number, index: number, entries: Entry[] = [entry(index + 1)]): Message => ({
  type: "MsgApp",
  from: 1,
  to,
  term: 2,
  index,
  logTerm: 2,
  entries,
  commit: index,
});

/** A read request to node 2: what rockraft sends again when it is reported dropped. */
const read: Message = { type: "MsgReadIndex", from: 1, to: 2, term: 0, context: "c" };

describe("peer transport", () => {
  test("a batch of every message type arrives intact and in order", async () => {
    const { inbox, address } = await server();
    const { peers } = transport();
    peers.setPeers([[2, address]]);
    const messages: Message[] = [
      app(2, 5, [entry(6), { index: 7, term: 2, type: "config", data: new Uint8Array([1, 2]) }]),
      {
        type: "MsgAppResp",
        from: 1,
        to: 2,
        term: 2,
        index: 9,
        reject: true,
        rejectHint: 4,
        logTerm: 1,
      },
      { type: "MsgVote", from: 1, to: 2, term: 3, index: 9, logTerm: 2, transfer: true },
      { type: "MsgPreVote", from: 1, to: 2, term: 3, index: 9, logTerm: 2, transfer: false },
      { type: "MsgVoteResp", from: 1, to: 2, term: 3, reject: false },
      { type: "MsgPreVoteResp", from: 1, to: 2, term: 3, reject: true },
      { type: "MsgHeartbeat", from: 1, to: 2, term: 2, commit: 4, context: "read-7" },
      { type: "MsgHeartbeatResp", from: 1, to: 2, term: 2, context: "read-7" },
      { type: "MsgProp", from: 1, to: 2, term: 0, entries: [entry(0)] },
      { type: "MsgReadIndex", from: 1, to: 2, term: 0, context: "r1" },
      { type: "MsgReadIndexResp", from: 1, to: 2, term: 2, index: 8, context: "r1" },
      { type: "MsgTimeoutNow", from: 1, to: 2, term: 2 },
      { type: "MsgTransferLeader", from: 1, to: 2, term: 2, target: 3 },
    ];
    const probe: Message = {
      type: "MsgHeartbeat",
      from: 1,
      to: 2,
      term: 1,
      commit: 0,
      context: "probe",
    };
    const isProbe = (m: Message) => m.type === "MsgHeartbeat" && m.context === "probe";
    await waitFor(() => {
      peers.send([probe]);
      return inbox.messages.length > 0;
    }, "the connection to come up");
    peers.send(messages);
    const received = () => inbox.messages.filter((m) => !isProbe(m));
    await waitFor(() => received().length === messages.length, "every message");
    const plain = (value: unknown): unknown =>
      value instanceof Uint8Array
        ? [...value]
        : Array.isArray(value)
          ? value.map(plain)
          : typeof value === "object" && value !== null
            ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
            : value;
    expect(plain(received())).toEqual(plain(messages));
  });

  test("the Send and InstallSnapshot streams get their headers at once, before any message", async () => {
    // Until a call has its headers, grpc-js's sending side keeps every message written on
    // it for a retry; on a Send stream that lives for hours that pinned tens of MB.
    const { address } = await server();
    const client = new RaftServiceClient(address, credentials.createInsecure());
    cleanups.push(() => client.close());
    for (const open of [
      () => client.send(() => undefined),
      () => client.installSnapshot(() => undefined),
    ]) {
      const stream = open();
      const headers = await new Promise<boolean>((resolve) => {
        stream.once("metadata", () => resolve(true));
        setTimeout(() => resolve(false), 2_000);
      });
      stream.cancel();
      expect(headers).toBe(true);
    }
  });

  test("a peer that goes down: messages are dropped and reported, and delivery resumes when it is back", async () => {
    const first = await server();
    const port = first.server.port;
    const { peers, unreachable, dropped } = transport();
    peers.setPeers([[2, first.address]]);
    await waitFor(() => {
      peers.send([app(2, 1)]);
      return first.inbox.messages.length > 0;
    }, "delivery to the first server");
    await first.server.shutdown(0);
    await waitFor(() => {
      peers.send([app(2, 2)]);
      return unreachable.includes(2);
    }, "node 2 reported unreachable");
    // While it is down, what is dropped is handed back, message by message.
    peers.send([app(2, 7)]);
    await waitFor(() => dropped.some((m) => m.type === "MsgApp" && m.index === 7), "drop of 7");
    const again = await startServer({ address: `127.0.0.1:${port}` });
    cleanups.push(() => again.server.shutdown(100));
    await waitFor(() => {
      peers.send([app(2, 3)]);
      return again.inbox.messages.length > 0;
    }, "delivery after the peer came back");
    expect(again.inbox.messages[0]).toMatchObject({ type: "MsgApp", from: 1, to: 2 });
  });

  test("messages sent while the first connection to a peer is made are delivered, not dropped", async () => {
    // A new cluster's first election: the candidate's votes, and the peers' answers on
    // their own new connections back, go out before any connection is up. Dropped, each
    // cost an election timeout (about 3 s before a three-node cluster had a leader).
    const { inbox, address } = await server();
    const { peers, dropped, unreachable } = transport();
    peers.setPeers([[2, address]]);
    peers.send([app(2, 1)]);
    peers.send([app(2, 2)]);
    await waitFor(() => inbox.messages.length === 2, "both messages");
    expect(inbox.messages.map((m) => (m as { index: number }).index)).toEqual([1, 2]);
    expect([dropped, unreachable]).toEqual([[], []]);
  });

  test("messages queued for a first connection that fails are reported dropped", async () => {
    const [port] = await freePorts(1);
    const { peers, dropped, unreachable } = transport();
    peers.setPeers([[2, `127.0.0.1:${port}`]]); // nothing listens there
    peers.send([read]);
    expect(dropped).toEqual([]); // it waits for the first attempt...
    await waitFor(() => dropped.length > 0, "the drop", 5_000); // ...which fails
    expect(dropped).toEqual([read]);
    expect(unreachable).toContain(2);
    dropped.length = 0;
    peers.send([app(2, 3)]); // known to be down now: dropped at once
    expect(dropped).toEqual([app(2, 3)]);
  });

  test("messages waiting for a first connection are reported dropped when the address changes", async () => {
    const [port] = await freePorts(1);
    const moved = await server();
    const { peers, dropped } = transport();
    peers.setPeers([[2, `127.0.0.1:${port}`]]);
    peers.send([read]);
    peers.setPeers([[2, moved.address]]);
    expect(dropped).toEqual([read]);
  });

  test("a peer whose address changes: messages queued for the old one are reported dropped", async () => {
    const first = await server();
    const moved = await server();
    const { peers, dropped } = transport();
    peers.setPeers([[2, first.address]]);
    await waitFor(() => {
      peers.send([app(2, 1)]);
      return first.inbox.messages.length > 0;
    }, "delivery to the first address");
    await new Promise((resolve) => setImmediate(resolve)); // the last one's flush
    dropped.length = 0;
    // Queued for the next flush when the address moves: never sent, so handed back.
    peers.send([read]);
    peers.setPeers([[2, moved.address]]);
    expect(dropped).toEqual([read]);
  });

  test("a peer that shuts down gracefully is logged at info, not as a lost connection", async () => {
    const peer = await server();
    const logger = recordingLogger();
    const { peers } = transport({ logger });
    peers.setPeers([[2, peer.address]]);
    await waitFor(() => {
      peers.send([app(2, 1)]);
      return peer.inbox.messages.length > 0;
    }, "delivery to the peer");
    await peer.server.shutdown(1_000);
    await waitFor(
      () => logger.lines.some((line) => line.message.startsWith("peer closed the connection")),
      "the log line for the peer's shutdown",
    );
    const line = logger.lines.find((l) => l.message.startsWith("peer closed the connection"))!;
    expect(line.level).toBe("info");
    expect(logger.lines.filter((l) => l.level === "warn")).toEqual([]);
  });

  test("a stalled peer does not delay another peer's messages", async () => {
    // Node 3 accepts the stream but never reads: HTTP/2 flow control backs up.
    const stalled = new Server();
    stalled.addService(RaftServiceService, {
      send: (call: ServerReadableStream<SendRequest, unknown>) => call.pause(),
      installSnapshot: () => undefined,
    });
    const stalledPort = await new Promise<number>((resolve, reject) =>
      stalled.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    cleanups.push(() => stalled.forceShutdown());
    const { inbox, address } = await server();
    const { peers, unreachable } = transport({ queueLimit: 64 });
    peers.setPeers([
      [2, address],
      [3, `127.0.0.1:${stalledPort}`],
    ]);
    const big = (to: number, i: number) => app(to, i, [entry(i + 1, 256 * 1024)]);
    await waitFor(() => {
      peers.send([big(3, 0), app(2, 0)]);
      return inbox.messages.length > 0;
    }, "first delivery to node 2");
    unreachable.length = 0; // drops while connecting do not count
    let i = 1;
    await waitFor(() => {
      peers.send([big(3, i), app(2, i)]);
      i++;
      return unreachable.includes(3);
    }, "node 3's queue to fill");
    const before = inbox.messages.length;
    peers.send([app(2, 1000)]);
    await waitFor(
      () => inbox.messages.length > before,
      "node 2 still served while node 3 is stalled",
      2_000,
    );
    expect(unreachable).not.toContain(2);
  });

  test("a message larger than the size limit is dropped and reported, and the stream goes on", async () => {
    const { inbox, address } = await server();
    const logger = recordingLogger();
    const { peers, unreachable } = transport({ maxMessageBytes: 256 * 1024, logger });
    peers.setPeers([[2, address]]);
    await waitFor(() => {
      peers.send([app(2, 1)]);
      return inbox.messages.length > 0;
    }, "connection up");
    peers.send([app(2, 10, [entry(11, 300 * 1024)]), app(2, 20)]);
    await waitFor(
      () => inbox.messages.some((m) => m.type === "MsgApp" && m.index === 20),
      "the small message after it",
    );
    expect(inbox.messages.some((m) => m.type === "MsgApp" && m.index === 10)).toBe(false);
    expect(unreachable).toContain(2);
    expect(logger.lines.map((l) => l.message)).toContain(
      "dropped a message larger than the message size limit",
    );
  });

  test("messages from another cluster are refused and logged", async () => {
    const logger = recordingLogger();
    const { inbox, address } = await server({ logger });
    const { peers } = transport({ clusterId: "elsewhere" });
    peers.setPeers([[2, address]]);
    await waitFor(() => {
      peers.send([app(2, 1)]);
      return logger.lines.some((l) => l.message === "refused a peer message batch");
    }, "the refusal to be logged");
    expect(inbox.messages).toEqual([]);
    const line = logger.lines.find((l) => l.message === "refused a peer message batch")!;
    expect(line.fields).toMatchObject({
      cluster: "elsewhere",
      err: 'refused: message from cluster "elsewhere", this node belongs to cluster "test"',
    });
  });

  test("a snapshot stream interrupted mid-way is never installed; the retry from the start is", async () => {
    const { inbox, address } = await server();
    const metadata = {
      index: 40,
      term: 3,
      confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [] },
    };
    let failMidway = true;
    const source = (): Promise<SnapshotSource> =>
      Promise.resolve({
        metadata,
        async *chunks() {
          yield { offset: 0, data: new Uint8Array(100), last: false };
          if (failMidway) {
            await waitFor(() => inbox.snapshots.length === 1, "the receiver to start");
            throw new Error("disk read failed");
          }
          yield { offset: 100, data: new Uint8Array(50), last: true, checksum: 7 };
        },
        close: () => Promise.resolve(),
      });
    const { peers, snapshotStatus } = transport({ snapshotSource: source });
    peers.setPeers([[2, address]]);
    const msgSnap: Message = {
      type: "MsgSnap",
      from: 1,
      to: 2,
      term: 3,
      snapshot: { metadata, data: new Uint8Array() },
    };
    peers.send([msgSnap]);
    await waitFor(() => snapshotStatus.length === 1, "the first transfer's outcome");
    expect(snapshotStatus).toEqual([[2, false]]);
    await waitFor(
      () => inbox.snapshots[0]?.aborted === true,
      "the receiver to discard the partial snapshot",
    );
    expect(inbox.messages).toEqual([]);
    failMidway = false;
    peers.send([msgSnap]);
    await waitFor(() => snapshotStatus.length === 2, "the retry's outcome");
    expect(snapshotStatus[1]).toEqual([2, true]);
    expect(inbox.snapshots[1]).toMatchObject({ chunks: 2, finished: true, aborted: false });
    expect(inbox.messages).toEqual([msgSnap]);
  });
});

export type { RockraftServer };
