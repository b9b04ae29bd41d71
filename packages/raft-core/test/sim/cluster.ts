import {
  EMPTY_CONF_STATE,
  MemoryStorage,
  RaftError,
  RawNode,
  createPrng,
  decodeConfState,
  type ConfState,
  type Entry,
  type Message,
  type RaftOptions,
  type Ready,
  type Snapshot,
} from "../../src/index.js";
import { raftOf } from "../../src/raw-node.js";
import { EventQueue } from "./event-queue.js";
import { LogTracker } from "./log-tracker.js";
import { SimViolation } from "./violation.js";

/** Virtual time units per tick of a node's logical clock. */
export const TICK = 10;

export interface FaultProfile {
  /** Probability that a message is lost. */
  readonly dropRate: number;
  /** Probability that a message is delivered twice. */
  readonly duplicateRate: number;
  /** Message latency is drawn from [1, maxLatency] time units (reordering follows). */
  readonly maxLatency: number;
  /** Disk write latency is drawn from [1, maxPersistLatency]. */
  readonly maxPersistLatency: number;
  /** Mean time units between fault events (crash, restart, partition, heal); 0 = none. */
  readonly faultInterval: number;
  /** Crashes may happen (a crash loses everything not yet durable). */
  readonly crashes: boolean;
  /** Partitions (symmetric and one-way) may happen. */
  readonly partitions: boolean;
  /**
   * Each node's ticks come at its own rate, drawn once from [1 - clockSkew, 1 + clockSkew]
   * times the nominal period; 0 = every clock the same.
   */
  readonly clockSkew?: number;
  /**
   * Stalls happen (a process that stops for longer than an election timeout, like an
   * event-loop pause or SIGSTOP): on resume it first gets the ticks it missed, as the
   * runtime gives them, then everything that arrived meanwhile.
   */
  readonly stalls?: boolean;
  /** Probability that a message is delayed by up to three election timeouts. */
  readonly longDelayRate?: number;
  /** Mean time units between leadership transfers asked of the leader; 0 = none. */
  readonly transferInterval?: number;
}

export const NO_FAULTS: FaultProfile = {
  dropRate: 0,
  duplicateRate: 0,
  maxLatency: 3,
  maxPersistLatency: 2,
  faultInterval: 0,
  crashes: false,
  partitions: false,
};

export const CHAOS: FaultProfile = {
  dropRate: 0.05,
  duplicateRate: 0.03,
  maxLatency: 20,
  maxPersistLatency: 8,
  faultInterval: 300,
  crashes: true,
  partitions: true,
};

/** CHAOS plus the faults of time: skewed clocks, stalls, long delays, and transfers. */
export const CHAOS_ALL: FaultProfile = {
  ...CHAOS,
  clockSkew: 0.2,
  stalls: true,
  longDelayRate: 0.01,
  transferInterval: 400,
};

/**
 * The lease's drift bound (in ticks of electionTick 10) that covers clocks skewed by ±20%:
 * a leader whose ticks are 1.2 units long against followers' 0.8 must end its lease
 * within (10 - 1) × 0.8 / 1.2 = 6 of its ticks: 10 - 1 - 4 = 5.
 */
export const SKEWED_LEASE_DRIFT_TICKS = 4;

export interface SimOptions {
  readonly seed: number;
  /** Voters of the initial configuration (ids 1..nodes). */
  readonly nodes: number;
  /** Node ids that exist (up to 7); those past `nodes` start empty, outside the cluster. */
  readonly maxNodes?: number;
  /** Mean time units between membership changes at the leader; 0 = none. */
  readonly churnInterval?: number;
  /** Mean time units between snapshots taken at random nodes; 0 = only when the policy asks. */
  readonly snapshotInterval?: number;
  /**
   * The applications' snapshot policy: a node snapshots once `every` entries were applied
   * since its last snapshot, and keeps `keep` entries behind it. Default every 40, keep 5.
   */
  readonly snapshotPolicy?: { readonly every: number; readonly keep: number };
  readonly faults: FaultProfile;
  /** Mean time units between client operations. */
  readonly clientInterval?: number;
  /** Share of client operations that are reads. */
  readonly readShare?: number;
  readonly raft?: Partial<Omit<RaftOptions, "id" | "storage" | "prng">>;
}

