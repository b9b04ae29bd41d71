// The fault schedule: during the fault phase, at random intervals, one fault of an enabled
// class strikes, and most heal on their own after a while. Everything is drawn from the
// world's seeded random source, so a seed replays the same faults.
import type { NodeId } from "@rockraft/raft-core";
import { CALM, type SimNetwork, type Undo } from "./network.js";
import type { SimNode } from "./process.js";
import type { World } from "./world.js";

export const FAULT_CLASSES = [
  "crash",
  "pause",
  "partition",
  "link",
  "skew",
  "disk",
  "snapshot",
  "transfer",
  "membership",
] as const;
export type FaultClass = (typeof FAULT_CLASSES)[number];

/** Parses "all" or a comma-separated list of fault classes. */
export function parseFaults(text: string): Set<FaultClass> {
  if (text === "all") return new Set(FAULT_CLASSES);
  if (text === "none" || text === "") return new Set();
  const classes = new Set<FaultClass>();
  for (const name of text.split(",")) {
    if (!(FAULT_CLASSES as readonly string[]).includes(name)) {
      throw new Error(
        `--faults: unknown fault class "${name}" (known: all, none, ${FAULT_CLASSES.join(", ")})`,
      );
    }
    classes.add(name as FaultClass);
  }
  return classes;
}

export class FaultSchedule {
  /** What struck, in order (for a failing seed's report). */
  readonly log: string[] = [];
  private active = true;

  constructor(
    private readonly world: World,
    private readonly nodes: readonly SimNode[],
    private readonly network: SimNetwork,
    private readonly classes: ReadonlySet<FaultClass>,
    /** Sends most client calls to a node for a while. */
    private readonly focusOn: (node: SimNode, ms: number) => void = () => undefined,
  ) {}

  start(): void {
    if (this.classes.size === 0) return;
    this.world.schedule(this.world.between(100, 400), () => this.strike());
  }

  /** Ends the fault phase: no new faults (those striking heal as scheduled). */
  stop(): void {
    this.active = false;
  }

  private note(what: string): void {
    this.log.push(`${this.world.now.toFixed(1)} ms: ${what}`);
  }

  private running(): SimNode[] {
    return this.nodes.filter((node) => node.running());
  }

  /** Runs `run` in `ms`, unless the fault phase has ended (the heal then restores all). */
  private later(ms: number, run: () => void): void {
    this.world.schedule(ms, () => {
      if (this.active) run();
    });
  }

  /**
   * A compound fault: the leader hears no heartbeat responses for a while (its reads wait,
   * writes go on), and a follower restarts twice meanwhile, so that each of its short lives
   * sends reads the leader answers late. Returns false when there is no leader.
   */
  private restartDuringStalledReads(running: readonly SimNode[]): boolean {
    const world = this.world;
    const leader = running.find((node) => node.runtime?.metrics().state === "leader");
    const followers = running.filter((node) => node !== leader);
    if (leader === undefined || followers.length === 0) return false;
    const follower = world.pick(followers);
    const stall = world.between(150, 290); // under the election timeout: it keeps leading
    const undos: Undo[] = [];
    for (const node of this.nodes) {
      if (node !== leader)
        undos.push(
          this.network.setFaults(node.id, leader.id, { ...CALM, heartbeatResponseLoss: 1 }),
        );
    }
    this.later(stall, () => undos.forEach((undo) => undo()));
    const restart = (downFor: number) => {
      follower.crash();
      this.later(downFor, () => follower.start());
    };
    this.focusOn(follower, stall);
    const first = world.between(10, 60);
    const second = first + world.between(40, 150);
    this.later(first, () => restart(world.between(5, 20)));
    this.later(second, () => {
      if (follower.running()) restart(world.between(5, 20));
    });
    this.note(
      `leader ${leader.id} hears no heartbeat responses for ${stall.toFixed(0)} ms; node ${follower.id} restarts twice meanwhile`,
    );
    return true;
  }

  private strike(): void {
    if (!this.active) return;
    const world = this.world;
    const kinds = [...this.classes].filter((kind) => kind !== "skew");
    if (kinds.length > 0) this.strikeOne(world.pick(kinds));
    world.schedule(world.between(100, 600), () => this.strike());
  }

