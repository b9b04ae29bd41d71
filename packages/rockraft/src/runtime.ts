import type { Config } from "@rockraft/config";
import {
  NONE,
  RawNode,
  createPrng,
  type Message,
  type NodeId,
  type Ready,
  type SnapshotMetadata,
  type SoftState,
} from "@rockraft/raft-core";
import { StorageError, type ApplyResult, type Command } from "@rockraft/storage-level";
import type { SnapshotSink } from "@rockraft/transport-grpc";
import type { Logger } from "pino";
import { AddressBook, addressContext, addressesAfter } from "./address-book.js";
import { LogClock, TickClock } from "./clock.js";
import { awaitLeader } from "./leader-wait.js";
import { RockraftError, refusalOf, withUnknownOutcome } from "./errors.js";
import {
  RemovalWatch,
  awaitChange,
  checkMembershipTarget,
  settledAt,
} from "./membership-checks.js";
import type { NodeMetricsExporter } from "./metrics.js";
import { raftOptionsOf } from "./options.js";
import { ProposalTracker, type AppliedWrite } from "./proposals.js";
import { Proposer } from "./proposer.js";
import { ReadBatcher } from "./reads.js";
import { ReadyLoop } from "./ready-loop.js";
import { SnapshotPolicy } from "./snapshot-policy.js";
import type {
  Clock,
  LeaderCalls,
  NodeStorage,
  PeerNetwork,
  RuntimeEnvironment,
  ServingStatus,
} from "./seams.js";
import { Waiter, metricsOf, type LogId, type Member, type NodeMetrics } from "./wait.js";
import type { YoungGcScheduler } from "./young-gc.js";

/**
 * The runtime under a RaftNode: it drives raft-core with storage and the peer network. The
 * Ready loop (ready-loop.ts) carries out each Ready's duties in order; messages, ticks and
 * requests arrive between Readies and are stepped in at once; writes and reads that arrive
 * together go in as one batch (proposer.ts, reads.ts).
 */
export type { RuntimeEnvironment } from "./seams.js";

export class NodeRuntime {
  readonly nodeId: NodeId;
  readonly raw: RawNode;
  readonly waiter: Waiter;
  readonly storage: NodeStorage;
  readonly logger: Logger;
  readonly clock: Clock;
  private readonly network: PeerNetwork;
  private readonly leaderCalls: LeaderCalls;
  private readonly addresses: AddressBook;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** When (monotonic ms) each peer was last heard from. */
  private readonly lastHeard = new Map<NodeId, number>();
  /** The soft state as of the last Ready taken (its changes); `knownLeader()` is the live one. */
  private softState: SoftState = { lead: NONE, role: "follower", term: 0 };
  private lastApplied: LogId | undefined;
  private readonly proposer: Proposer;
  private readonly reads: ReadBatcher;
  private readonly loop: ReadyLoop;
  private ticker: unknown;
  private readonly ticks: TickClock;
  private readonly logClock: LogClock;
  private readonly removal: RemovalWatch;
  /** When this runtime started (monotonic ms). */
  readonly startedAt: number;
  private server: ServingStatus | undefined;
  private stopping = false;
  private failure: Error | undefined;
  /** Resolves with the failure that stopped the node, if one does. */
  readonly failed: Promise<RockraftError>;
  private resolveFailed!: (error: RockraftError) => void;
  private readonly metricsExporter: NodeMetricsExporter | undefined;
  private readonly youngGc: YoungGcScheduler | undefined;
  private readonly unsafe: NonNullable<RuntimeEnvironment["testingUnsafe"]>;

  /** How many configs this node has run with: 1, then one more at each reload. */
  configGeneration = 1;