interface PendingWrite {
  readonly node: number;
  readonly incarnation: number;
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
}

interface PendingRead {
  readonly context: string;
  readonly incarnation: number;
  /** Highest write index acknowledged to any client when the read began. */
  readonly ackedAtStart: number;
  index: number | undefined;
}

/** One simulated server: a RawNode, its disk, its state machine and its clients. */
export class SimNode {
  up = true;
  incarnation = 0;
  readonly disk = new MemoryStorage();
  raw: RawNode;
  /** The Ready being persisted, if any (its write completes at a `persisted` event). */
  writing: Ready | undefined;
  /** Applied state: the applied index and a hash chain over applied entries. */
  applied = 0;
  appliedHash = 0;
  /** Membership as of the applied index (what a snapshot records). */
  appliedConf: ConfState = EMPTY_CONF_STATE;
  readonly reads = new Map<string, PendingRead>();
  lastRole = "follower";
  lastTerm = 0;
  lastCommit = 0;
  /** Time units between this node's ticks (its clock's rate). */
  tickPeriod = TICK;
  /** A stalled node processes nothing before this time. */
  stalledUntil = 0;
  /** Ticks that fell in a stall, given at once when it ends. */
  missedTicks = 0;

  constructor(
    readonly id: number,
    private readonly makeRaw: (node: SimNode) => RawNode,
  ) {
    this.raw = makeRaw(this);
  }

  restart(): void {
    this.up = true;
    this.writing = undefined;
    this.reads.clear();
    // The state machine is rebuilt from the durable snapshot (issue 4) or from scratch.
    const snapshot = this.disk.snapshot();
    this.applied = snapshot.metadata.index;
    this.appliedHash = snapshotHash(snapshot);
    this.appliedConf = snapshot.metadata.confState;
    this.raw = this.makeRaw(this);
    this.lastRole = "follower";
    this.lastCommit = this.disk.hardState().commit;
  }

  crash(): void {
    this.up = false;
    this.stalledUntil = 0;
    this.missedTicks = 0;
    this.incarnation++;
    this.writing = undefined;
    this.reads.clear();
  }

  log() {
    return raftOf(this.raw).log;
  }

  raft() {
    return raftOf(this.raw);
  }
}

function snapshotHash(snapshot: Snapshot): number {
  if (snapshot.data.byteLength < 4) return 0;
  return new DataView(snapshot.data.buffer, snapshot.data.byteOffset).getUint32(0);
}

type SimEvent =
  | { kind: "churn" }
  | { kind: "snapshot" }
  | { kind: "tick"; node: number }
  | { kind: "deliver"; message: Message }
  | { kind: "snapshot-status"; leader: number; follower: number; ok: boolean }
  | { kind: "persisted"; node: number; incarnation: number }
  | { kind: "client" }
  | { kind: "fault" }
  | { kind: "transfer" }
  | { kind: "resume"; node: number; incarnation: number };

/** Hooks the invariant checkers attach to. */
export interface Observer {
  readonly name: string;
  /** After every event. */
  afterStep?(cluster: SimCluster): void;
  /** A node applied an entry (State Machine Safety). */
  onApply?(cluster: SimCluster, node: SimNode, entry: Entry): void;
  /** A read at `node` got its read index. */
  onReadIndex?(cluster: SimCluster, node: SimNode, read: PendingRead): void;
  /** A node's state machine reached a new applied index (by applying or restoring a snapshot). */
  afterApply?(cluster: SimCluster, node: SimNode): void;
}

