// A simulated node storage on a SimDisk: the contract LevelStorage fulfils (seams.ts
// NodeStorage), with writes that take simulated time, one at a time, and can fail. The
// conformance suite (test/storage-conformance.test.ts) runs against both.
import { crc32 } from "node:zlib";
import {
  EMPTY_CONF_STATE,
  MemoryStorage,
  type Entry,
  type HardState,
  type SnapshotMetadata,
} from "@rockraft/raft-core";
import {
  SessionTable,
  AuthTable,
  type AuthState,
  StorageError,
  applyCommands,
  decodeCommand,
  encodeCommand,
  type ApplyResult,
  type PersistableReady,
  type SnapshotChunk,
  type SnapshotReader,
} from "@rockraft/storage-level";
import type { SnapshotSink } from "@rockraft/transport-grpc";
import type { NodeStorage } from "../../src/seams.js";
import type { DiskOp, SimDisk } from "./sim-disk.js";

const EMPTY = new Uint8Array(0);
/** How soon a deferred apply gets a write of its own (LevelStorage's wait). */
const CARRY_FLUSH_MS = 10;
const keyString = (key: Uint8Array) => Buffer.from(key).toString("latin1");
const keyBytes = (key: string) => new Uint8Array(Buffer.from(key, "latin1"));

/** How long a write takes: `sync` ones longer (an fsync). */
export type WriteLatency = (sync: boolean) => number;

/** Sleeps in simulated time (the process's own timers). */
export type Sleep = (ms: number) => Promise<void>;

/** What a snapshot holds: the state machine's pairs, sessions and log time. */
interface State {
  readonly kv: ReadonlyMap<string, Uint8Array>;
  readonly sessions: ReadonlyMap<number, Uint8Array>;
  readonly logTime: number;
}

/** Snapshot data: the pairs and the sessions, each length-prefixed, then the log time. */
function encodeState(state: State): Uint8Array {
  const parts: Buffer[] = [];
  const count = (n: number) => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(n, 0);
    parts.push(header);
  };
  count(state.kv.size);
  for (const [key, value] of [...state.kv].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const k = Buffer.from(key, "latin1");
    const header = Buffer.alloc(8);
    header.writeUInt32BE(k.length, 0);
    header.writeUInt32BE(value.byteLength, 4);
    parts.push(header, k, Buffer.from(value));
  }
  count(state.sessions.size);
  for (const [id, record] of [...state.sessions].sort(([a], [b]) => a - b)) {
    const header = Buffer.alloc(12);
    header.writeUIntBE(id, 0, 6);
    header.writeUInt32BE(record.byteLength, 8);
    parts.push(header, Buffer.from(record));
  }
  const time = Buffer.alloc(8);
  time.writeUIntBE(state.logTime, 2, 6);
  parts.push(time);
  return new Uint8Array(Buffer.concat(parts));
}

function decodeState(bytes: Uint8Array): State {
  // An empty stream (a test's install of nothing) is an empty state.
  if (bytes.byteLength === 0) return { kv: new Map(), sessions: new Map(), logTime: 0 };
  const buffer = Buffer.from(bytes);
  const kv = new Map<string, Uint8Array>();
  const sessions = new Map<number, Uint8Array>();
  let at = 4;
  for (let n = buffer.readUInt32BE(0); n > 0; n--) {
    const keyLength = buffer.readUInt32BE(at);
    const valueLength = buffer.readUInt32BE(at + 4);
    at += 8;
    const key = buffer.subarray(at, at + keyLength).toString("latin1");
    at += keyLength;
    kv.set(key, new Uint8Array(buffer.subarray(at, at + valueLength)));
    at += valueLength;
  }
  let n = buffer.readUInt32BE(at);
  for (at += 4; n > 0; n--) {
    const id = buffer.readUIntBE(at, 6);
    const length = buffer.readUInt32BE(at + 8);
    sessions.set(id, new Uint8Array(buffer.subarray(at + 12, at + 12 + length)));
    at += 12 + length;
  }
  return { kv, sessions, logTime: buffer.readUIntBE(at + 2, 6) };
}

/** The session table a state holds. */
function tableOf(state: State): SessionTable {
  const table = new SessionTable();
  for (const [id, record] of state.sessions) table.load(id, record);
  table.loadTime(state.logTime);
  return table;
}

export class SimStorage implements NodeStorage {
  readonly raftStorage: MemoryStorage;
  private appliedState: SnapshotMetadata;
  private queue: Promise<unknown> = Promise.resolve();
  private failure: StorageError | undefined;
  private failureListener: ((error: StorageError) => void) | undefined;
  private closing: Promise<void> | undefined;
  /** A carry write is scheduled (see scheduleCarry). */
  private carrying = false;
  private readonly staged = new Map<number, State>();
  private sessions: SessionTable;
  private readonly auth = new AuthTable();

