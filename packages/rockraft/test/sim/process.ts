// A simulated node process: the real runtime (NodeRuntime and RaftApi, from src/) on a
// simulated clock, disk and network. A crash abandons the process (its timers and pending
// writes die with it, its disk keeps only what was durable) and a restart builds a new
// runtime from the disk, as a new process would.
import { parseConfig, type Config } from "@rockraft/config";
import type { Entry, NodeId } from "@rockraft/raft-core";
import type { ApplyResult } from "@rockraft/storage-level";
import { pino } from "pino";
import { AuthGate } from "../../src/auth.js";
import { RaftApi } from "../../src/api.js";
import { NodeRuntime, type RuntimeEnvironment } from "../../src/runtime.js";
import type { LeaderCalls } from "../../src/seams.js";
import { RockraftError } from "../../src/errors.js";
import type { SimNetwork } from "./network.js";
import { SimDisk } from "./sim-disk.js";
import { SimStorage } from "./sim-storage.js";
import type { Owner, World } from "./world.js";

const silent = pino({ level: "silent" });

/** Raft settings of every simulated node: fast timing, small snapshots. */
export function simConfig(id: NodeId, extraRaft = ""): Config {
  return parseConfig(
    `[node]
node_id = ${id}
raft_addr = "127.0.0.1:${7000 + id}"

[rocksdb]
data_path = "/sim/node${id}"

[raft]
tick_interval_ms = 10
heartbeat_interval_ms = 30
election_timeout_min_ms = 300
election_timeout_max_ms = 600
snapshot_logs_since_last = 150
snapshot_keep_logs = 20
snapshot_chunk_bytes = 1024
max_entries_per_append = 64
${extraRaft}
[sessions]
idle_timeout_ms = 1500
clock_interval_ms = 100

[log]
level = "silent"
`,
    { source: `sim-node${id}.toml` },
  );
}

export class SimNode {
  readonly disk = new SimDisk();
  readonly addr: string;
  owner: Owner = { alive: false, pausedUntil: 0 };
  runtime: NodeRuntime | undefined;
  api: RaftApi | undefined;
  /** Incremented by every crash, stop, pause and start: calls across one are exempt from deadlines. */
  disturbances = 0;
  /** Set when the runtime stopped itself after a failure (disk full, broken invariant). */
  failure: Error | undefined;
  incarnation = 0;
  /** Told when the process dies (its clients' connections break). */
  onCrash: (() => void) | undefined;
  /** A graceful shutdown is under way. */
  private stopping = false;
  /** This incarnation's clock rate (1: true time; skew makes it faster or slower). */
  rate = 1;
  /** A scenario's slow disk: every synced write takes this long (ms). */
  syncMs: number | undefined;

  constructor(
    readonly id: NodeId,
    readonly config: Config,
    private readonly world: World,
    private readonly network: SimNetwork,
    private readonly peers: (addr: string) => SimNode | undefined,
    private readonly unsafe: RuntimeEnvironment["testingUnsafe"] = {},
    /** Clock rate range of each incarnation (skew). */
    private readonly skew = 0,
    /** Told of every entry this node's state machine applies. */
    private readonly onApplied: (node: NodeId, entry: Entry, result: ApplyResult) => void = () =>
      undefined,
  ) {
    this.addr = config.node.advertiseAddr;
  }

  /** Running, not shutting down, and not stopped by a failure. */
  running(): boolean {
    return (
      this.owner.alive && this.runtime !== undefined && this.failure === undefined && !this.stopping
    );
  }