/**
 * A deterministic cluster: one seeded PRNG drives message latency, loss, duplication,
 * partitions, crashes, client traffic and the nodes' election jitter. Same seed, same run.
 */
export class SimCluster {
  readonly nodes: SimNode[] = [];
  readonly tracker = new LogTracker();
  readonly prng;
  now = 0;
  steps = 0;
  faults: FaultProfile;
  /** Directed links that drop everything: `${from}>${to}`. */
  readonly blocked = new Set<string>();
  /** Highest index of a write acknowledged to its client. */
  maxAckedIndex = 0;
  readonly stats = {
    proposals: 0,
    dropped: 0,
    acked: 0,
    reads: 0,
    readsServed: 0,
    crashes: 0,
    membershipChanges: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    transfers: 0,
    stalls: 0,
  };
  private readonly queue = new EventQueue<SimEvent>();
  private readonly writes = new Map<string, PendingWrite>();
  private readonly observers: Observer[] = [];
  private readonly options: SimOptions;
  private readonly snapshotPolicy: { readonly every: number; readonly keep: number };
  private proposalCounter = 0;
  private readCounter = 0;

  constructor(options: SimOptions) {
    this.options = options;
    this.snapshotPolicy = options.snapshotPolicy ?? { every: 40, keep: 5 };
    this.faults = options.faults;
    this.prng = createPrng(options.seed);
    const ids = Array.from({ length: options.nodes }, (_, i) => i + 1);
    const allIds = Array.from({ length: options.maxNodes ?? options.nodes }, (_, i) => i + 1);
    for (const id of allIds) {
      const nodeSeed = this.prng.nextInt(0x7fffffff);
      const skew = this.faults.clockSkew ?? 0;
      const tickPeriod =
        skew > 0 ? Math.round(TICK * (1 - skew + 2 * skew * this.prng.nextFloat())) : TICK;
      const node = new SimNode(id, (self) => {
        return new RawNode({
          id,
          storage: self.disk,
          prng: createPrng(nodeSeed + self.incarnation),
          electionTick: 10,
          heartbeatTick: 1,
          applied: self.applied,
          maxEntriesPerMsg: 16,
          maxInflightMsgs: 8,
          ...options.raft,
        });
      });
      node.tickPeriod = tickPeriod;
      this.nodes.push(node);
      this.queue.push(1 + this.prng.nextInt(TICK), { kind: "tick", node: id });
    }
    // Node 1 initializes the cluster, as in the example; the others start empty.
    // Its bootstrap is durable before anything else happens, as `initialize` makes it.
    const first = this.nodes[0]!;
    first.raw.bootstrap({ voters: ids });
    first.writing = first.raw.ready();
    this.finishWrite(first);
    this.queue.push(1 + this.prng.nextInt(options.clientInterval ?? 15), { kind: "client" });
    if (this.faults.faultInterval > 0) this.scheduleFault();
    if ((options.churnInterval ?? 0) > 0) this.schedule("churn", options.churnInterval!);
    if ((options.snapshotInterval ?? 0) > 0) this.schedule("snapshot", options.snapshotInterval!);
    if ((this.faults.transferInterval ?? 0) > 0)
      this.schedule("transfer", this.faults.transferInterval!);
  }

  private schedule(kind: "churn" | "snapshot" | "transfer", interval: number): void {
    this.queue.push(this.now + 1 + this.prng.nextInt(2 * interval), { kind });
  }

  /** Nodes of the latest configuration the leader (or else node 1) knows. */
  members(): SimNode[] {
    const conf = (this.leader() ?? this.nodes[0]!).raft().conf;
    const ids = new Set([...conf.voters, ...conf.votersOutgoing, ...conf.learners]);
    return this.nodes.filter((node) => ids.has(node.id));
  }

  observe(observer: Observer): void {
    this.observers.push(observer);
  }

