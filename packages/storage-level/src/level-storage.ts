import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ClassicLevel } from "classic-level";
import {
  EMPTY_CONF_STATE,
  MemoryStorage,
  decodeConfState,
  type ConfState,
  type Entry,
  type HardState,
  type RaftStorage,
  type Ready,
  type SnapshotMetadata,
} from "@rockraft/raft-core";
import {
  DecodeError,
  decodeCommand,
  decodeEntry,
  decodeHardState,
  decodeMetadata,
  decodePosition,
  decodeU32,
  decodeU64,
  encodeEntry,
  encodeHardState,
  encodeMetadata,
  encodePosition,
  encodeU32,
  encodeU64,
  openValue,
  sealValue,
  type LogPosition,
} from "./codec.js";
import { DURABLE_MARK_FILE, DurableMark } from "./durable-mark.js";
import { StorageError } from "./errors.js";
import {
  LOG_END_KEY,
  LOG_START_KEY,
  META_FORMAT,
  META_GENERATION,
  META_HARD_STATE,
  META_IDENTITY,
  META_LOG_START,
  META_SYNCED_WRITES,
  META_SNAPSHOT,
  STATE_END_KEY,
  STATE_START_KEY,
  dataKey,
  generationOf,
  generationRange,
  logKey,
  logKeyIndex,
  stateMetaKey,
  userKey,
} from "./keys.js";
import {
  FORMAT_VERSION,
  REMEDY,
  convertFormat1,
  isLevelCorruption,
  levelCause,
  printableKey,
} from "./format.js";
import { SnapshotInstaller, openSnapshotReader, type SnapshotReader } from "./snapshot.js";

export { FORMAT_VERSION } from "./format.js";

type Db = ClassicLevel<Uint8Array, Uint8Array>;
/** classic-level's implementation of batch (abstract-level's private API). */
type RawBatch = { _batch(ops: readonly BatchOp[], options: { sync: boolean }): Promise<void> };
type BatchOp =
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

const EMPTY = new Uint8Array(0);

/**
 * How long deferred apply ops and trailing log deletes wait for a write to carry them before
 * one of their own.
 */
const CARRY_FLUSH_MS = 10;

/**
 * Log entries a compaction removed are deleted from LevelDB a slice at a time, carried by the
 * store's next writes (see `persist`), this many per write.
 */
const TRIM_PER_WRITE = 64;
/**
 * LevelDB is asked to compact the range of deleted log entries (`compactRange`, which also
 * flushes its memtable) once the store has written nothing for this long...
 */
const COMPACT_RANGE_IDLE_MS = 1_000;
/** ...or, under steady load, once this many deleted entries await it, */
const COMPACT_RANGE_ENTRIES = 50_000;
/**
 * ...after a random delay up to this long, so that the nodes of a cluster (which compact
 * their logs at the same index) do not all flush and compact at once.
 */
const COMPACT_RANGE_JITTER_MS = 2_000;

/**
 * What LevelDB's LOG file says it dropped as damaged while it recovered its log at this
 * open (it renames the previous LOG at each open), or undefined. A record cut off at the
 * end of the log (a crash mid-write) is not reported there, nor is it damage.
 */
function droppedLogRecords(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(path, "LOG"), "latin1");
  } catch {
    return undefined;
  }
  const drops = text.match(/dropping \d+ bytes; Corruption: [^\n]*/g);
  if (drops === null) return undefined;
  return drops.length === 1 ? drops[0] : `${drops[0]}, and ${drops.length - 1} more`;
}

