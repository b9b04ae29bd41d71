// Plain data types of the Raft core. Terms and indexes are `number` (exact to 2^53);
// transports check the range once at their boundary.

/** Node ids are positive integers; 0 means "none" (no leader, no vote). */
export type NodeId = number;
/** The node id that means "none": no leader, no vote. */
export const NONE: NodeId = 0;

/** What an entry carries: application data or a membership configuration. */
export type EntryType = "normal" | "config";

/** One entry of the replicated log. */
export interface Entry {
  /** Position in the log, from 1. */
  readonly index: number;
  /** Term of the leader that created the entry. */
  readonly term: number;
  /** `normal`: application data (empty for a leader's no-op); `config`: an encoded `ConfState`. */
  readonly type: EntryType;
  /** The payload; opaque to the core for `normal` entries. */
  readonly data: Uint8Array;
}

/** A log position: an index and the term of the entry there. */
export interface LogPosition {
  /** Log index. */
  readonly index: number;
  /** Term of the entry at `index`. */
  readonly term: number;
}

/** Bytes an entry counts for in message and apply budgets: its payload plus fixed framing. */
export const ENTRY_OVERHEAD_BYTES = 24;
/** The bytes `entry` counts for in message and apply budgets. */
export function entrySize(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** What must be durable before a node may act on it (§5.1, Figure 2 "persistent state"). */
export interface HardState {
  /** The latest term this node has seen. */
  readonly term: number;
  /** Whom this node voted for in `term`, or {@link NONE}. */
  readonly vote: NodeId;
  /** The highest log index known to be committed. */
  readonly commit: number;
}

/** The hard state of a node that has never run. */
export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

/** Whether two hard states are the same. */
export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/**
 * A cluster membership. Outside a joint configuration `votersOutgoing` is empty; during
 * joint consensus (thesis §4.3) decisions need a majority of `voters` and of `votersOutgoing`.
 * Lists are sorted ascending.
 */
export interface ConfState {
  /** Voting members (the incoming set during a joint configuration). */
  readonly voters: readonly NodeId[];
  /** Non-voting members: they receive the log but never vote or count. */
  readonly learners: readonly NodeId[];
  /** During joint consensus, the previous voters; empty otherwise. */
  readonly votersOutgoing: readonly NodeId[];
  /**
   * Opaque data the application attaches to a configuration and the core carries along
   * (like etcd's ConfChange context): rockraft's runtime keeps members' addresses here.
   */
  readonly context?: string;
}

/** What a node restarts from: its durable hard state and the membership in effect. */
export interface InitialState {
  /** The durable hard state. */
  readonly hardState: HardState;
  /** The newest membership of the snapshot and the log. */
  readonly confState: ConfState;
}

/** The membership of a node that has no configuration yet. */
export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: Object.freeze([]),
  learners: Object.freeze([]),
  votersOutgoing: Object.freeze([]),
});

/** What a snapshot covers: the log position it replaces and the membership as of it. */
export interface SnapshotMetadata {
  /** Last log index the snapshot covers; the log continues at `index + 1`. */
  readonly index: number;
  /** Term of the entry at `index`. */
  readonly term: number;
  /** The membership as of `index`. */
  readonly confState: ConfState;
}

/** A snapshot as the core sees it: metadata, and application data the core never reads. */
export interface Snapshot {
  /** What the snapshot covers. */
  readonly metadata: SnapshotMetadata;
  /** The application's state; the core never reads it. */
  readonly data: Uint8Array;
}

/** A node's role in its current term. */
export type StateRole = "follower" | "pre-candidate" | "candidate" | "leader";

/** Volatile state worth reporting (metrics, logs); never persisted. */
export interface SoftState {
  /** The leader this node knows for `term`, or {@link NONE}. */
  readonly lead: NodeId;
  /** This node's role. */
  readonly role: StateRole;
  /** The current term. */
  readonly term: number;
}

/** A ReadIndex result: a read with `context` is linearizable once `applied >= index` (§6.4). */
export interface ReadState {
  /** The commit index the read must wait for. */
  readonly index: number;
  /** The context given to `readIndex`, identifying the request. */
  readonly context: string;
}

interface Envelope {
  /** The sender. */
  readonly from: NodeId;
  /** The receiver. */
  readonly to: NodeId;
  /** The sender's term; 0 on messages treated as local to the leader (MsgProp, MsgReadIndex). */
  readonly term: number;
}

/** AppendEntries (§5.3): entries following (index, logTerm), and the leader's commit index. */
export interface MsgApp extends Envelope {
  /** Discriminant. */
  readonly type: "MsgApp";
  /** Index of the entry just before `entries`. */
  readonly index: number;
  /** Term of the entry at `index`. */
  readonly logTerm: number;
  /** Entries to append after `index`; empty for a probe. */
  readonly entries: readonly Entry[];
  /** The leader's commit index. */
  readonly commit: number;
}

/**
 * Reply to MsgApp. On success `index` is the last index now matching the leader's log.
 * On rejection `index` is the rejected MsgApp's index and (`rejectHint`, `logTerm`) is the
 * follower's guess at the longest matching prefix, for fast backtracking.
 */
export interface MsgAppResp extends Envelope {
  /** Discriminant. */
  readonly type: "MsgAppResp";
  /** Success: the last matching index; rejection: the rejected MsgApp's index. */
  readonly index: number;
  /** Whether the append was rejected (the logs did not match at `index`). */
  readonly reject: boolean;
  /** On rejection: the index the follower guesses the logs match up to. */
  readonly rejectHint: number;
  /** On rejection: the term of the follower's entry at `rejectHint`. */
  readonly logTerm: number;
}

