// Opening a store: the LevelDB itself (lock, creation), then every check of what it holds
// before anything is written (LevelDB's report of dropped log records, the durable mark,
// format and identity, the log against the hard state and the snapshot).
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ClassicLevel } from "classic-level";
import {
  type LogPosition,
  EMPTY_CONF_STATE,
  MemoryStorage,
  type Entry,
  type HardState,
  type SnapshotMetadata,
} from "@rockraft/raft-core";
import {
  DecodeError,
  decodeEntry,
  decodeHardState,
  decodeMetadata,
  decodePosition,
  decodeU32,
  decodeU64,
  encodeU32,
} from "./codec.js";
import { DURABLE_MARK_FILE, DurableMark } from "./durable-mark.js";
import { StorageError } from "./errors.js";
import { FORMAT_VERSION, REMEDY, convertFormat1, isLevelCorruption, levelCause } from "./format.js";
import {
  LOG_END_KEY,
  LOG_START_KEY,
  META_FORMAT,
  META_GENERATION,
  META_HARD_STATE,
  META_IDENTITY,
  META_LOG_START,
  META_SNAPSHOT,
  META_SYNCED_WRITES,
  STATE_END_KEY,
  STATE_START_KEY,
  generationOf,
  generationRange,
  logKeyIndex,
  stateMetaKey,
} from "./keys.js";
import type { BatchOp, Db, OpenStorageOptions } from "./types.js";

const EMPTY = new Uint8Array(0);

/** A store's state as read at open. */
interface StoreState {
  /** The log, hard state and snapshot metadata raft-core reads. */
  readonly view: MemoryStorage;
  /** The active state machine generation. */
  readonly generation: number;
  /** The state machine's applied position and membership. */
  readonly applied: SnapshotMetadata;
  /** A new store's identity ops, to write once the node has started. */
  readonly unstamped: BatchOp[] | undefined;
}

/** What `loadStore` finds: the state, and the durable mark with its count. */
export interface LoadedStore extends StoreState {
  readonly syncedWrites: number;
  readonly mark: DurableMark;
}

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

/**
 * Opens (creating if needed) the LevelDB at `dataPath`. Refuses a path locked by another
 * process (STORAGE_LOCKED) or that cannot be created or opened (STORAGE_IO).
 */
export async function openDatabase(options: OpenStorageOptions): Promise<{ path: string; db: Db }> {
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
  return { path, db };
}

/**
 * Reads a store's state and checks it before anything is written: LevelDB's own report of
 * dropped log records, the durable mark, format and identity, the log against the hard
 * state and the snapshot. Damage is STORAGE_CORRUPTED, naming what and where.
 */
export async function loadStore(
  path: string,
  db: Db,
  options: OpenStorageOptions,
): Promise<LoadedStore> {
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
  const state = await loadChecked(path, db, options, corrupted, decode);
  let mark: DurableMark | undefined;
  try {
    mark = DurableMark.open(path, syncedWrites);
  } catch (cause) {
    fail(cause);
  }
  return { ...state, syncedWrites, mark: mark! };
}

async function loadChecked(
  path: string,
  db: Db,
  options: OpenStorageOptions,
  corrupted: (what: string, error: unknown) => never,
  decode: <T>(what: string, bytes: Uint8Array, decoder: (bytes: Uint8Array) => T) => T,
): Promise<StoreState> {
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

  return loadState(db, corrupted, decode, format, unstamped);
}

async function loadState(
  db: Db,
  corrupted: (what: string, error: unknown) => never,
  decode: <T>(what: string, bytes: Uint8Array, decoder: (bytes: Uint8Array) => T) => T,
  format: number,
  unstamped: BatchOp[] | undefined,
): Promise<StoreState> {
  const generationBytes = await db.get(META_GENERATION);
  let generation =
    generationBytes === undefined
      ? 1
      : decode("state machine generation", generationBytes, decodeU32);
  if (format === 1) generation = await convertFormat1(db, generation);
  // Format 2 has no sessions: the same bytes are format 3, once marked so (an older version
  // then refuses the store rather than skip the session commands it cannot apply).
  else if (format === 2)
    await db.batch([{ type: "put", key: META_FORMAT, value: encodeU32(FORMAT_VERSION) }], {
      sync: true,
    });
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
  return { view, generation, applied, unstamped };
}

/**
 * Deletes staging leftovers and superseded state machine generations: every one but
 * `active`. Returns the number the next generation may take (above every one seen).
 */
export async function dropOtherGenerations(db: Db, active: number): Promise<number> {
  let next = active + 1;
  let from: Uint8Array = STATE_START_KEY;
  for (;;) {
    const [key] = await db.keys({ gte: from, lt: STATE_END_KEY, limit: 1 }).all();
    if (key === undefined) return next;
    const generation = generationOf(key);
    const range = generationRange(generation);
    if (generation !== active) await db.clear(range);
    if (generation >= next) next = generation + 1;
    from = range.lt;
    if (range.lt[0] !== STATE_START_KEY[0]) return next;
  }
}