  private constructor(
    private readonly disk: SimDisk,
    private readonly sleep: Sleep,
    private readonly latency: WriteLatency,
    private readonly onApplied: (entry: Entry, result: ApplyResult) => void,
  ) {
    const state = disk.current;
    const view = new MemoryStorage();
    if (state.snapshot !== undefined) view.setSnapshot({ metadata: state.snapshot, data: EMPTY });
    view.resetLog(state.logStart.index, state.logStart.term);
    const entries: Entry[] = [];
    for (let i = state.logStart.index + 1; state.log.has(i); i++) entries.push(state.log.get(i)!);
    view.append(entries);
    if (state.hardState !== undefined) view.setHardState(state.hardState);
    this.raftStorage = view;
    this.appliedState = state.applied ?? { index: 0, term: 0, confState: EMPTY_CONF_STATE };
    this.sessions = tableOf(state);
  }

  /** Opens what `disk` holds (after a crash: what was durable). */
  static open(
    disk: SimDisk,
    sleep: Sleep,
    latency: WriteLatency,
    onApplied: (entry: Entry, result: ApplyResult) => void = () => undefined,
  ): SimStorage {
    return new SimStorage(disk, sleep, latency, onApplied);
  }

  applied(): SnapshotMetadata {
    return this.appliedState;
  }

  onFailure(listener: (error: StorageError) => void): void {
    this.failureListener = listener;
  }

  authState(): AuthState {
    return this.auth.state;
  }

  openSessions(): number {
    return this.sessions.size;
  }

  persist(
    ready: PersistableReady,
    options: {
      apply?: readonly Entry[] | undefined;
      issued?: (results: ApplyResult[]) => void;
    } = {},
  ): Promise<ApplyResult[]> {
    return this.serialized(async () => {
      const view = this.raftStorage;
      const ops: DiskOp[] = [];
      const snapshot = ready.snapshot;
      let firstKept = view.firstIndex();
      let lastKept = view.lastIndex();
      let stagedState: State | undefined;
      if (snapshot !== undefined) {
        const { index, term } = snapshot.metadata;
        stagedState = this.staged.get(index);
        if (stagedState === undefined) {
          throw new StorageError(
            "STORAGE_SNAPSHOT_INVALID",
            "sim",
            `no staged data for the snapshot at index ${index}`,
          );
        }
        ops.push({ kind: "kvReplace", value: stagedState.kv });
        ops.push({ kind: "sessionsReplace", value: stagedState.sessions });
        ops.push({ kind: "logTime", value: stagedState.logTime });
        ops.push({ kind: "snapshot", value: snapshot.metadata });
        ops.push({ kind: "applied", value: snapshot.metadata });
        ops.push({ kind: "logStart", value: { index, term } });
        for (let i = firstKept; i <= lastKept; i++)
          ops.push({ kind: "entry", index: i, value: undefined });
        firstKept = index + 1;
        lastKept = index;
      }
      const entries = ready.entries.filter((entry) => entry.index >= firstKept);
      if (entries.length > 0) {
        const firstNew = entries[0]!.index;
        const lastNew = entries[entries.length - 1]!.index;
        if (firstNew > lastKept + 1) {
          throw new StorageError("STORAGE_CORRUPTED", "sim", `entry ${firstNew} leaves a gap`);
        }
        for (let i = lastNew + 1; i <= lastKept; i++)
          ops.push({ kind: "entry", index: i, value: undefined });
        for (const entry of entries) ops.push({ kind: "entry", index: entry.index, value: entry });
      }
      if (ready.hardState !== undefined) ops.push({ kind: "hardState", value: ready.hardState });
      const compactIndex = snapshot === undefined ? ready.compactIndex : undefined;
      const compacting = compactIndex !== undefined && compactIndex >= firstKept;
      if (compacting) {
        ops.push({
          kind: "logStart",
          value: { index: compactIndex, term: view.term(compactIndex) },
        });
        for (let i = firstKept; i <= compactIndex; i++)
          ops.push({ kind: "entry", index: i, value: undefined });
      }
      const toApply = snapshot === undefined ? (options.apply ?? []) : [];
      const applying = await this.applyOps(toApply, ops, stagedState?.kv);
      const issued = options.issued;
      await this.write(
        ops,
        ready.mustSync || snapshot !== undefined,
        issued &&
          (() => {
            this.appliedState = applying.applied ?? this.appliedState;
            issued(applying.results);
          }),
      );
      if (snapshot !== undefined) {
        view.applySnapshot({ metadata: snapshot.metadata, data: EMPTY });
        this.staged.delete(snapshot.metadata.index);
        this.appliedState = snapshot.metadata;
        this.sessions = tableOf(stagedState!);
      }
      this.appliedState = applying.applied ?? this.appliedState;
      if (entries.length > 0) view.append(entries);
      if (ready.hardState !== undefined) view.setHardState(ready.hardState);
      if (compacting) view.compact(compactIndex);
      if (snapshot !== undefined && (options.apply ?? []).length > 0) {
        const after: DiskOp[] = [];
        const more = await this.applyOps(options.apply!, after, undefined);
        await this.write(after, false);
        this.appliedState = more.applied ?? this.appliedState;
        return more.results;
      }
      return applying.results;
    });
  }

