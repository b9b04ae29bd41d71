// The Cluster admin service: initialize, metrics, membership, leadership transfer, snapshots.
import { unary } from "../call-status.js";
import {
  MetricsResponse,
  type ClusterServer,
  type Member as WireMember,
} from "../gen/rockraft/v1/cluster.js";
import type { CallContext, ClusterHandler, Member, TransportLogger } from "../handlers.js";
import { RpcError } from "../errors.js";
import { toNumber } from "../wire.js";

function wireMember(member: Member): WireMember {
  return { nodeId: BigInt(member.nodeId), addr: member.addr };
}

function memberFromWire(member: WireMember | undefined, field: string): Member {
  if (member === undefined) throw new RpcError("INVALID_ARGUMENT", `${field}: missing`);
  const nodeId = toNumber(member.nodeId, `${field}.node_id`);
  if (nodeId <= 0)
    throw new RpcError(
      "INVALID_ARGUMENT",
      `${field}.node_id: expected a positive node id, got ${nodeId}`,
    );
  return { nodeId, addr: member.addr };
}

/** The Cluster service over `cluster`. */
export function clusterService(cluster: ClusterHandler, logger: TransportLogger): ClusterServer {
  const call = <Request, Response>(
    what: string,
    handle: (request: Request, context: CallContext) => Promise<Response>,
  ) => unary(what, handle, logger);
  const clusterServer: ClusterServer = {
    initialize: call("Cluster.Initialize", (request, context) =>
      cluster.initialize(
        request.members.map((m, i) => memberFromWire(m, `members[${i}]`)),
        context,
      ),
    ),
    metrics: call("Cluster.Metrics", async (_request, context) => {
      const m = await cluster.metrics(context);
      return MetricsResponse.fromPartial({
        nodeId: BigInt(m.nodeId),
        initialized: m.initialized,
        state: m.state,
        currentTerm: BigInt(m.currentTerm),
        currentLeader: BigInt(m.currentLeader),
        lastLogIndex: BigInt(m.lastLogIndex),
        commitIndex: BigInt(m.commitIndex),
        lastAppliedIndex: BigInt(m.lastApplied.index),
        lastAppliedTerm: BigInt(m.lastApplied.term),
        voters: m.voters.map(wireMember),
        learners: m.learners.map(wireMember),
        votersOutgoing: m.votersOutgoing.map(wireMember),
        snapshotIndex: BigInt(m.snapshotIndex),
        replication: m.replication.map((r) => ({
          nodeId: BigInt(r.nodeId),
          matchIndex: BigInt(r.matchIndex),
          nextIndex: BigInt(r.nextIndex),
          state: r.state,
        })),
      });
    }),
    addLearner: call("Cluster.AddLearner", async (request, context) => ({
      logIndex: BigInt(
        (await cluster.addLearner(memberFromWire(request.member, "member"), context)).logIndex,
      ),
    })),
    changeMembership: call("Cluster.ChangeMembership", async (request, context) => {
      const target = {
        voters: request.voters.map((m, i) => memberFromWire(m, `voters[${i}]`)),
        learners: request.learners.map((m, i) => memberFromWire(m, `learners[${i}]`)),
      };
      return { logIndex: BigInt((await cluster.changeMembership(target, context)).logIndex) };
    }),
    transferLeader: call("Cluster.TransferLeader", async (request, context) => {
      await cluster.transferLeader(toNumber(request.nodeId, "node_id"), context);
      return {};
    }),
    triggerSnapshot: call("Cluster.TriggerSnapshot", async (_request, context) => ({
      snapshotIndex: BigInt((await cluster.triggerSnapshot(context)).snapshotIndex),
    })),
    getConfig: call("Cluster.GetConfig", async (_request, context) => {
      const result = await cluster.getConfig(context);
      return { ...result, generation: BigInt(result.generation) };
    }),
    reloadConfig: call("Cluster.ReloadConfig", async (_request, context) => {
      const result = await cluster.reloadConfig(context);
      return { changes: [...result.changes], generation: BigInt(result.generation) };
    }),
    setConfig: call("Cluster.SetConfig", async (request, context) => {
      const value = request.valueJson === "" ? undefined : request.valueJson;
      const result = await cluster.setConfig(request.key, value, context);
      return { changes: [...result.changes], generation: BigInt(result.generation) };
    }),
  };
  return clusterServer;
}
