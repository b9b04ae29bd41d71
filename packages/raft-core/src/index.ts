export { RawNode, type ConfStateTarget } from "./raw-node.js";
export type { RaftOptions, ReadMode } from "./options.js";
export type { Status, ProgressStatus } from "./status.js";
export { MemoryStorage, EMPTY_SNAPSHOT, limitSize, type RaftStorage } from "./storage.js";
export { createPrng, type Prng, type SeededPrng } from "./prng.js";
export { RaftError, type RaftErrorCode, type DropReason } from "./errors.js";
export {
  allMembers,
  confStateEqual,
  decodeConfState,
  encodeConfState,
  makeConfState,
} from "./conf-state.js";
export type { ProgressState } from "./progress.js";
export type { Quorum, VoteResult } from "./quorum.js";
export {
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  ENTRY_OVERHEAD_BYTES,
  NONE,
  entrySize,
  hardStateEqual,
  type ConfState,
  type Entry,
  type EntryType,
  type HardState,
  type InitialState,
  type LogPosition,
  type Message,
  type MessageType,
  type MsgApp,
  type MsgAppResp,
  type MsgHeartbeat,
  type MsgHeartbeatResp,
  type MsgProp,
  type MsgReadIndex,
  type MsgReadIndexResp,
  type MsgSnap,
  type MsgTimeoutNow,
  type MsgTransferLeader,
  type MsgVote,
  type MsgVoteResp,
  type NodeId,
  type ReadState,
  type Ready,
  type Snapshot,
  type SnapshotMetadata,
  type SoftState,
  type StateRole,
} from "./types.js";
