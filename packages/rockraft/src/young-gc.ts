import type { Message } from "@rockraft/raft-core";
import { getHeapSpaceStatistics } from "node:v8";

/** Fraction of the young generation in use from which the leader collects early. */
export const YOUNG_GC_THRESHOLD = 0.6;
/** The young generation's fill is read on every this many append-carrying Readies. */
export const YOUNG_GC_CHECK_EVERY = 4;
/**
 * Appends of more entries than this mean a busy leader, which is never idle while its
 * followers work: moving its collections gains nothing there, and starting them early would
 * only make more of them.
 */
export const YOUNG_GC_MAX_ENTRIES = 4;

/** What {@link YoungGcScheduler} needs from V8; tests give their own. */
export interface YoungGcHooks {
  /** Runs a young-generation collection now. */
  readonly collect: () => void;
  /** The fraction (0 to 1) of the young generation in use now. */
  readonly fill: () => number;
}

/**
 * Times the leader's young-generation collections (`BuildOptions.youngGc: "scheduled"`).
 *
 * At low load a leader's write waits for a follower's answer for most of its time, and V8
 * collects the young generation wherever its allocation runs out, often while the leader
 * is answering a client or taking a follower's reply: a third to a half of the slowest 1%
 * of 1-client writes overlapped such a pause (`pnpm bench:gc-tail`). The scheduler starts the
 * collection itself once the young generation is {@link YOUNG_GC_THRESHOLD} full, right
 * after the leader has sent its appends, when it has nothing to do but wait for the
 * followers. It makes collections earlier, so somewhat more of them, each shorter, but
 * where the leader would wait anyway. It stays out of the way of a busy leader (appends of
 * more than {@link YOUNG_GC_MAX_ENTRIES} entries), which has no idle time to move them into.
 */
export class YoungGcScheduler {
  private appends = 0;
  private scheduled = false;
  private closed = false;

  constructor(private readonly hooks: YoungGcHooks) {}

  /** A leader's Ready messages went out: the first append among them counts. */
  afterSent(messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.type === "MsgApp" && message.entries.length > 0) {
        this.afterAppendsSent(message.entries.length);
        return;
      }
    }
  }

  /**
   * Called once a Ready's appends (MsgApp with entries) are handed to the transport;
   * `entries`: how many one of them carries.
   */
  afterAppendsSent(entries: number): void {
    if (this.scheduled || this.closed || entries > YOUNG_GC_MAX_ENTRIES) return;
    if (++this.appends % YOUNG_GC_CHECK_EVERY !== 0) return;
    if (this.hooks.fill() < YOUNG_GC_THRESHOLD) return;
    this.scheduled = true;
    // The transport writes its queued messages at the end of this event-loop turn
    // (setImmediate) and Node's HTTP/2 session puts them on the socket on the next one:
    // collect after both, so that the appends are already with the followers.
    setImmediate(() =>
      setImmediate(() => {
        this.scheduled = false;
        if (!this.closed) this.hooks.collect();
      }),
    );
  }

  /** No collection starts after this (one already scheduled is skipped). */
  close(): void {
    this.closed = true;
  }
}

/**
 * V8's hooks when the process exposes the collector (`node --expose-gc`), else undefined.
 */
export function v8YoungGcHooks(): YoungGcHooks | undefined {
  const gc: unknown = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== "function") return undefined;
  const collect = gc as (options: { type: "minor" }) => void;
  return {
    collect: () => collect({ type: "minor" }),
    fill: () => {
      const young = getHeapSpaceStatistics().find((space) => space.space_name === "new_space");
      if (young === undefined) return 0;
      const capacity = young.space_used_size + young.space_available_size;
      return capacity === 0 ? 0 : young.space_used_size / capacity;
    },
  };
}
