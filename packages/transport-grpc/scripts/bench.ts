// Transport throughput on 127.0.0.1:
//   pnpm --filter @rockraft/transport-grpc bench [-- --seconds 3]
// peer messages per second and MB/s over one stream (MsgApp batches of 1 and 64 entries of
// 256 bytes), and KV calls per second with 1 and 64 calls in flight, as unary calls and over
// the KV.Batch stream (the client's default).
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import type { Entry, Message } from "@rockraft/raft-core";
import {
  PeerTransport,
  RockraftClient,
  RockraftServer,
  RpcError,
  type KvHandler,
} from "../src/index.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: { seconds: { type: "string", default: "3" } },
});
const seconds = Number(values.seconds);
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const unavailable = () => Promise.reject(new RpcError("UNAVAILABLE", "bench"));
const value = new Uint8Array(256).fill(1);

let received = 0;
let receivedBytes = 0;
const kv: KvHandler = {
  put: () => Promise.resolve({ logId: { term: 1, nodeId: 2, index: 1 } }),
  get: () => Promise.resolve({ found: true, value }),
  delete: unavailable,
  compareAndSwap: unavailable,
  openSession: unavailable,
  closeSession: unavailable,
};
const server = await RockraftServer.start({
  nodeId: 2,
  clusterId: "bench",
  address: "127.0.0.1:0",
  kv,
  cluster: {
    initialize: unavailable,
    metrics: unavailable,
    addLearner: unavailable,
    changeMembership: unavailable,
    transferLeader: unavailable,
    triggerSnapshot: unavailable,
    getConfig: unavailable,
    reloadConfig: unavailable,
    setConfig: unavailable,
  },
  peer: {
    receive: (messages) => {
      received += messages.length;
      for (const m of messages)
        if (m.type === "MsgApp") for (const e of m.entries) receivedBytes += e.data.byteLength;
    },
    beginSnapshot: () => Promise.reject(new Error("bench")),
  },
});
const address = `127.0.0.1:${server.port}`;
console.log(
  `transport-grpc bench: ${seconds} s per row, ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
);
console.log("");
console.log("| peer stream: entries per MsgApp | messages/s | entries/s | MB/s (payload) |");
console.log("|---:|---:|---:|---:|");
let dropped = 0;
const peers = new PeerTransport({
  nodeId: 1,
  clusterId: "bench",
  queueLimit: 100_000,
  onUnreachable: () => dropped++,
  onSnapshotStatus: () => undefined,
  snapshotSource: () => Promise.reject(new Error("bench")),
});
peers.setPeers([[2, address]]);
while (received === 0) {
  peers.send([{ type: "MsgHeartbeat", from: 1, to: 2, term: 1, commit: 0, context: "" }]);
  await new Promise((resolve) => setTimeout(resolve, 20));
}
for (const perMessage of [1, 64]) {
  const entries: Entry[] = Array.from({ length: perMessage }, (_, i) => ({
    index: i + 1,
    term: 1,
    type: "normal",
    data: value,
  }));
  const message: Message = {
    type: "MsgApp",
    from: 1,
    to: 2,
    term: 1,
    index: 0,
    logTerm: 0,
    entries,
    commit: 0,
  };
  received = 0;
  receivedBytes = 0;
  const began = performance.now();
  let sent = 0;
  while (performance.now() - began < seconds * 1000) {
    // Keep the stream full without overrunning the queue: 1,000 messages ahead at most.
    if (sent - received < 1_000) {
      const burst = Array.from({ length: 100 }, () => message);
      peers.send(burst);
      sent += burst.length;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const elapsed = (performance.now() - began) / 1000;
  console.log(
    `| ${perMessage} | ${fmt(received / elapsed)} | ${fmt((received * perMessage) / elapsed)} | ${(receivedBytes / elapsed / 2 ** 20).toFixed(1)} |`,
  );
}
peers.close();

console.log("");
console.log("| KV calls | in flight | Put calls/s | Get calls/s |");
console.log("|---|---:|---:|---:|");
for (const unaryCalls of [true, false]) {
  // Without a client session: the handler answers at once, and the transport is what is measured.
  const client = new RockraftClient({ endpoints: [address], unaryCalls, sessions: false });
  await client.get("warm-up");
  for (const inFlight of [1, 64]) {
    const rate = async (call: () => Promise<unknown>) => {
      let done = 0;
      const deadline = performance.now() + seconds * 1000;
      const began = performance.now();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (performance.now() < deadline) {
            await call();
            done++;
          }
        }),
      );
      return done / ((performance.now() - began) / 1000);
    };
    const puts = await rate(() => client.put("key", value));
    const gets = await rate(() => client.get("key"));
    const mode = unaryCalls ? "unary" : "Batch stream";
    console.log(`| ${mode} | ${inFlight} | ${fmt(puts)} | ${fmt(gets)} |`);
  }
  client.close();
}
await server.shutdown(100);
if (dropped > 0) console.log(`(${dropped} drops reported while connecting)`);
