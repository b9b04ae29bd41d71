// Snapshot streams: the state machine's data as a sequence of records
// [key length u32][key][value length u32][value], then its client sessions as records
// [0xfffffffe][id u64][length u32][session], the log's time as [0xfffffffd][time u64] and
// the users and roles as [0xfffffffc][length u32][record] (lengths no key can have), cut
// into chunks; the last chunk carries the CRC32 of every byte of every chunk.
import { crc32 } from "node:zlib";
import type { ClassicLevel } from "classic-level";
import type { SnapshotMetadata } from "@rockraft/raft-core";
import {
  DecodeError,
  decodeMetadata,
  decodeU64,
  encodeMetadata,
  encodeU64,
  openValue,
  readU32,
  readU64,
  sealValue,
  writeU32,
  writeU64,
} from "./codec.js";
import { StorageError } from "./errors.js";
import { decodeAuthState } from "./auth.js";
import {
  authKey,
  dataKey,
  dataRange,
  generationRange,
  logTimeKey,
  sessionKey,
  sessionKeyId,
  sessionRange,
  stateMetaKey,
  userKey,
} from "./keys.js";
import { decodeSession } from "./sessions.js";

type Db = ClassicLevel<Uint8Array, Uint8Array>;

/** One piece of a snapshot stream. */
export interface SnapshotChunk {
  /** Byte offset of `data` in the whole stream. */
  readonly offset: number;
  /** The bytes at `offset`. */
  readonly data: Uint8Array;
  /** True on the last chunk, which carries `checksum`. */
  readonly last: boolean;
  /** CRC32 of the whole stream; on the last chunk only. */
  readonly checksum?: number;
}

/** A snapshot of the state machine being read out as a stream of chunks. */
export interface SnapshotReader {
  /** The applied position and membership the data is exactly at. */
  readonly metadata: SnapshotMetadata;
  /** The data, in order; consume once. */
  chunks(): AsyncGenerator<SnapshotChunk>;
  /** Releases the read snapshot (also done when `chunks` finishes). */
  close(): Promise<void>;
}