function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

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
  /** Log indexes in [trimFrom, trimTo) are compacted away but still in LevelDB. */
  private trimFrom = 0;
  private trimTo = 0;
  /** The log key range to hand to LevelDB's compactRange once the timer fires. */
  private compactPending: { from: number; to: number } | undefined;
  private compactTimer: NodeJS.Timeout | undefined;
  private compactWhenIdle = false;
  /** When the last write ended (performance.now()), for the idle compaction. */
  private lastWriteAt = 0;
  private backgroundCompaction: Promise<void> = Promise.resolve();
  private failure: StorageError | undefined;
  private closing: Promise<void> | undefined;
  /** A new store's identity ops, until they are written (see `stampIdentity`). */
  private unstamped: BatchOp[] | undefined;
  /** The number of synced writes completed, and its copy outside LevelDB (durable-mark.ts). */
  private syncedWrites = 0;
  private mark: DurableMark | undefined;

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
  }

  /**
   * Opens (creating if needed) the store at `dataPath`. Refuses a path locked by another
   * process (STORAGE_LOCKED), written for another node or cluster (STORAGE_IDENTITY_MISMATCH)
   * or by a newer format (STORAGE_FORMAT), and corrupt data (STORAGE_CORRUPTED).
   */
  static async open(options: OpenStorageOptions): Promise<LevelStorage> {
    if (!Number.isSafeInteger(options.nodeId) || options.nodeId <= 0) {
      throw new RangeError(`openStorage: nodeId must be a positive integer, got ${options.nodeId}`);
    }
    if (typeof options.clusterId !== "string" || options.clusterId === "") {
      throw new RangeError("openStorage: clusterId must be a non-empty string");
    }
    const path = resolve(options.dataPath);
    try {
      await mkdir(path, { recursive: true });
    } catch (cause) {
      throw new StorageError(
        "STORAGE_IO",
        path,
        `data path ${path} cannot be created: ${(cause as Error).message}`,
        { cause },
      );
    }
    const db: Db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
      keyEncoding: "view",
      valueEncoding: "view",
    });
    try {
      await db.open({
        createIfMissing: true,
        errorIfExists: false,
        ...(options.maxOpenFiles === undefined ? {} : { maxOpenFiles: options.maxOpenFiles }),
        ...(options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize }),
        ...(options.writeBufferSize === undefined
          ? {}
          : { writeBufferSize: options.writeBufferSize }),
        ...(options.blockSize === undefined ? {} : { blockSize: options.blockSize }),
        ...(options.compression === undefined ? {} : { compression: options.compression }),
      });
    } catch (cause) {
      const inner = (cause as { cause?: { code?: string; message?: string } }).cause;
      if (inner?.code === "LEVEL_LOCKED") {
        throw new StorageError(
          "STORAGE_LOCKED",
          path,
          `data path ${path} is in use by another process (LevelDB lock held)`,
          { cause },
        );
      }
      throw new StorageError(
        "STORAGE_IO",
        path,
        `data path ${path} cannot be opened as LevelDB: ${inner?.message ?? (cause as Error).message}`,
        { cause },
      );
    }
    try {
      return await LevelStorage.load(path, db, options);
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
  }

  private static async load(
    path: string,
    db: Db,
    options: OpenStorageOptions,
  ): Promise<LevelStorage> {
    const corrupted = (what: string, error: unknown): never => {
      const detail = error instanceof DecodeError ? error.message : String(error);
      throw new StorageError(
        "STORAGE_CORRUPTED",
        path,
        `data path ${path}: ${what}: ${detail}. The node cannot start on damaged data: ${REMEDY}`,
        { cause: error },
      );
    };
    const decode = <T>(what: string, bytes: Uint8Array, decoder: (bytes: Uint8Array) => T): T => {
      try {
        return decoder(bytes);
      } catch (error) {
        return corrupted(what, error);
      }
    };

    // LevelDB reports in its LOG file, not to us, the log records it dropped as damaged.
    const dropped = droppedLogRecords(path);
    if (dropped !== undefined) {
      corrupted(
        "log",
        new DecodeError(`LevelDB dropped damaged records while opening the store (${dropped})`),
      );
    }
    // Before anything is written (a new store's identity): a store that lost synced writes.
    const syncedBytes = await db.get(META_SYNCED_WRITES);
    const syncedWrites =
      syncedBytes === undefined ? 0 : decode("synced writes", syncedBytes, decodeU64);
    const fail = (cause: unknown): never => {
      throw new StorageError(
        "STORAGE_IO",
        path,
        `data path ${path}: the durable mark ${DURABLE_MARK_FILE} cannot be read or written: ${(cause as Error).message}`,
        { cause },
      );
    };
    let recorded: number | undefined;
    try {
      recorded = DurableMark.read(path);
    } catch (cause) {
      fail(cause);
    }
    if (recorded !== undefined && recorded > syncedWrites) {
      corrupted(
        "log",
        new DecodeError(
          `LevelDB lost writes it had reported durable: it holds synced write ${syncedWrites}, but ${DURABLE_MARK_FILE} says write ${recorded} had completed (its newest log file was cut short or damaged, or older LevelDB files were put in its place), so this node may have lost log entries and votes it promised (if you emptied the directory on purpose, remove ${DURABLE_MARK_FILE} too)`,
        ),
      );
    }
    const store = await LevelStorage.loadChecked(path, db, options, corrupted, decode);
    try {
      store.mark = DurableMark.open(path, syncedWrites);
    } catch (cause) {
      fail(cause);
    }
    store.syncedWrites = syncedWrites;
    return store;
  }

  private static async loadChecked(
    path: string,
    db: Db,
    options: OpenStorageOptions,
    corrupted: (what: string, error: unknown) => never,
    decode: <T>(what: string, bytes: Uint8Array, decoder: (bytes: Uint8Array) => T) => T,
  ): Promise<LevelStorage> {
    const identity = JSON.stringify({ clusterId: options.clusterId, nodeId: options.nodeId });
    let unstamped: BatchOp[] | undefined;
    let format = FORMAT_VERSION;
    const formatBytes = await db.get(META_FORMAT);
    if (formatBytes === undefined) {
      const anyKey = await db.keys({ limit: 1 }).all();
      if (anyKey.length > 0) {
        // Rockraft's own keys without the marker: the marker was lost (a damaged block at
        // the start of the store), not a foreign database.
        const ours =
          (await db.get(META_IDENTITY)) !== undefined ||
          (await db.keys({ gte: LOG_START_KEY, lt: LOG_END_KEY, limit: 1 }).all()).length > 0;
        if (ours) {
          corrupted(
            "format marker",
            new DecodeError("lost, while the store holds rockraft's log or identity"),
          );
        }
        throw new StorageError(
          "STORAGE_CORRUPTED",
          path,
          `data path ${path}: format marker: missing, but the database is not empty: it is not a rockraft store (point data_path at an empty directory or at this node's own data)`,
        );
      }
      unstamped = [
        { type: "put", key: META_FORMAT, value: encodeU32(FORMAT_VERSION) },
        { type: "put", key: META_IDENTITY, value: new TextEncoder().encode(identity) },
        { type: "put", key: META_GENERATION, value: encodeU32(1) },
      ];
      if (options.stampIdentity !== false) {
        await db.batch(unstamped, { sync: true });
        unstamped = undefined;
      }
    } else {
      format = decode("format marker", formatBytes, decodeU32);
      if (format > FORMAT_VERSION) {
        throw new StorageError(
          "STORAGE_FORMAT",
          path,
          `data path ${path} was written in storage format ${format}; this version reads format ${FORMAT_VERSION} (upgrade rockraft)`,
        );
      }
      const stored = await db.get(META_IDENTITY);
      const storedText = stored === undefined ? "" : new TextDecoder().decode(stored);
      if (storedText !== identity) {
        let who = storedText;
        try {
          const parsed = JSON.parse(storedText) as { clusterId: string; nodeId: number };
          who = `node ${parsed.nodeId} of cluster "${parsed.clusterId}"`;
        } catch {
          corrupted("identity", new DecodeError(`not JSON: ${JSON.stringify(storedText)}`));
        }
        throw new StorageError(
          "STORAGE_IDENTITY_MISMATCH",
          path,
          `data path ${path} belongs to ${who}, not node ${options.nodeId} of cluster "${options.clusterId}"`,
        );
      }
    }

    const store = await LevelStorage.loadState(
      path,
      db,
      options,
      corrupted,
      decode,
      format,
      unstamped,
    );
    return store;
  }

  private static async loadState(
    path: string,
    db: Db,
    options: OpenStorageOptions,
    corrupted: (what: string, error: unknown) => never,
    decode: <T>(what: string, bytes: Uint8Array, decoder: (bytes: Uint8Array) => T) => T,
    format: number,
    unstamped: BatchOp[] | undefined,
  ): Promise<LevelStorage> {
    const generationBytes = await db.get(META_GENERATION);
    let generation =
      generationBytes === undefined
        ? 1
        : decode("state machine generation", generationBytes, decodeU32);
    if (format === 1) generation = await convertFormat1(db, generation);
    const hardStateBytes = await db.get(META_HARD_STATE);
    const hardState: HardState =
      hardStateBytes === undefined
        ? { term: 0, vote: 0, commit: 0 }
        : decode("hard state", hardStateBytes, decodeHardState);
    const snapshotBytes = await db.get(META_SNAPSHOT);
    const snapshot: SnapshotMetadata | undefined =
      snapshotBytes === undefined
        ? undefined
        : decode("snapshot metadata", snapshotBytes, decodeMetadata);
    const logStartBytes = await db.get(META_LOG_START);
    const logStart: LogPosition =
      logStartBytes === undefined
        ? { index: snapshot?.index ?? 0, term: snapshot?.term ?? 0 }
        : decode("log start", logStartBytes, decodePosition);
    const appliedBytes = await db.get(stateMetaKey(generation));
    const applied: SnapshotMetadata =
      appliedBytes === undefined
        ? { index: 0, term: 0, confState: EMPTY_CONF_STATE }
        : decode("state machine's applied index", appliedBytes, decodeMetadata);

    const entries: Entry[] = [];
    // Entries at or below the log start are a compaction's trailing deletes that a stop
    // interrupted (see `persist`): they are deleted now, unread.
    const leftovers: Uint8Array[] = [];
    let expected = logStart.index + 1;
    const logEntries = db.iterator({ gte: LOG_START_KEY, lt: LOG_END_KEY });
    const readLog = async function* () {
      try {
        for await (const item of logEntries) yield item;
      } catch (error) {
        if (isLevelCorruption(error)) corrupted("log", levelCause(error));
        throw error;
      }
    };
    for await (const [key, value] of readLog()) {
      const index = logKeyIndex(key);
      if (index <= logStart.index && entries.length === 0) {
        leftovers.push(key);
        continue;
      }
      const entry = decode(`log entry ${index}`, value, decodeEntry);
      if (entry.index !== index)
        corrupted(`log entry ${index}`, new DecodeError(`holds entry ${entry.index}`));
      if (index !== expected) {
        corrupted(
          "log",
          new DecodeError(
            index < expected
              ? `entry ${index} is out of order after ${expected - 1}`
              : `gap: entry ${index} follows ${expected - 1}`,
          ),
        );
      }
      const previousTerm = entries.length > 0 ? entries[entries.length - 1]!.term : logStart.term;
      if (entry.term < previousTerm) {
        corrupted(
          "log",
          new DecodeError(
            `entry ${index} has term ${entry.term}, below the term ${previousTerm} of the entry before it`,
          ),
        );
      }
      entries.push(entry);
      expected++;
    }

    const view = new MemoryStorage();
    if (snapshot !== undefined) view.setSnapshot({ metadata: snapshot, data: EMPTY });
    view.resetLog(logStart.index, logStart.term);
    view.append(entries);
    view.setHardState(hardState);

    const last = view.lastIndex();
    if (snapshot !== undefined && logStart.index > snapshot.index) {
      corrupted(
        "log",
        new DecodeError(`compacted to ${logStart.index}, past the snapshot at ${snapshot.index}`),
      );
    }
    if (applied.index > last) {
      corrupted(
        "state machine",
        new DecodeError(`applied index ${applied.index} is beyond the log's last index ${last}`),
      );
    }
    const lastTerm = view.term(last);
    if (hardState.term < lastTerm) {
      corrupted(
        "hard state",
        new DecodeError(
          `term ${hardState.term} is below the term ${lastTerm} of the log's last entry ${last} (a lost vote or term)`,
        ),
      );
    }
    if (hardState.commit > last) {
      corrupted(
        "hard state",
        new DecodeError(`commit index ${hardState.commit} is beyond the log's last index ${last}`),
      );
    }
    if (snapshot !== undefined && snapshot.index > applied.index) {
      corrupted(
        "snapshot",
        new DecodeError(
          `at index ${snapshot.index}, ahead of the state machine (applied ${applied.index})`,
        ),
      );
    }

    if (leftovers.length > 0) await db.batch(leftovers.map((key) => ({ type: "del", key })));
    const store = new LevelStorage(path, db, view, generation, applied);
    store.unstamped = unstamped;
    await store.dropOtherGenerations();
    return store;
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

  /** The state machine's applied position and membership. */
  applied(): SnapshotMetadata {
    return this.appliedState;
  }

  /**
   * Persists a Ready's durable part as one LevelDB write batch, synced when the Ready
   * requires it (Ready duty 2): an installed snapshot (switching to its staged state),
   * entries (replacing any conflicting suffix), the hard state and log compaction, all or
   * nothing. The view changes only once the batch is durable.
   *
   * `apply`, when given, are committed entries to apply (Ready duty 4) in the same batch,
   * exactly as {@link LevelStorage.apply} would: atomic with the rest, so "after step 2"
   * holds, and one synced write instead of two. With a snapshot in the Ready they are
   * applied in a second batch, once the snapshot's state is in place. Returns their results.
   */
  persist(
    ready: PersistableReady,
    options: { apply?: readonly Entry[] | undefined } = {},
  ): Promise<ApplyResult[]> {
    return this.serialized(async () => {
      const view = this.view;
      const ops: BatchOp[] = [];
      const snapshot = ready.snapshot;
      let stagedGeneration: number | undefined;
      let firstKept = view.firstIndex();
      let lastKept = view.lastIndex();
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
      if (snapshot === undefined && toApply.length > 0) {
        applying = await this.applyOps(toApply, ops);
      }
      if (ops.length > 0) await this.write(ops, ready.mustSync || snapshot !== undefined);
      if (applying !== undefined) this.appliedState = applying.applied;

      if (snapshot !== undefined) {
        view.applySnapshot({ metadata: snapshot.metadata, data: EMPTY });
        const previous = this.activeGeneration;
        this.activeGeneration = stagedGeneration!;
        this.staged.delete(snapshot.metadata.index);
        this.appliedState = snapshot.metadata;
        await this.db.clear(generationRange(previous));
      }
      if (entries.length > 0) view.append(entries);
      if (ready.hardState !== undefined) view.setHardState(ready.hardState);
      if (compacting) {
        view.compact(compactIndex);
        if (this.trimFrom === this.trimTo) this.trimFrom = firstKept;
        this.trimTo = compactIndex + 1;
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
   * the last applied log id, so that applying again after a crash is exactly once. Entries
   * at or below the applied index are skipped. Returns one result per entry applied.
   *
   * The batch is not synced: the log already holds these entries durably, and a crash at
   * worst loses the batch, which is then applied again from the log.
   *
   * `hardState`, when given, is written in the same batch: a Ready whose only durable change
   * is the commit index (no fsync needed) then costs one write instead of two. Its term and
   * vote must be the stored ones (a change of either needs a synced `persist`).
   *
   * With `waitForWrite: false` it resolves as soon as the results are known, and its
   * writes are deferred: the next write of the store carries them in its batch (a Ready's
   * `persist`, usually), or a flush within 10 ms if none comes. So a
   * commit-only Ready costs no LevelDB write of its own. `applied()` moves at once; `get`,
   * the next applies and snapshot readers see the deferred data; a crash before it is
   * written re-applies it from the log, exactly once, since the applied log id travels in
   * the same batch. A failure of that write stops the store, like any failed write.
   */
  apply(
    entries: readonly Entry[],
    options: { hardState?: HardState | undefined; waitForWrite?: boolean } = {},
  ): Promise<ApplyResult[]> {
    return this.serialized(async () => {
      const ops: BatchOp[] = [];
      const { results, applied } = await this.applyOps(entries, ops);
      const hardState = options.hardState;
      if (hardState !== undefined) {
        if (hardState.commit > this.view.lastIndex()) {
          throw new RangeError(
            `apply: commit index ${hardState.commit} is beyond the log's last index ${this.view.lastIndex()}`,
          );
        }
        ops.push({ type: "put", key: META_HARD_STATE, value: encodeHardState(hardState) });
      }
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
    for (const op of ops) {
      this.deferred.push(op);
      this.deferredValues.set(keyString(op.key), op.type === "put" ? op.value : null);
    }
    if (hardState !== undefined) this.deferredHardState = hardState;
    this.scheduleCarry();
  }

  /** Unless a write carries what waits (see `write`) soon, one of its own will. */
  private scheduleCarry(): void {
    if (this.closing !== undefined) return; // trailing deletes left, the next open deletes
    this.carryFlush ??= setTimeout(() => {
      this.carryFlush = undefined;
      if (this.failure !== undefined || this.closing !== undefined) return;
      // A failure stops the store and is reported by every later call.
      this.serialized(async () => {
        if (this.deferred.length > 0 || this.trimFrom < this.trimTo) await this.write([], false);
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

  /**
   * Log entries [from, to) are deleted: the rest of the trailing deletes waits for the next
   * write (or a write of its own shortly after); once none is left, LevelDB is asked to
   * compact the range, so that the data directory shrinks with the log (deleted entries stay
   * on disk as tombstones until it does).
   */
  private trimmed(from: number, to: number): void {
    this.trimFrom = to;
    if (this.closing !== undefined) return; // what is left, the next open deletes
    const range = this.compactPending;
    this.compactPending = { from: range === undefined ? from : Math.min(range.from, from), to };
    if (this.trimFrom < this.trimTo) {
      this.scheduleCarry();
      return;
    }
    const many = this.compactPending.to - this.compactPending.from >= COMPACT_RANGE_ENTRIES;
    if (many && this.compactWhenIdle) {
      clearTimeout(this.compactTimer);
      this.compactTimer = undefined;
    }
    if (this.compactTimer !== undefined) return; // it compacts the whole pending range
    if (many) this.scheduleCompactRange(Math.random() * COMPACT_RANGE_JITTER_MS, false);
    else this.scheduleCompactRange(COMPACT_RANGE_IDLE_MS, true);
  }

  /**
   * Asks LevelDB to compact the pending range of deleted log entries in `delayMs`; when
   * `whenIdle`, only once the store has written nothing for {@link COMPACT_RANGE_IDLE_MS}
   * (it looks again later otherwise). Compacting flushes LevelDB's memtable and rewrites the
   * files in the range: background work that competes with a loaded node's writes for the
   * CPU, so it waits for a quiet moment unless much is waiting.
   */
  private scheduleCompactRange(delayMs: number, whenIdle: boolean): void {
    this.compactWhenIdle = whenIdle;
    this.compactTimer = setTimeout(() => {
      this.compactTimer = undefined;
      if (this.closing !== undefined || this.compactPending === undefined) return;
      const quietFor = performance.now() - this.lastWriteAt;
      if (whenIdle && quietFor < COMPACT_RANGE_IDLE_MS) {
        this.scheduleCompactRange(COMPACT_RANGE_IDLE_MS - quietFor, true);
        return;
      }
      const start = logKey(this.compactPending.from);
      const end = logKey(this.compactPending.to);
      this.compactPending = undefined;
      this.backgroundCompaction = this.backgroundCompaction
        .then(() => this.db.compactRange(start, end))
        .catch(() => undefined);
    }, delayMs);
    this.compactTimer.unref();
  }

  /**
   * The state machine's side of applying `entries`: appends the data writes and the new
   * applied position to `ops` (nothing when no entry is new) and returns the results and
   * the position, which the caller records once `ops` are written.
   */
  private async applyOps(
    entries: readonly Entry[],
    ops: BatchOp[],
  ): Promise<{ results: ApplyResult[]; applied: SnapshotMetadata }> {
    const generation = this.activeGeneration;
    const overlay = new Map<string, Uint8Array | null>();
    const results: ApplyResult[] = [];
    let { index: lastIndex, term: lastTerm, confState } = this.appliedState;
    const read = async (key: Uint8Array): Promise<Uint8Array | undefined> => {
      const pending = overlay.get(keyString(key));
      // A copy: the value is a view of a log entry (decodeCommand), and callers get it.
      if (pending !== undefined) return pending?.slice() ?? undefined;
      return this.readData(dataKey(generation, key));
    };
    for (const entry of entries) {
      if (entry.index <= lastIndex) continue;
      if (entry.index !== lastIndex + 1) {
        throw new RangeError(
          `apply: entry ${entry.index} does not follow the applied index ${lastIndex}`,
        );
      }
      const { index, term } = entry;
      lastIndex = index;
      lastTerm = term;
      if (entry.type === "config") {
        confState = decodeConfState(entry.data);
        results.push({ index, term, kind: "config" });
        continue;
      }
      if (entry.data.byteLength === 0) {
        results.push({ index, term, kind: "noop" });
        continue;
      }
      let command;
      try {
        command = decodeCommand(entry.data);
      } catch (error) {
        results.push({ index, term, kind: "invalid", reason: (error as Error).message });
        continue;
      }
      const key = keyString(command.key);
      const tag = command.requestId === undefined ? {} : { requestId: command.requestId };
      switch (command.op) {
        case "put":
          overlay.set(key, command.value);
          ops.push({
            type: "put",
            key: dataKey(generation, command.key),
            value: sealValue(command.key, command.value),
          });
          results.push({ index, term, kind: "put", ...tag });
          break;
        case "delete": {
          const found = (await read(command.key)) !== undefined;
          overlay.set(key, null);
          ops.push({ type: "del", key: dataKey(generation, command.key) });
          results.push({ index, term, kind: "delete", found, ...tag });
          break;
        }
        case "cas": {
          const current = await read(command.key);
          const found = current !== undefined;
          const succeeded =
            found === command.expectFound && (!found || sameBytes(current, command.expected));
          if (succeeded) {
            overlay.set(key, command.value);
            ops.push({
              type: "put",
              key: dataKey(generation, command.key),
              value: sealValue(command.key, command.value),
            });
          }
          results.push({ index, term, kind: "cas", succeeded, found, current, ...tag });
          break;
        }
      }
    }
    const applied: SnapshotMetadata = { index: lastIndex, term: lastTerm, confState };
    if (results.length > 0) {
      ops.push({ type: "put", key: stateMetaKey(generation), value: encodeMetadata(applied) });
    }
    return { results, applied: results.length > 0 ? applied : this.appliedState };
  }

  /** Reads a key from the applied state (not linearizable by itself: see ReadIndex). */
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.assertOpen();
    return this.readData(dataKey(this.activeGeneration, key));
  }

  /**
   * A data key's value: a deferred apply's, else LevelDB's, its checksum verified. A value
   * that fails it is never returned: STORAGE_CORRUPTED, which stops the node.
   */
  private async readData(key: Uint8Array): Promise<Uint8Array | undefined> {
    let stored: Uint8Array | null | undefined;
    if (this.deferredValues.size > 0) stored = this.deferredValues.get(keyString(key));
    // A deferred value is shared (the pending batch holds it): callers get a copy of it.
    const shared = stored !== undefined;
    if (stored === undefined) {
      try {
        stored = await this.db.get(key);
      } catch (error) {
        // LevelDB found a damaged table block: the node must stop, not answer per key.
        if (isLevelCorruption(error)) throw this.damagedValue(userKey(key), levelCause(error));
        throw error;
      }
    }
    if (stored === undefined || stored === null) return undefined;
    try {
      const value = openValue(userKey(key), stored);
      return shared ? value.slice() : value;
    } catch (error) {
      throw this.damagedValue(userKey(key), error);
    }
  }

  private damagedValue(key: Uint8Array, error: unknown): StorageError {
    const failure = new StorageError(
      "STORAGE_CORRUPTED",
      this.path,
      `data path ${this.path}: the stored value of key ${printableKey(key)} is damaged: ${(error as Error).message}. The node must not serve it: ${REMEDY}`,
      { cause: error },
    );
    return failure;
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
      clearTimeout(this.compactTimer);
      if (this.failure === undefined) await this.flushDeferred().catch(() => undefined);
      await this.queue.catch(() => undefined);
      await this.backgroundCompaction;
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
   * as the cause. Only called from within `serialized`.
   */
  private async write(batch: BatchOp[], sync: boolean): Promise<void> {
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
    const trimmedTo = Math.min(this.trimTo, this.trimFrom + TRIM_PER_WRITE);
    const trimming = trimmedTo > this.trimFrom;
    if (carried || trimming) {
      clearTimeout(this.carryFlush); // this write carries what waits; `trimmed` says if more does
      this.carryFlush = undefined;
    }
    if (trimming) {
      const trims: BatchOp[] = [];
      for (let i = this.trimFrom; i < trimmedTo; i++) trims.push({ type: "del", key: logKey(i) });
      ops = trims.concat(ops);
    }
    const synced = sync ? this.syncedWrites + 1 : undefined;
    if (synced !== undefined) {
      ops = ops.concat({ type: "put", key: META_SYNCED_WRITES, value: encodeU64(synced) });
    }
    try {
      // Our ops are already Uint8Array keys and values in the database's own "view" format,
      // so the per-op checks and encodings of abstract-level's public batch() (a measurable
      // share of a busy node's CPU) buy nothing: call classic-level's implementation
      // directly when the database is open, and the public method otherwise (it defers
      // while opening and reports a closed database).
      if (this.db.status === "open") await (this.db as unknown as RawBatch)._batch(ops, { sync });
      else await this.db.batch(ops, { sync });
      if (carried) {
        // Serialized: nothing was deferred meanwhile, so every deferred value is in LevelDB.
        this.deferredValues.clear();
        if (carriedHardState !== undefined) this.view.setHardState(carriedHardState);
      }
      if (unstamped !== undefined) this.unstamped = undefined;
      if (synced !== undefined) {
        this.syncedWrites = synced;
        try {
          this.mark?.record(synced);
        } catch (cause) {
          throw new StorageError(
            "STORAGE_IO",
            this.path,
            `the durable mark ${DURABLE_MARK_FILE} in ${this.path} could not be written: ${(cause as Error).message}`,
            { cause },
          );
        }
      }
      this.lastWriteAt = performance.now();
      if (trimming) this.trimmed(this.trimFrom, trimmedTo);
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
      throw this.failure;
    }
  }

  /** Deletes staging leftovers and superseded state machine generations. */
  private async dropOtherGenerations(): Promise<void> {
    let from: Uint8Array = STATE_START_KEY;
    for (;;) {
      const [key] = await this.db.keys({ gte: from, lt: STATE_END_KEY, limit: 1 }).all();
      if (key === undefined) return;
      const generation = generationOf(key);
      const range = generationRange(generation);
      if (generation !== this.activeGeneration) await this.db.clear(range);
      if (generation >= this.nextGeneration) this.nextGeneration = generation + 1;
      from = range.lt;
      if (range.lt[0] !== STATE_START_KEY[0]) return;
    }
  }
}
