// Writes on their way into the log: queued as they arrive, proposed together at the next
// wake-up (one batch of entries), then tracked until applied (proposals.ts).
import { NONE, RaftError, type Message, type NodeId, type RawNode } from "@rockraft/raft-core";
import { decodeCommand, encodeCommand, type Command } from "@rockraft/storage-level";
import { RockraftError } from "./errors.js";
import { ProposalTracker, requestKey, type AppliedWrite, type Proposal } from "./proposals.js";
import type { Clock } from "./seams.js";

export class Proposer {
  private queued: Proposal[] = [];
  private counter = 0;

  /**
   * `prefix` (8 bytes, random per process) starts every request id, so that ids never
   * repeat across restarts: a node finds its forwarded writes again by their id when it
   * applies them.
   */
  constructor(
    private readonly prefix: Uint8Array,
    readonly tracker: ProposalTracker,
    private readonly clock: Clock,
    private readonly addressOf: (id: NodeId) => string | undefined,
    private readonly onProposed: (count: number) => void = () => {},
    /** Testing only (a known bug): answer puts once appended, before commit and apply. */
    private readonly unsafeAnswerWhenAppended = false,
  ) {}

  /** Queues `command`; resolves once its entry is applied here. */
  submit(command: Command, deadline: number): Promise<AppliedWrite> {
    const id = this.nextRequestId();
    return new Promise((resolve, reject) => {
      this.queued.push({
        data: encodeCommand({ ...command, requestId: id }),
        requestId: requestKey(id),
        resolve,
        reject,
        deadline,
      });
    });
  }

  /** Whether writes wait to be proposed. */
  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  /**
   * Proposes the queued writes as one batch. On a follower raft-core forwards them to the
   * leader (MsgProp); each is found again by its request id when applied here.
   */
  flush(raw: RawNode): void {
    if (this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    const now = this.clock.now();
    const live = batch.filter((p) => {
      if (p.deadline > now) return true;
      p.reject(
        new RockraftError("RAFT_TIMEOUT", "the write's deadline passed before it was proposed"),
      );
      return false;
    });
    if (live.length === 0) return;
    let position: { index: number; term: number } | undefined;
    try {
      position = raw.propose(live.map((p) => p.data));
    } catch (error) {
      const dropped =
        error instanceof RaftError
          ? new RockraftError("RAFT_PROPOSAL_DROPPED", error.message, {
              reason: error.reason,
              leader:
                error.leader === NONE
                  ? undefined
                  : { id: error.leader, addr: this.addressOf(error.leader) },
              cause: error,
            })
          : (error as Error);
      for (const proposal of live) proposal.reject(dropped);
      return;
    }
    this.onProposed(live.length);
    if (position === undefined) {
      // Forwarded to the leader by raft-core (MsgProp): each is found again by its request
      // id when applied here (or failed by `dropped` if the network could not send it).
      for (const proposal of live) this.tracker.forwardedToLeader(proposal);
      return;
    }
    live.forEach((proposal, i) => {
      const index = position.index + i;
      if (this.unsafeAnswerWhenAppended && decodeCommand(proposal.data).op === "put") {
        const logId = { term: position.term, nodeId: NONE, index };
        proposal.resolve({ result: { index, term: position.term, kind: "put" }, logId });
        return;
      }
      this.tracker.proposedAt(index, proposal);
    });
  }

  /** Proposals inside MsgProps the network dropped unsent: they fail now, safely. */
  dropped(messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.type !== "MsgProp") continue;
      for (const entry of message.entries) {
        let requestId: Uint8Array | undefined;
        try {
          requestId = decodeCommand(entry.data).requestId;
        } catch {
          continue;
        }
        if (requestId === undefined) continue;
        this.tracker.dropForwarded(
          requestKey(requestId),
          new RockraftError(
            "RAFT_PROPOSAL_DROPPED",
            `the write could not be sent to leader ${message.to}; it was not proposed`,
            { reason: "unreachable" },
          ),
        );
      }
    }
  }

  /** Rejects the queued writes with `error`, and the tracked ones with `tracked`. */
  rejectAll(error: Error, tracked: Error): void {
    for (const proposal of this.queued) proposal.reject(error);
    this.queued = [];
    this.tracker.rejectAll(tracked);
  }

  private nextRequestId(): Uint8Array {
    const id = new Uint8Array(12);
    id.set(this.prefix.subarray(0, 8));
    const counter = ++this.counter >>> 0; // big-endian, byte by byte: no DataView per write
    id[8] = counter >>> 24;
    id[9] = counter >>> 16;
    id[10] = counter >>> 8;
    id[11] = counter;
    return id;
  }
}