  node(id: number): SimNode {
    return this.nodes[id - 1]!;
  }

  upNodes(): SimNode[] {
    return this.nodes.filter((node) => node.up);
  }

  /** Up nodes that are not stalled: the ones a client can reach now. */
  responsiveNodes(): SimNode[] {
    return this.nodes.filter((node) => node.up && node.stalledUntil <= this.now);
  }

  /** The node that is leader in the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.upNodes()) {
      const raft = node.raft();
      if (raft.role === "leader" && (best === undefined || raft.term > best.raft().term))
        best = node;
    }
    return best;
  }

  /** Processes one event; returns false when nothing is left to do. */
  step(): boolean {
    const event = this.queue.pop();
    if (event === undefined) return false;
    this.now = event.time;
    this.steps++;
    this.handle(event.value);
    this.drainReadies();
    for (const observer of this.observers) observer.afterStep?.(this);
    return true;
  }

  /** Runs until virtual time passes `time`. */
  runUntil(time: number, stop?: () => boolean): void {
    while (this.now < time) {
      if (stop?.()) return;
      if (!this.step()) return;
    }
  }

  /** Ends all faults: links heal, crashed nodes restart, no more loss or duplication. */
  heal(): void {
    this.faults = { ...NO_FAULTS };
    this.blocked.clear();
    for (const node of this.nodes) {
      if (node.stalledUntil > this.now) {
        node.stalledUntil = this.now;
        this.queue.push(this.now, { kind: "resume", node: node.id, incarnation: node.incarnation });
      }
    }
    for (const node of this.nodes) if (!node.up) this.restartNode(node);
  }

  /** Proposes at `node`; returns the pending write when it landed in a leader's log. */
  propose(node: SimNode): PendingWrite | undefined {
    const data = new TextEncoder().encode(`w${++this.proposalCounter}@${node.id}`);
    this.stats.proposals++;
    let position;
    try {
      position = node.raw.propose(data);
    } catch (error) {
      if (error instanceof RaftError && error.code === "RAFT_PROPOSAL_DROPPED") {
        this.stats.dropped++;
        return undefined;
      }
      throw error;
    }
    if (position === undefined) return undefined; // Forwarded: its fate is not tracked.
    const write = { node: node.id, incarnation: node.incarnation, data, ...position };
    this.writes.set(`${node.id}/${position.index}`, write);
    return write;
  }

  /** Starts a linearizable read at `node`. */
  read(node: SimNode): void {
    const context = `r${++this.readCounter}@${node.id}`;
    this.stats.reads++;
    try {
      node.raw.readIndex(context);
    } catch (error) {
      if (error instanceof RaftError && error.code === "RAFT_READ_DROPPED") return;
      throw error;
    }
    node.reads.set(context, {
      context,
      incarnation: node.incarnation,
      ackedAtStart: this.maxAckedIndex,
      index: undefined,
    });
  }

