import { expect, test } from "vitest";
import { SimNetwork } from "./sim/network.js";
import { SimNode, simConfig } from "./sim/process.js";
import { World } from "./sim/world.js";
import { RockraftError } from "../src/index.js";
import type { Message } from "@rockraft/raft-core";

// Scenarios found by the whole-node simulation, kept as tests in the same simulated world.

/** Nodes 1-3 of a simulated world from `seed`, not started. */
function simNodes(seed: number) {
  const world = new World(seed);
  const byId = new Map<number, SimNode>();
  const network = new SimNetwork(world, (id) => byId.get(id));
  const byAddr = (addr: string) => [...byId.values()].find((node) => node.addr === addr);
  for (const id of [1, 2, 3]) byId.set(id, new SimNode(id, simConfig(id), world, network, byAddr));
  return { world, network, nodes: [...byId.values()] };
}

/** Starts `nodes` and initializes the cluster through the first. */
function startAll(nodes: readonly SimNode[]): void {
  for (const node of nodes) node.start();
  void nodes[0]!.api!.initialize(nodes.map((node) => ({ nodeId: node.id, addr: node.addr })));
}

/** What `call` settled with (its value or error), and how long after now it took. */
function settlement(world: World, call: Promise<unknown>) {
  const sentAt = world.now;
  const seen = { outcome: undefined as unknown, tookMs: Infinity };
  const settle = (outcome: unknown) => Object.assign(seen, { outcome, tookMs: world.now - sentAt });
  call.then(settle, settle);
  return seen;
}

async function cluster() {
  const { world, nodes, network } = simNodes(7);
  startAll(nodes);
  await world.run(2_000);
  return { world, nodes, network };
}

test("a snapshot whose write fails stops the node at once, with the write's error", async () => {
  // It used to fail only the call: the node kept serving on a store that had stopped, and
  // stopped at its next write with "storage is closed", hiding the cause.
  const { world, nodes } = await cluster();
  const node = nodes[1]!;
  void node.api!.clientWrite({ key: "k", value: "v" }).catch(() => undefined);
  await world.run(world.now + 200);
  node.disk.failWrites = "ENOSPC: no space left on device";
  let error: Error | undefined;
  void node.api!.triggerSnapshot().catch((e: unknown) => (error = e as Error));
  await world.run(world.now + 50);
  expect(error?.message).toMatch(/ENOSPC/);
  expect(node.runtime!.metrics().state).toBe("stopped");
  expect(node.failure?.message).toMatch(/stopped after a failure: write failed: ENOSPC/);
});

test("a membership change whose entry a newer leader replaced fails RAFT_PROPOSAL_DROPPED, not success", async () => {
  // It used to resolve once this node had applied past the change's index with no joint
  // configuration in effect: true too when the entry there was another leader's.
  const { world, nodes, network } = await cluster();
  const leader = nodes.find((node) => node.runtime!.metrics().state === "leader")!;
  const others = nodes.filter((node) => node !== leader);
  const heal = others.flatMap((node) => [
    network.cutLink(leader.id, node.id),
    network.cutLink(node.id, leader.id),
  ]);
  const member = (node: SimNode) => ({ nodeId: node.id, addr: node.addr });
  const target = { voters: [member(leader), member(others[0]!)], learners: [] };
  let outcome: unknown;
  leader.runtime!.changeMembership(target, 20_000).then(
    (index) => (outcome = index),
    (error: unknown) => (outcome = error),
  );
  // The others elect a leader of their own and commit past the change's index.
  await world.run(world.now + 3_000);
  expect(others.some((node) => node.runtime!.metrics().state === "leader")).toBe(true);
  for (const undo of heal) undo();
  await world.run(world.now + 3_000);
  expect(outcome).toBeInstanceOf(RockraftError);
  expect(outcome).toMatchObject({ code: "RAFT_PROPOSAL_DROPPED", outcomeUnknown: false });
  expect(leader.runtime!.metrics().membership.voters).toHaveLength(3);
});

test("a write the store makes of its own (a deferred apply's) that fails stops the node at once, with its error", async () => {
  // It used to stop only the store: the node ran on, and stopped at its next storage call
  // with "storage is closed", or never while idle (the simulation's disk faults found it).
  const { world, nodes } = await cluster();
  const leader = nodes.find((node) => node.runtime!.metrics().state === "leader")!;
  let answered = false;
  // Answered once applied, before the store writes the deferred apply (within 10 ms).
  void leader.api!.clientWrite({ key: "k", value: "v" }, { session: false }).then(() => {
    answered = true;
    leader.disk.failWrites = "EIO: i/o error";
  });
  await world.run(world.now + 200);
  expect(answered).toBe(true);
  expect(leader.runtime!.metrics().state).toBe("stopped");
  expect(leader.failure?.message).toMatch(/stopped after a failure: write failed: EIO/);
});

