// One seed of the whole-node simulation: a cluster of real runtimes on a simulated world,
// clients and faults for a while, then every fault healed; the checks: raft-core's election
// safety and state machine safety on every node, every call settling by its deadline plus
// a margin, a leader and a committed write on every node soon after healing, and every
// client answer linearizable.
import type { Entry, NodeId } from "@rockraft/raft-core";
import type { ApplyResult } from "@rockraft/storage-level";
import type { RuntimeEnvironment } from "../../src/runtime.js";
import { FAULT_CLASSES, FaultSchedule, type FaultClass } from "./faults.js";
import { checkKey, describe, firstViolation, type Operation } from "@rockraft/test-utils";
import { SimNetwork } from "./network.js";
import { SimNode, simConfig } from "./process.js";
import { Workload } from "./workload.js";
import { World } from "./world.js";

export interface SimOptions {
  readonly seed: number;
  readonly nodes: 3 | 5;
  readonly faults: ReadonlySet<FaultClass>;
  readonly readMode: "read_index" | "lease";
  /** CheckQuorum (lease reads need it: with it off, reads are ReadIndex). */
  readonly checkQuorum: boolean;
  /** Simulated ms of clients and faults. */
  readonly durationMs: number;
  readonly clients: number;
  readonly keys: number;
  /** Known bugs re-introduced (mutation tests). */
  readonly mutation?: Mutation | undefined;
}

export const MUTATIONS = [
  "read-context-collision",
  "waiter-by-index-only",
  "answer-before-apply",
  "skip-fsync",
  "session-blind",
] as const;
export type Mutation = (typeof MUTATIONS)[number];

export interface SimResult {
  readonly seed: number;
  readonly violations: readonly string[];
  readonly steps: number;
  readonly simulatedMs: number;
  readonly operations: number;
  readonly answers: { ok: number; failed: number; unknown: number };
  /** Client sessions the log's clock expired (each counted once, not per node). */
  readonly sessionsExpired: number;
  readonly undecidedKeys: number;
  /** The faults that struck, and for a linearizability violation the key's history. */
  readonly detail: readonly string[];
}

/** The command that replays `options` exactly. */
export function replayCommand(options: SimOptions): string {
  const faults =
    options.faults.size === FAULT_CLASSES.length ? "all" : [...options.faults].join(",") || "none";
  const parts = [
    `pnpm sim:cluster -- --start ${options.seed} --seeds 1 --nodes ${options.nodes}`,
    `--faults ${faults} --read-mode ${options.readMode} --check-quorum ${options.checkQuorum ? "on" : "off"}`,
    `--duration-ms ${options.durationMs} --clients ${options.clients} --keys ${options.keys}`,
  ];
  if (options.mutation !== undefined) parts.push(`--mutation ${options.mutation}`);
  return parts.join(" ");
}

