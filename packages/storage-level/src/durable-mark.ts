// The durable mark: how many synced writes this store has completed, kept outside LevelDB.
//
// Every synced write through the store carries its number into LevelDB (META_SYNCED_WRITES,
// in the same batch), and once LevelDB reports it durable the number is written to a small
// file beside LevelDB's own. If LevelDB later opens holding a smaller number, it lost writes
// it had reported durable: LevelDB drops a damaged or cut-off tail of its newest log file
// without an error and opens in an older but consistent state, in which the node would vote
// and acknowledge as if it had never promised anything newer.
//
// The file is written only after LevelDB's sync has returned, so it can lag the store but
// never lead it: it never reports damage that is not there. It is not synced on each write
// (that would double the cost of every fsync): it catches damage done while the operating
// system kept running (a process killed, then its log file cut or changed, as an operator's
// probe did) and damage at rest after the mark reached the disk, not a disk that loses the
// newest synced writes in a power failure (the mark on disk is then older still).

import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { crc32 } from "node:zlib";
import { join } from "node:path";
import { StorageError } from "./errors.js";

/** The mark's file in the data path. LevelDB leaves files it does not name alone. */
export const DURABLE_MARK_FILE = "ROCKRAFT-DURABLE-MARK";

/** "RRDM", the count (u64), a CRC32 of both. */
const MAGIC = 0x5252444d;
const SIZE = 16;

function encode(count: number, buffer: Buffer): Buffer {
  buffer.writeUInt32BE(MAGIC, 0);
  buffer.writeBigUInt64BE(BigInt(count), 4);
  buffer.writeUInt32BE(crc32(buffer.subarray(0, 12)), 12);
  return buffer;
}

function decode(bytes: Buffer): number | undefined {
  if (bytes.length !== SIZE || bytes.readUInt32BE(0) !== MAGIC) return undefined;
  if (bytes.readUInt32BE(12) !== crc32(bytes.subarray(0, 12))) return undefined;
  return Number(bytes.readBigUInt64BE(4));
}

export class DurableMark {
  private readonly buffer = Buffer.alloc(SIZE);

  private constructor(
    private fd: number | undefined,
    /** The data path (for errors). */
    private readonly path: string,
  ) {}

  /**
   * What the mark in `path` holds: undefined when there is none (a new store, one written
   * before marks existed) or when it does not decode (a crash while it was first written):
   * the check is then skipped, never failed.
   */
  static read(path: string): number | undefined {
    try {
      return decode(readFileSync(join(path, DURABLE_MARK_FILE)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  /** Opens the mark in `path` for writing, creating it (holding `count`) if needed. */
  static open(path: string, count: number): DurableMark {
    const file = join(path, DURABLE_MARK_FILE);
    let fd: number | undefined;
    try {
      try {
        fd = openSync(file, "r+");
        if (decode(readFileSync(fd)) !== undefined) return new DurableMark(fd, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
        fd = openSync(file, "w+");
      }
      // A new (or unreadable) mark: written whole and synced once, with the directory
      // entry, so that it never reads back as garbage after a crash.
      const mark = new DurableMark(fd, path);
      writeSync(fd, encode(count, mark.buffer), 0, SIZE, 0);
      fsyncSync(fd);
      const dir = openSync(path, "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
      return mark;
    } catch (error) {
      if (fd !== undefined) closeSync(fd);
      throw error;
    }
  }

  /** Records that synced write `count` is durable in LevelDB (STORAGE_IO if it cannot). */
  record(count: number): void {
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, encode(count, this.buffer), 0, SIZE, 0);
    } catch (cause) {
      throw new StorageError(
        "STORAGE_IO",
        this.path,
        `the durable mark ${DURABLE_MARK_FILE} in ${this.path} could not be written: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd);
  }
}
