// The gRPC services' handlers: the transport calls these; they call the RaftApi and map
// rockraft's errors to gRPC status codes (the table in this package's README, "Errors").
import type {
  ReloadResult,
  AuthHandler,
  AuthRequest,
  CallContext,
  ClusterHandler,
  ClusterMetrics,
  KvHandler,
  PeerHandler,
} from "@rockraft/transport-grpc";
import { NONE } from "@rockraft/raft-core";
import { RpcError, type RpcStatus } from "@rockraft/transport-grpc";
import type { RaftApi } from "./api.js";
import type { AuthGate, Caller } from "./auth.js";
import { RockraftError } from "./errors.js";
import type { NodeRuntime } from "./runtime.js";
import { reloadFromFile, setConfigKey, type ConfigChange, type ReloadContext } from "./reload.js";

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
  RAFT_UNAUTHENTICATED: "UNAUTHENTICATED",
  RAFT_PERMISSION_DENIED: "PERMISSION_DENIED",
  RAFT_AUTH_INVALID: "FAILED_PRECONDITION",
  RAFT_AUTH_NOT_ENABLED: "FAILED_PRECONDITION",
  RAFT_AUTH_BUSY: "RESOURCE_EXHAUSTED",
};

function rpcError(error: unknown, runtime: NodeRuntime): unknown {
  if (!(error instanceof RockraftError)) return error;
  // The error's leader, or the one known now: never one's id with the other's address.
  const known = runtime.knownLeader();
  const leaderId =
    error.leader === undefined ? (known === NONE ? undefined : known) : error.leader.id;
  const leaderAddr = error.leader === undefined ? runtime.leaderAddress() : error.leader.addr;
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

export function kvHandler(api: RaftApi, runtime: NodeRuntime, gate: AuthGate): KvHandler {
  /** The caller, allowed `access` to `key` by the applied table. */
  const allowed = async (
    context: CallContext,
    what: string,
    key: Uint8Array,
    access: "read" | "write",
  ) => {
    const caller = await gate.identify(context, what);
    gate.checkKey(caller, access, key, what);
    return caller;
  };
  return {
    put: mapped(runtime, async (key, value, context, session) => {
      const caller = await allowed(context, "KV.Put", key, "write");
      return api.clientWrite(
        { key, value },
        { ...writeOptions(context), session: session ?? false, caller },
      );
    }),
    get: mapped(runtime, async (key, context) => {
      const caller = await allowed(context, "KV.Get", key, "read");
      const value = await api.read(key, { timeoutMs: remaining(context.deadline) });
      // The table may have changed while the read waited for its read index: as of the
      // read's point in the log, the caller must still be allowed.
      if (gate.changedSince(caller)) await allowed(context, "KV.Get", key, "read");
      return { found: value !== undefined, value: value ?? new Uint8Array() };
    }),
    delete: mapped(runtime, async (key, context, session) => {
      const caller = await allowed(context, "KV.Delete", key, "write");
      return api.delete(key, { ...writeOptions(context), session: session ?? false, caller });
    }),
    compareAndSwap: mapped(runtime, async ({ session, ...request }, context) => {
      // It reveals the value before: it needs both, checked against the same table.
      const caller = await allowed(context, "KV.CompareAndSwap", request.key, "write");
      gate.checkKey(caller, "read", request.key, "KV.CompareAndSwap");
      const options = { ...writeOptions(context), session: session ?? (false as const), caller };
      const result = await api.compareAndSwap(request, options);
      return { ...result, current: result.current ?? new Uint8Array() };
    }),
    // A session is its opener's: only that user may write in it, or close it.
    openSession: mapped(runtime, async (context) => {
      const caller = await gate.identify(context, "KV.OpenSession");
      return api.openSession({ ...writeOptions(context), caller });
    }),
    closeSession: mapped(runtime, async (sessionId, context) => {
      const caller = await gate.identify(context, "KV.CloseSession");
      return api.closeSession(sessionId, { timeoutMs: remaining(context.deadline), caller });
    }),
  };
}

/** Calls that change the cluster or read the table need the root role while auth is on. */
function admin(gate: AuthGate, context: CallContext, what: string): Promise<Caller> {
  return gate.identify(context, what).then((caller) => {
    gate.checkAdmin(caller, what);
    return caller;
  });
}

export function clusterHandler(
  api: RaftApi,
  runtime: NodeRuntime,
  gate: AuthGate,
  reloading: ReloadContext,
): ClusterHandler {
  return {
    initialize: mapped(runtime, async (members, context) => {
      await admin(gate, context, "Cluster.Initialize");
      return api.initialize(members);
    }),
    metrics: mapped(runtime, async (context): Promise<ClusterMetrics> => {
      await gate.identify(context, "Cluster.Metrics");
      const m = api.metrics();
      return {
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
      };
    }),
    addLearner: mapped(runtime, async (member, context) => {
      await admin(gate, context, "Cluster.AddLearner");
      return api.addLearner(
        { nodeId: member.nodeId, addr: member.addr },
        { timeoutMs: remaining(context.deadline) },
      );
    }),
    changeMembership: mapped(runtime, async (target, context) => {
      await admin(gate, context, "Cluster.ChangeMembership");
      return api.changeMembership(target, { timeoutMs: remaining(context.deadline) });
    }),
    transferLeader: mapped(runtime, async (nodeId, context) => {
      await admin(gate, context, "Cluster.TransferLeader");
      return api.transferLeader(nodeId, { timeoutMs: remaining(context.deadline) });
    }),
    triggerSnapshot: mapped(runtime, async (context) => {
      await admin(gate, context, "Cluster.TriggerSnapshot");
      return api.triggerSnapshot();
    }),
    getConfig: mapped(runtime, async (context) => {
      await gate.identify(context, "Cluster.GetConfig");
      const { source, ...tables } = runtime.config;
      const generation = runtime.configGeneration;
      const overridesJson = JSON.stringify(Object.fromEntries(reloading.overrides));
      return { configJson: JSON.stringify(tables), generation, source, overridesJson };
    }),
    reloadConfig: mapped(runtime, async (context) => {
      await admin(gate, context, "Cluster.ReloadConfig");
      return reloadResult(runtime, await reloadFromFile(runtime, reloading));
    }),
    setConfig: mapped(runtime, async (key, valueJson, context) => {
      await admin(gate, context, "Cluster.SetConfig");
      let value: unknown;
      try {
        value = valueJson === undefined ? undefined : JSON.parse(valueJson);
      } catch {
        throw new RockraftError(
          "RAFT_INVALID_ARGUMENT",
          `config set ${key}: the value is not JSON: ${valueJson}`,
        );
      }
      return reloadResult(runtime, await setConfigKey(runtime, reloading, key, value));
    }),
  };
}

/** The RPC each auth change is asked for by, to name it in errors. */
const AUTH_CALLS: Record<AuthRequest["op"], string> = {
  enable: "Auth.AuthEnable",
  disable: "Auth.AuthDisable",
  "user-add": "Auth.UserAdd",
  "user-delete": "Auth.UserDelete",
  "user-passwd": "Auth.UserChangePassword",
  "user-grant": "Auth.UserGrantRole",
  "user-revoke": "Auth.UserRevokeRole",
  "role-add": "Auth.RoleAdd",
  "role-delete": "Auth.RoleDelete",
  "role-grant": "Auth.RoleGrantPermission",
  "role-revoke": "Auth.RoleRevokePermission",
};

export function authHandler(api: RaftApi, runtime: NodeRuntime, gate: AuthGate): AuthHandler {
  return {
    authenticate: mapped(runtime, (user, password) => api.auth.authenticate(user, password)),
    change: mapped(runtime, async (request, context) => {
      const caller = await admin(gate, context, AUTH_CALLS[request.op]);
      return api.auth.change(request, { timeoutMs: remaining(context.deadline), caller });
    }),
    status: mapped(runtime, () => Promise.resolve(api.auth.status())),
    users: mapped(runtime, async (context) => {
      await admin(gate, context, "Auth.UserList");
      return api.auth.users();
    }),
    roles: mapped(runtime, async (context) => {
      await admin(gate, context, "Auth.RoleList");
      return api.auth.roles();
    }),
  };
}

/** What a reload changed, as the Cluster service answers it (values as JSON). */
function reloadResult(runtime: NodeRuntime, changes: readonly ConfigChange[]): ReloadResult {
  const json = (value: unknown) => JSON.stringify(value) ?? "null";
  return {
    changes: changes.map((c) => ({ key: c.key, oldJson: json(c.old), newJson: json(c.new) })),
    generation: runtime.configGeneration,
  };
}

export function peerHandler(runtime: NodeRuntime): PeerHandler {
  return {
    receive: (messages, from, fromAddr) => runtime.receive(messages, from, fromAddr),
    beginSnapshot: (metadata) => runtime.beginSnapshot(metadata),
  };
}