export async function openSnapshotReader(
  db: Db,
  generation: number,
  chunkBytes: number,
  path: string,
): Promise<SnapshotReader> {
  if (!(chunkBytes >= 1))
    throw new RangeError(`openSnapshotReader: chunkBytes must be >= 1, got ${chunkBytes}`);
  const readSnapshot = db.snapshot();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await readSnapshot.close();
  };
  let metadata: SnapshotMetadata;
  try {
    const bytes = await db.get(stateMetaKey(generation), { snapshot: readSnapshot });
    metadata =
      bytes === undefined
        ? { index: 0, term: 0, confState: { voters: [], learners: [], votersOutgoing: [] } }
        : decodeMetadata(bytes);
  } catch (cause) {
    await close();
    throw new StorageError(
      "STORAGE_CORRUPTED",
      path,
      `data path ${path}: state machine metadata: ${String(cause)}`,
      {
        cause,
      },
    );
  }
  /** What `open` reads from stored bytes (checksum verified); STORAGE_CORRUPTED when damaged. */
  function verified<T>(what: string, open: () => T): T {
    try {
      return open();
    } catch (cause) {
      throw new StorageError(
        "STORAGE_CORRUPTED",
        path,
        `data path ${path}: ${what} in the snapshot is damaged: ${(cause as Error).message}`,
        { cause },
      );
    }
  }
  async function* chunks(): AsyncGenerator<SnapshotChunk> {
    const iterator = db.iterator({ ...dataRange(generation), snapshot: readSnapshot });
    let buffer = new Uint8Array(Math.max(chunkBytes, 64));
    let used = 0;
    let offset = 0;
    let checksum = 0;
    const flush = (last: boolean): SnapshotChunk => {
      const data = buffer.slice(0, used);
      checksum = crc32(data, checksum);
      const chunk: SnapshotChunk = last ? { offset, data, last, checksum } : { offset, data, last };
      offset += used;
      used = 0;
      return chunk;
    };
    const append = (bytes: Uint8Array) => {
      if (used + bytes.byteLength > buffer.byteLength) {
        const grown = new Uint8Array(Math.max(buffer.byteLength * 2, used + bytes.byteLength));
        grown.set(buffer.subarray(0, used));
        buffer = grown;
      }
      buffer.set(bytes, used);
      used += bytes.byteLength;
    };
    const length = new Uint8Array(4);
    try {
      for await (const [key, stored] of iterator) {
        const user = userKey(key);
        // Values travel without their checksum, verified here: damaged data is never sent.
        const value = verified("the stored value of a key", () => openValue(user, stored));
        writeU32(length, 0, user.byteLength);
        append(length);
        append(user);
        writeU32(length, 0, value.byteLength);
        append(length);
        append(value);
        if (used >= chunkBytes) yield flush(false);
      }
      // The sessions as of the same read snapshot, as stored (their checksums verified).
      const sessions = db.iterator({ ...sessionRange(generation), snapshot: readSnapshot });
      try {
        for await (const [key, stored] of sessions) {
          const record = verified("a client session", () => openValue(key, stored));
          append(sessionHeader(SESSION_RECORD, sessionKeyId(key), record.byteLength));
          append(record);
          if (used >= chunkBytes) yield flush(false);
        }
      } finally {
        await sessions.close();
      }
      // Without sessions or time, the stream is as an older version writes it.
      const time = await db.get(logTimeKey(generation), { snapshot: readSnapshot });
      if (time !== undefined)
        append(
          sessionHeader(
            LOG_TIME_RECORD,
            verified("the log time", () => decodeU64(time)),
          ),
        );
      const auth = await db.get(authKey(generation), { snapshot: readSnapshot });
      if (auth !== undefined) {
        const record = verified("the users and roles", () => openValue(authKey(generation), auth));
        const header = new Uint8Array(8);
        writeU32(header, 0, AUTH_RECORD);
        writeU32(header, 4, record.byteLength);
        append(header);
        append(record);
      }
      yield flush(true);
    } finally {
      await iterator.close();
      await close();
    }
  }
  return { metadata, chunks, close };
}

const SESSION_RECORD = 0xfffffffe;
const LOG_TIME_RECORD = 0xfffffffd;
const AUTH_RECORD = 0xfffffffc;

/** A session record's header (marker, id, length), or the log time's record (marker, time). */
function sessionHeader(marker: number, value: number, length?: number): Uint8Array {
  const bytes = new Uint8Array(length === undefined ? 12 : 16);
  writeU32(bytes, 0, marker);
  writeU64(bytes, 4, value);
  if (length !== undefined) writeU32(bytes, 12, length);
  return bytes;
}

/** Receives a snapshot stream into a staging generation; see `LevelStorage.beginSnapshotInstall`. */
export class SnapshotInstaller {
  private received = 0;
  private checksum = 0;
  private remainder = new Uint8Array(0);
  private done = false;

  /** @internal Made by `LevelStorage.beginSnapshotInstall`. */
  constructor(
    private readonly db: Db,
    private readonly generation: number,
    /** The position and membership the snapshot is at. */
    readonly metadata: SnapshotMetadata,
    private readonly path: string,
    private readonly onStaged: (index: number, generation: number) => void,
  ) {}

