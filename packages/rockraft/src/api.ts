import type { Config } from "@rockraft/config";
import type { NodeId } from "@rockraft/raft-core";
import type { ApplyResult, Command } from "@rockraft/storage-level";
import type { SessionWrite } from "./session-writes.js";
import type {
  InitializeResult,
  MembershipResult,
  SnapshotResult,
  SwapRequest,
  SwapResult,
} from "@rockraft/transport-grpc";
import { AuthApi } from "./auth-api.js";
import type { AuthGate, Caller } from "./auth.js";
import { RockraftError } from "./errors.js";
import type { NodeRuntime } from "./runtime.js";
import {
  closeSession,
  nodeSession,
  openSession,
  proposeUntilKnown,
  proposeWithoutSession,
} from "./session-writes.js";
import type { LeaderCalls } from "./seams.js";
import { Wait, type LogId, type Member, type NodeMetrics } from "./wait.js";

// One definition each, in the lowest package that needs it: re-exported here.
import type {
  Bytes,
  CallOptions as ClientCallOptions,
  DeleteResult,
  MembershipTarget,
  SessionTag,
  OpenSessionResult,
  CloseSessionResult,
} from "@rockraft/transport-grpc";
export type {
  Bytes,
  CloseSessionResult,
  DeleteResult,
  MembershipTarget,
  OpenSessionResult,
  SessionTag,
};

/** A write for {@link RaftApi.clientWrite}. */
export interface WriteRequest {
  /** The key, 1 byte up to `[limits] max_key_bytes`. */
  readonly key: Bytes;
  /** The value, up to `[limits] max_value_bytes`. */
  readonly value: Bytes;
}

/** What {@link RaftApi.clientWrite} resolves with. */
export interface WriteResult {
  /** Where the write landed; it is committed and applied. */
  readonly logId: LogId;
}

/** A compare-and-swap for {@link RaftApi.compareAndSwap}: the same as the client's. */
export type CompareAndSwapRequest = SwapRequest;

/** What {@link RaftApi.compareAndSwap} resolves with: the same as the client's. */
export type CompareAndSwapResult = SwapResult;

/** Options of each call: its deadline (default 10000 ms), as the client's `timeoutMs`. */
export type CallOptions = Pick<ClientCallOptions, "timeoutMs">;

/**
 * Options of a write: its deadline, and the client session it belongs to. By default the
 * node's own session numbers it (when `[sessions] enabled`, the default); with a
 * `session` tag the caller numbers its writes itself, and a retry with the same tag answers
 * what the first attempt did. Either way a write whose outcome is unknown is proposed again
 * until the deadline. With `session: false` (or sessions disabled) the write has no
 * session: one whose outcome is unknown fails with `outcomeUnknown` and is not retried.
 */
export interface WriteOptions extends CallOptions {
  /** The caller's session and this write's sequence number in it (see `openSession`). */
  readonly session?: SessionTag | false | undefined;
  /**
   * A write with a `session` tag: whether to wait for a leader until the deadline (the
   * default), or fail at once with RAFT_NO_LEADER or RAFT_NOT_LEADER when this node has
   * none or is cut off from it, for a caller that can try another node (the gRPC server
   * does this for its clients). `outcomeUnknown` says whether an attempt may have applied.
   */
  readonly waitForLeader?: boolean | undefined;
  /**
   * The caller the write is made for, checked again when it applies if the users and roles
   * changed since (the gRPC server sets it). An in-process write without one is trusted.
   */
  readonly caller?: Caller | undefined;
}

/** How `read` reaches its value. */
export type ReadConsistency =
  /** ReadIndex: the leader confirms it still leads, then the read is served once applied (default). */
  | "linearizable"
  /** This node's applied state, without any round trip: may be stale. */
  | "local";

const DEFAULT_TIMEOUT_MS = 10_000;

/** What a write yields once applied on this node. */
type Written = { readonly logId: LogId; readonly result: ApplyResult };
const encoder = new TextEncoder();
const bytes = (value: Bytes): Uint8Array =>
  typeof value === "string" ? encoder.encode(value) : value;

/**
 * What `raftNode.raft()` offers: the seed's `initialize` and `client_write`, reads, the
 * other KV operations, metrics and waiting, and cluster administration. Any node accepts
 * any call: writes on a follower are forwarded to the leader, reads use ReadIndex.
 */
export class RaftApi {
  /** Writes in this node's own session, for writes without one (undefined: disabled). */
  private readonly sessionWrite: ReturnType<typeof nodeSession> | undefined;
  /**
   * How long one attempt of a session's write waits before it is proposed again, and one of
   * a leadership transfer before it is asked for again.
   */
  private readonly attemptMs: number;