  constructor(
    /** The running config; a reload replaces it (reload.ts says which keys may change). */
    public config: Config,
    env: RuntimeEnvironment,
  ) {
    this.nodeId = config.node.nodeId;
    this.storage = env.storage;
    this.logger = env.logger;
    this.clock = env.clock;
    this.leaderCalls = env.leaderCalls;
    this.metricsExporter = env.metrics;
    this.youngGc = env.youngGc;
    this.unsafe = env.testingUnsafe ?? {};
    this.startedAt = this.clock.monotonic();
    this.failed = new Promise((resolve) => (this.resolveFailed = resolve));
    this.waiter = new Waiter(() => this.metrics(), this.clock);
    if (this.metricsExporter !== undefined) this.metricsExporter.source = () => this.metrics();
    const storage = this.storage;
    this.raw = new RawNode({
      id: this.nodeId,
      storage: storage.raftStorage,
      prng: createPrng(env.random.int(0x7fffffff)),
      applied: storage.applied().index,
      ...raftOptionsOf(config),
    });
    const applied = storage.applied();
    this.lastApplied =
      applied.index === 0 ? undefined : { term: applied.term, nodeId: NONE, index: applied.index };
    // At most two maximal election timeouts of ticks at once: enough for every timer.
    this.ticks = new TickClock(
      this.clock,
      this.raw,
      config.raft.tickIntervalMs,
      2 * (raftOptionsOf(config).electionTickMax ?? 0) + 2,
    );
    this.logClock = new LogClock(this.clock, config.sessions.clockIntervalMs);
    this.removal = new RemovalWatch(this.nodeId);
    // Random per process: request ids and read contexts never repeat across restarts.
    const prefix = env.random.bytes(8);
    const tracker = new ProposalTracker(this.clock, (seconds) =>
      this.metricsExporter?.applyLatency.observe(seconds),
    );
    this.proposer = new Proposer(
      prefix,
      tracker,
      this.clock,
      (id) => this.addresses.get(id),
      (count) => this.metricsExporter?.proposals.inc(count),
      this.unsafe.answerWhenAppended === true,
    );
    this.reads = new ReadBatcher(
      this.unsafe.fixedReadPrefix === true ? "" : `${Buffer.from(prefix).toString("hex")}/`,
      this.clock,
      () => this.loop.wake(),
    );
    this.network = env.network({
      onUnreachable: (peer) => this.raw.reportUnreachable(peer),
      onDropped: (_peer, messages) => {
        this.proposer.dropped(messages); // forwarded writes fail at once, safely
        this.reads.dropped(messages); // reads are sent again
      },
      onSnapshotStatus: (peer, ok) => {
        this.raw.reportSnapshot(peer, ok);
        if (ok) this.metricsExporter?.snapshotsSent.inc();
        this.loop.wake();
      },
      snapshotSource: () => storage.openSnapshotReader(config.raft.snapshotChunkBytes),
    });
    this.addresses = new AddressBook(
      { id: this.nodeId, addr: config.node.advertiseAddr },
      (addresses) => this.network.setPeers(addresses),
    );
    this.addresses.refresh(this.raw.confState());
    this.loop = new ReadyLoop(
      {
        raw: this.raw,
        storage,
        network: this.network,
        ticks: this.ticks,
        beforeReady: () => this.flushRequests(),
        softStateChanged: (soft) => this.onSoftState(soft),
        sent: (ready) => this.onSent(ready),
        snapshotInstalled: (metadata) => this.onSnapshotInstalled(metadata),
        applied: (results) => this.onApplied(results),
        readStates: (states) => this.reads.confirmed(states),
        afterReady: () => this.afterReady(),
        idle: () => this.publish(),
        fail: (error) => this.fail(error),
      },
      () => this.failure !== undefined,
    );
    this.ticker = this.clock.setInterval(() => {
      if (this.ticks.catchUp()) this.loop.wake();
      this.moveLogTime();
    }, config.raft.tickIntervalMs);
    // A failed write (a store's own too) stops the node at once, unless it is shutting down.
    storage.onFailure((error) => void (this.stopping || this.fail(error)));
  }

