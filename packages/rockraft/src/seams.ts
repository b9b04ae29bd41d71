// The runtime's seams: everything it needs from the world outside raft-core, as small
// interfaces. Production wires LevelDB, gRPC, timers and `crypto` (builder.ts); the
// whole-node simulation (test/sim) wires simulated ones. The runtime's logic reaches the
// world only through these: no `setTimeout`, `Date.now`, `Math.random` or `process` of its own.
import { randomBytes, randomInt } from "node:crypto";
import type { Entry, Message, NodeId, RaftStorage, SnapshotMetadata } from "@rockraft/raft-core";
import type {
  ApplyResult,
  AuthState,
  PersistableReady,
  SnapshotReader,
  StorageError,
} from "@rockraft/storage-level";
import type { MembershipResult, SnapshotSink, SnapshotSource } from "@rockraft/transport-grpc";
import type { Logger } from "pino";
import type { NodeMetricsExporter } from "./metrics.js";
import type { Member } from "./wait.js";
import type { YoungGcScheduler } from "./young-gc.js";

/** An armed timer; only the clock that made it can cancel it. */
export type TimerHandle = unknown;

/** Time and timers. */
export interface Clock {
  /** Wall-clock milliseconds since the epoch: deadlines are expressed in it. */
  now(): number;
  /** Monotonic milliseconds: for durations (ticks, leases, when a peer was last heard). */
  monotonic(): number;
  /** Calls `callback` once after `ms`. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Calls `callback` every `ms`. */
  setInterval(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer made by this clock (either kind); undefined is ignored. */
  clear(timer: TimerHandle): void;
}

/** The process's clock: `Date.now`, `performance.now` and Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  setInterval: (callback, ms) => setInterval(callback, ms),
  clear: (timer) => {
    if (timer !== undefined) clearTimeout(timer as NodeJS.Timeout);
  },
};

/** Randomness: request-id prefixes and raft-core's election jitter seed. */
export interface Randomness {
  /** `count` random bytes. */
  bytes(count: number): Uint8Array;
  /** A random integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

/** `node:crypto`'s randomness. */
export const cryptoRandomness: Randomness = {
  bytes: (count) => randomBytes(count),
  int: (maxExclusive) => randomInt(maxExclusive),
};

/** What the peer network tells the runtime. */
export interface PeerNetworkEvents {
  /** A message to `peer` could not be delivered (raft-core backs off the peer). */
  onUnreachable(peer: NodeId): void;
  /** Messages dropped unsent (forwarded proposals among them fail at once, safely). */
  onDropped(peer: NodeId, messages: readonly Message[]): void;
  /** A snapshot stream to `peer` finished (`ok`) or broke. */
  onSnapshotStatus(peer: NodeId, ok: boolean): void;
  /** The snapshot to stream for a MsgSnap: this node's current state. */
  snapshotSource(): Promise<SnapshotSource>;
}

/** The peer network: sends Raft messages (and the snapshots MsgSnaps stand for). */
export interface PeerNetwork {
  /** Sends messages in order; the network may lose, delay or reorder them. */
  send(messages: readonly Message[]): void;
  /** The peers' addresses (this node's own entry is ignored). */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  /** Stops sending; nothing is delivered afterwards. */
  close(): void;
}

/**
 * A node's durable state: the contract `LevelStorage` fulfils (see @rockraft/storage-level):
 * persist a Ready's durable part as one batch (synced when it must be), apply committed
 * entries exactly once, read the state, build and install snapshots.
 */
export interface NodeStorage {
  /** The synchronous view raft-core reads; it changes only once a write is durable. */
  readonly raftStorage: RaftStorage;
  /** `listener` is told of the first failed write, a background one too (the store stops). */
  onFailure(listener: (error: StorageError) => void): void;
  /** The state machine's applied position and membership. */
  applied(): SnapshotMetadata;
  /** How many client sessions the applied state holds open. */
  openSessions(): number;
  /** The applied state's users, roles and permissions. */
  authState(): AuthState;
  /**
   * A Ready's durable part, and `apply` in the same batch; their results. Without a
   * snapshot, `issued` gets them once the batch is handed to the disk, before it is
   * durable: reads see what they wrote from then on.
   */
  persist(
    ready: PersistableReady,
    options?: {
      apply?: readonly Entry[] | undefined;
      issued?: (results: ApplyResult[]) => void;
    },
  ): Promise<ApplyResult[]>;
  /** Applies committed entries (exactly once), with a commit-only hard state. */
  apply(
    entries: readonly Entry[],
    options?: {
      hardState?: PersistableReady["hardState"];
      waitForWrite?: boolean;
    },
  ): Promise<ApplyResult[]>;
  /** A key's applied value; a damaged one rejects with STORAGE_CORRUPTED. */
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  /** Records a snapshot at the applied index (undefined when there is one there already). */
  takeSnapshot(): Promise<SnapshotMetadata | undefined>;
  /** A consistent view of the state to stream to a peer. */
  openSnapshotReader(chunkBytes: number): Promise<SnapshotReader>;
  /** Where a snapshot streamed from the leader is staged before its MsgSnap installs it. */
  beginSnapshotInstall(metadata: SnapshotMetadata): Promise<SnapshotSink>;
  /** Whether streamed snapshot data waits for its MsgSnap. */
  hasStagedSnapshots(): boolean;
  /** Drops staged snapshots at or below `applied` (their MsgSnap was ignored). */
  discardStagedSnapshots(applied: number): Promise<void>;
  /** Writes a new store's identity once the node has started. */
  stampIdentity(): Promise<void>;
  /** Waits for pending writes and closes. */
  close(): Promise<void>;
}

/** Membership calls forwarded to the leader at `addr` (production: a RockraftClient). */
export interface LeaderCalls {
  addLearner(addr: string, member: Member, timeoutMs: number): Promise<MembershipResult>;
  changeMembership(
    addr: string,
    target: { voters: readonly Member[]; learners: readonly Member[] },
    timeoutMs: number,
  ): Promise<MembershipResult>;
  /** Closes any connections. */
  close(): void;
}

/** Where the runtime reports whether it can serve clients (health, in production). */
export interface ServingStatus {
  setServing(serving: boolean): void;
}

/** Everything the runtime needs from outside raft-core (see seams.ts). */
export interface RuntimeEnvironment {
  readonly storage: NodeStorage;
  readonly clock: Clock;
  readonly random: Randomness;
  /** Makes the peer network, given what it must report. */
  readonly network: (events: PeerNetworkEvents) => PeerNetwork;
  readonly leaderCalls: LeaderCalls;
  readonly logger: Logger;
  readonly metrics?: NodeMetricsExporter | undefined;
  readonly youngGc?: YoungGcScheduler | undefined;
  /**
   * Known bugs, re-introduced for the whole-node simulation to prove it catches them.
   * Never set in production.
   */
  readonly testingUnsafe?:
    | {
        /** Read contexts without the per-process random prefix (they repeat after a restart). */
        readonly fixedReadPrefix?: boolean;
        /** A write waiting at an index is answered by whatever entry is applied there. */
        readonly waiterByIndexOnly?: boolean;
        /** A leader answers a put as soon as it appends the entry, before commit and apply. */
        readonly answerWhenAppended?: boolean;
        /** Linearizable reads skip ReadIndex: served from this node's applied state at once. */
        readonly localReads?: boolean;
      }
    | undefined;
}
