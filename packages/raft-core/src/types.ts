// Plain data types of the Raft core. Terms and indexes are `number` (exact to 2^53);
// transports check the range once at their boundary.

/** Node ids are positive integers; 0 means "none" (no leader, no vote). */
export type NodeId = number;
export const NONE: NodeId = 0;

export type EntryType = "normal" | "config";

export interface Entry {
  readonly index: number;
  readonly term: number;
  /** `normal`: application data (empty for a leader's no-op); `config`: an encoded `ConfState`. */
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** Bytes an entry counts for in message and apply budgets: its payload plus fixed framing. */
export const ENTRY_OVERHEAD_BYTES = 24;
export function entrySize(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** What must be durable before a node may act on it (§5.1, Figure 2 "persistent state"). */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/**
 * A cluster membership. Outside a joint configuration `votersOutgoing` is empty; during
 * joint consensus (thesis §4.3) decisions need a majority of `voters` and of `votersOutgoing`.
 * Lists are sorted ascending.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  /**
   * Opaque data the application attaches to a configuration and the core carries along
   * (like etcd's ConfChange context): rockraft's runtime keeps members' addresses here.
   */
  readonly context?: string;
}

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: Object.freeze([]),
  learners: Object.freeze([]),
  votersOutgoing: Object.freeze([]),
});

export interface SnapshotMetadata {
  /** Last log index the snapshot covers; the log continues at `index + 1`. */
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** A snapshot as the core sees it: metadata, and application data the core never reads. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export type StateRole = "follower" | "pre-candidate" | "candidate" | "leader";

/** Volatile state worth reporting (metrics, logs); never persisted. */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: StateRole;
  readonly term: number;
}

/** A ReadIndex result: a read with `context` is linearizable once `applied >= index` (§6.4). */
export interface ReadState {
  readonly index: number;
  readonly context: string;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term; 0 on messages treated as local to the leader (MsgProp, MsgReadIndex). */
  readonly term: number;
}

/** AppendEntries (§5.3): entries following (index, logTerm), and the leader's commit index. */
export interface MsgApp extends Envelope {
  readonly type: "MsgApp";
  readonly index: number;
  readonly logTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Reply to MsgApp. On success `index` is the last index now matching the leader's log.
 * On rejection `index` is the rejected MsgApp's index and (`rejectHint`, `logTerm`) is the
 * follower's guess at the longest matching prefix, for fast backtracking.
 */
export interface MsgAppResp extends Envelope {
  readonly type: "MsgAppResp";
  readonly index: number;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly logTerm: number;
}

/** RequestVote (§5.2) or PreVote (thesis §9.6): the candidate's last log position. */
export interface MsgVote extends Envelope {
  readonly type: "MsgVote" | "MsgPreVote";
  readonly index: number;
  readonly logTerm: number;
  /** Set by a leadership transfer: the receiver ignores its leader lease (thesis §3.10). */
  readonly transfer: boolean;
}

export interface MsgVoteResp extends Envelope {
  readonly type: "MsgVoteResp" | "MsgPreVoteResp";
  readonly reject: boolean;
}

export interface MsgHeartbeat extends Envelope {
  readonly type: "MsgHeartbeat";
  readonly commit: number;
  /** The newest pending ReadIndex context this round confirms, or "". */
  readonly context: string;
}

export interface MsgHeartbeatResp extends Envelope {
  readonly type: "MsgHeartbeatResp";
  readonly context: string;
}

/** InstallSnapshot (§7): the receiver replaces its state with the snapshot. */
export interface MsgSnap extends Envelope {
  readonly type: "MsgSnap";
  readonly snapshot: Snapshot;
}

/** A follower's proposal forwarded to the leader. */
export interface MsgProp extends Envelope {
  readonly type: "MsgProp";
  readonly entries: readonly Entry[];
}

/** A follower's ReadIndex request forwarded to the leader. */
export interface MsgReadIndex extends Envelope {
  readonly type: "MsgReadIndex";
  readonly context: string;
}

export interface MsgReadIndexResp extends Envelope {
  readonly type: "MsgReadIndexResp";
  readonly index: number;
  readonly context: string;
}

/** Leadership transfer (thesis §3.10): the target campaigns at once, ignoring its timer. */
export interface MsgTimeoutNow extends Envelope {
  readonly type: "MsgTimeoutNow";
}

/** A follower's request that the leader hand leadership to `from`'s chosen target. */
export interface MsgTransferLeader extends Envelope {
  readonly type: "MsgTransferLeader";
  readonly target: NodeId;
}

export type Message =
  | MsgApp
  | MsgAppResp
  | MsgVote
  | MsgVoteResp
  | MsgHeartbeat
  | MsgHeartbeatResp
  | MsgSnap
  | MsgProp
  | MsgReadIndex
  | MsgReadIndexResp
  | MsgTimeoutNow
  | MsgTransferLeader;

export type MessageType = Message["type"];

/**
 * One batch of work for the caller. Its duties, in this order:
 *
 * 1. **Send `messages`** — at any time, even before step 2 finishes: they depend on
 *    nothing this node has yet to make durable (a leader's appends and heartbeats, vote
 *    requests). A leader thereby writes to its disk in parallel with its followers
 *    (thesis §10.2.1); it counts itself toward a commit only after step 2.
 * 2. **Persist** `snapshot` (if any), then `entries` (if any; an entry at an index already
 *    stored replaces it and every entry after it), then `hardState` (if any), atomically,
 *    and durably (fsync) when `mustSync` is true.
 * 3. **Send `persistedMessages`** — only after step 2 is durable: they promise what step 2
 *    wrote (a granted vote, an acknowledged append).
 * 4. **Apply `committedEntries`** to the state machine, in order, after step 2; and serve
 *    each `readStates` item once the state machine has applied its index.
 * 5. **Call `advance()`**, after which the next `ready()` may be taken. Between `ready()`
 *    and `advance()` the node may keep being stepped and ticked.
 *
 * Installing `snapshot` also replaces the state machine's state with the snapshot's data.
 * `compactIndex`, when set, lets the caller discard log entries up to and including it
 * (a durable snapshot covers them), after step 2. `snapshotDue`, when set, says the
 * snapshot policy wants a snapshot of the state machine: build it (at any applied index),
 * make it durable, install it in the storage view, then call `snapshotTaken(index)`.
 *
 * `softState` is informational (role, leader, term changes) and needs no action.
 */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  readonly snapshot: Snapshot | undefined;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly persistedMessages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /** True when step 2 must fsync: the hard state's term or vote, entries or a snapshot changed. */
  readonly mustSync: boolean;
  /** Log entries up to and including this index may be discarded. */
  readonly compactIndex: number | undefined;
  /** The snapshot policy asks for a snapshot; the applied index when it did. */
  readonly snapshotDue: number | undefined;
}
