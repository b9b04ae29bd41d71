import { describe, expect, test } from "vitest";
import type { RawNode } from "@rockraft/raft-core";
import { RockraftError } from "../src/errors.js";
import { ReadBatcher } from "../src/reads.js";
import type { Clock } from "../src/seams.js";

/** A clock whose time moves only when told; its timers fire as it passes them. */
function manualClock() {
  let now = 0;
  const timers: { at: number; run: () => void; cancelled: boolean }[] = [];
  const clock: Clock = {
    now: () => now,
    monotonic: () => now,
    setTimeout: (run, ms) => {
      const timer = { at: now + ms, run, cancelled: false };
      timers.push(timer);
      return timer;
    },
    setInterval: () => {
      throw new Error("not used");
    },
    clear: (timer) => {
      if (timer !== undefined) (timer as { cancelled: boolean }).cancelled = true;
    },
  };
  const advance = async (ms: number) => {
    now += ms;
    for (const timer of timers.splice(0)) {
      if (timer.cancelled) continue;
      if (timer.at <= now) timer.run();
      else timers.push(timer);
    }
    await Promise.resolve();
  };
  /** Timers armed and not yet cancelled or fired. */
  const armed = () => timers.filter((timer) => !timer.cancelled).length;
  return { clock, advance, armed };
}

/**
 * Node 2's raw node, which accepts read requests and remembers their contexts; leader 1 in
 * term 2.
 */
function rawNode() {
  const contexts: string[] = [];
  const soft = { lead: 1, term: 2, role: "follower" };
  const raw = {
    id: 2,
    readIndex: (context: string) => contexts.push(context),
    softState: () => soft,
  } as unknown as RawNode;
  return { raw, contexts, soft };
}

/** A ReadBatcher on a manual clock and a raw node, counting the wake-ups it asks for. */
function batcher() {
  const { clock, advance, armed } = manualClock();
  const woken = { count: 0 };
  const reads = new ReadBatcher("p/", clock, () => void woken.count++);
  return { clock, advance, armed, reads, woken, ...rawNode() };
}