  /** Writes one chunk; chunks must arrive in order with contiguous offsets. */
  async write(chunk: Pick<SnapshotChunk, "offset" | "data">): Promise<void> {
    if (this.done) throw this.invalid("a chunk arrived after the stream ended");
    if (chunk.offset !== this.received) {
      throw this.invalid(`chunk at offset ${chunk.offset}, expected ${this.received}`);
    }
    this.received += chunk.data.byteLength;
    this.checksum = crc32(chunk.data, this.checksum);
    let bytes = chunk.data;
    if (this.remainder.byteLength > 0) {
      const joined = new Uint8Array(this.remainder.byteLength + bytes.byteLength);
      joined.set(this.remainder);
      joined.set(bytes, this.remainder.byteLength);
      bytes = joined;
    }
    const ops: { type: "put"; key: Uint8Array; value: Uint8Array }[] = [];
    let position = 0;
    for (;;) {
      if (position + 4 > bytes.byteLength) break;
      const keyLength = readU32(bytes, position);
      if (keyLength === LOG_TIME_RECORD) {
        if (position + 12 > bytes.byteLength) break;
        const time = readU64(bytes, position + 4);
        ops.push({ type: "put", key: logTimeKey(this.generation), value: encodeU64(time) });
        position += 12;
        continue;
      }
      if (keyLength === AUTH_RECORD) {
        if (position + 8 > bytes.byteLength) break;
        const end = position + 8 + readU32(bytes, position + 4);
        if (end > bytes.byteLength) break;
        const key = authKey(this.generation);
        const record = bytes.slice(position + 8, end);
        try {
          decodeAuthState(record);
        } catch (cause) {
          throw this.invalid(`the users and roles do not decode: ${(cause as Error).message}`);
        }
        ops.push({ type: "put", key, value: sealValue(key, record) });
        position = end;
        continue;
      }
      if (keyLength === SESSION_RECORD) {
        if (position + 16 > bytes.byteLength) break;
        const end = position + 16 + readU32(bytes, position + 12);
        if (end > bytes.byteLength) break;
        const key = sessionKey(this.generation, readU64(bytes, position + 4));
        const record = bytes.slice(position + 16, end);
        try {
          decodeSession(record);
        } catch (cause) {
          throw this.invalid(`a client session does not decode: ${(cause as Error).message}`);
        }
        ops.push({ type: "put", key, value: sealValue(key, record) });
        position = end;
        continue;
      }
      if (position + 4 + keyLength + 4 > bytes.byteLength) break;
      const valueLength = readU32(bytes, position + 4 + keyLength);
      const end = position + 8 + keyLength + valueLength;
      if (end > bytes.byteLength) break;
      const key = bytes.slice(position + 4, position + 4 + keyLength);
      const value = bytes.slice(position + 8 + keyLength, end);
      ops.push({ type: "put", key: dataKey(this.generation, key), value: sealValue(key, value) });
      position = end;
    }
    this.remainder = bytes.slice(position);
    if (ops.length > 0) await this.db.batch(ops);
  }

  /**
   * Verifies the stream's checksum and stages the data for `metadata.index`. Throws
   * STORAGE_SNAPSHOT_INVALID (and discards the data) on any mismatch.
   */
  async finish(checksum: number): Promise<void> {
    if (this.done) throw this.invalid("the stream already ended");
    this.done = true;
    if (this.remainder.byteLength > 0) {
      await this.abort();
      throw this.invalid(
        `the stream ends inside a record (${this.remainder.byteLength} bytes left over)`,
      );
    }
    if (checksum >>> 0 !== this.checksum >>> 0) {
      await this.abort();
      throw this.invalid(
        `checksum mismatch: received ${this.checksum >>> 0}, expected ${checksum >>> 0}`,
      );
    }
    await this.db.put(stateMetaKey(this.generation), encodeMetadata(this.metadata));
    this.onStaged(this.metadata.index, this.generation);
  }

  /** Discards everything received. */
  async abort(): Promise<void> {
    this.done = true;
    await this.db.clear(generationRange(this.generation));
  }

  private invalid(message: string): StorageError {
    return new StorageError(
      "STORAGE_SNAPSHOT_INVALID",
      this.path,
      `snapshot ${this.metadata.index} for ${this.path}: ${message}`,
      { cause: new DecodeError(message) },
    );
  }
}
