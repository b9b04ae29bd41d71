// The durable mark: how many synced writes this store has completed, kept outside LevelDB.
//
// Every synced write carries its number into LevelDB (META_SYNCED_WRITES, in the same
// batch), and once LevelDB reports it durable the number is written to a small file beside
// LevelDB's own. If LevelDB later opens holding a smaller number, it lost writes it had
// reported durable: its newest log file was truncated or damaged, or a disk did not keep
// what it acknowledged. Without this the store would open in an older but consistent state
// (LevelDB drops a damaged log tail silently), and the node would vote and acknowledge as if
// it had never promised anything newer.
//
// The file is written only after LevelDB's sync has returned, so it can lag the store (a
// crash between the two, or a power loss that drops the unsynced file write) but never lead
// it: it never reports damage that is not there. It is not synced itself: a lost update only
// weakens the check for that one write.

import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";

/** The mark's file in the data path. LevelDB leaves files it does not name alone. */
export const DURABLE_MARK_FILE = "ROCKRAFT-DURABLE-MARK";

export class DurableMark {
  private readonly buffer = Buffer.alloc(8);

  private constructor(private fd: number | undefined) {}

  /**
   * Opens (or creates) the mark in `path`; `recorded` is what it holds, or undefined when
   * there is no mark yet (a new store, or one written before marks existed).
   */
  static open(path: string): { mark: DurableMark; recorded: number | undefined } {
    const file = join(path, DURABLE_MARK_FILE);
    let recorded: number | undefined;
    let fd: number;
    try {
      fd = openSync(file, "r+");
      const bytes = readFileSync(fd);
      if (bytes.length === 8) recorded = Number(bytes.readBigUInt64BE(0));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      fd = openSync(file, "w+");
    }
    return { mark: new DurableMark(fd), recorded };
  }

  /** Records that synced write `count` is durable in LevelDB. */
  record(count: number): void {
    if (this.fd === undefined) return;
    this.buffer.writeBigUInt64BE(BigInt(count), 0);
    writeSync(this.fd, this.buffer, 0, 8, 0);
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
