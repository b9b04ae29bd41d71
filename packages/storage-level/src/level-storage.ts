import {
  MemoryStorage,
  type ConfState,
  type Entry,
  type HardState,
  type RaftStorage,
  type SnapshotMetadata,
} from "@rockraft/raft-core";
import {
  encodeEntry,
  encodeHardState,
  encodeMetadata,
  encodePosition,
  encodeU32,
  encodeU64,
} from "./codec.js";
import { DurableMark } from "./durable-mark.js";
import { StorageError } from "./errors.js";
import {
  META_GENERATION,
  META_HARD_STATE,
  META_LOG_START,
  META_SYNCED_WRITES,
  META_SNAPSHOT,
  dataKey,
  generationRange,
  logKey,
  stateMetaKey,
} from "./keys.js";
import { LogTrimmer } from "./log-trim.js";
import { dropOtherGenerations, loadStore, openDatabase } from "./open.js";
import type { AuthState } from "./auth.js";
import {
  applyEntries,
  emptyTables,
  keyString,
  loadTables,
  readValue,
  type Tables,
} from "./state-machine.js";
import { SnapshotInstaller, openSnapshotReader, type SnapshotReader } from "./snapshot.js";
import type {
  ApplyResult,
  BatchOp,
  Db,
  OpenStorageOptions,
  PersistableReady,
  RawBatch,
} from "./types.js";

export type { ApplyResult, DuplicateOf, OpenStorageOptions, PersistableReady } from "./types.js";

export { FORMAT_VERSION } from "./format.js";

const EMPTY = new Uint8Array(0);

/** How long deferred apply ops and trailing log deletes wait for a write to carry them. */
const CARRY_FLUSH_MS = 10;

/**
 * One node's durable state in LevelDB: the Raft log and hard state, the KV state machine,
 * and snapshots. `raftStorage` is the synchronous view raft-core reads; it changes only
 * after the corresponding write is durable.
 */
export class LevelStorage {
  /** Absolute path of the database directory. */
  readonly path: string;
  /** The view raft-core reads: it changes only once a write is durable. */
  readonly raftStorage: RaftStorage;
  private readonly view: MemoryStorage;
  private readonly db: Db;
  private activeGeneration: number;
  private nextGeneration: number;
  private appliedState: SnapshotMetadata;
  private readonly staged = new Map<number, number>();
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Apply ops whose results are out but which are not written yet (`waitForWrite: false`):
   * the next write carries them in its batch, or a flush shortly after.
   */
  private deferred: BatchOp[] = [];
  /** What the deferred ops set, by LevelDB key (null: deleted), for reads meanwhile. */
  private readonly deferredValues = new Map<string, Uint8Array | null>();
  /** The hard state a deferred apply carries (the view takes it once written). */
  private deferredHardState: HardState | undefined;
  /** Writes what waits to be carried (deferred apply ops, trailing deletes) if nothing does. */
  private carryFlush: NodeJS.Timeout | undefined;
  /** Compacted log entries still in LevelDB, deleted by later writes (log-trim.ts). */
  private readonly trimmer: LogTrimmer;
  private failure: StorageError | undefined;
  private failureListener: ((error: StorageError) => void) | undefined;
  private closing: Promise<void> | undefined;
  /** A new store's identity ops, until they are written (see `stampIdentity`). */
  private unstamped: BatchOp[] | undefined;
  /** The number of synced writes completed, and its copy outside LevelDB (durable-mark.ts). */
  private syncedWrites = 0;
  private mark: DurableMark | undefined;
  /** The active generation's client sessions and auth table, loaded whole. */
  private tables: Tables = emptyTables();

  private constructor(
    path: string,
    db: Db,
    view: MemoryStorage,
    generation: number,
    applied: SnapshotMetadata,
  ) {
    this.path = path;
    this.db = db;
    this.view = view;
    this.raftStorage = view;
    this.activeGeneration = generation;
    this.nextGeneration = generation + 1;
    this.appliedState = applied;
    this.trimmer = new LogTrimmer(
      db,
      () => this.scheduleCarry(),
      () => this.closing !== undefined,
    );
  }