  private handle(event: SimEvent): void {
    switch (event.kind) {
      case "tick": {
        const node = this.node(event.node);
        if (node.up && node.stalledUntil > this.now) node.missedTicks++;
        else if (node.up) node.raw.tick();
        this.queue.push(this.now + node.tickPeriod, event);
        return;
      }
      case "resume": {
        const node = this.node(event.node);
        if (!node.up || node.incarnation !== event.incarnation) return;
        // As rockraft's runtime does before it steps anything: a leader gets the ticks it
        // missed (at most two maximal election timeouts' worth), so that it judges its lease
        // by a clock that caught up; any other role gets one, the rest dropped, so that it
        // hears from the leader before it may time out.
        const electionTick = this.options.raft?.electionTick ?? 10;
        const cap = 2 * (this.options.raft?.electionTickMax ?? 2 * electionTick) + 2;
        const leader = node.raw.softState().role === "leader";
        const ticks = Math.min(node.missedTicks, leader ? cap : 1);
        node.missedTicks = 0;
        for (let i = 0; i < ticks; i++) node.raw.tick();
        return;
      }
      case "deliver": {
        const message = event.message;
        const node = this.node(message.to);
        if (node.up && node.stalledUntil > this.now) {
          // The process is stopped: the message waits in its socket until it resumes.
          this.queue.push(node.stalledUntil + 1, event);
          return;
        }
        if (node.up) node.raw.step(message);
        // The transport reports how a snapshot transfer ended (here: at delivery).
        if (message.type === "MsgSnap") {
          this.reportSnapshot(message.from, message.to, node.up);
        }
        return;
      }
      case "snapshot-status":
        this.reportSnapshot(event.leader, event.follower, event.ok);
        return;
      case "persisted": {
        const node = this.node(event.node);
        if (node.up && node.stalledUntil > this.now) {
          this.queue.push(node.stalledUntil + 1, event);
          return;
        }
        if (node.up && node.incarnation === event.incarnation) this.finishWrite(node);
        return;
      }
      case "client": {
        const up = this.responsiveNodes();
        if (up.length > 0) {
          const node = up[this.prng.nextInt(up.length)]!;
          if (this.prng.nextFloat() < (this.options.readShare ?? 0.3)) this.read(node);
          else this.propose(node);
        }
        const interval = this.options.clientInterval ?? 15;
        this.queue.push(this.now + 1 + this.prng.nextInt(2 * interval), event);
        return;
      }
      case "fault":
        if (this.faults.faultInterval > 0) {
          this.injectFault();
          this.scheduleFault();
        }
        return;
      case "churn":
        this.changeMembership();
        this.schedule("churn", this.options.churnInterval!);
        return;
      case "snapshot": {
        const up = this.responsiveNodes();
        if (up.length > 0) this.takeSnapshot(up[this.prng.nextInt(up.length)]!);
        this.schedule("snapshot", this.options.snapshotInterval!);
        return;
      }
      case "transfer":
        // Transfers are a fault: they end when the faults heal.
        if ((this.faults.transferInterval ?? 0) === 0) return;
        this.transferLeadership();
        this.schedule("transfer", this.faults.transferInterval!);
        return;
    }
  }

  private scheduleFault(): void {
    this.queue.push(this.now + 1 + this.prng.nextInt(2 * this.faults.faultInterval), {
      kind: "fault",
    });
  }

  private injectFault(): void {
    const choice = this.prng.nextInt(this.faults.stalls === true ? 6 : 5);
    const up = this.responsiveNodes();
    const down = this.nodes.filter((node) => !node.up);
    if (choice === 0 && this.faults.crashes && up.length > 0) {
      const victim = up[this.prng.nextInt(up.length)]!;
      victim.crash();
      this.stats.crashes++;
    } else if (choice === 1 && down.length > 0) {
      this.restartNode(down[this.prng.nextInt(down.length)]!);
    } else if (choice === 2 && this.faults.partitions) {
      // A symmetric partition: a random minority or majority side.
      this.blocked.clear();
      const side = new Set(this.nodes.filter(() => this.prng.nextFloat() < 0.5).map((n) => n.id));
      for (const a of this.nodes) {
        for (const b of this.nodes) {
          if (side.has(a.id) !== side.has(b.id)) this.blocked.add(`${a.id}>${b.id}`);
        }
      }
    } else if (choice === 5 && up.length > 0) {
      // A stall of one to three election timeouts (an event-loop pause, SIGSTOP).
      const victim = up[this.prng.nextInt(up.length)]!;
      victim.stalledUntil = this.now + 10 * TICK + this.prng.nextInt(20 * TICK);
      this.stats.stalls++;
      this.queue.push(victim.stalledUntil, {
        kind: "resume",
        node: victim.id,
        incarnation: victim.incarnation,
      });
    } else if (choice === 3 && this.faults.partitions) {
      // A one-way link failure.
      const from = 1 + this.prng.nextInt(this.nodes.length);
      const to = 1 + this.prng.nextInt(this.nodes.length);
      if (from !== to) this.blocked.add(`${from}>${to}`);
    } else {
      this.blocked.clear();
    }
  }

