// Trailing deletes of a compacted log: a compaction moves only the log start in the Ready's
// batch (deleting thousands of entries there would make that write, and every write queued
// behind it, wait for them, on every node at once). The entries are deleted a slice at a
// time by the store's next writes, and then LevelDB is asked to compact their key range so
// that the data directory shrinks with the log.
import { logKey } from "./keys.js";
import type { BatchOp, Db } from "./types.js";

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

/** The deletes one write carries: log entries [from, to). */
export interface Trims {
  readonly ops: BatchOp[];
  readonly from: number;
  readonly to: number;
}

export class LogTrimmer {
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

  constructor(
    private readonly db: Db,
    /** Asks for a write of its own soon, if nothing else writes. */
    private readonly scheduleCarry: () => void,
    private readonly closing: () => boolean,
  ) {}

  /** Whether compacted entries wait to be deleted. */
  get waiting(): boolean {
    return this.trimFrom < this.trimTo;
  }

  /** The log was compacted through `compactIndex`; `firstKept` was its first entry. */
  compacted(firstKept: number, compactIndex: number): void {
    if (this.trimFrom === this.trimTo) this.trimFrom = firstKept;
    this.trimTo = compactIndex + 1;
  }

  /** The deletes the next write carries, if any wait ({@link TRIM_PER_WRITE} at most). */
  take(): Trims | undefined {
    const to = Math.min(this.trimTo, this.trimFrom + TRIM_PER_WRITE);
    if (to <= this.trimFrom) return undefined;
    const ops: BatchOp[] = [];
    for (let i = this.trimFrom; i < to; i++) ops.push({ type: "del", key: logKey(i) });
    return { ops, from: this.trimFrom, to };
  }

  /** A write landed, carrying `trims` if it did. */
  written(trims: Trims | undefined): void {
    this.lastWriteAt = performance.now();
    if (trims !== undefined) this.trimmed(trims.from, trims.to);
  }

  /** No more compaction (the store closes); `idle` waits for one under way. */
  stop(): void {
    clearTimeout(this.compactTimer);
  }

  idle(): Promise<void> {
    return this.backgroundCompaction;
  }

  /**
   * Log entries [from, to) are deleted: the rest of the trailing deletes waits for the next
   * write (or a write of its own shortly after); once none is left, LevelDB is asked to
   * compact the range, so that the data directory shrinks with the log (deleted entries stay
   * on disk as tombstones until it does).
   */
  private trimmed(from: number, to: number): void {
    this.trimFrom = to;
    if (this.closing()) return; // what is left, the next open deletes
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
      if (this.closing() || this.compactPending === undefined) return;
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
}
