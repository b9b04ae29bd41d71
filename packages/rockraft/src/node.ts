import { randomBytes, randomInt } from "node:crypto";
import type { Config } from "@rockraft/config";
import {
  NONE,
  RaftError,
  RawNode,
  createPrng,
  type ConfState,
  type Message,
  type NodeId,
  type ReadState,
  type SoftState,
} from "@rockraft/raft-core";
import {
  decodeCommand,
  encodeCommand,
  type ApplyResult,
  type Command,
  type LevelStorage,
  StorageError,
} from "@rockraft/storage-level";
import {
  PeerTransport,
  RockraftClient,
  RockraftClientError,
  type RockraftServer,
  type SnapshotSink,
} from "@rockraft/transport-grpc";
import type { Logger } from "pino";
import { RockraftError, withUnknownOutcome } from "./errors.js";
import { NodeMetricsExporter } from "./metrics.js";
import { maxMessageBytesOf, raftOptionsOf } from "./options.js";
import { TickClock } from "./clock.js";
import { RemovalWatch, checkMembershipTarget } from "./membership-checks.js";
import { ProposalTracker, requestKey, type AppliedWrite, type Proposal } from "./proposals.js";
import { Waiter, type NodeMetrics, type Member, type LogId } from "./wait.js";
import type { YoungGcScheduler } from "./young-gc.js";

interface PendingRead {
  readonly resolve: (index: number) => void;
  readonly reject: (error: Error) => void;
  readonly deadline: number;
}

/** Parsed addresses from a configuration's context (see `addressContext`). */
function addressesOf(conf: ConfState): Map<NodeId, string> {
  const result = new Map<NodeId, string>();
  if (conf.context === undefined) return result;
  try {
    const parsed = JSON.parse(conf.context) as { addresses?: Record<string, string> };
    for (const [id, addr] of Object.entries(parsed.addresses ?? {})) result.set(Number(id), addr);
  } catch {
    // A context that is not ours: no addresses.
  }
  return result;
}

/** The entries of the first append in `messages` that has any (0: none). */
function appendedEntries(messages: readonly Message[]): number {
  for (const message of messages) {
    if (message.type === "MsgApp" && message.entries.length > 0) return message.entries.length;
  }
  return 0;
}

export function addressContext(addresses: ReadonlyMap<NodeId, string>): string {
  const sorted = [...addresses].sort(([a], [b]) => a - b);
  return JSON.stringify({
    addresses: Object.fromEntries(sorted.map(([id, addr]) => [String(id), addr])),
  });
}

/**
 * A call forwarded to the leader (as a RockraftClient call) failed: the error to report
 * here. One that may have reached the leader without an answer is RAFT_TIMEOUT with an
 * unknown outcome (the change may be made), never a code that invites a blind retry.
 */
export function forwardedError(error: unknown): Error {
  if (!(error instanceof RockraftClientError)) return error as Error;
  const code =
    error.code === "DEADLINE_EXCEEDED" || error.outcomeUnknown
      ? "RAFT_TIMEOUT"
      : error.code === "INVALID_ARGUMENT"
        ? "RAFT_INVALID_ARGUMENT"
        : error.code === "FAILED_PRECONDITION"
          ? error.serverCode === "RAFT_REQUEST_REFUSED"
            ? "RAFT_REQUEST_REFUSED"
            : "RAFT_NOT_INITIALIZED"
          : error.serverCode === "RAFT_PROPOSAL_DROPPED"
            ? "RAFT_PROPOSAL_DROPPED"
            : "RAFT_NO_LEADER";
  return new RockraftError(code, `forwarded to the leader: ${error.message}`, {
    outcomeUnknown: error.outcomeUnknown,
    cause: error,
  });
}

/**
 * The runtime under a RaftNode: it drives raft-core with storage and transport. One loop
 * takes each Ready and carries out its duties in order (send, persist, send what waited,
 * apply, advance); messages, ticks and requests arrive between Readies and are stepped in
 * at once; proposals and reads that arrive together go in as one batch.
 */
