// The replication floor: the least work a replicated, durable key-value write or
// linearizable read needs with grpc-js and LevelDB on this machine, without Raft. Three of
// these processes; the first leads, for good (no elections, terms, votes, snapshots,
// membership, checksums, sessions, auth or errors handled), and every client call must go
// to it (no forwarding).
//   node lib/replication-floor.mjs INDEX DATA_DIR PORT0 PORT1 PORT2
// A write (KV.Put): the leader takes the writes that arrived meanwhile as one batch, sends it
// to both followers over one raw-bytes gRPC stream each, and appends it to its LevelDB log
// (synced; each entry its key and value) at the same time; each follower appends (synced) and acknowledges; once its own
// append and one follower's are done, the batch is committed: the leader writes the data
// (unsynced) and answers. Followers write the data when the next batch tells them the commit.
// A read (KV.Get): the reads that arrived meanwhile wait for one heartbeat round trip to a
// follower (the leader is still the leader), then for the data to be written up to the
// commit index of that moment, then read LevelDB. rockraft's runtime does all this and more.
import { ClassicLevel } from "classic-level";
import { grpc, rockraftService } from "@rockraft/test-utils/stubs";

const [index, dataDir, ...portArgs] = process.argv.slice(2);
const me = Number(index);
const ports = portArgs.map(Number);
const db = new ClassicLevel(dataDir, { keyEncoding: "view", valueEncoding: "view" });
await db.open();