  /** Where to report whether this node can serve clients (the gRPC server's health). */
  attachServer(server: ServingStatus): void {
    this.server = server;
    this.updateServing();
  }

  /** Whether reads wait for the leader to confirm them (for the simulation's faults). */
  readsWaiting(): boolean {
    return this.reads.hasSent;
  }

  /** Messages from a peer (PeerHandler.receive). */
  receive(messages: readonly Message[], from: NodeId, fromAddr: string): void {
    if (this.stopped) return;
    this.lastHeard.set(from, this.clock.monotonic());
    if (this.addresses.learn(from, fromAddr)) this.addresses.refresh(this.raw.confState(), true);
    try {
      this.ticks.catchUp();
      for (const message of messages) this.raw.step(message);
    } catch (error) {
      this.fail(error);
      return;
    }
    this.loop.wake();
  }

  beginSnapshot(metadata: SnapshotMetadata): Promise<SnapshotSink> {
    this.assertRunning();
    return this.storage.beginSnapshotInstall(metadata);
  }

  /** Bootstraps a new cluster on this node; false when it already has state. */
  async initialize(members: readonly Member[]): Promise<boolean> {
    this.assertRunning();
    const status = this.raw.status();
    if (status.lastIndex > 0 || status.hardState.term > 0) return false;
    const addresses = new Map(members.map((m) => [m.nodeId, m.addr]));
    this.raw.bootstrap({
      voters: members.map((m) => m.nodeId),
      context: addressContext(addresses),
    });
    this.addresses.refresh(this.raw.confState());
    // Campaign at once, as the seed's node 1 does; the election completes when a quorum is up.
    this.raw.campaign();
    this.loop.wake();
    await this.waiter.until(
      (m) => m.lastApplied !== undefined && m.lastApplied.index >= 1,
      "the initial configuration to be applied",
      30_000,
    );
    return true;
  }

  /**
   * Proposes a command; resolves once committed and applied on this node. On a follower,
   * raft-core forwards the proposal to the leader over the peer stream (a MsgProp, batched
   * with the others), and the proposal's request id finds it again when this node applies
   * it: no gRPC call per forwarded write. A MsgProp the network drops unsent (the leader
   * is down or its queue full; on a new connection, once its first attempt fails, within a
   * second) fails the proposal with RAFT_PROPOSAL_DROPPED (reason `unreachable`), which is
   * safe to retry; one lost after it was sent is only noticed at the deadline, with an
   * unknown outcome.
   */
  async write(command: Command, timeoutMs: number): Promise<AppliedWrite> {
    this.assertRunning();
    const deadline = this.clock.now() + timeoutMs;
    await this.awaitLeader(deadline);
    this.assertRunning(); // it may have stopped meanwhile
    const written = this.proposer.submit(command, deadline);
    this.loop.wake();
    return written;
  }

  /** A linearizable read point: resolves with an index to wait for before reading. */
  async readIndex(timeoutMs: number): Promise<number> {
    this.assertRunning();
    if (this.unsafe.localReads === true) return this.storage.applied().index; // a known bug
    const deadline = this.clock.now() + timeoutMs;
    await this.awaitLeader(deadline);
    this.assertRunning();
    const read = this.reads.request(deadline);
    this.loop.wake();
    const index = await read;
    await this.awaitApplied(index, deadline);
    return index;
  }

  /**
   * Reads `key` from the applied state. A value that fails its checksum is never served:
   * the node stops (its data is damaged) and the call fails with RAFT_NODE_STOPPED.
   */
  async readState(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.assertRunning();
    try {
      return await this.storage.get(key);
    } catch (error) {
      if (error instanceof StorageError && error.code === "STORAGE_CORRUPTED") {
        this.fail(error);
        this.assertRunning();
      }
      throw error;
    }
  }