  apply(
    entries: readonly Entry[],
    options: { hardState?: HardState | undefined; waitForWrite?: boolean } = {},
  ): Promise<ApplyResult[]> {
    return this.serialized(async () => {
      const ops: DiskOp[] = [];
      const { results, applied } = await this.applyOps(entries, ops, undefined);
      const hardState = options.hardState;
      if (hardState !== undefined) ops.push({ kind: "hardState", value: hardState });
      if (ops.length === 0) return results;
      if (options.waitForWrite === false) {
        // Deferred, as LevelStorage defers it: readable at once, written with the next write
        // (in its batch), durable with a later sync.
        this.disk.buffer(ops);
        this.scheduleCarry();
      } else {
        await this.write(ops, false);
      }
      this.appliedState = applied ?? this.appliedState;
      if (hardState !== undefined) this.raftStorage.setHardState(hardState);
      return results;
    });
  }

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.assertOpen();
    const value = this.disk.current.kv.get(keyString(key));
    return Promise.resolve(value === undefined ? undefined : value.slice());
  }

  takeSnapshot(): Promise<SnapshotMetadata | undefined> {
    return this.serialized(async () => {
      const metadata = this.appliedState;
      if (metadata.index <= this.raftStorage.snapshot().metadata.index) return undefined;
      await this.write([{ kind: "snapshot", value: metadata }], true);
      this.raftStorage.setSnapshot({ metadata, data: EMPTY });
      return metadata;
    });
  }

  /**
   * Declares the state applied through `index` and records a snapshot there (as
   * LevelStorage's `recordSnapshot`), for raft-core's storage suite.
   */
  recordSnapshot(
    index: number,
    confState: SnapshotMetadata["confState"],
  ): Promise<SnapshotMetadata> {
    return this.serialized(async () => {
      const metadata: SnapshotMetadata = { index, term: this.raftStorage.term(index), confState };
      await this.write(
        [
          { kind: "snapshot", value: metadata },
          { kind: "applied", value: metadata },
        ],
        true,
      );
      this.raftStorage.setSnapshot({ metadata, data: EMPTY });
      this.appliedState = metadata;
      return metadata;
    });
  }

  openSnapshotReader(chunkBytes: number): Promise<SnapshotReader> {
    return this.serialized(async () => {
      // As LevelStorage: what deferred applies hold is written first.
      if (this.disk.hasBuffered()) await this.write([], false);
      const metadata = this.appliedState;
      const data = encodeState(this.disk.current);
      const checksum = crc32(data);
      const reader: SnapshotReader = {
        metadata,
        // eslint-disable-next-line @typescript-eslint/require-await -- the contract is async
        async *chunks(): AsyncGenerator<SnapshotChunk> {
          if (data.byteLength === 0) {
            yield { offset: 0, data, last: true, checksum };
            return;
          }
          for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
            const end = Math.min(data.byteLength, offset + chunkBytes);
            const last = end === data.byteLength;
            yield { offset, data: data.subarray(offset, end), last, ...(last ? { checksum } : {}) };
          }
        },
        close: () => Promise.resolve(),
      };
      return Promise.resolve(reader);
    });
  }

  beginSnapshotInstall(metadata: SnapshotMetadata): Promise<SnapshotSink> {
    this.assertOpen();
    const parts: Uint8Array[] = [];
    let received = 0;
    const staged = this.staged;
    return Promise.resolve({
      write(chunk: { offset: number; data: Uint8Array }): Promise<void> {
        if (chunk.offset !== received) {
          return Promise.reject(
            new StorageError(
              "STORAGE_SNAPSHOT_INVALID",
              "sim",
              `chunk at ${chunk.offset}, expected ${received}`,
            ),
          );
        }
        parts.push(chunk.data.slice());
        received += chunk.data.byteLength;
        return Promise.resolve();
      },
      finish(checksum: number): Promise<void> {
        const data = new Uint8Array(Buffer.concat(parts));
        if (crc32(data) !== checksum) {
          return Promise.reject(
            new StorageError("STORAGE_SNAPSHOT_INVALID", "sim", "checksum mismatch"),
          );
        }
        staged.set(metadata.index, decodeState(data));
        return Promise.resolve();
      },
      abort: () => Promise.resolve(),
    });
  }

  hasStagedSnapshots(): boolean {
    return this.staged.size > 0;
  }

  discardStagedSnapshots(applied: number): Promise<void> {
    for (const index of [...this.staged.keys()]) if (index <= applied) this.staged.delete(index);
    return Promise.resolve();
  }

  stampIdentity(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    // As LevelStorage's: what deferred applies buffered is written first, then it closes.
    this.closing ??= (async () => {
      if (this.failure === undefined && this.disk.hasBuffered()) {
        await this.serialized(() => this.write([], false)).catch(() => undefined);
      }
      await this.queue.catch(() => undefined);
      this.failure ??= new StorageError("STORAGE_CLOSED", "sim", "storage is closed");
    })();
    return this.closing;
  }

  // ---- Internals -------------------------------------------------------------------------

  /** As LevelStorage: a deferred apply no write carries gets a write of its own, soon. */
  private scheduleCarry(): void {
    if (this.carrying) return;
    this.carrying = true;
    void this.sleep(CARRY_FLUSH_MS).then(() => {
      this.carrying = false;
      if (this.failure !== undefined) return;
      this.serialized(async () => {
        if (this.disk.hasBuffered()) await this.write([], false);
      }).catch(() => undefined);
    });
  }

  private assertOpen(): void {
    if (this.failure !== undefined) {
      throw new StorageError("STORAGE_CLOSED", "sim", "storage is closed", { cause: this.failure });
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
   * One write: it takes simulated time, then lands on the disk (or fails, stopping the
   * store). With `issued`, its ops are readable at once (held by the process, as LevelStorage
   * holds a batch it handed to LevelDB) and `issued` runs.
   */
  private async write(ops: readonly DiskOp[], sync: boolean, issued?: () => void): Promise<void> {
    if (issued !== undefined) {
      this.disk.buffer(ops);
      issued();
    }
    await this.sleep(this.latency(sync));
    try {
      this.disk.write(issued === undefined ? ops : [], sync);
    } catch (cause) {
      this.failure = new StorageError(
        "STORAGE_IO",
        "sim",
        `write failed: ${(cause as Error).message}`,
        {
          cause,
        },
      );
      try {
        this.failureListener?.(this.failure);
      } catch {
        // The listener's trouble is its own: this write's error is the store's.
      }
      throw this.failure;
    }
  }

  /** The state machine's side of applying `entries`: the production one (applyCommands). */
  private async applyOps(
    entries: readonly Entry[],
    ops: DiskOp[],
    base: ReadonlyMap<string, Uint8Array> | undefined,
  ): Promise<{ results: ApplyResult[]; applied: SnapshotMetadata | undefined }> {
    const kv = base ?? this.disk.current.kv;
    const { results, applied } = await applyCommands(
      this.disk.unsafeSessionBlind ? entries.map(withoutSession) : entries,
      this.appliedState,
      (key) => kv.get(keyString(key))?.slice(),
      (key, value) => ops.push({ kind: "kv", key: keyString(key), value: value?.slice() }),
      this.sessions,
      // The simulated workload changes no user or role: a table of its own, never stored.
      this.auth,
    );
    const changed = this.sessions.changes();
    for (const [id, value] of changed.sessions) ops.push({ kind: "session", id, value });
    if (changed.time !== undefined) ops.push({ kind: "logTime", value: changed.time });
    if (results.length === 0) return { results, applied: undefined };
    const byIndex = new Map(entries.map((entry) => [entry.index, entry]));
    for (const result of results) this.onApplied(byIndex.get(result.index)!, result);
    ops.push({ kind: "applied", value: applied });
    return { results, applied };
  }
}

/** The entry with its write's session tag dropped (the session-blind mutation). */
function withoutSession(entry: Entry): Entry {
  if (entry.type !== "normal" || entry.data.byteLength === 0) return entry;
  try {
    const command = decodeCommand(entry.data);
    if (!("session" in command) || command.session === undefined) return entry;
    const { session: _dropped, ...rest } = command;
    return { ...entry, data: encodeCommand(rest) };
  } catch {
    return entry;
  }
}

export { keyBytes };