  /**
   * Opens (creating if needed) the store at `dataPath`. Refuses a path locked by another
   * process (STORAGE_LOCKED), written for another node or cluster (STORAGE_IDENTITY_MISMATCH)
   * or by a newer format (STORAGE_FORMAT), and corrupt data (STORAGE_CORRUPTED): see open.ts.
   */
  static async open(options: OpenStorageOptions): Promise<LevelStorage> {
    const { path, db } = await openDatabase(options);
    try {
      const loaded = await loadStore(path, db, options);
      const store = new LevelStorage(path, db, loaded.view, loaded.generation, loaded.applied);
      store.unstamped = loaded.unstamped;
      store.syncedWrites = loaded.syncedWrites;
      store.mark = loaded.mark;
      try {
        store.tables = await loadTables(db, loaded.generation, path);
        store.nextGeneration = await dropOtherGenerations(db, loaded.generation);
      } catch (error) {
        loaded.mark.close();
        throw error;
      }
      return store;
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Writes a new store's identity (format, node id, cluster id), once the node has started.
   * Until then another node id or cluster may open the store. Does nothing when it is
   * already written; the first write of any other kind writes it too.
   */
  stampIdentity(): Promise<void> {
    if (this.unstamped === undefined) return Promise.resolve();
    return this.serialized(() => this.write([], true));
  }

  /**
   * `listener` (the last one set) is told of the first failed write, a background one too
   * (deferred applies, trailing deletes): the store stops, and its owner can at once.
   */
  onFailure(listener: (error: StorageError) => void): void {
    this.failureListener = listener;
  }

  /** The state machine's applied position and membership. */
  applied(): SnapshotMetadata {
    return this.appliedState;
  }

  /** The applied state's users, roles and permissions (immutable; each change makes a new one). */
  authState(): AuthState {
    return this.tables.auth.state;
  }

  /** How many client sessions the applied state holds open. */
  openSessions(): number {
    return this.tables.sessions.size;
  }

  /**
   * Persists a Ready's durable part as one LevelDB write batch, synced when the Ready
   * requires it (Ready duty 2): an installed snapshot (switching to its staged state),
   * entries (replacing any conflicting suffix), the hard state and log compaction, all or
   * nothing. The view changes only once the batch is durable.
   *
   * `apply`, when given, are committed entries to apply (Ready duty 4) in the same batch,
   * as {@link LevelStorage.apply} would: atomic with the rest, one synced write instead of
   * two; with a snapshot in the Ready, in a second batch once its state is in place. Returns
   * their results; without a snapshot, `issued` gets them once the batch is handed to
   * LevelDB, before it is durable (reads see what they wrote from then on).
   */
  persist(
    ready: PersistableReady,
    options: {
      apply?: readonly Entry[] | undefined;
      issued?: (results: ApplyResult[]) => void;
    } = {},
  ): Promise<ApplyResult[]> {
    return this.serialized(async () => {
      const view = this.view;
      const ops: BatchOp[] = [];
      const snapshot = ready.snapshot;
      let stagedGeneration: number | undefined;
      let firstKept = view.firstIndex();
      let lastKept = view.lastIndex();
      let stagedTables: Tables | undefined;
      if (snapshot !== undefined) {
        const { index, term } = snapshot.metadata;
        stagedGeneration = this.staged.get(index);
        if (stagedGeneration === undefined) {
          throw new StorageError(
            "STORAGE_SNAPSHOT_INVALID",
            this.path,
            `no staged data for the snapshot at index ${index}: stream it with beginSnapshotInstall before its MsgSnap is stepped`,
          );
        }
        // Read before the switch: a damaged table refuses the install, changing nothing.
        stagedTables = await loadTables(this.db, stagedGeneration, this.path);
        ops.push({ type: "put", key: META_GENERATION, value: encodeU32(stagedGeneration) });
        ops.push({ type: "put", key: META_SNAPSHOT, value: encodeMetadata(snapshot.metadata) });
        ops.push({ type: "put", key: META_LOG_START, value: encodePosition({ index, term }) });
        for (let i = firstKept; i <= lastKept; i++) ops.push({ type: "del", key: logKey(i) });
        firstKept = index + 1;
        lastKept = index;
      }
      const entries = ready.entries.filter((entry) => entry.index >= firstKept);
      const firstNew = entries[0]?.index;
      if (firstNew !== undefined) {
        const lastNew = entries[entries.length - 1]!.index;
        if (firstNew > lastKept + 1) {
          throw new StorageError(
            "STORAGE_CORRUPTED",
            this.path,
            `persist: entry ${firstNew} would leave a gap after ${lastKept}`,
          );
        }
        for (let i = lastNew + 1; i <= lastKept; i++) ops.push({ type: "del", key: logKey(i) });
        for (const entry of entries)
          ops.push({ type: "put", key: logKey(entry.index), value: encodeEntry(entry) });
      }
      if (ready.hardState !== undefined) {
        ops.push({ type: "put", key: META_HARD_STATE, value: encodeHardState(ready.hardState) });
      }
      const compactIndex = snapshot === undefined ? ready.compactIndex : undefined;
      const compacting = compactIndex !== undefined && compactIndex >= firstKept;
      if (compacting) {
        // Only the log start moves in this batch. Deleting the entries themselves (thousands,
        // at the same index on every node) would make this Ready's write, and every write
        // queued behind it, wait for them: later writes carry them instead (see `write`).
        // Entries below the log start are never read, and `open` deletes any a crash left.
        ops.push({
          type: "put",
          key: META_LOG_START,
          value: encodePosition({ index: compactIndex, term: view.term(compactIndex) }),
        });
      }
      const toApply = options.apply ?? [];
      let applying: { results: ApplyResult[]; applied: SnapshotMetadata } | undefined;
      const applyFrom = ops.length;
      if (snapshot === undefined && toApply.length > 0)
        applying = await this.applyOps(toApply, ops);
      const issued = () => {
        if (applying === undefined) return options.issued?.([]);
        this.readable(ops, applyFrom); // while the batch is written, like a deferred apply
        this.appliedState = applying.applied;
        options.issued?.(applying.results);
      };
      if (ops.length > 0) await this.write(ops, ready.mustSync || snapshot !== undefined, issued);
      else issued();

      if (snapshot !== undefined) {
        view.applySnapshot({ metadata: snapshot.metadata, data: EMPTY });
        const previous = this.activeGeneration;
        this.activeGeneration = stagedGeneration!;
        this.tables = stagedTables!;
        this.staged.delete(snapshot.metadata.index);
        this.appliedState = snapshot.metadata;
        await this.db.clear(generationRange(previous));
      }
      if (entries.length > 0) view.append(entries);
      if (ready.hardState !== undefined) view.setHardState(ready.hardState);
      if (compacting) {
        view.compact(compactIndex);
        this.trimmer.compacted(firstKept, compactIndex);
        this.scheduleCarry();
      }
      if (snapshot !== undefined && toApply.length > 0) {
        const afterSnapshot: BatchOp[] = [];
        applying = await this.applyOps(toApply, afterSnapshot);
        if (afterSnapshot.length > 0) await this.write(afterSnapshot, false);
        this.appliedState = applying.applied;
      }
      return applying?.results ?? [];
    });
  }

  /**
   * Applies committed entries to the KV state machine in one write batch that also records
   * the last applied log id (applying again after a crash is exactly once); entries at or
   * below the applied index are skipped. Returns one result per entry applied. The batch is
   * not synced: the log holds these entries durably, and a lost batch is applied again.
   * `hardState`, when given, rides in the same batch (a Ready whose only durable change is
   * the commit index); its term and vote must be the stored ones.
   *
   * With `waitForWrite: false` it resolves once the results are known and defers its
   * writes: the store's next write carries them in its batch (a Ready's `persist`, usually),
   * or a write of their own within 10 ms. `applied()` moves at once; `get`, the next applies
   * and snapshot readers see the deferred data. A failure of that write stops the store.
   */
  apply(
    entries: readonly Entry[],
    options: { hardState?: HardState | undefined; waitForWrite?: boolean } = {},
  ): Promise<ApplyResult[]> {
    return this.serialized(async () => {
      const ops: BatchOp[] = [];
      const hardState = options.hardState;
      if (hardState !== undefined && hardState.commit > this.view.lastIndex()) {
        throw new RangeError(
          `apply: commit index ${hardState.commit} is beyond the log's last index ${this.view.lastIndex()}`,
        );
      }
      const { results, applied } = await this.applyOps(entries, ops);
      if (hardState !== undefined)
        ops.push({ type: "put", key: META_HARD_STATE, value: encodeHardState(hardState) });
      if (ops.length === 0) return results;
      if (options.waitForWrite === false) {
        this.defer(ops, hardState);
        this.appliedState = applied;
        return results;
      }
      await this.write(ops, false);
      this.appliedState = applied;
      if (hardState !== undefined) this.view.setHardState(hardState);
      return results;
    });
  }

  /** Keeps apply ops for the next write (see `apply` with `waitForWrite: false`). */
  private defer(ops: BatchOp[], hardState: HardState | undefined): void {
    for (const op of ops) this.deferred.push(op);
    this.readable(ops, 0);
    if (hardState !== undefined) this.deferredHardState = hardState;
    this.scheduleCarry();
  }

  /** `ops` from `from` on are read from memory until the next write lands (`write` clears). */
  private readable(ops: readonly BatchOp[], from: number): void {
    for (let i = from; i < ops.length; i++) {
      const op = ops[i]!;
      this.deferredValues.set(keyString(op.key), op.type === "put" ? op.value : null);
    }
  }

  /** Unless a write carries what waits (see `write`) soon, one of its own will. */
  private scheduleCarry(): void {
    if (this.closing !== undefined) return; // trailing deletes left, the next open deletes
    this.carryFlush ??= setTimeout(() => {
      this.carryFlush = undefined;
      if (this.failure !== undefined || this.closing !== undefined) return;
      // A failure stops the store and is reported by every later call.
      this.serialized(async () => {
        if (this.deferred.length > 0 || this.trimmer.waiting) await this.write([], false);
      }).catch(() => undefined);
    }, CARRY_FLUSH_MS);
  }

  /** Writes the deferred apply ops now, if there are any. */
  private flushDeferred(): Promise<void> {
    return this.serialized(() => this.writeDeferred());
  }

  /** Within `serialized`: writes the deferred apply ops, if there are any. */
  private async writeDeferred(): Promise<void> {
    if (this.deferred.length > 0) await this.write([], false);
  }

  /** The state machine's side of applying `entries` (state-machine.ts). */
  private applyOps(
    entries: readonly Entry[],
    ops: BatchOp[],
  ): Promise<{ results: ApplyResult[]; applied: SnapshotMetadata }> {
    return applyEntries(entries, ops, {
      generation: this.activeGeneration,
      applied: this.appliedState,
      read: (key) => this.readData(key),
      ...this.tables,
    });
  }

  /** Reads a key from the applied state (not linearizable by itself: see ReadIndex). */
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.assertOpen();
    return this.readData(dataKey(this.activeGeneration, key));
  }

  /** A data key's value: a deferred apply's, else LevelDB's, verified (state-machine.ts). */
  private readData(key: Uint8Array): Promise<Uint8Array | undefined> {
    return readValue(this.db, this.deferredValues, key, this.path);
  }

  /**
   * Records a snapshot at the applied index (the state machine's durable state is the
   * snapshot's data) and puts it in the view; returns its metadata, or undefined when the
   * latest snapshot is already there. The write is synced, which in LevelDB also makes
   * every earlier unsynced apply batch durable: compaction never outruns durable state.
   */
  takeSnapshot(): Promise<SnapshotMetadata | undefined> {
    return this.serialized(async () => {
      const metadata = this.appliedState;
      if (metadata.index <= this.view.snapshot().metadata.index) return undefined;
      await this.write(
        [{ type: "put", key: META_SNAPSHOT, value: encodeMetadata(metadata) }],
        true,
      );
      this.view.setSnapshot({ metadata, data: EMPTY });
      return metadata;
    });
  }

  /**
   * Low level: declares the state machine applied through `index` with `confState` and
   * records a snapshot there, in one synced batch; entries up to `index` will not be
   * applied. For callers that bring the state to that point themselves (and for tests);
   * the runtime uses `takeSnapshot`.
   */
  recordSnapshot(index: number, confState: ConfState): Promise<SnapshotMetadata> {
    return this.serialized(async () => {
      const metadata: SnapshotMetadata = { index, term: this.view.term(index), confState };
      const value = encodeMetadata(metadata);
      await this.write(
        [
          { type: "put", key: META_SNAPSHOT, value },
          { type: "put", key: stateMetaKey(this.activeGeneration), value },
        ],
        true,
      );
      this.view.setSnapshot({ metadata, data: EMPTY });
      this.appliedState = metadata;
      return metadata;
    });
  }

  /**
   * Opens a consistent view of the state machine (one LevelDB read snapshot) to stream as
   * a snapshot, in chunks of about `chunkBytes`. Writes go on meanwhile.
   */
  openSnapshotReader(chunkBytes = 1024 * 1024): Promise<SnapshotReader> {
    // In the queue, after writing what is deferred: the reader holds exactly what
    // `applied()` reports.
    return this.serialized(async () => {
      await this.writeDeferred();
      return openSnapshotReader(this.db, this.activeGeneration, chunkBytes, this.path);
    });
  }

  /**
   * Starts receiving a snapshot's data into a fresh staging generation. When `finish`
   * verifies the checksum, the data is staged for `metadata.index`; the Ready carrying the
   * snapshot then switches to it atomically in `persist`.
   */
  async beginSnapshotInstall(metadata: SnapshotMetadata): Promise<SnapshotInstaller> {
    this.assertOpen();
    const generation = this.nextGeneration++;
    await this.db.clear(generationRange(generation));
    return new SnapshotInstaller(this.db, generation, metadata, this.path, (index, staged) => {
      const previous = this.staged.get(index);
      if (previous !== undefined && previous !== staged)
        void this.db.clear(generationRange(previous));
      this.staged.set(index, staged);
    });
  }

  /** Whether snapshot data streamed in waits for its MsgSnap (see `discardStagedSnapshots`). */
  hasStagedSnapshots(): boolean {
    return this.staged.size > 0;
  }

  /**
   * Deletes the staged data of snapshots at or below `applied` (the state machine's applied
   * index): the core never installs a snapshot at or below it, so it ignored these MsgSnaps
   * and their data would otherwise stay until the next open. (Bound it by the applied
   * index, not the commit index: a snapshot the core accepted moves the commit index to
   * its own at once, while it waits to be installed by the next Ready.)
   */
  async discardStagedSnapshots(applied: number): Promise<void> {
    for (const [index, generation] of [...this.staged]) {
      if (index > applied) continue;
      this.staged.delete(index);
      await this.serialized(() => this.db.clear(generationRange(generation)));
    }
  }

  /** Waits for pending writes, then closes the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.carryFlush);
      this.carryFlush = undefined;
      this.trimmer.stop();
      if (this.failure === undefined) await this.flushDeferred().catch(() => undefined);
      await this.queue.catch(() => undefined);
      await this.trimmer.idle();
      this.failure ??= new StorageError(
        "STORAGE_CLOSED",
        this.path,
        `storage at ${this.path} is closed`,
      );
      try {
        await this.db.close();
      } finally {
        this.mark?.close();
      }
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.failure !== undefined) {
      throw new StorageError("STORAGE_CLOSED", this.path, `storage at ${this.path} is closed`, {
        cause: this.failure.code === "STORAGE_CLOSED" ? undefined : this.failure,
      });
    }
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      this.assertOpen();
      return work();
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Writes `ops` as one batch, after the deferred apply ops (so they land first, and
   * atomically with it). A failed write stops the store: every later call rejects with it
   * as the cause. Only called from within `serialized`. `issued` runs once LevelDB has it.
   */
  private async write(batch: BatchOp[], sync: boolean, issued?: () => void): Promise<void> {
    let ops = batch;
    const unstamped = this.unstamped;
    if (unstamped !== undefined) ops = unstamped.concat(ops);
    const carried = this.deferred.length > 0;
    const carriedHardState = this.deferredHardState;
    if (carried) {
      ops = this.deferred.concat(ops);
      this.deferred = [];
      this.deferredHardState = undefined;
    }
    const trims = this.trimmer.take();
    if (carried || trims !== undefined) {
      clearTimeout(this.carryFlush); // this write carries what waits; the trimmer says if more does
      this.carryFlush = undefined;
    }
    if (trims !== undefined) ops = trims.ops.concat(ops);
    const synced = sync ? this.syncedWrites + 1 : undefined;
    if (synced !== undefined) {
      ops = ops.concat({ type: "put", key: META_SYNCED_WRITES, value: encodeU64(synced) });
    }
    try {
      // Our keys and values are in the database's own "view" format: classic-level's _batch
      // skips abstract-level's per-op checks and encodings (a measurable share of a busy
      // node's CPU); the public batch() while not open (it defers, or reports it closed).
      const writing =
        this.db.status === "open"
          ? (this.db as unknown as RawBatch)._batch(ops, { sync })
          : this.db.batch(ops, { sync });
      issued?.();
      await writing;
      // Serialized: nothing was deferred meanwhile, so every deferred value is in LevelDB.
      this.deferredValues.clear();
      if (carriedHardState !== undefined) this.view.setHardState(carriedHardState);
      if (unstamped !== undefined) this.unstamped = undefined;
      if (synced !== undefined) {
        this.syncedWrites = synced;
        this.mark?.record(synced);
      }
      this.trimmer.written(trims);
    } catch (cause) {
      this.failure =
        cause instanceof StorageError
          ? cause
          : new StorageError(
              "STORAGE_IO",
              this.path,
              `write to ${this.path} failed: ${(cause as Error).message}`,
              { cause },
            );
      try {
        this.failureListener?.(this.failure);
      } catch {
        // The listener's trouble is its own: this write's error is the store's.
      }
      throw this.failure;
    }
  }
}