  /** The cluster's users, roles and permissions, and tokens for them. */
  readonly auth: AuthApi;

  /** @internal Made by {@link RaftNodeBuilder.build}; reached through `raftNode.raft()`. */
  constructor(
    private readonly runtime: NodeRuntime,
    gate: AuthGate,
  ) {
    this.auth = new AuthApi(runtime, gate);
    const config = runtime.config;
    // Long enough for a write to commit through an election; short enough that a proposal
    // lost on its way to the leader is made again well within a call's deadline.
    this.attemptMs = Math.max(1_000, 2 * config.raft.electionTimeoutMaxMs);
    this.sessionWrite = config.sessions.enabled
      ? nodeSession(runtime, () => runtime.config.sessions, this.attemptMs)
      : undefined;
  }

  /** The running config (a reload replaces it). */
  private get config(): Config {
    return this.runtime.config;
  }

  /**
   * Creates the cluster with these members (a map or array of `{ nodeId, addr }`) on this
   * node. On a node that is already initialized it changes nothing and resolves with
   * `{ initialized: false }` (and logs that it did so).
   */
  async initialize(
    members: ReadonlyMap<NodeId, Member> | readonly Member[],
  ): Promise<InitializeResult> {
    const list: Member[] =
      members instanceof Map
        ? [...(members as ReadonlyMap<NodeId, Member>).values()]
        : [...(members as readonly Member[])];
    if (list.length === 0)
      throw new RockraftError(
        "RAFT_INVALID_ARGUMENT",
        "initialize: at least one member is required",
      );
    const ids = new Set<number>();
    for (const member of list) {
      if (!Number.isSafeInteger(member.nodeId) || member.nodeId <= 0) {
        throw new RockraftError(
          "RAFT_INVALID_ARGUMENT",
          `initialize: node id ${member.nodeId} is not a positive integer`,
        );
      }
      if (ids.has(member.nodeId))
        throw new RockraftError(
          "RAFT_INVALID_ARGUMENT",
          `initialize: node ${member.nodeId} is listed twice`,
        );
      ids.add(member.nodeId);
    }
    if (!ids.has(this.config.node.nodeId)) {
      throw new RockraftError(
        "RAFT_INVALID_ARGUMENT",
        `initialize: the members must include this node (${this.config.node.nodeId})`,
      );
    }
    const initialized = await this.runtime.initialize(
      list.map((m) => ({ nodeId: m.nodeId, addr: m.addr })), // only these two fields
    );
    if (!initialized)
      this.runtime.logger.info("initialize: this node is already initialized; nothing changed");
    return { initialized };
  }

  /** Writes `value` at `key`; resolves with the entry's log id once committed and applied. */
  async clientWrite(request: WriteRequest, options: WriteOptions = {}): Promise<WriteResult> {
    const key = this.checkKey(request.key);
    const value = this.checkValue(request.value);
    const { logId } = await this.write({ op: "put", key, value }, options);
    return { logId };
  }

  /** Deletes `key`; resolves once applied, saying whether it existed. */
  async delete(key: Bytes, options: WriteOptions = {}): Promise<DeleteResult> {
    const checked = this.checkKey(key);
    const { result, logId } = await this.write({ op: "delete", key: checked }, options);
    return { logId, found: result.kind === "delete" && result.found };
  }

  /**
   * Sets `value` if the key's presence equals `expectFound` and, when present, its value
   * equals `expected`. Resolves with whether it did, and the key's state before.
   */
  async compareAndSwap(
    request: CompareAndSwapRequest,
    options: WriteOptions = {},
  ): Promise<CompareAndSwapResult> {
    const key = this.checkKey(request.key);
    const value = this.checkValue(request.value);
    const expected = bytes(request.expected ?? new Uint8Array());
    const command: Command = { op: "cas", key, expectFound: request.expectFound, expected, value };
    const { result, logId } = await this.write(command, options);
    if (result.kind !== "cas") throw new Error(`compareAndSwap: unexpected result ${result.kind}`);
    return { succeeded: result.succeeded, found: result.found, current: result.current, logId };
  }