  /** The leader is asked to hand leadership to a random other voter (thesis §3.10). */
  private transferLeadership(): void {
    const leader = this.leader();
    if (leader === undefined || leader.stalledUntil > this.now) return;
    const others = leader.raft().conf.voters.filter((id) => id !== leader.id);
    if (others.length === 0) return;
    try {
      leader.raw.transferLeader(others[this.prng.nextInt(others.length)]!);
      this.stats.transfers++;
    } catch (error) {
      if (!(error instanceof RaftError && error.code === "RAFT_REQUEST_REFUSED")) throw error;
    }
  }

  /** One random membership change at the leader: add, promote, demote, remove, replace it. */
  private changeMembership(): void {
    const leader = this.leader();
    if (leader === undefined || leader.stalledUntil > this.now) return;
    const conf = leader.raft().conf;
    const members = new Set([...conf.voters, ...conf.learners]);
    const outsiders = this.nodes.map((n) => n.id).filter((id) => !members.has(id));
    const pick = (ids: readonly number[]) =>
      ids.length === 0 ? undefined : ids[this.prng.nextInt(ids.length)];
    const raw = leader.raw;
    const choice = this.prng.nextInt(5);
    try {
      if (choice === 0 && outsiders.length > 0) raw.addLearner(pick(outsiders)!);
      else if (choice === 1 && conf.learners.length > 0) raw.promote(pick(conf.learners)!);
      else if (choice === 2 && conf.voters.length > 1) raw.demote(pick(conf.voters)!);
      else if (choice === 3 && conf.voters.length > 1)
        raw.remove(pick([...conf.voters, ...conf.learners])!);
      else if (choice === 4) {
        // Replace the leader: it leaves and another node joins as a voter, in one change.
        const replacement = pick([...outsiders, ...conf.learners]);
        if (replacement === undefined) return;
        raw.changeMembership({
          voters: [...conf.voters.filter((id) => id !== leader.id), replacement],
          learners: conf.learners.filter((id) => id !== replacement),
        });
      } else return;
      this.stats.membershipChanges++;
    } catch (error) {
      if (!(error instanceof RaftError && error.code === "RAFT_REQUEST_REFUSED")) throw error;
    }
  }