describe("ReadBatcher", () => {
  test("a read the leader never confirms fails at its deadline, without another Ready", async () => {
    // Found by the whole-node simulation: a follower cut off from its leader held reads
    // until something else happened, past their deadlines.
    const { clock, advance, reads, raw } = batcher();
    const outcome = reads.request(100).catch((error: unknown) => error);
    reads.flush(raw, clock.now());
    await advance(99);
    await advance(1);
    const error = await outcome;
    expect(error).toBeInstanceOf(RockraftError);
    expect((error as RockraftError).code).toBe("RAFT_TIMEOUT");
  });

  test("reads that arrive together share one context; a confirmation answers each once", async () => {
    const { clock, reads, raw, contexts } = batcher();
    const a = reads.request(1_000);
    const b = reads.request(1_000);
    reads.flush(raw, clock.now());
    expect(contexts).toEqual(["p/1"]);
    reads.confirmed([{ index: 7, context: "p/1" }]);
    reads.confirmed([{ index: 9, context: "p/1" }]); // a second answer is ignored
    expect([await a, await b]).toEqual([7, 7]);
    reads.expire();
    expect(reads.hasSent).toBe(false);
  });

  test("a lost leader fails the reads it was confirming; queued ones wait for the next", async () => {
    const { clock, reads, raw } = batcher();
    const sent = reads.request(1_000).catch((error: unknown) => (error as RockraftError).code);
    reads.flush(raw, clock.now());
    reads.leaderLost(new RockraftError("RAFT_NO_LEADER", "lost"));
    expect(await sent).toBe("RAFT_NO_LEADER");
  });

  test("a leader change fails only the batches sent to another leader or in another term", async () => {
    const { clock, reads, raw, soft } = batcher();
    const outcome = (read: Promise<number>) =>
      read.catch((error: unknown) => (error as RockraftError).code);
    const toOld = outcome(reads.request(1_000));
    reads.flush(raw, clock.now()); // to leader 1, term 2
    Object.assign(soft, { lead: 3, term: 3 }); // the node learns of leader 3...
    const toNew = outcome(reads.request(1_000));
    reads.flush(raw, clock.now()); // ...and sends this one there, before its Ready says so
    reads.leaderLost(new RockraftError("RAFT_NO_LEADER", "changed"), { lead: 3, term: 3 });
    expect(await toOld).toBe("RAFT_NO_LEADER");
    expect(reads.hasSent).toBe(true);
    reads.confirmed([{ index: 5, context: "p/2" }]);
    expect(await toNew).toBe(5);
  });

  test("a request the network dropped unsent is sent again after a pause, with a new context", async () => {
    const { clock, advance, reads, raw, contexts, woken } = batcher();
    const read = reads.request(1_000);
    reads.flush(raw, clock.now());
    const request = { type: "MsgReadIndex", from: 2, to: 1, term: 0, context: "p/1" } as const;
    reads.dropped([request]);
    reads.dropped([request]); // reported twice: sent again once
    expect(reads.hasQueued).toBe(false);
    await advance(50);
    expect([reads.hasQueued, woken.count]).toEqual([true, 1]);
    reads.flush(raw, clock.now());
    expect(contexts).toEqual(["p/1", "p/2"]);
    reads.confirmed([{ index: 7, context: "p/1" }]); // the dropped request has no answer
    reads.confirmed([{ index: 8, context: "p/2" }]);
    expect(await read).toBe(8);
  });

  test("reads waiting to be sent again fail at their deadline, or when the node stops", async () => {
    const { clock, advance, reads, raw, woken } = batcher();
    const early = reads.request(20).catch((error: unknown) => (error as RockraftError).code);
    const late = reads.request(1_000).catch((error: unknown) => (error as RockraftError).code);
    reads.flush(raw, clock.now());
    reads.dropped([{ type: "MsgReadIndex", from: 2, to: 1, term: 0, context: "p/1" }]);
    await advance(20);
    expect(await early).toBe("RAFT_TIMEOUT");
    reads.rejectAll(new RockraftError("RAFT_NODE_STOPPED", "stopped"));
    expect(await late).toBe("RAFT_NODE_STOPPED");
    await advance(100); // the pause's timer went with them
    expect([reads.hasQueued, woken.count]).toEqual([false, 0]);
  });

  test("batches the leader has not answered in 500 ms are asked again, as one new request", async () => {
    const { clock, advance, reads, raw, contexts, woken } = batcher();
    const first = reads.request(5_000);
    reads.flush(raw, clock.now());
    await advance(100);
    const second = reads.request(5_000);
    reads.flush(raw, clock.now());
    await advance(399);
    expect([reads.hasQueued, woken.count]).toEqual([false, 0]);
    await advance(1); // the first is 500 ms old: asked again
    expect([reads.hasQueued, woken.count]).toEqual([true, 1]);
    await advance(100); // the second waits for the next round...
    expect(woken.count).toBe(1);
    await advance(400); // ...and joins the first's
    expect(woken.count).toBe(2);
    reads.flush(raw, clock.now());
    expect(contexts).toEqual(["p/1", "p/2", "p/3"]);
    reads.confirmed([{ index: 7, context: "p/1" }]); // a late answer to the first request counts
    expect(await first).toBe(7);
    reads.confirmed([{ index: 8, context: "p/3" }]);
    expect(await second).toBe(8);
    reads.expire();
    expect(reads.hasSent).toBe(false);
    await advance(2_000); // nothing left to ask again
    expect([contexts.length, woken.count]).toEqual([3, 2]);
  });

  test("a leader that always answers after 500 ms still answers every read", async () => {
    const { clock, advance, reads, raw, contexts } = batcher();
    const read = reads.request(10_000);
    reads.flush(raw, clock.now());
    await advance(500);
    reads.flush(raw, clock.now()); // asked again, as p/2
    await advance(100);
    reads.confirmed([{ index: 4, context: contexts[0]! }]); // p/1's answer, 600 ms late
    expect(await read).toBe(4);
    reads.confirmed([{ index: 5, context: "p/2" }]); // ignored: the read has its answer
    reads.expire();
    expect(reads.hasSent).toBe(false);
  });

  test("reads asked again follow their newest request through a leader change", async () => {
    const { clock, advance, reads, raw, soft } = batcher();
    const read = reads.request(10_000);
    reads.flush(raw, clock.now()); // p/1, to leader 1 in term 2
    await advance(500);
    Object.assign(soft, { lead: 3, term: 3 });
    reads.flush(raw, clock.now()); // p/2, to leader 3
    reads.leaderLost(new RockraftError("RAFT_NO_LEADER", "changed"), { lead: 3, term: 3 });
    expect(reads.hasSent).toBe(true); // p/1 is gone, p/2 waits: the read is not failed
    reads.confirmed([{ index: 2, context: "p/1" }]); // the old leader's answer no longer counts
    reads.confirmed([{ index: 9, context: "p/2" }]);
    expect(await read).toBe(9);
    reads.expire();
    expect(reads.hasSent).toBe(false);
  });

  test("a superseded request dropped unsent sends nothing again", async () => {
    const { clock, advance, reads, raw, contexts } = batcher();
    const read = reads.request(10_000);
    reads.flush(raw, clock.now());
    await advance(500);
    reads.flush(raw, clock.now()); // p/2 carries the read now
    reads.dropped([{ type: "MsgReadIndex", from: 2, to: 1, term: 0, context: "p/1" }]);
    await advance(50);
    expect(reads.hasQueued).toBe(false);
    reads.confirmed([{ index: 6, context: "p/2" }]);
    expect([await read, contexts.length]).toEqual([6, 2]);
  });

  test("a leader's own batches are not asked again (its heartbeat rounds confirm them)", async () => {
    const { clock, advance, reads, raw, soft, woken } = batcher();
    Object.assign(soft, { lead: 2, role: "leader" });
    void reads.request(5_000);
    reads.flush(raw, clock.now());
    await advance(2_000);
    expect([reads.hasQueued, woken.count]).toEqual([false, 0]);
  });

  test("a node that stops asks nothing again, and leaves no timer", async () => {
    const { clock, advance, armed, reads, raw, woken } = batcher();
    const read = reads.request(5_000).catch((error: unknown) => (error as RockraftError).code);
    reads.flush(raw, clock.now());
    reads.rejectAll(new RockraftError("RAFT_NODE_STOPPED", "stopped"));
    expect(await read).toBe("RAFT_NODE_STOPPED");
    expect(armed()).toBe(0);
    await advance(1_000);
    expect([reads.hasQueued, woken.count]).toEqual([false, 0]);
  });
});

test("reads with later deadlines are failed in turn, each at its own deadline", async () => {
  const { clock, advance, reads, raw } = batcher();
  const failedAt: Record<string, number> = {};
  const track = (name: string, deadline: number) =>
    reads.request(deadline).catch(() => (failedAt[name] = clock.now()));
  const late = track("late", 300);
  const early = track("early", 100);
  reads.flush(raw, clock.now());
  const middle = track("middle", 200); // queued, not yet sent
  for (let i = 0; i < 4; i++) await advance(100);
  await Promise.all([late, early, middle]);
  expect(failedAt).toEqual({ early: 100, middle: 200, late: 300 });
});