const raw = (bytes) => bytes;
const PEER = {
  Stream: {
    path: "/floor.Peer/Stream",
    requestStream: true,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};
const APPEND = 1;
const HEARTBEAT = 2;

function logKey(i) {
  const key = Buffer.allocUnsafe(9);
  key[0] = 1;
  key.writeUInt32BE(Math.floor(i / 2 ** 32), 1);
  key.writeUInt32BE(i >>> 0, 5);
  return key;
}
const dataKey = (key) => Buffer.concat([Buffer.of(2), key]);
/** A log entry as stored: the key's length, the key, the value (enough to apply it again). */
const logEntry = (e) =>
  Buffer.concat([Buffer.of(e.key.length >> 8, e.key.length & 255), e.key, e.value]);

/** An append: type, commit, first index, count, then (key length, key, value length, value). */
function encodeAppend(commit, first, entries) {
  let size = 1 + 8 + 8 + 4;
  for (const e of entries) size += 2 + e.key.length + 4 + e.value.length;
  const bytes = Buffer.allocUnsafe(size);
  bytes[0] = APPEND;
  bytes.writeDoubleBE(commit, 1);
  bytes.writeDoubleBE(first, 9);
  bytes.writeUInt32BE(entries.length, 17);
  let at = 21;
  for (const e of entries) {
    at = bytes.writeUInt16BE(e.key.length, at);
    at += e.key.copy(bytes, at);
    at = bytes.writeUInt32BE(e.value.length, at);
    at += e.value.copy(bytes, at);
  }
  return bytes;
}

function decodeAppend(bytes) {
  const commit = bytes.readDoubleBE(1);
  const first = bytes.readDoubleBE(9);
  const entries = [];
  let at = 21;
  for (let n = bytes.readUInt32BE(17); n > 0; n--) {
    const keyLength = bytes.readUInt16BE(at);
    const key = bytes.subarray(at + 2, at + 2 + keyLength);
    at += 2 + keyLength;
    const valueLength = bytes.readUInt32BE(at);
    entries.push({ key, value: bytes.subarray(at + 4, at + 4 + valueLength) });
    at += 4 + valueLength;
  }
  return { commit, first, entries };
}

/** Entries from `first` (log index), each {key, value}; the log as it stands in memory. */
const log = [];
const logStart = 1;
let applied = 0;

/** Writes the data of entries up to `upTo` (unsynced: the log holds them durably). */
async function applyUpTo(upTo) {
  if (upTo <= applied) return;
  const ops = [];
  for (let i = applied + 1; i <= upTo; i++) {
    const e = log[i - logStart];
    ops.push({ type: "put", key: dataKey(e.key), value: e.value });
  }
  applied = upTo;
  await db.batch(ops); // the log stays in memory too: a floor trims nothing
}

const server = new grpc.Server();

if (me === 0) {
  // ---- The leader ----
  const followers = ports.slice(1).map((port) => {
    const Peer = grpc.makeGenericClientConstructor(PEER, "Peer");
    const client = new Peer(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const stream = client.Stream();
    const peer = { stream, match: 0, heartbeat: 0 };
    stream.on("data", (bytes) => {
      if (bytes[0] === APPEND) peer.match = bytes.readDoubleBE(1);
      else peer.heartbeat = bytes.readDoubleBE(1);
      progress();
    });
    stream.on("error", () => undefined);
    return peer;
  });
  let last = 0;
  let commit = 0;
  let persisted = 0;
  let persisting = false;
  let pending = [];
  const waiting = new Map(); // index -> callback
  let flushQueued = false;
  let heartbeatSent = 0;
  let heartbeatAcked = 0;
  let readsQueued = [];
  let readsInFlight = undefined; // { seq, readIndex, reads }

  const flushSoon = () => {
    if (flushQueued || persisting) return;
    flushQueued = true;
    setImmediate(flush);
  };

  function flush() {
    flushQueued = false;
    if (persisting || pending.length === 0) return;
    const batch = pending;
    pending = [];
    const first = last + 1;
    for (const { key, value, callback } of batch) {
      log.push({ key, value });
      waiting.set(++last, callback);
    }
    const message = encodeAppend(commit, first, batch);
    for (const peer of followers) peer.stream.write(message);
    persisting = true;
    const ops = batch.map((e, i) => ({ type: "put", key: logKey(first + i), value: logEntry(e) }));
    db.batch(ops, { sync: true }).then(() => {
      persisting = false;
      persisted = first + batch.length - 1;
      progress();
      flushSoon();
    });
  }

  function progress() {
    // A majority of three: the leader and the follower further along.
    const quorum = Math.min(persisted, Math.max(...followers.map((p) => p.match)));
    if (quorum > commit) {
      const from = commit + 1;
      commit = quorum;
      void applyUpTo(commit).then(() => {
        for (let i = from; i <= quorum; i++) {
          const callback = waiting.get(i);
          waiting.delete(i);
          callback(null, { log_id: { term: "1", node_id: "1", index: String(i) } });
        }
        serveReads();
      });
    }
    heartbeatAcked = Math.max(heartbeatAcked, ...followers.map((p) => p.heartbeat));
    serveReads();
  }

  function serveReads() {
    const round = readsInFlight;
    if (round !== undefined && heartbeatAcked >= round.seq && applied >= round.readIndex) {
      readsInFlight = undefined;
      for (const { key, callback } of round.reads) {
        db.get(dataKey(key)).then((value) =>
          callback(null, value === undefined ? { found: false } : { found: true, value }),
        );
      }
    }
    if (readsInFlight === undefined && readsQueued.length > 0) {
      readsInFlight = { seq: ++heartbeatSent, readIndex: commit, reads: readsQueued };
      readsQueued = [];
      const message = Buffer.allocUnsafe(9);
      message[0] = HEARTBEAT;
      message.writeDoubleBE(heartbeatSent, 1);
      for (const peer of followers) peer.stream.write(message);
    }
  }

  server.addService(rockraftService(), {
    Put: (call, callback) => {
      pending.push({ key: call.request.key, value: call.request.value, callback });
      flushSoon();
    },
    Get: (call, callback) => {
      readsQueued.push({ key: call.request.key, callback });
      serveReads();
    },
  });
} else {
  // ---- A follower ----
  let persisted = 0;
  server.addService(PEER, {
    Stream: (stream) => {
      stream.on("data", (bytes) => {
        if (bytes[0] === HEARTBEAT) {
          stream.write(bytes);
          return;
        }
        const { commit, first, entries } = decodeAppend(bytes);
        for (const e of entries) log.push(e);
        const end = first + entries.length - 1;
        const ops = entries.map((e, i) => ({
          type: "put",
          key: logKey(first + i),
          value: logEntry(e),
        }));
        db.batch(ops, { sync: true }).then(() => {
          persisted = Math.max(persisted, end);
          const ack = Buffer.allocUnsafe(9);
          ack[0] = APPEND;
          ack.writeDoubleBE(persisted, 1);
          stream.write(ack);
          void applyUpTo(Math.min(commit, persisted));
        });
      });
      stream.on("error", () => undefined);
    },
  });
}

server.bindAsync(`127.0.0.1:${ports[me]}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) throw error;
  console.log(`replication floor ${me} is running on ${ports[me]}`);
});
process.on("SIGINT", () => server.tryShutdown(() => db.close().then(() => process.exit(0))));