  start(): void {
    if (this.owner.alive) return;
    this.incarnation++;
    this.disturbances++;
    this.failure = undefined;
    const owner: Owner = { alive: true, pausedUntil: 0 };
    this.owner = owner;
    const world = this.world;
    this.rate = 1 + world.between(-this.skew, this.skew);
    const clock = world.clock(owner, this.rate);
    const random = {
      bytes: (count: number) => {
        const bytes = new Uint8Array(count);
        for (let i = 0; i < count; i++) bytes[i] = world.prng.nextInt(256);
        return bytes;
      },
      int: (max: number) => world.prng.nextInt(max),
    };
    const storage = SimStorage.open(
      this.disk,
      (ms) => new Promise((resolve) => clock.setTimeout(resolve, ms)),
      (sync) => {
        const ms = sync ? world.between(0.5, 4) : world.between(0.05, 0.5);
        return sync ? (this.syncMs ?? ms) : ms;
      },
      (entry, result) => this.onApplied(this.id, entry, result),
    );
    const runtime = new NodeRuntime(this.config, {
      storage,
      clock,
      random,
      network: (events) => this.network.attach(this, events),
      leaderCalls: this.leaderCalls(),
      logger: silent,
      testingUnsafe: this.unsafe,
    });
    this.runtime = runtime;
    const gate = new AuthGate(
      () => storage.authState(),
      () => 300_000,
      clock,
    );
    this.api = new RaftApi(runtime, gate);
    void runtime.failed.then((error) => {
      if (this.runtime === runtime) this.failure = error;
    });
  }

  /**
   * The process dies; nothing of it runs again. With `powerLoss` (the machine too) every
   * write not yet synced is lost; without (SIGKILL), the operating system keeps them.
   */
  crash(powerLoss = true): void {
    if (!this.owner.alive) return;
    this.owner.alive = false;
    this.stopping = false;
    this.disturbances++;
    if (powerLoss) this.disk.crash();
    else this.disk.processDied();
    this.onCrash?.();
    this.runtime = undefined;
    this.api = undefined;
  }

  /** A graceful shutdown, as `RaftNode.shutdown` does (the server aside). */
  async stop(): Promise<void> {
    const runtime = this.runtime;
    const owner = this.owner;
    if (!owner.alive || runtime === undefined || this.stopping) return;
    this.disturbances++;
    this.stopping = true;
    try {
      await runtime.stop(new RockraftError("RAFT_NODE_STOPPED", `node ${this.id} is shut down`));
      await runtime.storage.close();
    } finally {
      // A crash (or a restart) meanwhile made another process: leave that one alone.
      if (this.owner === owner) {
        this.stopping = false;
        owner.alive = false;
        this.runtime = undefined;
        this.api = undefined;
      }
    }
  }

  /** SIGSTOP for `ms`, then SIGCONT: nothing of the process runs meanwhile. */
  pause(ms: number): void {
    if (!this.owner.alive) return;
    this.disturbances++;
    this.owner.pausedUntil = Math.max(this.owner.pausedUntil, this.world.now + ms);
  }

  /** Membership calls forwarded to the leader: a direct call after a network hop. */
  private leaderCalls(): LeaderCalls {
    const forward = <T>(addr: string, timeoutMs: number, call: (api: RaftApi) => Promise<T>) =>
      new Promise<T>((resolve, reject) => {
        const owner = this.owner;
        const timer = this.world.schedule(
          timeoutMs,
          () =>
            reject(
              new RockraftError("RAFT_TIMEOUT", "forwarded to the leader: no answer", {
                outcomeUnknown: true,
              }),
            ),
          owner,
        );
        this.world.schedule(this.world.between(0.2, 2), () => {
          const leader = this.peers(addr);
          if (leader === undefined || !leader.running() || this.network.isCut(this.id, leader.id)) {
            timer.cancelled = true;
            reject(
              new RockraftError("RAFT_NO_LEADER", `forwarded to the leader: ${addr} unreachable`),
            );
            return;
          }
          call(leader.api!).then(
            (value) =>
              this.world.schedule(
                this.world.between(0.2, 2),
                () => {
                  timer.cancelled = true;
                  resolve(value);
                },
                owner,
              ),
            (error: unknown) =>
              this.world.schedule(
                this.world.between(0.2, 2),
                () => {
                  timer.cancelled = true;
                  reject(error instanceof Error ? error : new Error(String(error)));
                },
                owner,
              ),
          );
        });
      });
    return {
      addLearner: (addr, member, timeoutMs) =>
        forward(addr, timeoutMs, (api) => api.addLearner(member, { timeoutMs })),
      changeMembership: (addr, target, timeoutMs) =>
        forward(addr, timeoutMs, (api) =>
          api.changeMembership(
            {
              voters: target.voters,
              learners: target.learners,
            },
            { timeoutMs },
          ),
        ),
      close: () => undefined,
    };
  }
}