  /** Resolves once the state machine has applied `index`. */
  async awaitApplied(index: number, deadline: number): Promise<void> {
    if ((this.lastApplied?.index ?? 0) >= index) return;
    await this.waiter.until(
      (m) => (m.lastApplied?.index ?? 0) >= index,
      `applied index >= ${index}`,
      Math.max(0, deadline - this.clock.now()),
      "RAFT_TIMEOUT",
    );
  }

  /** A known leader (leader-wait.ts): the Raft node's, as in metrics, not the loop's copy. */
  awaitLeader(deadline: number): Promise<void> {
    if (this.knownLeader() !== NONE) return Promise.resolve();
    return awaitLeader(this, deadline);
  }

  /** Runs `call` against the leader's address (membership calls from a follower). */
  async forwardToLeader<T>(call: (calls: LeaderCalls, addr: string) => Promise<T>): Promise<T> {
    this.assertRunning();
    const addr = this.leaderAddress();
    if (addr === undefined) throw this.notLeader();
    return call(this.leaderCalls, addr);
  }

  /** The leader as the Raft node knows it now (the loop's copy lags while it writes); none once stopped. */
  knownLeader(): NodeId {
    return this.stopped ? NONE : this.raw.softState().lead;
  }

  /** Failed, or shutting down: it leads nothing and follows no one (as its metrics say). */
  private get stopped(): boolean {
    return this.failure !== undefined || this.stopping;
  }

  leaderAddress(): string | undefined {
    const lead = this.knownLeader();
    return lead === NONE ? undefined : this.addresses.get(lead);
  }

  notLeader(): RockraftError {
    const lead = this.knownLeader();
    return lead === NONE
      ? new RockraftError("RAFT_NO_LEADER", `node ${this.nodeId}: there is no leader`)
      : new RockraftError(
          "RAFT_NOT_LEADER",
          `node ${this.nodeId} is not the leader (node ${lead} is)`,
          { leader: { id: lead, addr: this.addresses.get(lead) } },
        );
  }

  /** Changes membership on the leader; resolves once the change is applied here. */
  async changeMembership(
    target: { voters: readonly Member[]; learners: readonly Member[] },
    timeoutMs: number,
  ): Promise<number> {
    this.assertRunning();
    checkMembershipTarget(target, {
      addresses: this.addresses.all(),
      status: this.raw.status(),
      lastHeard: this.lastHeard,
      now: this.clock.monotonic(),
      maxLagEntries: this.config.raft.promoteMaxLagEntries,
      electionTimeoutMs: this.config.raft.electionTimeoutMinMs,
    });
    const deadline = this.clock.now() + timeoutMs;
    const addresses = addressesAfter(this.addresses.all(), target);
    let position: { index: number; term: number };
    try {
      position = this.raw.changeMembership({
        voters: target.voters.map((m) => m.nodeId),
        learners: target.learners.map((m) => m.nodeId),
        context: addressContext(addresses),
      });
    } catch (error) {
      throw this.refusal(error);
    }
    this.addresses.refresh(this.raw.confState());
    this.loop.wake();
    return awaitChange(
      this.waiter,
      position,
      () => this.raw.status(),
      this.storage.raftStorage,
      Math.max(0, deadline - this.clock.now()),
    );
  }

  /** The configuration in effect, when it already is `target` (see settledAt): its index. */
  membershipSettled(target: { voters: readonly Member[]; learners: readonly Member[] }) {
    return settledAt(target, this.raw.status(), this.lastApplied?.index ?? 0, this.addresses.all());
  }

  transferLeader(target: NodeId): void {
    this.assertRunning();
    try {
      this.raw.transferLeader(target);
    } catch (error) {
      throw this.refusal(error);
    }
    this.loop.wake();
  }