export async function runSeed(options: SimOptions): Promise<SimResult> {
  const world = new World(options.seed);
  const violations: string[] = [];
  const detail: string[] = [];
  const byId = new Map<NodeId, SimNode>();
  const network = new SimNetwork(world, (id) => byId.get(id));
  const unsafe: RuntimeEnvironment["testingUnsafe"] = {
    fixedReadPrefix: options.mutation === "read-context-collision",
    waiterByIndexOnly: options.mutation === "waiter-by-index-only",
    answerWhenAppended: options.mutation === "answer-before-apply",
  };
  // State machine safety: every node applies the same entry at each index.
  const appliedAt = new Map<number, { term: number; data: string; node: NodeId }>();
  // Session expiry: every node expires the same sessions at the same index.
  const expiredAt = new Map<number, { expired: string; node: NodeId }>();
  let sessionsExpired = 0;
  const onApplied = (node: NodeId, entry: Entry, result: ApplyResult) => {
    if (result.kind === "clock") {
      const expired = result.expired.join(",");
      const seen = expiredAt.get(entry.index);
      if (seen === undefined) {
        expiredAt.set(entry.index, { expired, node });
        sessionsExpired += result.expired.length;
      } else if (seen.expired !== expired && violations.length < 20) {
        violations.push(
          `session expiry: at index ${entry.index} node ${node} expired sessions [${expired}], node ${seen.node} [${seen.expired}]`,
        );
      }
    }
    const data = Buffer.from(entry.data).toString("base64");
    const seen = appliedAt.get(entry.index);
    if (seen === undefined) appliedAt.set(entry.index, { term: entry.term, data, node });
    else if (seen.term !== entry.term || seen.data !== data) {
      violations.push(
        `state machine safety: node ${node} applied entry ${entry.index} of term ${entry.term}; node ${seen.node} applied term ${seen.term} there`,
      );
    }
  };
  // A lease must allow for the clocks' drift: with rates up to 20% apart either way, a
  // follower's election timeout of 300 ms may pass in 250 ms while the leader's lease runs
  // 25% slow, so the lease may last at most 200 ms of the leader's time (less a tick).
  const skewed = options.faults.has("skew");
  const extraRaft = !options.checkQuorum
    ? "check_quorum = false\n"
    : options.readMode === "lease"
      ? `read_mode = "lease"\nlease_clock_drift_ms = ${skewed ? 120 : 60}\n`
      : "";
  const ids = Array.from({ length: options.nodes }, (_, i) => i + 1);
  for (const id of ids) {
    const node: SimNode = new SimNode(
      id,
      simConfig(id, extraRaft),
      world,
      network,
      (addr) => [...byId.values()].find((n) => n.addr === addr),
      unsafe,
      options.faults.has("skew") ? 0.2 : 0,
      onApplied,
    );
    if (options.mutation === "skip-fsync") node.disk.unsafeSkipSync = true;
    if (options.mutation === "session-blind") node.disk.unsafeSessionBlind = true;
    byId.set(id, node);
  }
  const nodes = [...byId.values()];
  for (const node of nodes) node.start();

  // After every event: raft-core's own invariants on every node, and election safety (at
  // most one leader per term).
  const leaderOfTerm = new Map<number, NodeId>();
  const checkLeaders = () => {
    for (const node of nodes) {
      const runtime = node.runtime;
      if (runtime === undefined || !node.running()) continue;
      try {
        runtime.raw.checkInvariants();
      } catch (error) {
        if (violations.length < 20) violations.push(`invariant: ${(error as Error).message}`);
      }
      const soft = runtime.raw.softState();
      if (soft.role !== "leader") continue;
      const known = leaderOfTerm.get(soft.term);
      if (known === undefined) leaderOfTerm.set(soft.term, node.id);
      else if (known !== node.id && violations.length < 20) {
        violations.push(
          `election safety: nodes ${known} and ${node.id} both lead term ${soft.term}`,
        );
      }
    }
  };

  world.afterEach = checkLeaders;
  const members = nodes.map((node) => ({ nodeId: node.id, addr: node.addr }));
  void nodes[0]!.api!.initialize(members).catch((error: unknown) => {
    violations.push(`initialize failed: ${(error as Error).message}`);
  });
  await world.run(2_000, () => violations.length > 0);
  const stopEarly = () => violations.length > 0;

  const workload = new Workload(world, nodes, {
    clients: options.clients,
    keys: options.keys,
    marginMs: 100,
  });
  const faults = new FaultSchedule(world, nodes, network, options.faults, (node, ms) =>
    workload.focusOn(node, ms),
  );
  workload.start();
  faults.start();
  const end = world.now + options.durationMs;
  while (world.now < end && !stopEarly()) {
    await world.run(Math.min(end, world.now + 50), stopEarly);
  }
  faults.stop();
  workload.stop();

  // Heal: every link whole, every disk writable, every node running; then a leader and a
  // write committed on every node within a bound.
  network.heal();
  for (const node of nodes) {
    node.disk.failWrites = undefined;
    if (!node.running()) {
      node.crash();
      node.start();
    }
  }
  const healedAt = world.now;
  const boundMs = 20_000;
  let committed = false;
  let finalIndex = 0;
  let membershipCall: Promise<unknown> | undefined;
  const tryFinalWrite = () => {
    const leader = nodes.find(
      (node) => node.running() && node.runtime!.metrics().state === "leader",
    );
    if (leader === undefined) return;
    // Every node a voter again (membership faults may have removed some).
    const m = leader.runtime!.metrics();
    const voter = (id: NodeId) => m.membership.voters.some((v) => v.nodeId === id);
    const learner = (id: NodeId) => m.membership.learners.some((v) => v.nodeId === id);
    const missing = nodes.filter((node) => !voter(node.id));
    if (missing.length > 0) {
      if (membershipCall === undefined) {
        const node = missing[0]!;
        const options = { timeoutMs: 1_000 };
        const member = { nodeId: node.id, addr: node.addr };
        const voters = m.membership.voters;
        const learners = m.membership.learners.filter((v) => v.nodeId !== node.id);
        membershipCall = (
          learner(node.id)
            ? leader.api!.changeMembership({ voters: [...voters, member], learners }, options)
            : leader.api!.addLearner(member, options)
        )
          .catch(() => undefined)
          .finally(() => (membershipCall = undefined));
        // As any client: a call whose node died never answers; try again after a while.
        const call = membershipCall;
        world.schedule(3_000, () => {
          if (membershipCall === call) membershipCall = undefined;
        });
      }
      return;
    }
    void leader.api!.clientWrite({ key: "__healed", value: "yes" }, { timeoutMs: 1_000 }).then(
      (result) => {
        finalIndex = result.logId.index;
        committed = true;
      },
      () => undefined,
    );
  };
  while (!stopEarly() && world.now - healedAt < boundMs) {
    if (!committed) tryFinalWrite();
    await world.run(world.now + 200, stopEarly);
    if (
      committed &&
      nodes.every(
        (node) => node.running() && (node.runtime!.metrics().lastApplied?.index ?? 0) >= finalIndex,
      )
    ) {
      break;
    }
  }
  if (
    !stopEarly() &&
    !(
      committed &&
      nodes.every((node) => (node.runtime?.metrics().lastApplied?.index ?? 0) >= finalIndex)
    )
  ) {
    const states = nodes.map(
      (node) =>
        `node ${node.id}: ${node.running() ? node.runtime!.metrics().state : node.failure !== undefined ? `stopped: ${node.failure.message}` : "down"}`,
    );
    violations.push(
      `liveness: ${boundMs} ms after every fault healed, ${committed ? `write ${finalIndex} is not applied on every node` : "no write committed"} (${states.join(", ")})`,
    );
  }
  workload.abandonInFlight();
  if (violations.length === 0) await finalChecks(world, nodes, workload, violations);
  for (const stale of workload.staleReadIndexes.slice(0, 5)) {
    violations.push(`read index: ${stale}`);
  }
  for (const late of workload.late) {
    violations.push(
      `a call did not settle by its deadline: ${late.what} on node ${late.node}, called at ${late.calledAt.toFixed(1)} ms`,
    );
  }

  // Linearizability, per key.
  const byKey = new Map<string, Operation[]>();
  for (const op of workload.history) {
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }
  let undecidedKeys = 0;
  for (const [key, history] of byKey) {
    const result = checkKey(history);
    if (result.undecided === true) {
      undecidedKeys++;
      violations.push(
        `linearizability: the history of key ${key} (${history.length} operations) is too large to decide`,
      );
    }
    if (!result.ok) {
      violations.push(
        `linearizability: the history of key ${key} (${history.length} operations) is not linearizable`,
      );
      // The calls around where the history first goes wrong (by call time).
      const sorted = [...history].sort((a, b) => a.call - b.call);
      const at = sorted.findIndex((op) => op.call >= (firstViolation(history) ?? 0));
      const from = Math.max(0, at - 20);
      detail.push(
        `history of key ${key}, calls ${from + 1}-${at + 1} of ${sorted.length}; the last one cannot be linearized with those before it ([call, return] in logical time):`,
        ...sorted.slice(from, at + 1).map((op) => `  ${describe(op)}`),
      );
      const lo = sorted[from]?.call ?? 0;
      const failedHere = workload.failed.filter((f) => f.key === key && f.call >= lo);
      if (failedHere.length > 0) {
        detail.push(
          "  calls on this key that definitely failed meanwhile (left out):",
          ...failedHere.slice(0, 20).map((f) => `    [${f.call}, ${f.ret}] ${f.what}: ${f.why}`),
        );
      }
    }
  }
  if (violations.length > 0) detail.unshift("faults:", ...faults.log.map((line) => `  ${line}`));
  return {
    seed: options.seed,
    violations,
    steps: world.steps,
    simulatedMs: world.now,
    operations: workload.history.length,
    answers: workload.answers,
    sessionsExpired,
    undecidedKeys,
    detail,
  };
}