  /** The node snapshots its applied state; the core then compacts its log. */
  private takeSnapshot(node: SimNode): void {
    if (node.applied <= node.disk.snapshot().metadata.index) return;
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, node.appliedHash);
    node.disk.createSnapshot(node.applied, node.appliedConf, data);
    node.raw.snapshotTaken(node.applied, this.snapshotPolicy.keep);
    this.stats.snapshotsTaken++;
  }

  private restartNode(node: SimNode): void {
    node.restart();
    this.tracker.update(node.id, node.log());
  }

  private reportSnapshot(leader: number, follower: number, ok: boolean): void {
    const node = this.node(leader);
    if (node.up) node.raw.reportSnapshot(follower, ok);
  }

  private send(messages: readonly Message[]): void {
    for (const message of messages) {
      if (
        this.blocked.has(`${message.from}>${message.to}`) ||
        this.prng.nextFloat() < this.faults.dropRate
      ) {
        if (message.type === "MsgSnap") {
          // A lost snapshot stream fails at the sender after a while.
          const event = {
            kind: "snapshot-status",
            leader: message.from,
            follower: message.to,
            ok: false,
          } as const;
          this.queue.push(this.now + 1 + this.prng.nextInt(this.faults.maxLatency), event);
        }
        continue;
      }
      const longDelay =
        (this.faults.longDelayRate ?? 0) > 0 && this.prng.nextFloat() < this.faults.longDelayRate!;
      const latency = longDelay
        ? 1 + this.prng.nextInt(30 * TICK)
        : 1 + this.prng.nextInt(this.faults.maxLatency);
      this.queue.push(this.now + latency, { kind: "deliver", message });
      if (this.prng.nextFloat() < this.faults.duplicateRate) {
        this.queue.push(this.now + 1 + this.prng.nextInt(this.faults.maxLatency), {
          kind: "deliver",
          message,
        });
      }
    }
  }

  /** The drive loop of every up node: take a Ready, send, start the write (Ready duties 1–2). */
  private drainReadies(): void {
    for (const node of this.nodes) {
      if (!node.up || node.writing !== undefined || node.stalledUntil > this.now) continue;
      if (!node.raw.hasReady()) continue;
      const ready = node.raw.ready();
      this.send(ready.messages);
      node.writing = ready;
      this.queue.push(this.now + 1 + this.prng.nextInt(this.faults.maxPersistLatency), {
        kind: "persisted",
        node: node.id,
        incarnation: node.incarnation,
      });
    }
  }

  /** The write is durable: persist, send what waited for it, apply, advance (duties 2–5). */
  private finishWrite(node: SimNode): void {
    const ready = node.writing!;
    node.writing = undefined;
    if (ready.snapshot !== undefined) {
      node.disk.applySnapshot(ready.snapshot);
      node.applied = ready.snapshot.metadata.index;
      node.appliedHash = snapshotHash(ready.snapshot);
      node.appliedConf = ready.snapshot.metadata.confState;
      this.stats.snapshotsInstalled++;
      for (const observer of this.observers) observer.afterApply?.(this, node);
    }
    node.disk.append(ready.entries);
    if (ready.hardState !== undefined) node.disk.setHardState(ready.hardState);
    this.send(ready.messagesAfterPersist);
    for (const entry of ready.committedEntries) this.apply(node, entry);
    for (const state of ready.readStates) {
      const read = node.reads.get(state.context);
      if (read === undefined) continue;
      read.index = state.index;
      for (const observer of this.observers) observer.onReadIndex?.(this, node, read);
    }
    this.serveReads(node);
    if (ready.compactIndex !== undefined) node.disk.compact(ready.compactIndex);
    node.raw.advance();
    if (node.applied - node.disk.snapshot().metadata.index >= this.snapshotPolicy.every) {
      this.takeSnapshot(node);
    }
    this.tracker.update(node.id, node.log());
  }

  private apply(node: SimNode, entry: Entry): void {
    if (entry.index !== node.applied + 1) {
      throw new SimViolation(
        "state-machine-safety",
        `node ${node.id} applied entry ${entry.index} after ${node.applied} (not in order)`,
      );
    }
    for (const observer of this.observers) observer.onApply?.(this, node, entry);
    node.applied = entry.index;
    node.appliedHash = (Math.imul(node.appliedHash ^ entry.index, 0x9e3779b1) ^ entry.term) >>> 0;
    if (entry.type === "config") node.appliedConf = decodeConfState(entry.data);
    for (const observer of this.observers) observer.afterApply?.(this, node);
    const write = this.writes.get(`${node.id}/${entry.index}`);
    if (write !== undefined) {
      this.writes.delete(`${node.id}/${entry.index}`);
      // Acknowledged only if the entry applied is the one the client proposed.
      if (
        write.incarnation === node.incarnation &&
        write.term === entry.term &&
        write.data === entry.data
      ) {
        this.stats.acked++;
        this.maxAckedIndex = Math.max(this.maxAckedIndex, entry.index);
      }
    }
  }

  private serveReads(node: SimNode): void {
    for (const [context, read] of node.reads) {
      if (read.index !== undefined && node.applied >= read.index) {
        node.reads.delete(context);
        this.stats.readsServed++;
      }
    }
  }
}
