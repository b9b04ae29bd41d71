// The Ready loop: the one place the Ready duties run, in order (raft-core's contract):
//   1. send the messages that need nothing durable first;
//   2. persist the Ready's durable part (entries, hard state, snapshot, compaction) as one
//      batch, synced when it must be, with its committed entries applied in that batch;
//   3. send the messages that waited for the persist;
//   4. answer what waited for the committed entries (as soon as step 2's batch is under
//      way: committed entries are on a quorum's disks already);
//   5. advance.
// Messages, ticks and requests arrive between Readies and are stepped in at once; the loop
// then takes every Ready until there is none.
import type { RawNode, Ready, ReadState, SnapshotMetadata, SoftState } from "@rockraft/raft-core";
import type { ApplyResult } from "@rockraft/storage-level";
import type { TickClock } from "./clock.js";
import type { NodeStorage, PeerNetwork } from "./seams.js";

/** What the loop tells the rest of the runtime, and asks of it, around each Ready. */
export interface ReadyParts {
  readonly raw: RawNode;
  readonly storage: NodeStorage;
  readonly network: PeerNetwork;
  readonly ticks: TickClock;
  /** Before each Ready: propose queued writes, send queued reads. */
  beforeReady(): void;
  /** The role, term or leader changed. */
  softStateChanged(soft: SoftState): void;
  /** Step 1's messages are sent (the young-generation scheduler counts appends). */
  sent(ready: Ready): void;
  /** A snapshot from the leader is installed. */
  snapshotInstalled(metadata: SnapshotMetadata): void;
  /** Entries are applied (their results, in order). */
  applied(results: readonly ApplyResult[]): void;
  /** Read indexes the leader confirmed. */
  readStates(states: readonly ReadState[]): void;
  /** After advance: housekeeping (staged snapshots, a due snapshot, addresses, reads). */
  afterReady(ready: Ready): Promise<void>;
  /** Nothing is left to do: tell waiters of the new state. */
  idle(): void;
  /** A failure stops the node. */
  fail(error: unknown): void;
}

export class ReadyLoop {
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private stopping = false;
  /** Resolves when the loop has ended (stopped or failed). */
  readonly done: Promise<void>;

  constructor(
    private readonly parts: ReadyParts,
    private readonly failed: () => boolean,
  ) {
    this.done = this.run();
  }

  /** Something arrived: take the Readies it makes. */
  wake(): void {
    this.woken = true;
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  /** Ends the loop after the current Ready. */
  stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    return this.done;
  }

  private async run(): Promise<void> {
    while (!this.stopping && !this.failed()) {
      if (!this.woken) await new Promise<void>((resolve) => (this.wakeUp = resolve));
      this.woken = false;
      if (this.stopping) break;
      try {
        await this.drain();
      } catch (error) {
        this.parts.fail(error);
      }
    }
  }

  /** Takes Readies until there is nothing left to do. */
  private async drain(): Promise<void> {
    const { raw, storage, network, ticks } = this.parts;
    ticks.catchUp();
    this.parts.beforeReady();
    while (raw.hasReady() && !this.stopping && !this.failed()) {
      const ready = raw.ready();
      if (ready.softState !== undefined) this.parts.softStateChanged(ready.softState);
      network.send(ready.messages);
      this.parts.sent(ready);
      // A Ready whose only durable change is the commit index needs no fsync: its hard state
      // rides along with the apply batch below (one write instead of two).
      const commitOnly =
        !ready.mustSync &&
        ready.snapshot === undefined &&
        ready.entries.length === 0 &&
        ready.compactIndex === undefined;
      const committed = ready.committedEntries;
      if (commitOnly) {
        network.send(ready.messagesAfterPersist);
        if (committed.length > 0 || ready.hardState !== undefined) {
          // Resolved once the results are known; the storage writes them with the next
          // Ready's batch (reads see them meanwhile; a crash re-applies them from the log).
          const results = await storage.apply(committed, {
            hardState: ready.hardState,
            waitForWrite: false,
          });
          this.parts.applied(results);
        }
      } else {
        // Committed entries are applied in the same batch as the Ready's durable part
        // (atomic: a crash keeps both or neither). They are on a quorum's disks already, so
        // their callers are answered as soon as that batch is handed to the disk, not once it
        // is synced: the sync is of newer entries. (After a snapshot, once it is installed.)
        const early = ready.snapshot === undefined;
        let answering: { error: unknown } | undefined;
        const results = await storage.persist(ready, {
          apply: committed,
          ...(early && {
            issued: (results: ApplyResult[]) => {
              try {
                this.parts.applied(results);
              } catch (error) {
                answering = { error }; // not the storage's failure: thrown after the write
              }
            },
          }),
        });
        if (answering !== undefined) throw answering.error;
        network.send(ready.messagesAfterPersist);
        if (ready.snapshot !== undefined) this.parts.snapshotInstalled(ready.snapshot.metadata);
        if (!early) this.parts.applied(results);
      }
      this.parts.readStates(ready.readStates);
      // advance() may release reads held for a commit: judge their lease by a current clock.
      ticks.catchUp();
      raw.advance();
      await this.parts.afterReady(ready);
      if (!this.stopping) this.parts.beforeReady();
    }
    this.parts.idle();
  }
}