test("a store write that fails while the node shuts down is no failure of the node's", async () => {
  // The store's close writes what deferred applies hold; its failure is re-applied from the
  // log at the next start, and a node being shut down has not stopped by itself.
  const { world, nodes } = await cluster();
  const leader = nodes.find((node) => node.runtime!.metrics().state === "leader")!;
  const runtime = leader.runtime!;
  let failed: unknown;
  void runtime.failed.then((error) => (failed = error));
  let stopped = false;
  void leader.api!.clientWrite({ key: "k", value: "v" }, { session: false }).then(() => {
    leader.disk.failWrites = "EIO: i/o error";
    void leader.stop().then(() => (stopped = true));
  });
  await world.run(world.now + 200);
  expect(stopped).toBe(true);
  expect(failed).toBeUndefined();
  expect(runtime.metrics().state).toBe("stopped");
});

test("a follower that knows the leader forwards a membership change, though its Ready loop is still writing", async () => {
  // It used to wait for a leader by the Raft node's state and forward by the Ready loop's
  // copy of it, which lags while the loop writes a Ready to disk: a follower whose metrics
  // named the leader refused the call with RAFT_NO_LEADER (a flaky cluster test found it).
  const { world, nodes } = simNodes(11);
  const slow = nodes[1]!;
  slow.syncMs = 300; // its vote's write is still under way when node 1 has won with node 3's
  startAll(nodes);
  let outcome: unknown;
  const poll = (): void => {
    if (slow.runtime!.metrics().currentLeader === undefined) {
      world.schedule(0.05, poll);
      return;
    }
    slow.api!.addLearner({ nodeId: 9, addr: "127.0.0.1:9" }, { timeoutMs: 5_000 }).then(
      (result) => (outcome = result),
      (error: unknown) => (outcome = error),
    );
  };
  poll();
  await world.run(3_000);
  expect(outcome).toMatchObject({ logIndex: expect.any(Number) as number });
});

test("a node stopped by a failure forwards no membership change", async () => {
  // It forwarded it: the leader it knew outlived the failure in the Raft node's state.
  const { world, nodes } = await cluster();
  const leader = nodes.find((node) => node.runtime!.metrics().state === "leader")!;
  const follower = nodes.find((node) => node !== leader)!;
  follower.disk.failWrites = "EIO: i/o error";
  void leader.api!.clientWrite({ key: "k", value: "v" }).catch(() => undefined);
  await world.run(world.now + 200);
  expect(follower.runtime!.metrics().state).toBe("stopped");
  let outcome: unknown;
  follower.api!.addLearner({ nodeId: 9, addr: "127.0.0.1:9" }, { timeoutMs: 2_000 }).then(
    (result) => (outcome = result),
    (error: unknown) => (outcome = error),
  );
  let transfer: unknown;
  follower
    .api!.transferLeader(follower.id, { timeoutMs: 2_000 })
    .catch((e: unknown) => (transfer = e));
  await world.run(world.now + 10);
  // At once, not after waiting for a leader (an election timeout) or the deadline.
  expect(outcome).toMatchObject({ code: "RAFT_NODE_STOPPED" });
  expect(transfer).toMatchObject({ code: "RAFT_NODE_STOPPED" });
  await world.run(world.now + 2_500);
  expect(leader.runtime!.metrics().membership.learners).toEqual([]);
});

test("a read sent to a leader that another replaces fails at once, to be retried, not at its deadline", async () => {
  // The Ready loop failed sent reads when the leader became unknown, but its copy of the
  // leader can go from the old one to the new one at once (the Raft node saw the new term's
  // vote and append while the loop was writing), and the old leader drops pending reads.
  const { world, nodes } = await cluster();
  const leader = nodes.find((node) => node.runtime!.metrics().state === "leader")!;
  const [reader, next] = nodes.filter((node) => node !== leader) as [SimNode, SimNode];
  const runtime = reader.runtime!;
  const receive = runtime.receive.bind(runtime);
  // The old leader's answers to reads never arrive: the read stays sent.
  runtime.receive = (messages, from, addr) =>
    receive(
      messages.filter((m) => !(m.type === "MsgReadIndexResp" && from === leader.id)),
      from,
      addr,
    );
  const read = settlement(world, reader.api!.read("k", { timeoutMs: 3_000 }));
  await world.run(world.now + 20);
  expect(runtime.readsWaiting()).toBe(true);
  reader.syncMs = 300; // busy writing the next append while the leadership moves
  void leader.api!.clientWrite({ key: "k", value: "v" }, { session: false }).catch(() => undefined);
  await world.run(world.now + 5);
  void leader.api!.transferLeader(next.id).catch(() => undefined);
  await world.run(world.now + 1_000);
  expect(next.runtime!.metrics().state).toBe("leader");
  expect(read.outcome).toMatchObject({ code: "RAFT_NO_LEADER" });
  expect((read.outcome as Error).message).toMatch(`the leader changed to node ${next.id}`);
  expect(read.tookMs).toBeLessThan(1_000);
});

