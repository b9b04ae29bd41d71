import {
  EMPTY_CONF_STATE,
  type Entry,
  type Message,
  type RawNode,
  type Ready,
} from "@rockraft/raft-core";
import type { ApplyResult } from "@rockraft/storage-level";
import { expect, test } from "vitest";
import type { TickClock } from "../src/clock.js";
import { ReadyLoop, type ReadyParts } from "../src/ready-loop.js";
import type { NodeStorage, PeerNetwork } from "../src/seams.js";

// The Ready loop's order of duties, with a raw node, a storage and a network that record
// what they are asked, and a persist whose write completes only when the test says so.

const entry = (index: number): Entry => ({
  index,
  term: 1,
  type: "normal",
  data: new Uint8Array([index]),
});
const ack: Message = {
  type: "MsgAppResp",
  from: 2,
  to: 1,
  term: 1,
  index: 5,
  reject: false,
  rejectHint: 0,
  logTerm: 0,
};

function readyOf(fields: Partial<Ready>): Ready {
  return {
    softState: undefined,
    hardState: { term: 1, vote: 1, commit: 4 },
    snapshot: undefined,
    entries: [],
    committedEntries: [],
    messages: [],
    messagesAfterPersist: [],
    readStates: [],
    mustSync: true,
    compactIndex: undefined,
    ...fields,
  };
}

function harness(ready: Ready) {
  const events: string[] = [];
  let pending: Ready | undefined = ready;
  const raw = {
    hasReady: () => pending !== undefined,
    ready: () => {
      const taken = pending!;
      pending = undefined;
      return taken;
    },
    advance: () => void events.push("advance"),
  } as unknown as RawNode;
  let finishWrite!: () => void;
  const resultOf = (e: Entry): ApplyResult => ({ index: e.index, term: e.term, kind: "noop" });
  const storage = {
    apply: (entries: readonly Entry[], options: { waitForWrite?: boolean } = {}) => {
      events.push(`apply ${entries.map((e) => e.index).join(",")} wait=${options.waitForWrite}`);
      return Promise.resolve(entries.map(resultOf));
    },
    persist: (
      r: Ready,
      options: { apply?: readonly Entry[]; issued?: (results: ApplyResult[]) => void } = {},
    ) => {
      const results = (options.apply ?? []).map(resultOf);
      events.push(`persist apply=${results.map((e) => e.index).join(",")}`);
      options.issued?.(results);
      events.push("write issued");
      return new Promise<ApplyResult[]>((resolve) => {
        finishWrite = () => {
          events.push("write durable");
          resolve(results);
        };
      });
    },
  } as unknown as NodeStorage;
  const network = {
    send: (messages: readonly Message[]) => {
      if (messages.length > 0) events.push(`send ${messages.map((m) => m.type).join(",")}`);
    },
  } as unknown as PeerNetwork;
  const parts: ReadyParts = {
    raw,
    storage,
    network,
    ticks: { catchUp: () => undefined } as unknown as TickClock,
    beforeReady: () => undefined,
    softStateChanged: () => undefined,
    sent: () => undefined,
    snapshotInstalled: () => void events.push("snapshot installed"),
    applied: (results) => void events.push(`answer ${results.map((r) => r.index).join(",")}`),
    readStates: () => undefined,
    afterReady: () => Promise.resolve(),
    idle: () => void events.push("idle"),
    fail: (error) => void events.push(`fail ${String(error)}`),
  };
  const loop = new ReadyLoop(parts, () => false);
  return { events, loop, finish: () => finishWrite() };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test("committed entries are answered once the batch that carries them is issued, before its sync", async () => {
  // A Ready with new entries to sync and earlier entries that committed: their callers used
  // to wait for the sync of the new entries, which they do not depend on.
  const { events, loop, finish } = harness(
    readyOf({
      entries: [entry(5), entry(6)],
      committedEntries: [entry(3), entry(4)],
      messagesAfterPersist: [ack],
    }),
  );
  loop.wake();
  await settle();
  expect(events).toEqual(["persist apply=3,4", "answer 3,4", "write issued"]);
  finish();
  await settle();
  // The acknowledgement promises what the write made durable: only after it.
  expect(events.slice(3)).toEqual(["write durable", "send MsgAppResp", "advance", "idle"]);
  await loop.stop();
});

test("a Ready with a snapshot applies its committed entries in the persist, after the snapshot", async () => {
  const snapshot = {
    metadata: { index: 10, term: 1, confState: EMPTY_CONF_STATE },
    data: new Uint8Array(0),
  };
  const { events, loop, finish } = harness(
    readyOf({ snapshot, committedEntries: [entry(11)], entries: [entry(11)] }),
  );
  loop.wake();
  await settle();
  expect(events).toEqual(["persist apply=11", "write issued"]);
  finish();
  await settle();
  expect(events.slice(2)).toEqual([
    "write durable",
    "snapshot installed",
    "answer 11",
    "advance",
    "idle",
  ]);
  await loop.stop();
});

test("a Ready that only moves the commit index is applied without a write of its own", async () => {
  const { events, loop } = harness(
    readyOf({ mustSync: false, committedEntries: [entry(4)], messagesAfterPersist: [ack] }),
  );
  loop.wake();
  await settle();
  expect(events).toEqual(["send MsgAppResp", "apply 4 wait=false", "answer 4", "advance", "idle"]);
  await loop.stop();
});