/** RequestVote (§5.2) or PreVote (thesis §9.6): the candidate's last log position. */
export interface MsgVote extends Envelope {
  /** A real vote request or a pre-vote (which changes no term). */
  readonly type: "MsgVote" | "MsgPreVote";
  /** The candidate's last log index. */
  readonly index: number;
  /** The term of the candidate's last log entry. */
  readonly logTerm: number;
  /** Set by a leadership transfer: the receiver ignores its leader lease (thesis §3.10). */
  readonly transfer: boolean;
}

/** Reply to MsgVote or MsgPreVote. */
export interface MsgVoteResp extends Envelope {
  /** Matches the request type. */
  readonly type: "MsgVoteResp" | "MsgPreVoteResp";
  /** Whether the vote was refused. */
  readonly reject: boolean;
}

/** The leader's heartbeat (§5.2): asserts leadership and carries the commit index. */
export interface MsgHeartbeat extends Envelope {
  /** Discriminant. */
  readonly type: "MsgHeartbeat";
  /** The leader's commit index, capped at what the follower is known to have. */
  readonly commit: number;
  /** The leader's heartbeat round (a decimal number), which confirms its reads and lease. */
  readonly context: string;
}

/** Reply to MsgHeartbeat; confirms leadership for ReadIndex. */
export interface MsgHeartbeatResp extends Envelope {
  /** Discriminant. */
  readonly type: "MsgHeartbeatResp";
  /** The heartbeat's round, echoed. */
  readonly context: string;
}

/** InstallSnapshot (§7): the receiver replaces its state with the snapshot. */
export interface MsgSnap extends Envelope {
  /** Discriminant. */
  readonly type: "MsgSnap";
  /** The snapshot to install. */
  readonly snapshot: Snapshot;
}

/** A follower's proposal forwarded to the leader. */
export interface MsgProp extends Envelope {
  /** Discriminant. */
  readonly type: "MsgProp";
  /** The proposed entries (index and term are assigned by the leader). */
  readonly entries: readonly Entry[];
}

/** A follower's ReadIndex request forwarded to the leader. */
export interface MsgReadIndex extends Envelope {
  /** Discriminant. */
  readonly type: "MsgReadIndex";
  /** Identifies the read request. */
  readonly context: string;
}

/** The leader's answer to MsgReadIndex: the index the read must wait for. */
export interface MsgReadIndexResp extends Envelope {
  /** Discriminant. */
  readonly type: "MsgReadIndexResp";
  /** The read is linearizable once the asking node has applied this index. */
  readonly index: number;
  /** The request's context, echoed. */
  readonly context: string;
}

/** Leadership transfer (thesis §3.10): the target campaigns at once, ignoring its timer. */
export interface MsgTimeoutNow extends Envelope {
  /** Discriminant. */
  readonly type: "MsgTimeoutNow";
}

/** A follower's request that the leader hand leadership to `from`'s chosen target. */
export interface MsgTransferLeader extends Envelope {
  /** Discriminant. */
  readonly type: "MsgTransferLeader";
  /** The node that should become leader. */
  readonly target: NodeId;
}

/** Every message nodes exchange; `type` tells which. */
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

/** The `type` of each message. */
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
 * 3. **Send `messagesAfterPersist`** — only after step 2 is durable: they promise what step 2
 *    wrote (a granted vote, an acknowledged append).
 * 4. **Apply `committedEntries`** to the state machine, in order, after step 2; and serve
 *    each `readStates` item once the state machine has applied its index.
 * 5. **Call `advance()`**, after which the next `ready()` may be taken. Between `ready()`
 *    and `advance()` the node may keep being stepped and ticked.
 *
 * Installing `snapshot` also replaces the state machine's state with the snapshot's data.
 * `compactIndex`, when set, lets the caller discard log entries up to and including it
 * (a durable snapshot covers them), after step 2. Snapshots of the state machine are the
 * application's to take, when its policy says so: build one (at any applied index), make
 * it durable, install it in the storage view, then call `snapshotTaken(index, keepEntries)`.
 *
 * `softState` is informational (role, leader, term changes) and needs no action.
 */
export interface Ready {
  /** Role, leader or term when they changed since the last Ready; informational. */
  readonly softState: SoftState | undefined;
  /** Hard state to persist (step 2), when it changed. */
  readonly hardState: HardState | undefined;
  /** A snapshot to persist and install (step 2), when one arrived. */
  readonly snapshot: Snapshot | undefined;
  /** Log entries to persist (step 2). */
  readonly entries: readonly Entry[];
  /** Entries to apply to the state machine (step 4). */
  readonly committedEntries: readonly Entry[];
  /** Messages to send at once (step 1). */
  readonly messages: readonly Message[];
  /** Messages to send only after step 2 is durable (step 3). */
  readonly messagesAfterPersist: readonly Message[];
  /** Reads to serve once their index is applied (step 4). */
  readonly readStates: readonly ReadState[];
  /** True when step 2 must fsync: the hard state's term or vote, entries or a snapshot changed. */
  readonly mustSync: boolean;
  /** Log entries up to and including this index may be discarded. */
  readonly compactIndex: number | undefined;
}
