import { describe, expect, test } from "vitest";
import type { ApplyResult } from "@rockraft/storage-level";
import { RockraftError } from "../src/index.js";
import { ProposalTracker, requestKey, type AppliedWrite, type Proposal } from "../src/proposals.js";
import { systemClock } from "../src/seams.js";

const id = (text: string) => new TextEncoder().encode(text);

/** A proposal whose promise is observable, with a deadline `ms` from now. */
function proposal(name: string, ms: number) {
  let resolve!: (applied: AppliedWrite) => void;
  let reject!: (error: Error) => void;
  const settled = new Promise<AppliedWrite>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const outcome = settled.then(
    (applied) => ({ ok: true as const, index: applied.logId.index }),
    (error: RockraftError) => ({
      ok: false as const,
      code: error.code,
      unknown: error.outcomeUnknown,
    }),
  );
  const entry: Proposal = {
    data: id(name),
    requestId: requestKey(id(name)),
    resolve,
    reject,
    deadline: Date.now() + ms,
  };
  return { entry, outcome };
}

const put = (index: number, name: string): ApplyResult => ({
  index,
  term: 2,
  kind: "put",
  requestId: id(name),
});
const logId = (index: number) => ({ term: 2, nodeId: 1, index });

describe("a leader that reuses a log index for a new write (its uncommitted tail was cut)", () => {
  test("both writes settle: the one applied there succeeds, the other is dropped", async () => {
    const tracker = new ProposalTracker(systemClock);
    const old = proposal("old", 60_000);
    const fresh = proposal("new", 60_000);
    tracker.proposedAt(7, old.entry);
    tracker.proposedAt(7, fresh.entry);
    tracker.applied(put(7, "new"), logId(7));
    expect(await fresh.outcome).toEqual({ ok: true, index: 7 });
    expect(await old.outcome).toEqual({ ok: false, code: "RAFT_PROPOSAL_DROPPED", unknown: false });
    expect(tracker.size).toBe(0);
  });

  test("the older write's deadline does not take the newer one's place with it", async () => {
    const tracker = new ProposalTracker(systemClock);
    const old = proposal("old", 10);
    const fresh = proposal("new", 60_000);
    tracker.proposedAt(7, old.entry);
    tracker.proposedAt(7, fresh.entry);
    expect(await old.outcome).toEqual({ ok: false, code: "RAFT_TIMEOUT", unknown: true });
    tracker.applied(put(7, "new"), logId(7));
    expect(await fresh.outcome).toEqual({ ok: true, index: 7 });
  });

  test("the newer write's deadline settles it, and the older still settles when index 7 applies", async () => {
    const tracker = new ProposalTracker(systemClock);
    const old = proposal("old", 60_000);
    const fresh = proposal("new", 10);
    tracker.proposedAt(7, old.entry);
    tracker.proposedAt(7, fresh.entry);
    expect(await fresh.outcome).toEqual({ ok: false, code: "RAFT_TIMEOUT", unknown: true });
    // A later leader may still commit the older entry at index 7 (it was never overwritten
    // everywhere): it succeeds.
    tracker.applied(put(7, "old"), logId(7));
    expect(await old.outcome).toEqual({ ok: true, index: 7 });
    expect(tracker.size).toBe(0);
  });
});

describe("forwarded writes", () => {
  test("are found by request id wherever they land", async () => {
    const tracker = new ProposalTracker(systemClock);
    const write = proposal("fwd", 60_000);
    tracker.forwardedToLeader(write.entry);
    tracker.applied(put(3, "other"), logId(3));
    tracker.applied(put(4, "fwd"), logId(4));
    expect(await write.outcome).toEqual({ ok: true, index: 4 });
  });

  test("one the transport could not send fails with the given error", async () => {
    const tracker = new ProposalTracker(systemClock);
    const write = proposal("fwd", 60_000);
    tracker.forwardedToLeader(write.entry);
    tracker.dropForwarded(
      write.entry.requestId,
      new RockraftError("RAFT_PROPOSAL_DROPPED", "unreachable"),
    );
    expect(await write.outcome).toEqual({
      ok: false,
      code: "RAFT_PROPOSAL_DROPPED",
      unknown: false,
    });
  });
});

test("stopping rejects every waiting write", async () => {
  const tracker = new ProposalTracker(systemClock);
  const a = proposal("a", 60_000);
  const b = proposal("b", 60_000);
  tracker.proposedAt(5, a.entry);
  tracker.forwardedToLeader(b.entry);
  tracker.rejectAll(new RockraftError("RAFT_NODE_STOPPED", "stopped", { outcomeUnknown: true }));
  expect(await a.outcome).toEqual({ ok: false, code: "RAFT_NODE_STOPPED", unknown: true });
  expect(await b.outcome).toEqual({ ok: false, code: "RAFT_NODE_STOPPED", unknown: true });
  expect(tracker.size).toBe(0);
});