export class NodeRuntime {
  readonly nodeId: NodeId;
  readonly raw: RawNode;
  readonly waiter = new Waiter(() => this.metrics());
  private readonly transport: PeerTransport;
  private server: RockraftServer | undefined;
  private readonly learnedAddresses = new Map<NodeId, string>();
  /** The configuration `addresses` were last computed from. */
  private addressesConf: ConfState | undefined;
  private addresses = new Map<NodeId, string>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** When (performance.now()) each peer was last heard from. */
  private readonly lastHeard = new Map<NodeId, number>();
  private softState: SoftState = { lead: NONE, role: "follower", term: 0 };
  private lastApplied: LogId | undefined;
  private snapshotIndex: number;

  private proposals: Proposal[] = [];
  /** Proposed writes waiting for their entries to be applied. */
  private readonly waiting: ProposalTracker;
  /** Random per process, so that request ids never repeat across restarts. */
  private readonly requestPrefix = randomBytes(8);
  private requestCounter = 0;
  private reads: PendingRead[] = [];
  private readonly readBatches = new Map<string, PendingRead[]>();
  /**
   * Read contexts carry the same random per-process prefix as request ids: a restarted
   * node must never reuse a context a leader may still hold from before (it would be
   * answered with that older, lower read index).
   */
  private readonly readPrefix = `${this.requestPrefix.toString("hex")}/`;
  private readCounter = 0;
  private readonly forwardClients = new Map<string, RockraftClient>();

  private wakeUp: (() => void) | undefined;
  private woken = false;
  private ticker: NodeJS.Timeout | undefined;
  private readonly clock: TickClock;
  private readonly removal: RemovalWatch;
  /** When this runtime started (monotonic ms). */
  private readonly startedAt = performance.now();
  private stopping = false;
  private failure: Error | undefined;
  /** Resolves with the failure that stopped the node, if one does. */
  readonly failed: Promise<RockraftError>;
  private resolveFailed!: (error: RockraftError) => void;
  readonly loopDone: Promise<void>;
  private readonly metricsExporter: NodeMetricsExporter | undefined;

  constructor(
    readonly config: Config,
    readonly storage: LevelStorage,
    readonly logger: Logger,
    metricsExporter: NodeMetricsExporter | undefined,
    private readonly youngGc?: YoungGcScheduler,
  ) {
    this.nodeId = config.node.nodeId;
    this.failed = new Promise((resolve) => (this.resolveFailed = resolve));
    this.metricsExporter = metricsExporter;
    this.waiting = new ProposalTracker((seconds) =>
      this.metricsExporter?.applyLatency.observe(seconds),
    );
    if (metricsExporter !== undefined) metricsExporter.source = () => this.metrics();
    this.raw = new RawNode({
      id: this.nodeId,
      storage: storage.raftStorage,
      prng: createPrng(randomInt(0x7fffffff)),
      applied: storage.applied().index,
      ...raftOptionsOf(config),
    });
    const applied = storage.applied();
    this.lastApplied =
      applied.index === 0 ? undefined : { term: applied.term, nodeId: NONE, index: applied.index };
    this.snapshotIndex = storage.raftStorage.snapshot().metadata.index;
    // At most two maximal election timeouts of ticks at once: enough for every timer.
    this.clock = new TickClock(
      this.raw,
      config.raft.tickIntervalMs,
      2 * (raftOptionsOf(config).electionTickMax ?? 0) + 2,
    );
    this.removal = new RemovalWatch(this.nodeId);
    this.transport = new PeerTransport({
      nodeId: this.nodeId,
      clusterId: config.cluster.clusterId,
      advertiseAddr: config.node.advertiseAddr,
      tls: config.tls,
      maxMessageBytes: maxMessageBytesOf(config),
      onUnreachable: (peer) => this.raw.reportUnreachable(peer),
      onDropped: (_peer, messages) => this.onDropped(messages),
      onSnapshotStatus: (peer, ok) => {
        this.raw.reportSnapshot(peer, ok);
        if (ok) this.metricsExporter?.snapshotsSent.inc();
        this.wake();
      },
      snapshotSource: () => storage.openSnapshotReader(config.raft.snapshotChunkBytes),
      logger: logger.child({ component: "peers" }),
    });
    this.refreshAddresses();
    this.loopDone = this.loop();
    this.ticker = setInterval(() => {
      if (this.clock.catchUp()) this.wake();
    }, config.raft.tickIntervalMs);
  }

