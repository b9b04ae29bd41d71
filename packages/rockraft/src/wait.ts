import { NONE, type NodeId, type StateRole, type Status } from "@rockraft/raft-core";
import { RockraftError, type RockraftErrorCode } from "./errors.js";
import type { Clock } from "./seams.js";

// One definition each, in the lowest package that needs it (the wire's): re-exported here.
import type { LogId, Member, ReplicationProgress } from "@rockraft/transport-grpc";
export type { LogId, Member, ReplicationProgress };

/** The members of a cluster configuration. */
export interface Membership {
  /** Voters (the incoming ones during a joint configuration). */
  readonly voters: readonly Member[];
  /** Learners. */
  readonly learners: readonly Member[];
  /** Non-empty during a joint configuration: the outgoing voters. */
  readonly votersOutgoing: readonly Member[];
}

/**
 * A node's role; `removed` once it knows a committed configuration without it (it no longer
 * votes or campaigns: shut it down); `stopped` once it was shut down or stopped by a failure.
 */
export type NodeState = StateRole | "removed" | "stopped";

/** A node's view of itself and the cluster. */
export interface NodeMetrics {
  /** This node's id. */
  readonly nodeId: NodeId;
  /** Whether this node has a configuration (was initialized or joined). */
  readonly initialized: boolean;
  /** This node's role; `stopped` once it is shut down or stopped by a failure. */
  readonly state: NodeState;
  /** Its current term. */
  readonly currentTerm: number;
  /** The leader it knows of, if any. */
  readonly currentLeader: NodeId | undefined;
  /** Last index of its log. */
  readonly lastLogIndex: number;
  /** Its commit index. */
  readonly commitIndex: number;
  /** The last entry its state machine applied, if any. */
  readonly lastApplied: LogId | undefined;
  /** The membership in effect on this node. */
  readonly membership: Membership;
  /** Index of its latest snapshot (0 when none). */
  readonly snapshotIndex: number;
  /** Per member, on the leader: how far replication has come. */
  readonly replication: readonly ReplicationProgress[];
  /** Client sessions open in this node's applied state. */
  readonly openSessions: number;
  /** How many configs the node has run with: 1, then one more at each reload that changed one. */
  readonly configGeneration: number;
  /** True once the node is shut down or stopped by a failure. */
  readonly stopped: boolean;
}

interface Condition {
  readonly test: (metrics: NodeMetrics) => boolean;
  readonly resolve: (metrics: NodeMetrics) => void;
  readonly reject: (error: Error) => void;
}

/** Conditions on metrics, checked each time the metrics change. */
export class Waiter {
  private readonly conditions = new Set<Condition>();
  private readonly listeners = new Set<(metrics: NodeMetrics) => void>();
  private closed: Error | undefined;

  constructor(
    private readonly current: () => NodeMetrics,
    private readonly clock: Clock,
  ) {}

  subscribe(listener: (metrics: NodeMetrics) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** True when nobody waits or listens: there is nothing to notify. */
  idle(): boolean {
    return this.conditions.size === 0 && this.listeners.size === 0;
  }

  notify(metrics: NodeMetrics): void {
    for (const listener of this.listeners) listener(metrics);
    for (const condition of this.conditions) {
      if (condition.test(metrics)) {
        this.conditions.delete(condition);
        condition.resolve(metrics);
      }
    }
  }

  /**
   * Resolves with the metrics once `test` holds; rejects after `timeoutMs` with an error
   * naming `what` and the last metrics seen.
   */
  until(
    test: (metrics: NodeMetrics) => boolean,
    what: string,
    timeoutMs: number,
    code: RockraftErrorCode = "RAFT_WAIT_TIMEOUT",
  ): Promise<NodeMetrics> {
    if (this.closed !== undefined) return Promise.reject(this.closed);
    const now = this.current();
    if (test(now)) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.conditions.delete(condition);
        const last = this.current();
        reject(
          new RockraftError(
            code,
            `timed out after ${timeoutMs} ms waiting for ${what}; last metrics: ${describeMetrics(last)}`,
          ),
        );
      }, timeoutMs);
      const condition: Condition = {
        test,
        resolve: (metrics) => {
          this.clock.clear(timer);
          resolve(metrics);
        },
        reject: (error) => {
          this.clock.clear(timer);
          reject(error);
        },
      };
      this.conditions.add(condition);
    });
  }

  close(error: Error): void {
    this.closed = error;
    for (const condition of this.conditions) condition.reject(error);
    this.conditions.clear();
  }
}

