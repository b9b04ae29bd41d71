// The boundary between raft-core's plain messages and the generated protobuf types. 64-bit
// wire values become numbers here, once, with a range check (raft-core is exact to 2^53).
import type { ConfState, Entry, Message, NodeId, SnapshotMetadata } from "@rockraft/raft-core";
import type { MetricsResponse } from "./gen/rockraft/v1/cluster.js";
import type { ClusterMetrics } from "./handlers.js";
import {
  EntryType,
  MessageType,
  type ConfState as WireConfState,
  type Entry as WireEntry,
  type RaftMessage,
  type SnapshotMetadata as WireSnapshotMetadata,
} from "./gen/rockraft/v1/raft.js";

/** A peer sent something that cannot be a valid message; the batch is refused. */
export class WireError extends Error {
  override readonly name = "WireError";
}

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

export function toNumber(value: bigint, field: string): number {
  if (value > MAX) throw new WireError(`${field} is ${value}, beyond 2^53 - 1`);
  return Number(value);
}

const big = (value: number): bigint => BigInt(value);

const TYPE_TO_WIRE: Record<Message["type"], MessageType> = {
  MsgApp: MessageType.MESSAGE_TYPE_APP,
  MsgAppResp: MessageType.MESSAGE_TYPE_APP_RESP,
  MsgVote: MessageType.MESSAGE_TYPE_VOTE,
  MsgVoteResp: MessageType.MESSAGE_TYPE_VOTE_RESP,
  MsgPreVote: MessageType.MESSAGE_TYPE_PRE_VOTE,
  MsgPreVoteResp: MessageType.MESSAGE_TYPE_PRE_VOTE_RESP,
  MsgHeartbeat: MessageType.MESSAGE_TYPE_HEARTBEAT,
  MsgHeartbeatResp: MessageType.MESSAGE_TYPE_HEARTBEAT_RESP,
  MsgProp: MessageType.MESSAGE_TYPE_PROP,
  MsgReadIndex: MessageType.MESSAGE_TYPE_READ_INDEX,
  MsgReadIndexResp: MessageType.MESSAGE_TYPE_READ_INDEX_RESP,
  MsgTimeoutNow: MessageType.MESSAGE_TYPE_TIMEOUT_NOW,
  MsgTransferLeader: MessageType.MESSAGE_TYPE_TRANSFER_LEADER,
  MsgSnap: MessageType.MESSAGE_TYPE_UNSPECIFIED, // snapshots travel on their own stream
};

function entryToWire(entry: Entry): WireEntry {
  return {
    index: big(entry.index),
    term: big(entry.term),
    type: entry.type === "config" ? EntryType.ENTRY_TYPE_CONFIG : EntryType.ENTRY_TYPE_NORMAL,
    data: Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength),
  };
}

function entryFromWire(entry: WireEntry): Entry {
  const type =
    entry.type === EntryType.ENTRY_TYPE_CONFIG
      ? "config"
      : entry.type === EntryType.ENTRY_TYPE_NORMAL
        ? "normal"
        : undefined;
  if (type === undefined)
    throw new WireError(`entry ${entry.index} has unknown type ${entry.type}`);
  return {
    index: toNumber(entry.index, "entry.index"),
    term: toNumber(entry.term, "entry.term"),
    type,
    data: entry.data,
  };
}

const EMPTY: RaftMessage = {
  type: MessageType.MESSAGE_TYPE_UNSPECIFIED,
  from: 0n,
  to: 0n,
  term: 0n,
  index: 0n,
  logTerm: 0n,
  commit: 0n,
  entries: [],
  reject: false,
  rejectHint: 0n,
  transfer: false,
  context: "",
  target: 0n,
};

/** Encodes any message but MsgSnap (which goes by InstallSnapshot). */
export function messageToWire(m: Message): RaftMessage {
  const wire: RaftMessage = {
    ...EMPTY,
    type: TYPE_TO_WIRE[m.type],
    from: big(m.from),
    to: big(m.to),
    term: big(m.term),
  };
  switch (m.type) {
    case "MsgApp":
      wire.index = big(m.index);
      wire.logTerm = big(m.logTerm);
      wire.commit = big(m.commit);
      wire.entries = m.entries.map(entryToWire);
      break;
    case "MsgAppResp":
      wire.index = big(m.index);
      wire.reject = m.reject;
      wire.rejectHint = big(m.rejectHint);
      wire.logTerm = big(m.logTerm);
      break;
    case "MsgVote":
    case "MsgPreVote":
      wire.index = big(m.index);
      wire.logTerm = big(m.logTerm);
      wire.transfer = m.transfer;
      break;
    case "MsgVoteResp":
    case "MsgPreVoteResp":
      wire.reject = m.reject;
      break;
    case "MsgHeartbeat":
      wire.commit = big(m.commit);
      wire.context = m.context;
      break;
    case "MsgHeartbeatResp":
    case "MsgReadIndex":
      wire.context = m.context;
      break;
    case "MsgReadIndexResp":
      wire.index = big(m.index);
      wire.context = m.context;
      break;
    case "MsgProp":
      wire.entries = m.entries.map(entryToWire);
      break;
    case "MsgTransferLeader":
      wire.target = big(m.target);
      break;
    case "MsgTimeoutNow":
      break;
    case "MsgSnap":
      throw new TypeError("messageToWire: MsgSnap travels by InstallSnapshot");
  }
  return wire;
}