  /** Takes a snapshot of the applied state now (also when the snapshot policy says so). */
  async triggerSnapshot(): Promise<number> {
    this.assertRunning();
    let metadata;
    try {
      metadata = await this.storage.takeSnapshot();
    } catch (error) {
      if (error instanceof StorageError) this.fail(error); // the store stopped: so does the node
      throw error;
    }
    if (metadata === undefined) return this.snapshotIndex();
    this.raw.snapshotTaken(metadata.index, SnapshotPolicy.of(this.config.raft).keepEntries);
    this.metricsExporter?.snapshotsTaken.inc();
    this.loop.wake();
    return metadata.index;
  }

  initialized(): boolean {
    const status = this.raw.status();
    return status.confState.voters.length > 0 || status.lastIndex > 0;
  }

  metrics(): NodeMetrics {
    const status = this.raw.status();
    return metricsOf(status, {
      nodeId: this.nodeId,
      initialized: this.initialized(),
      stopped: this.stopped,
      removed: this.removal.removed(status),
      lastApplied: this.lastApplied,
      snapshotIndex: this.snapshotIndex(),
      openSessions: this.storage.openSessions(),
      configGeneration: this.configGeneration,
      addressOf: (id) => this.addresses.get(id),
    });
  }

  /** Stops ticking and the loop; settles pending calls. Storage and server are the caller's. */
  async stop(reason: Error): Promise<void> {
    if (this.stopping) return this.loop.done;
    this.stopping = true;
    this.clock.clear(this.ticker);
    this.youngGc?.close();
    await this.loop.stop();
    this.network.close();
    this.leaderCalls.close();
    this.rejectAll(reason);
    this.waiter.close(reason);
  }

  stoppedBy(): Error | undefined {
    return this.failure;
  }

  private flushRequests(): void {
    if (this.proposer.hasQueued) this.proposer.flush(this.raw);
    if (this.reads.hasQueued) {
      this.ticks.catchUp(); // a lease is judged by a clock that has caught up
      this.reads.flush(this.raw, this.clock.now());
    }
  }

  /** The newest snapshot's index: the storage view's (taken here or installed from the leader). */
  private snapshotIndex(): number {
    return this.storage.raftStorage.snapshot().metadata.index;
  }

  private onSent(ready: Ready): void {
    if (this.softState.role === "leader") this.youngGc?.afterSent(ready.messages);
  }

  private onSnapshotInstalled(metadata: SnapshotMetadata): void {
    this.lastApplied = this.logIdOf(metadata);
    this.metricsExporter?.snapshotsInstalled.inc();
    this.logger.info({ index: metadata.index }, "installed a snapshot from the leader");
  }

  private onApplied(results: readonly ApplyResult[]): void {
    for (const result of results) {
      const logId = this.logIdOf(result);
      this.lastApplied = logId;
      // A retried write answers where its first application landed.
      const original = "duplicateOf" in result ? result.duplicateOf : undefined;
      const answer = original === undefined ? logId : this.logIdOf(original);
      this.proposer.tracker.applied(result, answer, this.unsafe.waiterByIndexOnly === true);
    }
  }

  private logIdOf(position: { term: number; index: number }): LogId {
    const nodeId = this.leaderOfTerm.get(position.term) ?? NONE;
    return { term: position.term, nodeId, index: position.index };
  }

  /** While client sessions are open, the leader moves the log's time on (LogClock). */
  private moveLogTime(): void {
    const leader = this.softState.role === "leader" && this.failure === undefined;
    const elapsedMs = this.logClock.due(leader, this.storage.openSessions() > 0);
    if (elapsedMs === undefined) return;
    const deadline = this.clock.now() + 10 * this.config.sessions.clockIntervalMs;
    // A lost clock entry's interval is not counted: sessions live a little longer.
    this.proposer.submit({ op: "clock", elapsedMs }, deadline).catch(() => undefined);
    this.loop.wake();
  }