/** One line describing `m`, as used in `wait()` timeouts: role, term, leader, indexes, voters. */
export function describeMetrics(m: NodeMetrics): string {
  const applied =
    m.lastApplied === undefined ? "none" : `${m.lastApplied.index} (term ${m.lastApplied.term})`;
  return (
    `node ${m.nodeId} ${m.state}, term ${m.currentTerm}, leader ${m.currentLeader ?? "none"}, ` +
    `last log ${m.lastLogIndex}, commit ${m.commitIndex}, applied ${applied}, ` +
    `voters [${m.membership.voters.map((v) => v.nodeId).join(", ")}]`
  );
}

/** `raftNode.raft().wait({ timeoutMs })`: waits on metrics with a deadline and a reason. */
export class Wait {
  /** @internal */
  constructor(
    private readonly waiter: Waiter,
    private readonly timeoutMs: number,
  ) {}

  /** The state machine has applied `index` (`why` goes into a timeout's message). */
  appliedIndex(index: number, why = ""): Promise<NodeMetrics> {
    return this.waiter.until(
      (m) => (m.lastApplied?.index ?? 0) >= index,
      label(`applied index >= ${index}`, why),
      this.timeoutMs,
    );
  }

  /** Some node is known as leader. */
  leader(why = ""): Promise<NodeMetrics> {
    return this.waiter.until(
      (m) => m.currentLeader !== undefined,
      label("a leader", why),
      this.timeoutMs,
    );
  }

  /** This node is in `state` (e.g. "leader", "follower"). */
  state(state: NodeState, why = ""): Promise<NodeMetrics> {
    return this.waiter.until(
      (m) => m.state === state,
      label(`state ${state}`, why),
      this.timeoutMs,
    );
  }

  /** Any condition on the metrics. */
  metrics(test: (metrics: NodeMetrics) => boolean, why: string): Promise<NodeMetrics> {
    return this.waiter.until(test, why, this.timeoutMs);
  }
}

function label(what: string, why: string): string {
  return why === "" ? what : `${what} (${why})`;
}

/** A node's metrics from raft-core's status and what the runtime knows. */
export function metricsOf(
  status: Status,
  node: {
    readonly nodeId: NodeId;
    readonly initialized: boolean;
    readonly stopped: boolean;
    readonly removed: boolean;
    readonly lastApplied: LogId | undefined;
    readonly snapshotIndex: number;
    readonly openSessions: number;
    readonly configGeneration: number;
    readonly addressOf: (id: NodeId) => string | undefined;
  },
): NodeMetrics {
  const member = (id: NodeId): Member => ({ nodeId: id, addr: node.addressOf(id) ?? "" });
  const { stopped } = node;
  // A stopped node leads nothing and follows no one, whatever its last role was.
  const lead = stopped ? NONE : status.softState.lead;
  return {
    nodeId: node.nodeId,
    initialized: node.initialized,
    state: stopped ? "stopped" : node.removed ? "removed" : status.softState.role,
    currentTerm: status.hardState.term,
    currentLeader: lead === NONE ? undefined : lead,
    lastLogIndex: status.lastIndex,
    commitIndex: status.hardState.commit,
    lastApplied: node.lastApplied,
    membership: {
      voters: status.confState.voters.map(member),
      learners: status.confState.learners.map(member),
      votersOutgoing: status.confState.votersOutgoing.map(member),
    },
    snapshotIndex: node.snapshotIndex,
    replication: (stopped ? [] : [...status.progress]).map(([nodeId, progress]) => ({
      nodeId,
      matchIndex: progress.match,
      nextIndex: progress.next,
      state: progress.state,
    })),
    openSessions: node.openSessions,
    configGeneration: node.configGeneration,
    stopped,
  };
}