  /**
   * Opens a client session through the log, with this node's `[sessions]` limits. Tag each
   * write with it (`options.session`: its id, the write's sequence number from 1, and the
   * lowest sequence number still waiting for its answer); close it when done, or it expires
   * after `idle_timeout_ms` without writes.
   */
  async openSession(
    options: Pick<WriteOptions, "timeoutMs" | "waitForLeader" | "caller"> = {},
  ): Promise<OpenSessionResult> {
    if (!this.config.sessions.enabled) {
      throw new RockraftError(
        "RAFT_SESSIONS_DISABLED",
        `node ${this.config.node.nodeId} does not open client sessions ([sessions] enabled = false); write without one`,
      );
    }
    const deadline = this.runtime.clock.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const sessionId = await openSession(this.runtime, this.config.sessions, deadline, {
      attemptMs: this.attemptMs,
      failFast: options.waitForLeader === false,
      caller: options.caller,
    });
    return { sessionId };
  }

  /**
   * Closes a session, dropping the answers it kept; resolves with whether it was open (with
   * `caller`, a session another user opened is not closed, and found: false).
   */
  async closeSession(
    sessionId: number,
    options: CallOptions & Pick<WriteOptions, "caller"> = {},
  ): Promise<CloseSessionResult> {
    if (!Number.isSafeInteger(sessionId) || sessionId <= 0) {
      throw new RockraftError(
        "RAFT_INVALID_ARGUMENT",
        `closeSession: session id ${sessionId} is not a positive integer`,
      );
    }
    const deadline = this.runtime.clock.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const { attemptMs, runtime } = this;
    return { found: await closeSession(runtime, sessionId, deadline, attemptMs, options.caller) };
  }