  private strikeOne(kind: FaultClass): void {
    const world = this.world;
    const running = this.running();
    const ids = this.nodes.map((node) => node.id);
    switch (kind) {
      case "crash": {
        if (running.length === 0) return;
        if (world.chance(0.25) && this.restartDuringStalledReads(running)) return;
        // Often a node whose reads wait at the leader: its restart must not confuse a late
        // answer to them with the answer to a new read.
        const reading = running.filter((n) => n.runtime?.readsWaiting() === true);
        const node = world.pick(reading.length > 0 && world.chance(0.5) ? reading : running);
        if (world.chance(0.15)) {
          const downFor = world.between(20, 800);
          this.note(`shut node ${node.id} down gracefully, for ${downFor.toFixed(0)} ms`);
          void node.stop().then(() => this.later(downFor, () => node.start()));
          return;
        }
        const powerLoss = world.chance(0.5);
        node.crash(powerLoss);
        const downFor = world.chance(0.5) ? world.between(10, 60) : world.between(20, 1_500);
        this.note(
          `crash node ${node.id} (${powerLoss ? "power loss" : "process killed"}) for ${downFor.toFixed(0)} ms`,
        );
        this.later(downFor, () => node.start());
        if (world.chance(0.3)) {
          // A crash loop: down again soon after it came back.
          const upFor = world.between(30, 300);
          this.later(downFor + upFor, () => {
            if (!node.running()) return;
            node.crash();
            this.note(`crash node ${node.id} again after ${upFor.toFixed(0)} ms up`);
            this.later(world.between(10, 60), () => node.start());
          });
        }
        return;
      }
      case "pause": {
        if (running.length === 0) return;
        const node = world.pick(running);
        const ms = world.between(100, 1_500);
        node.pause(ms);
        this.note(`pause node ${node.id} for ${ms.toFixed(0)} ms`);
        return;
      }
      case "partition": {
        const shuffled = [...ids].sort(() => world.prng.nextFloat() - 0.5);
        const shape = world.prng.nextInt(4);
        const ms = world.between(200, 2_500);
        let undo: Undo;
        if (shape === 0) {
          undo = this.network.split([shuffled[0]!], shuffled.slice(1));
          this.note(`isolate node ${shuffled[0]} for ${ms.toFixed(0)} ms`);
        } else if (shape === 1) {
          const minority = shuffled.slice(0, Math.floor((ids.length - 1) / 2));
          undo = this.network.split(minority, shuffled.slice(minority.length));
          this.note(
            `split [${minority.join(",")}] | [${shuffled.slice(minority.length).join(",")}] for ${ms.toFixed(0)} ms`,
          );
        } else if (shape === 2) {
          // A bridge: two nodes cannot see each other; the rest see both.
          undo = this.network.split([shuffled[0]!], [shuffled[1]!]);
          this.note(
            `bridge: ${shuffled[0]} and ${shuffled[1]} cut, others see both, for ${ms.toFixed(0)} ms`,
          );
        } else {
          undo = this.network.cutLink(shuffled[0]!, shuffled[1]!);
          this.note(`one-way cut ${shuffled[0]} -> ${shuffled[1]} for ${ms.toFixed(0)} ms`);
        }
        this.later(ms, undo);
        return;
      }
      case "link": {
        const leader = running.find((node) => node.runtime?.metrics().state === "leader");
        if (leader !== undefined && world.chance(0.3)) {
          // The leader hears (almost) no heartbeat responses: its reads wait for a heartbeat
          // round while appends, and so writes, still go through.
          const loss = world.between(0.8, 1);
          const ms = world.between(200, 1_500);
          const undos: Undo[] = [];
          for (const id of ids) {
            if (id !== leader.id)
              undos.push(
                this.network.setFaults(id, leader.id, { ...CALM, heartbeatResponseLoss: loss }),
              );
          }
          this.note(
            `heartbeat responses to leader ${leader.id} lost (${loss.toFixed(2)}) for ${ms.toFixed(0)} ms`,
          );
          this.later(ms, () => undos.forEach((undo) => undo()));
          return;
        }
        const a = world.pick(ids);
        const b = world.pick(ids.filter((id) => id !== a));
        const long = world.chance(0.2);
        const faults = {
          ...(world.chance(0.3) ? { heartbeatResponseLoss: world.between(0.5, 1) } : {}),
          loss: world.chance(0.5) ? world.between(0, 0.3) : 0,
          duplicate: world.chance(0.5) ? world.between(0, 0.2) : 0,
          delay: long
            ? ([world.between(50, 300), world.between(300, 1_800)] as const)
            : ([0.05, world.between(1, 40)] as const),
        };
        const ms = world.between(200, 2_000);
        // Often every link towards one node at once (its heartbeat responses, say).
        const undos: Undo[] = [];
        if (world.chance(0.5)) {
          for (const c of ids)
            if (c !== b && c !== a) undos.push(this.network.setFaults(c, b, faults));
        }
        undos.push(this.network.setFaults(a, b, faults));
        this.note(
          `link ${a} -> ${b}${faults.heartbeatResponseLoss === undefined ? "" : ` (heartbeat responses lost: ${faults.heartbeatResponseLoss.toFixed(2)})`}: loss ${faults.loss.toFixed(2)}, dup ${faults.duplicate.toFixed(2)}, delay ${faults.delay[0].toFixed(1)}-${faults.delay[1].toFixed(0)} ms, for ${ms.toFixed(0)} ms`,
        );
        this.later(ms, () => undos.forEach((undo) => undo()));
        return;
      }
      case "disk": {
        if (running.length === 0) return;
        const node = world.pick(running);
        const reason = world.chance(0.5) ? "ENOSPC: no space left on device" : "EIO: i/o error";
        node.disk.failWrites = reason;
        const ms = world.between(20, 400);
        this.note(`disk of node ${node.id} fails writes (${reason}) for ${ms.toFixed(0)} ms`);
        this.later(ms, () => {
          node.disk.failWrites = undefined;
          if (node.failure !== undefined || !node.running()) {
            // The operator frees space and restarts the stopped node.
            node.crash();
            node.start();
          }
        });
        return;
      }
      case "snapshot": {
        const p = world.between(0, 0.5);
        const undo = this.network.breakSnapshots(p);
        const node = running.length > 0 ? world.pick(running) : undefined;
        this.note(
          `snapshot streams break (p ${p.toFixed(2)}); snapshot on node ${node?.id ?? "-"}`,
        );
        void node?.api?.triggerSnapshot().catch(() => undefined);
        this.later(world.between(200, 1_500), undo);
        return;
      }
      case "transfer": {
        const leader = running.find((node) => node.runtime?.metrics().state === "leader");
        if (leader === undefined) return;
        const target: NodeId = world.pick(ids.filter((id) => id !== leader.id));
        this.note(`transfer leadership ${leader.id} -> ${target}`);
        // Some long enough to ask again (after 1.2 s here) for a transfer not yet done.
        const timeoutMs = world.between(1_000, 4_000);
        void leader.api?.transferLeader(target, { timeoutMs }).catch(() => undefined);
        return;
      }
      case "membership": {
        const leader = running.find((node) => node.runtime?.metrics().state === "leader");
        if (leader === undefined) return;
        const m = leader.runtime!.metrics();
        const voters = m.membership.voters;
        const learners = m.membership.learners;
        const absent = this.nodes.filter(
          (node) =>
            !voters.some((v) => v.nodeId === node.id) &&
            !learners.some((l) => l.nodeId === node.id),
        );
        const options = { timeoutMs: 1_000 };
        if (learners.length > 0) {
          const learner = world.pick(learners);
          this.note(`promote learner ${learner.nodeId} (leader ${leader.id})`);
          void leader
            .api!.changeMembership(
              { voters: [...voters, learner], learners: learners.filter((l) => l !== learner) },
              options,
            )
            .catch(() => undefined);
        } else if (absent.length > 0) {
          const node = world.pick(absent);
          this.note(`add node ${node.id} as a learner (leader ${leader.id})`);
          void leader
            .api!.addLearner({ nodeId: node.id, addr: node.addr }, options)
            .catch(() => undefined);
        } else if (voters.length > 2) {
          const removed = world.pick(voters.filter((v) => v.nodeId !== leader.id));
          this.note(`remove voter ${removed.nodeId} (leader ${leader.id})`);
          void leader
            .api!.changeMembership(
              { voters: voters.filter((v) => v !== removed), learners },
              options,
            )
            .catch(() => undefined);
        }
        return;
      }
      case "skew":
        return; // set per process at start (see SimNode)
    }
  }
}