  attachServer(server: RockraftServer): void {
    this.server = server;
    this.updateServing();
  }

  // ---- Inputs ----------------------------------------------------------------------------

  /** Messages from a peer (PeerHandler.receive). */
  receive(messages: Message[], from: NodeId, fromAddr: string): void {
    if (this.failure !== undefined || this.stopping) return;
    this.lastHeard.set(from, performance.now());
    if (fromAddr !== "" && this.learnedAddresses.get(from) !== fromAddr) {
      this.learnedAddresses.set(from, fromAddr);
      this.refreshAddresses(true);
    }
    try {
      this.clock.catchUp();
      for (const message of messages) this.raw.step(message);
    } catch (error) {
      this.fail(error);
      return;
    }
    this.wake();
  }

  beginSnapshot(
    metadata: Parameters<LevelStorage["beginSnapshotInstall"]>[0],
  ): Promise<SnapshotSink> {
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
    this.refreshAddresses();
    // Campaign at once, as the seed's node 1 does; the election completes when a quorum is up.
    this.raw.campaign();
    this.wake();
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
   * it: no gRPC call per forwarded write. A MsgProp the transport drops unsent (the leader
   * is down or its queue full) fails the proposal at once with RAFT_PROPOSAL_DROPPED
   * (reason `unreachable`), which is safe to retry; one lost after it was sent is only
   * noticed at the deadline, with an unknown outcome.
   */
  async write(command: Command, timeoutMs: number): Promise<AppliedWrite> {
    this.assertRunning();
    const deadline = Date.now() + timeoutMs;
    await this.awaitLeader(deadline);
    const id = this.nextRequestId();
    return new Promise((resolve, reject) => {
      this.proposals.push({
        data: encodeCommand({ ...command, requestId: id }),
        requestId: requestKey(id),
        resolve,
        reject,
        deadline,
      });
      this.wake();
    });
  }

  /** Proposals inside MsgProps the transport dropped unsent: they fail now, safely. */
  private onDropped(messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.type !== "MsgProp") continue;
      for (const entry of message.entries) {
        let requestId: Uint8Array | undefined;
        try {
          requestId = decodeCommand(entry.data).requestId;
        } catch {
          continue;
        }
        if (requestId === undefined) continue;
        this.waiting.dropForwarded(
          requestKey(requestId),
          new RockraftError(
            "RAFT_PROPOSAL_DROPPED",
            `the write could not be sent to leader ${message.to}; it was not proposed`,
            { reason: "unreachable" },
          ),
        );
      }
    }
  }

  private nextRequestId(): Uint8Array {
    const id = new Uint8Array(12);
    id.set(this.requestPrefix);
    new DataView(id.buffer).setUint32(8, ++this.requestCounter >>> 0);
    return id;
  }

  /** A linearizable read point: resolves with an index to wait for before reading. */
  async readIndex(timeoutMs: number): Promise<number> {
    this.assertRunning();
    const deadline = Date.now() + timeoutMs;
    await this.awaitLeader(deadline);
    const index = await new Promise<number>((resolve, reject) => {
      this.reads.push({ resolve, reject, deadline });
      this.wake();
    });
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
      Math.max(0, deadline - Date.now()),
      "RAFT_TIMEOUT",
    );
  }

  /**
   * Waits for a known leader, until `deadline` but at most one maximal election timeout:
   * by then an election that could succeed has, so the caller learns at once that there is
   * no leader it can reach (RAFT_NO_LEADER) rather than at its deadline. Until three
   * election timeouts after the node started it waits up to then: a new cluster may still
   * be connecting and electing its first leader. A node that is not initialized yet may be
   * about to receive its configuration from a leader, so it waits too (then
   * RAFT_NOT_INITIALIZED).
   */
  async awaitLeader(deadline: number): Promise<void> {
    if (this.softState.lead !== NONE) return;
    const electionMs = this.config.raft.electionTimeoutMaxMs;
    const grace = Math.max(electionMs, this.startedAt + 3 * electionMs - performance.now());
    const waitMs = Math.min(deadline - Date.now(), grace);
    try {
      await this.waiter.until(
        (m) => m.currentLeader !== undefined,
        "a leader",
        Math.max(0, waitMs),
      );
    } catch (error) {
      if (!(error instanceof RockraftError) || error.code !== "RAFT_WAIT_TIMEOUT") throw error;
      if (!this.initialized()) {
        throw new RockraftError(
          "RAFT_NOT_INITIALIZED",
          `node ${this.nodeId}: the cluster is not initialized on this node`,
          { cause: error },
        );
      }
      throw new RockraftError(
        "RAFT_NO_LEADER",
        `node ${this.nodeId}: no leader within ${Math.max(0, Math.round(waitMs))} ms (an election timeout, or the call's deadline): a quorum of the cluster may be down or unreachable`,
        { cause: error },
      );
    }
  }

  /** The client that forwards calls to the current leader. */
  leaderClient(): RockraftClient {
    const addr = this.leaderAddress();
    if (addr === undefined) throw this.notLeader();
    let client = this.forwardClients.get(addr);
    if (client === undefined) {
      const tls = this.config.tls;
      client = new RockraftClient({
        endpoints: [addr],
        maxMessageBytes: maxMessageBytesOf(this.config),
        ...(tls === undefined
          ? {}
          : {
              tls: {
                ...(tls.caFile === undefined ? {} : { caFile: tls.caFile }),
                certFile: tls.certFile,
                keyFile: tls.keyFile,
              },
            }),
      });
      this.forwardClients.set(addr, client);
    }
    return client;
  }

  leaderAddress(): string | undefined {
    const lead = this.softState.lead;
    return lead === NONE ? undefined : this.addresses.get(lead);
  }

  notLeader(): RockraftError {
    const lead = this.softState.lead;
    return lead === NONE
      ? new RockraftError("RAFT_NO_LEADER", `node ${this.nodeId}: there is no leader`)
      : new RockraftError(
          "RAFT_NOT_LEADER",
          `node ${this.nodeId} is not the leader (node ${lead} is)`,
          {
            leader: { id: lead, addr: this.addresses.get(lead) },
          },
        );
  }

  /** Changes membership on the leader; resolves once the change is applied here. */
  async changeMembership(
    target: { voters: readonly Member[]; learners: readonly Member[] },
    timeoutMs: number,
  ): Promise<number> {
    this.assertRunning();
    checkMembershipTarget(target, {
      addresses: this.addresses,
      status: this.raw.status(),
      lastHeard: this.lastHeard,
      maxLagEntries: this.config.raft.promoteMaxLagEntries,
      electionTimeoutMs: this.config.raft.electionTimeoutMinMs,
    });
    const deadline = Date.now() + timeoutMs;
    const addresses = new Map(this.addresses);
    for (const member of [...target.voters, ...target.learners])
      addresses.set(member.nodeId, member.addr);
    const keep = new Set([...target.voters, ...target.learners].map((m) => m.nodeId));
    for (const id of [...addresses.keys()]) if (!keep.has(id)) addresses.delete(id);
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
    this.refreshAddresses();
    this.wake();
    // Done when the change (and the leaving of a joint configuration) is applied here; if
    // the wait fails (deadline, stop), the change may still be made.
    await this.waiter
      .until(
        (m) => {
          const status = this.raw.status();
          const applied = m.lastApplied?.index ?? 0;
          return (
            applied >= position.index &&
            applied >= status.configIndex &&
            status.confState.votersOutgoing.length === 0
          );
        },
        `the membership change at index ${position.index} to be applied`,
        Math.max(0, deadline - Date.now()),
        "RAFT_TIMEOUT",
      )
      .catch((error: unknown) => {
        throw withUnknownOutcome(error as Error);
      });
    return position.index;
  }

  transferLeader(target: NodeId): void {
    this.assertRunning();
    try {
      this.raw.transferLeader(target);
    } catch (error) {
      throw this.refusal(error);
    }
    this.wake();
  }

  async triggerSnapshot(): Promise<number> {
    this.assertRunning();
    const metadata = await this.storage.takeSnapshot();
    if (metadata === undefined) return this.snapshotIndex;
    this.snapshotIndex = metadata.index;
    this.raw.snapshotTaken(metadata.index);
    this.metricsExporter?.snapshotsTaken.inc();
    this.wake();
    return metadata.index;
  }

  // ---- State -----------------------------------------------------------------------------

  initialized(): boolean {
    const status = this.raw.status();
    return status.confState.voters.length > 0 || status.lastIndex > 0;
  }

  metrics(): NodeMetrics {
    const status = this.raw.status();
    const member = (id: NodeId): Member => ({ nodeId: id, addr: this.addresses.get(id) ?? "" });
    const stopped = this.failure !== undefined || this.stopping;
    // A stopped node leads nothing and follows no one, whatever its last role was.
    const lead = stopped ? NONE : status.softState.lead;
    return {
      nodeId: this.nodeId,
      initialized: this.initialized(),
      state: stopped ? "stopped" : this.removal.removed(status) ? "removed" : status.softState.role,
      currentTerm: status.hardState.term,
      currentLeader: lead === NONE ? undefined : lead,
      lastLogIndex: status.lastIndex,
      commitIndex: status.hardState.commit,
      lastApplied: this.lastApplied,
      membership: {
        voters: status.confState.voters.map(member),
        learners: status.confState.learners.map(member),
        votersOutgoing: status.confState.votersOutgoing.map(member),
      },
      snapshotIndex: this.snapshotIndex,
      replication: (stopped ? [] : [...status.progress]).map(([nodeId, progress]) => ({
        nodeId,
        matchIndex: progress.match,
        nextIndex: progress.next,
        state: progress.state,
      })),
      stopped,
    };
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

  /** Stops ticking and the loop; settles pending calls. Storage and server are the caller's. */
  async stop(reason: Error): Promise<void> {
    if (this.stopping) return this.loopDone;
    this.stopping = true;
    clearInterval(this.ticker);
    this.youngGc?.close();
    this.wake();
    await this.loopDone;
    this.transport.close();
    for (const client of this.forwardClients.values()) client.close();
    this.rejectAll(reason);
    this.waiter.close(reason);
  }

  stoppedBy(): Error | undefined {
    return this.failure;
  }

  // ---- The loop --------------------------------------------------------------------------

  private wake(): void {
    this.woken = true;
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopping && this.failure === undefined) {
      if (!this.woken) await new Promise<void>((resolve) => (this.wakeUp = resolve));
      this.woken = false;
      if (this.stopping) break;
      try {
        await this.drain();
      } catch (error) {
        this.fail(error);
      }
    }
  }

  /** Takes Readies until there is nothing left to do. */
  private async drain(): Promise<void> {
    this.clock.catchUp();
    this.flushProposals();
    this.flushReads();
    while (this.raw.hasReady() && !this.stopping) {
      const ready = this.raw.ready();
      if (ready.softState !== undefined) this.onSoftState(ready.softState);
      this.transport.send(ready.messages);
      if (this.youngGc !== undefined && this.softState.role === "leader") {
        const entries = appendedEntries(ready.messages);
        if (entries > 0) this.youngGc.afterAppendsSent(entries);
      }
      // A Ready whose only durable change is the commit index needs no fsync: its hard state
      // rides along with the apply batch below (one LevelDB write instead of two).
      const commitOnly =
        !ready.mustSync &&
        ready.snapshot === undefined &&
        ready.entries.length === 0 &&
        ready.compactIndex === undefined;
      // Committed entries are applied in the same batch as the Ready's durable part (atomic,
      // so still "after" it): one LevelDB write per Ready instead of two.
      let applied: ApplyResult[] | undefined;
      if (!commitOnly) {
        applied = await this.storage.persist(ready, { apply: ready.committedEntries });
      }
      this.transport.send(ready.persistedMessages);
      if (ready.snapshot !== undefined) {
        this.snapshotIndex = ready.snapshot.metadata.index;
        this.lastApplied = {
          term: ready.snapshot.metadata.term,
          nodeId: this.leaderOfTerm.get(ready.snapshot.metadata.term) ?? NONE,
          index: ready.snapshot.metadata.index,
        };
        this.metricsExporter?.snapshotsInstalled.inc();
        this.logger.info(
          { index: ready.snapshot.metadata.index },
          "installed a snapshot from the leader",
        );
      }
      if (applied !== undefined) {
        this.onApplied(applied);
      } else if (ready.committedEntries.length > 0 || ready.hardState !== undefined) {
        // Resolved once the results are known; storage-level writes them with the next
        // Ready's batch (reads see them meanwhile; a crash re-applies them from the log).
        const results = await this.storage.apply(ready.committedEntries, {
          hardState: ready.hardState,
          waitForWrite: false,
        });
        this.onApplied(results);
      }
      this.onReadStates(ready.readStates);
      // advance() may release reads held for a commit: judge their lease by a current clock.
      this.clock.catchUp();
      this.raw.advance();
      // Snapshot data streamed in for a MsgSnap the core then ignored (it already had those
      // entries) would otherwise stay on disk until the next restart. Only data at or below
      // the applied index: a snapshot the core accepted waits in the next Ready.
      if (this.storage.hasStagedSnapshots()) {
        await this.storage.discardStagedSnapshots(this.storage.applied().index);
      }
      if (ready.snapshotDue !== undefined) await this.triggerSnapshot();
      this.sayIfRemoved();
      this.refreshAddresses();
      this.expireReads();
      this.publish();
      this.flushProposals();
      this.flushReads();
    }
    this.publish();
  }

  private flushProposals(): void {
    if (this.proposals.length === 0) return;
    const batch = this.proposals;
    this.proposals = [];
    const now = Date.now();
    const live = batch.filter((p) => {
      if (p.deadline > now) return true;
      p.reject(
        new RockraftError("RAFT_TIMEOUT", "the write's deadline passed before it was proposed"),
      );
      return false;
    });
    if (live.length === 0) return;
    let position: { index: number; term: number } | undefined;
    try {
      position = this.raw.propose(live.map((p) => p.data));
    } catch (error) {
      const dropped =
        error instanceof RaftError
          ? new RockraftError("RAFT_PROPOSAL_DROPPED", error.message, {
              reason: error.reason,
              leader:
                error.leader === NONE
                  ? undefined
                  : { id: error.leader, addr: this.addresses.get(error.leader) },
              cause: error,
            })
          : (error as Error);
      for (const proposal of live) proposal.reject(dropped);
      return;
    }
    this.metricsExporter?.proposals.inc(live.length);
    if (position === undefined) {
      // Forwarded to the leader by raft-core (MsgProp): each is found again by its request
      // id when applied here (or failed by onDropped if the transport could not send it).
      for (const proposal of live) this.waiting.forwardedToLeader(proposal);
      return;
    }
    live.forEach((proposal, i) => this.waiting.proposedAt(position.index + i, proposal));
  }

  private flushReads(): void {
    if (this.reads.length === 0) return;
    this.clock.catchUp(); // a lease is judged by a clock that has caught up
    const now = Date.now();
    const batch = this.reads.filter((read) => {
      if (read.deadline > now) return true;
      read.reject(
        new RockraftError(
          "RAFT_TIMEOUT",
          "the read's deadline passed before a leader confirmed it",
        ),
      );
      return false;
    });
    this.reads = [];
    if (batch.length === 0) return;
    const context = `${this.readPrefix}${++this.readCounter}`;
    try {
      this.raw.readIndex(context);
    } catch {
      // No leader right now: keep them for the next wake-up (a leader may appear).
      this.reads = batch;
      return;
    }
    this.readBatches.set(context, batch);
  }

  private onReadStates(states: readonly ReadState[]): void {
    for (const state of states) {
      const batch = this.readBatches.get(state.context);
      if (batch === undefined) continue;
      this.readBatches.delete(state.context);
      for (const read of batch) read.resolve(state.index);
    }
  }

  private expireReads(): void {
    // Read batches whose every caller has given up are dropped; waiting for the applied
    // index is the caller's part (readIndex awaits it).
    const now = Date.now();
    for (const [context, batch] of this.readBatches) {
      if (batch.every((read) => read.deadline <= now)) {
        this.readBatches.delete(context);
        for (const read of batch)
          read.reject(
            new RockraftError("RAFT_TIMEOUT", "no read index from the leader within the deadline"),
          );
      }
    }
    if (this.reads.length > 0 && this.softState.lead !== NONE) this.wake();
  }

  private onApplied(results: readonly ApplyResult[]): void {
    for (const result of results) {
      const logId: LogId = {
        term: result.term,
        nodeId: this.leaderOfTerm.get(result.term) ?? NONE,
        index: result.index,
      };
      this.lastApplied = logId;
      this.waiting.applied(result, logId);
    }
  }

  private onSoftState(soft: SoftState): void {
    const before = this.softState;
    this.softState = soft;
    if (soft.lead === NONE && before.lead !== NONE && this.readBatches.size > 0) {
      // The leader that was to confirm these reads is gone (it loses them when it steps
      // down): a read has no effect, so it fails at once and may be retried.
      const lost = new RockraftError(
        "RAFT_NO_LEADER",
        `node ${this.nodeId}: the leader was lost before it confirmed the read; retry`,
      );
      for (const batch of this.readBatches.values()) for (const read of batch) read.reject(lost);
      this.readBatches.clear();
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

  private updateServing(): void {
    this.server?.setServing(
      this.failure === undefined && !this.stopping && this.softState.lead !== NONE,
    );
  }

  /** Peers' addresses from the configuration and from peers' messages; `learned` forces. */
  private refreshAddresses(learned = false): void {
    const conf = this.raw.confState();
    if (!learned && conf === this.addressesConf) return; // the usual Ready: nothing changed
    this.addressesConf = conf;
    const next = new Map(this.learnedAddresses);
    for (const [id, addr] of addressesOf(conf)) next.set(id, addr);
    next.set(this.nodeId, this.config.node.advertiseAddr);
    const same =
      next.size === this.addresses.size &&
      [...next].every(([id, addr]) => this.addresses.get(id) === addr);
    if (same) return;
    this.addresses = next;
    this.transport.setPeers(next);
  }

  /** Tells waiters and subscribers of a change; metrics are built only when someone waits. */
  private publish(): void {
    if (this.waiter.idle()) return;
    this.waiter.notify(this.metrics());
  }

  private refusal(error: unknown): Error {
    if (!(error instanceof RaftError)) return error as Error;
    if (error.reason === "not-leader" || error.reason === "no-leader") return this.notLeader();
    return new RockraftError("RAFT_REQUEST_REFUSED", error.message, {
      reason: error.reason,
      cause: error,
    });
  }

  private assertRunning(): void {
    if (this.failure !== undefined) {
      throw new RockraftError(
        "RAFT_NODE_STOPPED",
        `node ${this.nodeId} stopped after a failure: ${this.failure.message}`,
        {
          cause: this.failure,
        },
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
    clearInterval(this.ticker);
    this.updateServing();
    const stopped = new RockraftError(
      "RAFT_NODE_STOPPED",
      `node ${this.nodeId} stopped after a failure: ${this.failure.message}`,
      {
        cause: this.failure,
      },
    );
    this.rejectAll(stopped);
    this.waiter.close(stopped);
    this.wake();
    this.resolveFailed(stopped);
  }

  private rejectAll(error: Error): void {
    for (const proposal of this.proposals) proposal.reject(error);
    this.proposals = [];
    // Proposed writes may still commit (on the other nodes, or from this log after a restart).
    this.waiting.rejectAll(withUnknownOutcome(error));
    for (const read of this.reads) read.reject(error);
    this.reads = [];
    for (const batch of this.readBatches.values()) for (const read of batch) read.reject(error);
    this.readBatches.clear();
  }
}
