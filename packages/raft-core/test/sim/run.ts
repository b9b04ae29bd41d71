import { CHAOS, SimCluster, TICK, type FaultProfile, type SimOptions } from "./cluster.js";
import { allInvariants } from "./invariants/index.js";

export interface RunOptions {
  readonly seed: number;
  readonly nodes?: number;
  /** Events processed with faults on. */
  readonly steps?: number;
  /** After healing, ticks within which a leader must appear and a new write commit everywhere. */
  readonly healTicks?: number;
  readonly faults?: FaultProfile;
  readonly raft?: SimOptions["raft"];
  readonly readShare?: number;
  /** Membership churn and snapshots (issue 4's faults): ids up to 7, changes, compaction. */
  readonly churn?: boolean;
  /** The command that replays this run, printed with a failure (default: the test's). */
  readonly replay?: string;
}

export interface RunResult {
  readonly seed: number;
  readonly ok: boolean;
  /** What failed, with the command that replays it. */
  readonly failure: string | undefined;
  readonly steps: number;
  /** Ticks from healing until a leader was known, or undefined if none. */
  readonly ticksToLeader: number | undefined;
  readonly stats: SimCluster["stats"];
  /** Every node's final term, commit, applied index and applied-state hash. */
  readonly fingerprint: string;
}

export function replayCommand(seed: number, nodes: number): string {
  return `SIM_SEED=${seed} pnpm --filter @rockraft/raft-core test sim  # ${nodes} nodes`;
}

/** One simulated run: chaos, then healing, checking every invariant after every step. */
export function runSeed(options: RunOptions): RunResult {
  const nodes = options.nodes ?? 3;
  const cluster = new SimCluster({
    seed: options.seed,
    nodes,
    faults: options.faults ?? CHAOS,
    readShare: options.readShare ?? 0.3,
    ...(options.churn === true ? { maxNodes: 7, churnInterval: 150, snapshotInterval: 200 } : {}),
    ...(options.raft === undefined ? {} : { raft: options.raft }),
  });
  for (const invariant of allInvariants()) cluster.observe(invariant);
  let ticksToLeader: number | undefined;
  const fail = (message: string): RunResult => ({
    seed: options.seed,
    ok: false,
    failure: `seed ${options.seed} (${nodes} nodes) failed at step ${cluster.steps}, time ${cluster.now}: ${message}\n  replay: ${options.replay ?? replayCommand(options.seed, nodes)}`,
    steps: cluster.steps,
    ticksToLeader,
    stats: cluster.stats,
    fingerprint: fingerprint(cluster),
  });
  try {
    const chaosSteps = options.steps ?? 3000;
    while (cluster.steps < chaosSteps) {
      if (!cluster.step()) break;
    }

    cluster.heal();
    const healedAt = cluster.now;
    const deadline = healedAt + (options.healTicks ?? 200) * TICK;
    let marker: { index: number; node: number } | undefined;
    const live = (): boolean => {
      const leader = cluster.leader();
      if (leader !== undefined && ticksToLeader === undefined) {
        ticksToLeader = Math.ceil((cluster.now - healedAt) / TICK);
      }
      if (marker === undefined && leader !== undefined) {
        const write = cluster.propose(leader);
        if (write !== undefined) marker = { index: write.index, node: leader.id };
      }
      if (marker === undefined) return false;
      if (cluster.node(marker.node).raft().role !== "leader") {
        marker = undefined; // That leader lost its term; propose again at the next one.
        return false;
      }
      return cluster.members().every((node) => node.applied >= marker!.index);
    };
    cluster.runUntil(deadline, live);
    if (!live()) {
      const leader = cluster.leader();
      return fail(
        leader === undefined
          ? `liveness: no leader within ${options.healTicks ?? 200} ticks after healing`
          : `liveness: a write proposed at leader ${leader.id} after healing was not applied on every member within ${options.healTicks ?? 200} ticks (applied: ${cluster.nodes.map((n) => `${n.id}:${n.applied}`).join(" ")})`,
      );
    }
  } catch (error) {
    return fail(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  }
  return {
    seed: options.seed,
    ok: true,
    failure: undefined,
    steps: cluster.steps,
    ticksToLeader,
    stats: cluster.stats,
    fingerprint: fingerprint(cluster),
  };
}

function fingerprint(cluster: SimCluster): string {
  return cluster.nodes
    .map((node) => {
      const raft = node.raft();
      return `${node.id}:${raft.term}:${raft.log.committed}:${node.applied}:${node.appliedHash}`;
    })
    .join(" ");
}
