// The gRPC services' handlers: the transport calls these; they call the RaftApi and map
// rockraft's errors to gRPC status codes (the table in this package's README, "Errors").
import type {
  ClusterHandler,
  ClusterMetrics,
  KvHandler,
  PeerHandler,
} from "@rockraft/transport-grpc";
import { RpcError, type RpcStatus } from "@rockraft/transport-grpc";
import type { RaftApi } from "./api.js";
import { RockraftError } from "./errors.js";
import type { NodeRuntime } from "./runtime.js";
import { reloadFromFile, type ReloadContext } from "./reload.js";

const STATUS: Record<RockraftError["code"], RpcStatus> = {
  RAFT_NOT_LEADER: "UNAVAILABLE",
  RAFT_NO_LEADER: "UNAVAILABLE",
  RAFT_PROPOSAL_DROPPED: "UNAVAILABLE",
  RAFT_NODE_STOPPED: "UNAVAILABLE",
  RAFT_TIMEOUT: "DEADLINE_EXCEEDED",
  RAFT_WAIT_TIMEOUT: "DEADLINE_EXCEEDED",
  RAFT_INVALID_ARGUMENT: "INVALID_ARGUMENT",
  RAFT_NOT_INITIALIZED: "FAILED_PRECONDITION",
  RAFT_REQUEST_REFUSED: "FAILED_PRECONDITION",
  RAFT_SESSION_EXPIRED: "FAILED_PRECONDITION",
  RAFT_SESSION_LIMIT: "RESOURCE_EXHAUSTED",
  RAFT_SESSION_STALE: "FAILED_PRECONDITION",
  RAFT_SESSIONS_DISABLED: "UNIMPLEMENTED",
};

function rpcError(error: unknown, runtime: NodeRuntime): unknown {
  if (!(error instanceof RockraftError)) return error;
  const leaderId = error.leader?.id ?? runtime.metrics().currentLeader;
  const leaderAddr = error.leader?.addr ?? runtime.leaderAddress();
  const leader =
    leaderId === undefined || leaderId === runtime.nodeId
      ? undefined
      : { id: leaderId, ...(leaderAddr === undefined ? {} : { addr: leaderAddr }) };
  return new RpcError(STATUS[error.code], error.message, {
    code: error.code,
    outcomeUnknown: error.outcomeUnknown,
    cause: error,
    ...(leader === undefined ? {} : { leader }),
  });
}

function mapped<Args extends unknown[], Result>(
  runtime: NodeRuntime,
  call: (...args: Args) => Promise<Result>,
) {
  return async (...args: Args): Promise<Result> => {
    try {
      return await call(...args);
    } catch (error) {
      throw rpcError(error, runtime);
    }
  };
}

/**
 * The time a call may take: the caller's deadline less a margin (a tenth of what is left,
 * 20 ms to 500 ms), so that the answer, with its error code and leader trailers, reaches
 * the caller before its own deadline fires and leaves it a bare DEADLINE_EXCEEDED.
 */
const remaining = (deadline: number) => {
  if (!Number.isFinite(deadline)) return 10_000;
  const left = deadline - Date.now();
  return Math.max(1, left - Math.min(500, Math.max(20, left / 10)));
};

/** A client's write: its time, and no waiting for a leader (the client tries another node). */
const writeOptions = (context: { deadline: number }) => ({
  timeoutMs: remaining(context.deadline),
  waitForLeader: false,
});

export function kvHandler(api: RaftApi, runtime: NodeRuntime): KvHandler {
  return {
    put: mapped(runtime, (key, value, context, session) =>
      api.clientWrite({ key, value }, { ...writeOptions(context), session: session ?? false }),
    ),
    get: mapped(runtime, async (key, context) => {
      const value = await api.read(key, { timeoutMs: remaining(context.deadline) });
      return { found: value !== undefined, value: value ?? new Uint8Array() };
    }),
    delete: mapped(runtime, (key, context, session) =>
      api.delete(key, { ...writeOptions(context), session: session ?? false }),
    ),
    compareAndSwap: mapped(runtime, async ({ session, ...request }, context) => {
      const options = { ...writeOptions(context), session: session ?? (false as const) };
      const result = await api.compareAndSwap(request, options);
      return { ...result, current: result.current ?? new Uint8Array() };
    }),
    openSession: mapped(runtime, (context) => api.openSession(writeOptions(context))),
    closeSession: mapped(runtime, (sessionId, context) =>
      api.closeSession(sessionId, { timeoutMs: remaining(context.deadline) }),
    ),
  };
}

export function clusterHandler(
  api: RaftApi,
  runtime: NodeRuntime,
  reloading: ReloadContext,
): ClusterHandler {
  return {
    initialize: mapped(runtime, (members) => api.initialize(members)),
    metrics: mapped(runtime, (): Promise<ClusterMetrics> => {
      const m = api.metrics();
      return Promise.resolve({
        nodeId: m.nodeId,
        initialized: m.initialized,
        state: m.state,
        currentTerm: m.currentTerm,
        currentLeader: m.currentLeader ?? 0,
        lastLogIndex: m.lastLogIndex,
        commitIndex: m.commitIndex,
        lastApplied: { index: m.lastApplied?.index ?? 0, term: m.lastApplied?.term ?? 0 },
        voters: m.membership.voters,
        learners: m.membership.learners,
        votersOutgoing: m.membership.votersOutgoing,
        snapshotIndex: m.snapshotIndex,
        replication: m.replication,
      });
    }),
    addLearner: mapped(runtime, (member, context) =>
      api.addLearner(
        { nodeId: member.nodeId, addr: member.addr },
        { timeoutMs: remaining(context.deadline) },
      ),
    ),
    changeMembership: mapped(runtime, (target, context) =>
      api.changeMembership(target, { timeoutMs: remaining(context.deadline) }),
    ),
    transferLeader: mapped(runtime, (nodeId, context) =>
      api.transferLeader(nodeId, { timeoutMs: remaining(context.deadline) }),
    ),
    triggerSnapshot: mapped(runtime, () => api.triggerSnapshot()),
    getConfig: mapped(runtime, () => {
      const { source, ...tables } = runtime.config;
      const generation = runtime.configGeneration;
      return Promise.resolve({ configJson: JSON.stringify(tables), generation, source });
    }),
    reloadConfig: mapped(runtime, async () => {
      const changes = await reloadFromFile(runtime, reloading);
      const json = (value: unknown) => JSON.stringify(value) ?? "null";
      return {
        changes: changes.map((c) => ({ key: c.key, oldJson: json(c.old), newJson: json(c.new) })),
        generation: runtime.configGeneration,
      };
    }),
  };
}

export function peerHandler(runtime: NodeRuntime): PeerHandler {
  return {
    receive: (messages, from, fromAddr) => runtime.receive(messages, from, fromAddr),
    beginSnapshot: (metadata) => runtime.beginSnapshot(metadata),
  };
}
