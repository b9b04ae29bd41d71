import type { NodeId } from "./types.js";

/**
 * A bounded window of in-flight appends to one follower: the last index and byte size of
 * each unacknowledged MsgApp, oldest first, in a ring buffer that never grows.
 */
export class Inflights {
  private indexes: Float64Array;
  private sizes: Float64Array;
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(
    public capacity: number,
    public maxBytes: number,
  ) {
    this.indexes = new Float64Array(capacity);
    this.sizes = new Float64Array(capacity);
  }

  /**
   * New limits, keeping what is in flight (in order): below the count in flight, the
   * window is full until enough is acknowledged.
   */
  resize(capacity: number, maxBytes: number, room = capacity): void {
    const size = Math.max(room, this.count);
    const indexes = new Float64Array(size);
    const sizes = new Float64Array(size);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.start + i) % this.indexes.length;
      indexes[i] = this.indexes[slot]!;
      sizes[i] = this.sizes[slot]!;
    }
    this.indexes = indexes;
    this.sizes = sizes;
    this.start = 0;
    this.capacity = capacity;
    this.maxBytes = maxBytes;
  }

  add(index: number, bytes: number): void {
    // Only past a shrunk window's old contents: make room, keeping the limits.
    if (this.count === this.indexes.length)
      this.resize(this.capacity, this.maxBytes, this.count + 1);
    const slot = (this.start + this.count) % this.indexes.length;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Frees every in-flight message whose last index is <= `index`. */
  freeLE(index: number): void {
    while (this.count > 0 && this.indexes[this.start]! <= index) {
      this.bytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.indexes.length;
      this.count--;
    }
    if (this.count === 0) this.start = 0;
  }

  /** Frees the oldest in-flight message (it was probably lost). */
  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start]!);
  }

  full(): boolean {
    return this.count >= this.capacity || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

/**
 * How replication to a follower proceeds (etcd's progress states):
 * - `probe`: we do not know where its log matches ours; one MsgApp per heartbeat interval.
 * - `replicate`: its log matches up to `match`; MsgApps are pipelined up to the window.
 * - `snapshot`: it needs a snapshot; nothing is sent until the snapshot's outcome is known.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  // Invariant: match < next.
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** In probe state: a MsgApp is out, wait for its answer or the next heartbeat. */
  msgAppFlowPaused = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round (thesis §6.2). */
  recentActive = false;
  /** The last index of entries this node forwarded to us (MsgProp) or of a read it asked. */
  awaitsCommit = 0;
  /** The commit index our last MsgApp or heartbeat let it reach. */
  sentCommit = 0;
  /**
   * For a member the leader's configuration just removed: the index of the config entry
   * that removed it. The leader keeps replicating to it (it counts toward nothing) until
   * it knows that entry is committed (it acknowledged a heartbeat carrying that commit), so
   * that it learns it was removed and stops campaigning.
   */
  departingAt: number | undefined;
  /** The first heartbeat round that told it (departing) that its removal committed. */
  departedRound: number | undefined;
  /** Election timeouts it has been departing. */
  departingRounds = 0;
  readonly inflights: Inflights;

  constructor(
    readonly id: NodeId,
    next: number,
    maxInflight: number,
    maxInflightBytes: number,
    public isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  becomeProbe(): void {
    // After a snapshot, continue from after the snapshot's index at the earliest.
    if (this.state === "snapshot") {
      const pending = this.pendingSnapshot;
      this.resetState("probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState("probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records MsgApp(s) just sent with `entries` entries ending at `lastIndex`. */
  sentEntries(entries: number, lastIndex: number, bytes: number): void {
    if (this.state === "replicate") {
      if (entries > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === "probe") {
      this.msgAppFlowPaused = true;
    }
  }

  /** An acknowledgement up to `index`; false if it tells us nothing new. */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * A rejection of the MsgApp at `rejected`, with the follower's hint that its log may
   * match up to `matchHint`. False if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.msgAppFlowPaused;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }
}
