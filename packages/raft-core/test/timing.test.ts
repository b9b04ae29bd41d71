// Changing a node's timing while it runs (RawNode.setTiming): heartbeats and elections
// follow the new ticks; the lease read mode refuses (its safety rests on the timing).
import { describe, expect, test } from "vitest";
import type { Message } from "../src/index.js";
import { newNode, persist, storageWithPeers } from "./helpers/network.js";

const heartbeats = (messages: readonly Message[]) =>
  messages.filter((m) => m.type === "MsgHeartbeat");

describe("setTiming", () => {
  test("a leader's heartbeats follow a new heartbeat interval from the next tick", () => {
    const storage = storageWithPeers([1, 2]);
    const node = newNode(1, storage);
    node.campaign();
    persist(node, storage);
    node.step({ type: "MsgVoteResp", from: 2, to: 1, term: 1, reject: false });
    persist(node, storage);
    node.tick();
    expect(heartbeats(persist(node, storage).messages)).toHaveLength(1); // every tick
    node.setTiming({ heartbeatTick: 3, electionTick: 12 });
    expect(node.timing()).toEqual({ heartbeatTick: 3, electionTick: 12, electionTickMax: 24 });
    const sent: number[] = [];
    for (let i = 1; i <= 6; i++) {
      node.tick();
      if (heartbeats(persist(node, storage).messages).length > 0) sent.push(i);
    }
    expect(sent).toEqual([3, 6]);
  });

  test("a follower's election timeout follows the new range", () => {
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage);
    node.setTiming({ heartbeatTick: 1, electionTick: 30, electionTickMax: 31 });
    for (let i = 0; i < 29; i++) node.tick();
    expect(node.status().softState.role).toBe("follower");
    node.tick();
    node.tick();
    expect(node.status().softState.role).toBe("candidate");
  });

  test("bad timing, and any change in the lease read mode, are refused", () => {
    const node = newNode(1, storageWithPeers([1]));
    expect(() => node.setTiming({ heartbeatTick: 5, electionTick: 5 })).toThrow(RangeError);
    expect(node.timing().heartbeatTick).toBe(1);
    const lease = newNode(2, storageWithPeers([2]), { readMode: "lease", checkQuorum: true });
    expect(() => lease.setTiming({ heartbeatTick: 1, electionTick: 20 })).toThrow(
      /lease read mode relies on the election timeout/,
    );
  });
});