  private async afterReady(): Promise<void> {
    // Snapshot data streamed in for a MsgSnap the core then ignored (it already had those
    // entries) would otherwise stay on disk until the next restart. Only data at or below
    // the applied index: a snapshot the core accepted waits in the next Ready.
    const applied = this.storage.applied().index;
    if (this.storage.hasStagedSnapshots()) await this.storage.discardStagedSnapshots(applied);
    // Not while shutting down: a stop is not a failure.
    const due = SnapshotPolicy.of(this.config.raft).due(applied, this.snapshotIndex()); // live
    if (due && !this.stopping) await this.triggerSnapshot();
    this.sayIfRemoved();
    this.addresses.refresh(this.raw.confState());
    this.reads.expire();
    if (this.reads.hasQueued && this.softState.lead !== NONE) this.loop.wake();
    this.publish();
  }

  private onSoftState(soft: SoftState): void {
    const before = this.softState;
    this.softState = soft;
    // Reads sent to a leader that lost its term are dropped there: fail them now, to be
    // retried. (The copy may go straight to the next leader, or to the same in a new term;
    // reads flushed since, to the leader of this Ready, wait on.)
    const lost = soft.lead !== before.lead || soft.term !== before.term;
    if (lost && this.reads.hasSent) {
      const why = soft.lead === NONE ? "was lost" : `changed to node ${soft.lead}`;
      const error = `node ${this.nodeId}: the leader ${why} before it confirmed the read; retry`;
      this.reads.leaderLost(new RockraftError("RAFT_NO_LEADER", error), soft);
    }
    if (soft.lead !== NONE) this.leaderOfTerm.set(soft.term, soft.lead);
    if (before.lead !== soft.lead || before.role !== soft.role) {
      this.logger.info(
        { term: soft.term, leader: soft.lead, role: soft.role },
        soft.lead === NONE ? "no leader" : `leader is node ${soft.lead}`,
      );
    }
    this.updateServing();
  }

  /** Says once, in the log, that this node was removed from the cluster (after each Ready). */
  private sayIfRemoved(): void {
    const configIndex = this.removal.newlyRemoved(this.raw.confState(), () => this.raw.status());
    if (configIndex === undefined) return;
    this.logger.warn(
      { configIndex },
      `node ${this.nodeId} was removed from the cluster (configuration at index ${configIndex}): it no longer votes or campaigns; shut it down`,
    );
  }

  private updateServing(): void {
    this.server?.setServing(
      this.failure === undefined && !this.stopping && this.softState.lead !== NONE,
    );
  }

  /** Tells waiters and subscribers of a change; metrics are built only when someone waits. */
  private publish(): void {
    if (this.waiter.idle()) return;
    this.waiter.notify(this.metrics());
  }

  private refusal(error: unknown): Error {
    return refusalOf(error, () => this.notLeader());
  }

  private assertRunning(): void {
    if (this.failure !== undefined) {
      throw new RockraftError(
        "RAFT_NODE_STOPPED",
        `node ${this.nodeId} stopped after a failure: ${this.failure.message}`,
        { cause: this.failure },
      );
    }
    if (this.stopping)
      throw new RockraftError("RAFT_NODE_STOPPED", `node ${this.nodeId} is shut down`);
  }

  /** A storage failure or a broken invariant stops the node; every later call rejects with it. */
  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.logger.fatal({ err: this.failure }, "node stopped");
    this.clock.clear(this.ticker);
    this.updateServing();
    const stopped = new RockraftError(
      "RAFT_NODE_STOPPED",
      `node ${this.nodeId} stopped after a failure: ${this.failure.message}`,
      { cause: this.failure },
    );
    this.rejectAll(stopped);
    this.waiter.close(stopped);
    this.loop.wake();
    this.resolveFailed(stopped);
  }

  private rejectAll(error: Error): void {
    // Proposed writes may still commit (on the other nodes, or from this log after a restart).
    this.proposer.rejectAll(error, withUnknownOutcome(error));
    this.reads.rejectAll(error);
  }
}
