// Throughput of the pure core: proposals committed per second through a 3-node in-memory
// cluster (instant network, MemoryStorage, no faults), at several batch sizes.
//   pnpm --filter @rockraft/raft-core bench [-- --seconds 3]
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { MemoryStorage, RawNode, createPrng, type Message } from "../src/index.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    seconds: { type: "string", default: "3" },
    payload: { type: "string", default: "128" },
  },
});
const seconds = Number(values.seconds);
const payload = new Uint8Array(Number(values.payload)).fill(7);
/** Entries kept in memory behind the applied index; older ones are compacted away. */
const KEEP = 10_000;

interface Member {
  readonly storage: MemoryStorage;
  readonly node: RawNode;
  applied: number;
}

function cluster(): Member[] {
  const members = [1, 2, 3].map((id) => {
    const storage = new MemoryStorage();
    const node = new RawNode({
      id,
      storage,
      prng: createPrng(id),
      electionTick: 10,
      heartbeatTick: 1,
      maxEntriesPerMsg: 4096,
      maxBytesPerMsg: 4 * 1024 * 1024,
    });
    return { storage, node, applied: 0 };
  });
  members[0]!.node.bootstrap({ voters: [1, 2, 3] });
  members[0]!.node.campaign();
  return members;
}

/** One round of every node's drive loop; returns the messages to deliver next. */
function round(members: Member[], inbox: Message[]): Message[] {
  for (const message of inbox) members[message.to - 1]!.node.step(message);
  const outbox: Message[] = [];
  for (const member of members) {
    const { node, storage } = member;
    if (!node.hasReady()) continue;
    const ready = node.ready();
    for (const message of ready.messages) outbox.push(message);
    if (ready.snapshot !== undefined) storage.applySnapshot(ready.snapshot);
    storage.append(ready.entries);
    if (ready.hardState !== undefined) storage.setHardState(ready.hardState);
    for (const message of ready.messagesAfterPersist) outbox.push(message);
    const last = ready.committedEntries[ready.committedEntries.length - 1];
    if (last !== undefined) member.applied = last.index;
    node.advance();
    if (member.applied - storage.firstIndex() > 2 * KEEP) {
      storage.createSnapshot(
        member.applied,
        { voters: [1, 2, 3], learners: [], votersOutgoing: [] },
        new Uint8Array(),
      );
      storage.compact(member.applied - KEEP);
    }
  }
  return outbox;
}

function run(batch: number): { entries: number; seconds: number; heapMB: number } {
  const members = cluster();
  const leader = members[0]!;
  let inbox: Message[] = [];
  while (leader.applied < 2) inbox = round(members, inbox); // elected, no-op committed
  const datas = Array.from({ length: batch }, () => payload);
  const start = leader.applied;
  const began = performance.now();
  const deadline = began + seconds * 1000;
  while (performance.now() < deadline) {
    // Keep a few batches in flight so that replication pipelines.
    if (leader.node.status().lastIndex - leader.applied < 4 * batch) leader.node.propose(datas);
    inbox = round(members, inbox);
  }
  const elapsed = (performance.now() - began) / 1000;
  return {
    entries: leader.applied - start,
    seconds: elapsed,
    heapMB: process.memoryUsage().heapUsed / 2 ** 20,
  };
}

console.log(
  `raft-core bench: 3 nodes in one process, ${payload.byteLength}-byte entries, ${seconds} s per batch size`,
);
console.log(
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
);
console.log("| batch | entries committed/s | heap after (MB) |");
console.log("|---:|---:|---:|");
for (const batch of [1, 16, 256]) {
  run(batch); // warm-up
  const result = run(batch);
  console.log(
    `| ${batch} | ${Math.round(result.entries / result.seconds).toLocaleString("en-US")} | ${result.heapMB.toFixed(0)} |`,
  );
}
