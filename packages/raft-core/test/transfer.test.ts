// Leadership transfer (thesis §3.10).
import { describe, expect, test } from "vitest";
import { RaftError } from "../src/index.js";
import { TestNetwork, bytes } from "./helpers/network.js";

function caught(fn: () => unknown): RaftError | undefined {
  try {
    fn();
  } catch (error) {
    return error as RaftError;
  }
  return undefined;
}

describe("leadership transfer", () => {
  test("to an up-to-date follower: it campaigns at once and wins the next term", () => {
    const network = new TestNetwork([1, 2, 3], { checkQuorum: true, preVote: true });
    network.elect(1);
    network.member(1).node.transferLeader(2);
    network.stabilize();
    expect([network.raft(2).role, network.raft(2).term]).toEqual(["leader", 2]);
    expect(network.raft(1).role).toBe("follower");
    const timeoutNow = network.delivered.filter((m) => m.type === "MsgTimeoutNow");
    expect(timeoutNow.map((m) => [m.from, m.to])).toEqual([[1, 2]]);
  });

  test("to a lagging follower: the leader first brings it up to date", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.cut(1, 2);
    for (let i = 0; i < 5; i++) network.propose(1, `entry ${i}`);
    expect(network.raft(2).log.lastIndex()).toBe(1);
    network.recover();
    network.member(1).node.transferLeader(2);
    network.stabilize();
    expect(network.raft(2).role).toBe("leader");
    expect(network.raft(2).log.committed).toBeGreaterThanOrEqual(6);
  });

  test("proposals are refused while a transfer is in progress", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.isolate(2);
    network.member(1).node.transferLeader(2);
    network.stabilize();
    const error = caught(() => network.member(1).node.propose(bytes("x")));
    expect([error?.code, error?.reason, error?.message]).toEqual([
      "RAFT_PROPOSAL_DROPPED",
      "transfer-in-progress",
      "proposal dropped: leadership is being transferred to 2",
    ]);
  });

  test("a transfer that does not finish within an election timeout is abandoned", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.isolate(2);
    network.member(1).node.transferLeader(2);
    for (let i = 0; i < 10; i++) network.tick(1);
    network.stabilize();
    expect(network.raft(1).leadTransferee).toBe(0);
    expect(network.member(1).node.propose(bytes("x"))).toEqual({ index: 2, term: 1 });
  });

  test("a follower's transfer request is forwarded to the leader", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.member(3).node.transferLeader(3);
    network.stabilize();
    expect(network.raft(3).role).toBe("leader");
  });

  test("a transfer to a node that is not a voter is refused", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    const error = caught(() => network.member(1).node.transferLeader(9));
    expect([error?.code, error?.reason, error?.message]).toEqual([
      "RAFT_REQUEST_REFUSED",
      "not-a-member",
      "leadership transfer refused: node 9 is not a voter",
    ]);
  });

  test("a transfer with no known leader is refused", () => {
    const network = new TestNetwork([1, 2, 3]);
    const error = caught(() => network.member(2).node.transferLeader(3));
    expect([error?.code, error?.reason]).toEqual(["RAFT_REQUEST_REFUSED", "no-leader"]);
  });
});
