// A simulated disk: what one node has written, and how much of it is durable. A write
// changes what the node reads at once; a synced write makes it and every write before it
// durable (as LevelDB's log does); a crash keeps only what is durable. Ops the process
// buffers (LevelStorage's deferred applies) are readable at once but reach the disk only
// with its next write, in the same batch; they die with the process. A disk can be made to
// fail writes (full, or an I/O error).
import type { Entry, HardState, LogPosition, SnapshotMetadata } from "@rockraft/raft-core";

/** Everything a node stores. */
export interface DiskState {
  hardState: HardState | undefined;
  /** The last compacted entry's position. */
  logStart: LogPosition;
  snapshot: SnapshotMetadata | undefined;
  applied: SnapshotMetadata | undefined;
  readonly log: Map<number, Entry>;
  /** The state machine, by key (latin1 of the bytes). */
  kv: Map<string, Uint8Array>;
  /** The state machine's client sessions (encoded records, by id) and log time. */
  sessions: Map<number, Uint8Array>;
  logTime: number;
}

export type DiskOp =
  | { readonly kind: "hardState"; readonly value: HardState }
  | { readonly kind: "logStart"; readonly value: LogPosition }
  | { readonly kind: "snapshot"; readonly value: SnapshotMetadata }
  | { readonly kind: "applied"; readonly value: SnapshotMetadata }
  | { readonly kind: "entry"; readonly index: number; readonly value: Entry | undefined }
  | { readonly kind: "kv"; readonly key: string; readonly value: Uint8Array | undefined }
  | { readonly kind: "kvReplace"; readonly value: ReadonlyMap<string, Uint8Array> }
  | { readonly kind: "session"; readonly id: number; readonly value: Uint8Array | undefined }
  | { readonly kind: "logTime"; readonly value: number }
  | { readonly kind: "sessionsReplace"; readonly value: ReadonlyMap<number, Uint8Array> };

function emptyState(): DiskState {
  return {
    hardState: undefined,
    logStart: { index: 0, term: 0 },
    snapshot: undefined,
    applied: undefined,
    log: new Map(),
    kv: new Map(),
    sessions: new Map(),
    logTime: 0,
  };
}

function applyOp(state: DiskState, op: DiskOp): void {
  switch (op.kind) {
    case "hardState":
      state.hardState = op.value;
      break;
    case "logStart":
      state.logStart = op.value;
      break;
    case "snapshot":
      state.snapshot = op.value;
      break;
    case "applied":
      state.applied = op.value;
      break;
    case "entry":
      if (op.value === undefined) state.log.delete(op.index);
      else state.log.set(op.index, op.value);
      break;
    case "kv":
      if (op.value === undefined) state.kv.delete(op.key);
      else state.kv.set(op.key, op.value);
      break;
    case "kvReplace":
      state.kv = new Map(op.value);
      break;
    case "session":
      if (op.value === undefined) state.sessions.delete(op.id);
      else state.sessions.set(op.id, op.value);
      break;
    case "logTime":
      state.logTime = op.value;
      break;
    case "sessionsReplace":
      state.sessions = new Map(op.value);
      break;
  }
}

function copyState(state: DiskState): DiskState {
  return {
    ...state,
    log: new Map(state.log),
    kv: new Map(state.kv),
    sessions: new Map(state.sessions),
  };
}

export class SimDisk {
  private durable = emptyState();
  /** What the node reads: the durable state and every write since. */
  current = emptyState();
  private pending: DiskOp[] = [];
  /** Held by the process, not yet written: the next write carries them. */
  private buffered: DiskOp[] = [];
  /** When set, every write fails with this error (disk full, I/O error) until cleared. */
  failWrites: string | undefined;
  /** Testing only (a known bug): a synced write is not made durable. */
  unsafeSkipSync = false;
  /** Testing only (a known bug): the state machine ignores writes' session tags. */
  unsafeSessionBlind = false;
  /** Synced writes made (for tests). */
  syncs = 0;

  /** Writes `ops` at once; with `sync`, everything written so far becomes durable. */
  write(ops: readonly DiskOp[], sync: boolean): void {
    if (this.failWrites !== undefined) throw new Error(this.failWrites);
    for (const op of this.buffered) this.pending.push(op);
    this.buffered = [];
    for (const op of ops) {
      applyOp(this.current, op);
      this.pending.push(op);
    }
    if (sync && !this.unsafeSkipSync) {
      this.syncs++;
      for (const op of this.pending) applyOp(this.durable, op);
      this.pending = [];
    }
  }

  /** Whether the process holds ops no write has carried yet. */
  hasBuffered(): boolean {
    return this.buffered.length > 0;
  }

  /** Keeps `ops` in the process: readable at once, written with the next `write`. */
  buffer(ops: readonly DiskOp[]): void {
    for (const op of ops) {
      applyOp(this.current, op);
      this.buffered.push(op);
    }
  }

  /** The machine lost power: what was not durable is gone. */
  crash(): void {
    this.pending = [];
    this.buffered = [];
    this.current = copyState(this.durable);
  }

  /** The process died (SIGKILL): what it buffered is gone; what it wrote, the OS keeps. */
  processDied(): void {
    this.buffered = [];
    this.current = copyState(this.durable);
    for (const op of this.pending) applyOp(this.current, op);
  }

  /** A node removed and added back empty: nothing is left. */
  wipe(): void {
    this.durable = emptyState();
    this.current = emptyState();
    this.pending = [];
  }
}