export function messageFromWire(wire: RaftMessage): Message {
  const from = toNumber(wire.from, "from");
  const to = toNumber(wire.to, "to");
  const term = toNumber(wire.term, "term");
  const base = { from, to, term };
  switch (wire.type) {
    case MessageType.MESSAGE_TYPE_APP:
      return {
        type: "MsgApp",
        ...base,
        index: toNumber(wire.index, "index"),
        logTerm: toNumber(wire.logTerm, "logTerm"),
        commit: toNumber(wire.commit, "commit"),
        entries: wire.entries.map(entryFromWire),
      };
    case MessageType.MESSAGE_TYPE_APP_RESP:
      return {
        type: "MsgAppResp",
        ...base,
        index: toNumber(wire.index, "index"),
        reject: wire.reject,
        rejectHint: toNumber(wire.rejectHint, "rejectHint"),
        logTerm: toNumber(wire.logTerm, "logTerm"),
      };
    case MessageType.MESSAGE_TYPE_VOTE:
    case MessageType.MESSAGE_TYPE_PRE_VOTE:
      return {
        type: wire.type === MessageType.MESSAGE_TYPE_VOTE ? "MsgVote" : "MsgPreVote",
        ...base,
        index: toNumber(wire.index, "index"),
        logTerm: toNumber(wire.logTerm, "logTerm"),
        transfer: wire.transfer,
      };
    case MessageType.MESSAGE_TYPE_VOTE_RESP:
    case MessageType.MESSAGE_TYPE_PRE_VOTE_RESP:
      return {
        type: wire.type === MessageType.MESSAGE_TYPE_VOTE_RESP ? "MsgVoteResp" : "MsgPreVoteResp",
        ...base,
        reject: wire.reject,
      };
    case MessageType.MESSAGE_TYPE_HEARTBEAT:
      return {
        type: "MsgHeartbeat",
        ...base,
        commit: toNumber(wire.commit, "commit"),
        context: wire.context,
      };
    case MessageType.MESSAGE_TYPE_HEARTBEAT_RESP:
      return { type: "MsgHeartbeatResp", ...base, context: wire.context };
    case MessageType.MESSAGE_TYPE_PROP:
      return { type: "MsgProp", ...base, entries: wire.entries.map(entryFromWire) };
    case MessageType.MESSAGE_TYPE_READ_INDEX:
      return { type: "MsgReadIndex", ...base, context: wire.context };
    case MessageType.MESSAGE_TYPE_READ_INDEX_RESP:
      return {
        type: "MsgReadIndexResp",
        ...base,
        index: toNumber(wire.index, "index"),
        context: wire.context,
      };
    case MessageType.MESSAGE_TYPE_TIMEOUT_NOW:
      return { type: "MsgTimeoutNow", ...base };
    case MessageType.MESSAGE_TYPE_TRANSFER_LEADER:
      return { type: "MsgTransferLeader", ...base, target: toNumber(wire.target, "target") };
    default:
      throw new WireError(`unknown message type ${wire.type}`);
  }
}

const ids = (list: readonly NodeId[]) => list.map(big);
const numbers = (list: readonly bigint[], field: string) => list.map((id) => toNumber(id, field));

export function confStateToWire(conf: ConfState): WireConfState {
  return {
    voters: ids(conf.voters),
    learners: ids(conf.learners),
    votersOutgoing: ids(conf.votersOutgoing),
    context: conf.context ?? "",
  };
}

export function metadataToWire(metadata: SnapshotMetadata): WireSnapshotMetadata {
  return {
    index: big(metadata.index),
    term: big(metadata.term),
    confState: confStateToWire(metadata.confState),
  };
}

export function metadataFromWire(wire: WireSnapshotMetadata | undefined): SnapshotMetadata {
  if (wire === undefined) throw new WireError("snapshot header without metadata");
  const conf = wire.confState ?? { voters: [], learners: [], votersOutgoing: [], context: "" };
  return {
    index: toNumber(wire.index, "snapshot index"),
    term: toNumber(wire.term, "snapshot term"),
    confState: {
      voters: numbers(conf.voters, "voter"),
      learners: numbers(conf.learners, "learner"),
      votersOutgoing: numbers(conf.votersOutgoing, "outgoing voter"),
      ...(conf.context === "" ? {} : { context: conf.context }),
    },
  };
}

/** A cheap upper estimate of a message's encoded size, for batching and limits. */
export function estimateSize(m: Message): number {
  let size = 96;
  if (m.type === "MsgApp" || m.type === "MsgProp") {
    for (const entry of m.entries) size += entry.data.byteLength + 40;
  } else if ("context" in m) {
    size += m.context.length * 3;
  }
  return size;
}

/** A Metrics reply as the client returns it. */
export function metricsFromWire(m: MetricsResponse): ClusterMetrics {
  const members = (list: MetricsResponse["voters"]) =>
    list.map((member) => ({ nodeId: toNumber(member.nodeId, "node_id"), addr: member.addr }));
  return {
    nodeId: toNumber(m.nodeId, "node_id"),
    initialized: m.initialized,
    state: m.state,
    currentTerm: toNumber(m.currentTerm, "current_term"),
    currentLeader: toNumber(m.currentLeader, "current_leader"),
    lastLogIndex: toNumber(m.lastLogIndex, "last_log_index"),
    commitIndex: toNumber(m.commitIndex, "commit_index"),
    lastApplied: {
      index: toNumber(m.lastAppliedIndex, "last_applied_index"),
      term: toNumber(m.lastAppliedTerm, "last_applied_term"),
    },
    voters: members(m.voters),
    learners: members(m.learners),
    votersOutgoing: members(m.votersOutgoing),
    snapshotIndex: toNumber(m.snapshotIndex, "snapshot_index"),
    replication: m.replication.map((r) => ({
      nodeId: toNumber(r.nodeId, "node_id"),
      matchIndex: toNumber(r.matchIndex, "match_index"),
      nextIndex: toNumber(r.nextIndex, "next_index"),
      state: r.state,
    })),
  };
}