/** A cluster where "k" is "v", committed and applied on the leader; a follower to read on. */
async function written() {
  const { world, nodes, network } = await cluster();
  const leader = nodes.find((node) => node.runtime!.metrics().state === "leader")!;
  const reader = nodes.find((node) => node !== leader)!;
  const write = settlement(
    world,
    leader.api!.clientWrite({ key: "k", value: "v" }, { session: false }),
  );
  await world.run(world.now + 500);
  expect(write.tookMs).toBeLessThan(500);
  expect(write.outcome).not.toBeInstanceOf(Error);
  return { world, network, leader, reader };
}

/** `node` loses the first message it receives that `matches`, as a broken stream would. */
function loseFirst(node: SimNode, matches: (message: Message, from: number) => boolean) {
  const runtime = node.runtime!;
  const receive = runtime.receive.bind(runtime);
  const lost = { count: 0 };
  const kept = (message: Message, from: number) => {
    if (lost.count > 0 || !matches(message, from)) return true;
    lost.count++;
    return false;
  };
  runtime.receive = (messages, from, addr) =>
    receive(
      messages.filter((m) => kept(m, from)),
      from,
      addr,
    );
  return lost;
}

test("a read whose request to the leader could not be sent is asked again, not left to its deadline", async () => {
  // A follower whose connection to the leader is down (a restarted node's, still
  // connecting) drops its MsgReadIndex unsent; the read was never at the leader.
  const { world, network, leader, reader } = await written();
  const restore = network.cutLink(reader.id, leader.id); // the leader still reaches it
  const read = settlement(world, reader.api!.read("k", { timeoutMs: 5_000 }));
  await world.run(world.now + 300);
  expect(read.tookMs).toBe(Infinity); // still trying
  restore();
  await world.run(world.now + 1_000);
  expect(new TextDecoder().decode(read.outcome as Uint8Array)).toBe("v");
  expect(read.tookMs).toBeLessThan(1_000);
});

test("a read whose request or answer was lost on the way is asked again, not left to its deadline", async () => {
  // A stream that breaks after a MsgReadIndex was written (or its answer) loses it without a
  // report: nothing tells the follower, whose read would wait for its deadline.
  const { world, leader, reader } = await written();
  const lost = loseFirst(leader, (m, from) => m.type === "MsgReadIndex" && from === reader.id);
  const read = settlement(world, reader.api!.read("k", { timeoutMs: 5_000 }));
  await world.run(world.now + 2_000);
  expect(lost.count).toBe(1);
  expect(new TextDecoder().decode(read.outcome as Uint8Array)).toBe("v");
  expect(read.tookMs).toBeLessThan(1_500);
});

test("a leadership transfer whose MsgTimeoutNow was lost is asked again, not left to its deadline", async () => {
  // The leader abandons a transfer its target never acted on after an election timeout (a
  // MsgTimeoutNow lost with a broken stream, or dropped unsent while the peer connection
  // was not up yet, as after a restart); the call then waited for its whole deadline.
  const { world, nodes } = await cluster();
  const leader = nodes.find((node) => node.runtime!.metrics().state === "leader")!;
  const target = nodes.find((node) => node !== leader)!;
  const lost = loseFirst(target, (m) => m.type === "MsgTimeoutNow");
  const transfer = settlement(world, leader.api!.transferLeader(target.id, { timeoutMs: 8_000 }));
  await world.run(world.now + 4_000);
  expect(lost.count).toBe(1);
  expect(transfer.tookMs).toBeLessThan(2 * 1_200); // asked again after 1.2 s (sim: 2 x 600 ms)
  expect(transfer.outcome).toBeUndefined(); // resolved, not rejected
  expect(target.runtime!.metrics().state).toBe("leader");
});
