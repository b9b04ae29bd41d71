// The store's shared types: its options, what persist takes, what apply returns, and the
// LevelDB handle's shape.
import type { ClassicLevel } from "classic-level";
import type { Ready } from "@rockraft/raft-core";
import type { AuthRefusal } from "./auth.js";
import type { SessionRefusal } from "./sessions.js";

export type Db = ClassicLevel<Uint8Array, Uint8Array>;
/** classic-level's implementation of batch (abstract-level's private API). */
export type RawBatch = {
  _batch(ops: readonly BatchOp[], options: { sync: boolean }): Promise<void>;
};
export type BatchOp =
  { type: "put"; key: Uint8Array; value: Uint8Array } | { type: "del"; key: Uint8Array };

/** Options of `LevelStorage.open`; the LevelDB ones come from `[rocksdb]` in the config file. */
export interface OpenStorageOptions {
  /** Directory of this node's database; created if missing. */
  readonly dataPath: string;
  /** Recorded on first open; a later open with another id is refused. */
  readonly nodeId: number;
  /** Recorded on first open; a later open with another id is refused. */
  readonly clusterId: string;
  /** LevelDB `maxOpenFiles`. */
  readonly maxOpenFiles?: number;
  /** LevelDB block cache size in bytes. */
  readonly cacheSize?: number;
  /** LevelDB memtable size in bytes. */
  readonly writeBufferSize?: number;
  /** LevelDB block size in bytes. */
  readonly blockSize?: number;
  /** Snappy compression of LevelDB blocks. */
  readonly compression?: boolean;
  /**
   * When false, a new store's identity (format, node id, cluster id) is written only by
   * `stampIdentity()` or by its first write, not at open: a node whose start fails after
   * opening (port in use) leaves an unclaimed store that a corrected config can open.
   * Default true.
   */
  readonly stampIdentity?: boolean;
}

/** What `persist` needs of a Ready: the durable part. */
export type PersistableReady = Pick<Ready, "entries" | "mustSync"> &
  Partial<Pick<Ready, "snapshot" | "hardState" | "compactIndex">>;

/** Where a retried write first applied (its answer is that write's). */
export interface DuplicateOf {
  /** Log index of the write's first application. */
  readonly index: number;
  /** Its term. */
  readonly term: number;
}

/** The outcome of applying one committed entry. */
export type ApplyResult =
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** A leader's no-op, a membership change, or a put. */
      readonly kind: "noop" | "config" | "put";
      /** The put's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** A put of a session that had applied already, and where it first did. */
      readonly duplicateOf?: DuplicateOf;
    }
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** A delete. */
      readonly kind: "delete";
      /** Whether the key existed. */
      readonly found: boolean;
      /** The command's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** A delete of a session that had applied already, and where it first did. */
      readonly duplicateOf?: DuplicateOf;
    }
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** A compare-and-swap. */
      readonly kind: "cas";
      /** Whether the value was swapped. */
      readonly succeeded: boolean;
      /** Whether the key existed before the command. */
      readonly found: boolean;
      /** The value before the command ran (undefined if the key was absent). */
      readonly current: Uint8Array | undefined;
      /** The command's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** A compare-and-swap of a session that had applied already, and where it first did. */
      readonly duplicateOf?: DuplicateOf;
    }
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** A client session opened. */
      readonly kind: "session-open";
      /** Its id: this entry's index. */
      readonly sessionId: number;
      /** The command's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
    }
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** A client session closed. */
      readonly kind: "session-close";
      /** Whether it was open. */
      readonly found: boolean;
      /** The command's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
    }
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** The log's time moved on. */
      readonly kind: "clock";
      /** The sessions it expired. */
      readonly expired: readonly number[];
      /** The command's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
    }
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** The users, roles or permissions changed. */
      readonly kind: "auth";
      /** The auth table's revision afterwards (this entry's index). */
      readonly revision: number;
      /** The command's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
    }
  /** A command the session or auth table refused: nothing changed. */
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** Refused. */
      readonly kind: "refused";
      /** Why, as a stable code. */
      readonly refusal: SessionRefusal | AuthRefusal;
      /** Why, in words. */
      readonly reason: string;
      /** The command's request id, when its proposer tagged it. */
      readonly requestId?: Uint8Array;
    }
  /** A payload that is not a command: every node skips it the same way. */
  | {
      /** Log index of the entry. */
      readonly index: number;
      /** Term of the entry. */
      readonly term: number;
      /** Not a command. */
      readonly kind: "invalid";
      /** Why the payload did not decode. */
      readonly reason: string;
    };