  /** Reads `key` (linearizable by default); undefined when absent. */
  async read(
    key: Bytes,
    options: CallOptions & { mode?: ReadConsistency } = {},
  ): Promise<Uint8Array | undefined> {
    const checked = this.checkKey(key);
    if ((options.mode ?? "linearizable") === "linearizable") {
      await this.runtime.readIndex(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    }
    return this.runtime.readState(checked);
  }

  /** This node's metrics now. */
  metrics(): NodeMetrics {
    return this.runtime.metrics();
  }

  /** Calls `listener` whenever the metrics change; returns the unsubscribe function. */
  subscribe(listener: (metrics: NodeMetrics) => void): () => void {
    return this.runtime.waiter.subscribe(listener);
  }

  /** Waits for a condition with a deadline: `wait({ timeoutMs: 5000 }).appliedIndex(7, "after put x")`. */
  wait(options: { timeoutMs?: number } = {}): Wait {
    return new Wait(this.runtime.waiter, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  /** Adds a learner (receives the log, never votes); resolves once the change is applied. */
  async addLearner(member: Member, options: CallOptions = {}): Promise<MembershipResult> {
    const learner = { nodeId: member.nodeId, addr: member.addr };
    const metrics = this.runtime.metrics();
    const voters = metrics.membership.voters;
    const learners = [
      ...metrics.membership.learners.filter((m) => m.nodeId !== member.nodeId),
      learner,
    ];
    return this.changeMembershipTo({ voters, learners }, options, (calls, addr, timeoutMs) =>
      calls.addLearner(addr, learner, timeoutMs),
    );
  }

  /**
   * Sets the voters and learners (joint consensus when the voters change); resolves once
   * the change is applied on this node.
   */
  async changeMembership(
    target: MembershipTarget,
    options: CallOptions = {},
  ): Promise<MembershipResult> {
    const voters = target.voters.map((m) => ({ nodeId: m.nodeId, addr: m.addr }));
    const learners = (target.learners ?? []).map((m) => ({ nodeId: m.nodeId, addr: m.addr }));
    return this.changeMembershipTo({ voters, learners }, options, (calls, addr, timeoutMs) =>
      calls.changeMembership(addr, { voters, learners }, timeoutMs),
    );
  }

  /**
   * Asks the leader to hand leadership to `nodeId`; resolves once that node leads. A
   * transfer that has not happened within two maximal election timeouts (at least 1 s) is
   * asked for once more (while the deadline leaves more than that), if the same leader still
   * leads: a leader abandons a transfer after an election timeout, and its request or
   * MsgTimeoutNow may have been lost on the way. Not more often: a leader refuses writes while
   * a transfer is under way. Not after a leadership change: that was another caller's
   * transfer, or an election.
   */
  async transferLeader(nodeId: NodeId, options: CallOptions = {}): Promise<void> {
    const { clock } = this.runtime;
    const deadline = clock.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const toLead = (timeoutMs: number) =>
      this.wait({ timeoutMs }).metrics((m) => m.currentLeader === nodeId, `node ${nodeId} to lead`);
    await this.runtime.awaitLeader(deadline);
    const leader = this.runtime.knownLeader();
    this.runtime.transferLeader(nodeId);
    if (deadline - clock.now() > this.attemptMs) {
      try {
        await toLead(this.attemptMs);
        return;
      } catch (error) {
        if (!(error instanceof RockraftError) || error.code !== "RAFT_WAIT_TIMEOUT") throw error;
      }
      if (this.runtime.knownLeader() === leader) this.runtime.transferLeader(nodeId);
    }
    await toLead(Math.max(0, deadline - clock.now()));
  }

  /** Takes a snapshot of this node's state now; resolves with its index. */
  async triggerSnapshot(): Promise<SnapshotResult> {
    return { snapshotIndex: await this.runtime.triggerSnapshot() };
  }

  /**
   * Proposes on this node: the leader appends it, a follower's raft-core forwards it to the
   * leader over the peer stream; either way it resolves once applied here. A write in a
   * session (the caller's, or this node's own) is proposed again after any attempt whose
   * outcome is unknown, until the deadline. Without sessions, only a proposal that
   * provably went nowhere (no leader yet, or the leader could not be reached) is proposed
   * again; any other failure is the caller's.
   */
  private async write(write: SessionWrite, options: WriteOptions): Promise<Written> {
    const clock = this.runtime.clock;
    const deadline = clock.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const command = options.caller === undefined ? write : { ...write, auth: options.caller };
    if (options.session !== undefined && options.session !== false) {
      const session = checkSessionTag(options.session);
      return proposeUntilKnown(this.runtime, { ...command, session }, deadline, {
        attemptMs: this.attemptMs,
        failFast: options.waitForLeader === false,
      });
    }
    if (options.session === undefined && this.sessionWrite !== undefined) {
      return this.sessionWrite(command, deadline);
    }
    return proposeWithoutSession(this.runtime, command, deadline);
  }

  /**
   * A membership change, on the leader or forwarded to it. One already in effect is done
   * at once. One whose outcome is unknown is not made again: setting the membership to a
   * target is idempotent only while no other change comes between, and a late retry would
   * undo a newer change.
   */
  private async changeMembershipTo(
    target: { voters: readonly Member[]; learners: readonly Member[] },
    options: CallOptions,
    forward: (calls: LeaderCalls, addr: string, timeoutMs: number) => Promise<MembershipResult>,
  ): Promise<MembershipResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    await this.runtime.awaitLeader(this.runtime.clock.now() + timeoutMs);
    if (this.runtime.metrics().state === "leader") {
      const settled = this.runtime.membershipSettled(target);
      if (settled !== undefined) return { logIndex: settled };
      return { logIndex: await this.runtime.changeMembership(target, timeoutMs) };
    }
    return this.runtime.forwardToLeader((calls, addr) => forward(calls, addr, timeoutMs));
  }

  private checkKey(key: Bytes): Uint8Array {
    const checked = bytes(key);
    const limit = this.config.limits.maxKeyBytes;
    if (checked.byteLength === 0)
      throw new RockraftError("RAFT_INVALID_ARGUMENT", "key: expected a non-empty key");
    if (checked.byteLength > limit) {
      throw new RockraftError(
        "RAFT_INVALID_ARGUMENT",
        `key: ${checked.byteLength} bytes is over the limit of ${limit} (limits.max_key_bytes)`,
      );
    }
    return checked;
  }

  private checkValue(value: Bytes): Uint8Array {
    const checked = bytes(value);
    const limit = this.config.limits.maxValueBytes;
    if (checked.byteLength > limit) {
      throw new RockraftError(
        "RAFT_INVALID_ARGUMENT",
        `value: ${checked.byteLength} bytes is over the limit of ${limit} (limits.max_value_bytes)`,
      );
    }
    return checked;
  }
}

/** A caller's session tag, checked: whole numbers, a sequence number from 1. */
function checkSessionTag(tag: SessionTag): SessionTag {
  const whole = (value: number) => Number.isSafeInteger(value) && value >= 0;
  if (
    !whole(tag.id) ||
    tag.id === 0 ||
    !whole(tag.seq) ||
    tag.seq === 0 ||
    !whole(tag.acknowledged)
  ) {
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `session: expected a session id and a sequence number from 1 and an acknowledged number from 0, got ${JSON.stringify(tag)}`,
    );
  }
  if (tag.acknowledged > tag.seq) {
    throw new RockraftError(
      "RAFT_INVALID_ARGUMENT",
      `session: acknowledged (${tag.acknowledged}) is above the write's own sequence number (${tag.seq})`,
    );
  }
  return { id: tag.id, seq: tag.seq, acknowledged: tag.acknowledged };
}