/**
 * After the liveness check: a linearizable read of every key on every node joins the
 * history (data lost or diverged after the clients' last call shows there), and once every
 * node has applied the same index their state machines must hold the same data.
 */
async function finalChecks(
  world: World,
  nodes: readonly SimNode[],
  workload: Workload,
  violations: string[],
): Promise<void> {
  let pending = 0;
  for (const node of nodes) {
    for (const key of workload.keys) {
      pending++;
      void workload.finalRead(node, key).finally(() => pending--);
    }
  }
  const began = world.now;
  while (pending > 0 && world.now - began < 10_000) await world.run(world.now + 100);
  if (pending > 0) violations.push(`liveness: ${pending} final reads did not finish within 10 s`);
  const applied = () => nodes.map((node) => node.runtime?.metrics().lastApplied?.index ?? -1);
  while (new Set(applied()).size > 1 && world.now - began < 20_000)
    await world.run(world.now + 100);
  const indexes = applied();
  if (new Set(indexes).size > 1) {
    violations.push(
      `liveness: the nodes did not reach the same applied index (${indexes.join(", ")})`,
    );
    return;
  }
  const state = (node: SimNode) =>
    JSON.stringify(
      [...node.disk.current.kv]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
    );
  const first = state(nodes[0]!);
  for (const node of nodes.slice(1)) {
    if (state(node) !== first) {
      violations.push(
        `state machine safety: nodes ${nodes[0]!.id} and ${node.id} hold different data at applied index ${indexes[0]}`,
      );
    }
  }
}
