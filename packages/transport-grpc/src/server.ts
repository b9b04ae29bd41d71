import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Metadata,
  Server,
  status as GrpcStatus,
  type sendUnaryData,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Message, NodeId } from "@rockraft/raft-core";
import {
  ANSWERED_METADATA,
  ERROR_CODE_METADATA,
  LEADER_ADDR_METADATA,
  LEADER_ID_METADATA,
  OUTCOME_UNKNOWN_METADATA,
  RpcError,
  TransportError,
  grpcStatusOf,
} from "./errors.js";
import {
  ClusterService,
  MetricsResponse,
  type ClusterServer,
  type Member as WireMember,
} from "./gen/rockraft/v1/cluster.js";
import {
  type CallError,
  type CompareAndSwapRequest,
  type CompareAndSwapResponse,
  type DeleteRequest,
  type DeleteResponse,
  type GetRequest,
  type GetResponse,
  type KVServer,
  type LogId as WireLogId,
  type PutRequest,
  type PutResponse,
} from "./gen/rockraft/v1/kv.js";
import { BatchStreams } from "./batch-server.js";
import { kvService, raftService } from "./codecs.js";
import { CALL_CANCELLED, LazyCallContext } from "./context.js";
import {
  type InstallSnapshotRequest,
  type RaftServiceServer,
  type SendRequest,
} from "./gen/rockraft/v1/raft.js";
import {
  SILENT_LOGGER,
  type CallContext,
  type ClusterHandler,
  type KvHandler,
  type LogId,
  type Member,
  type PeerHandler,
  type SnapshotSink,
  type TransportLogger,
} from "./handlers.js";
import { logRefusedHandshakes } from "./refusals.js";
import { serverCredentials, type TlsOptions } from "./tls.js";
import { WireError, messageFromWire, metadataFromWire, toNumber } from "./wire.js";

/** Services whose health the server reports through grpc.health.v1.Health. */
export const SERVICE_NAMES = {
  /** The client key-value service. */
  kv: "rockraft.v1.KV",
  /** The admin service. */
  cluster: "rockraft.v1.Cluster",
  /** The peer service. */
  raft: "rockraft.v1.RaftService",
} as const;

/** Options of {@link RockraftServer.start}. */
export interface ServerOptions {
  /** This node's id. */
  readonly nodeId: NodeId;
  /** The cluster id; peer messages from another cluster are refused. */
  readonly clusterId: string;
  /** `host:port` to bind; port 0 picks a free one (see `port`). */
  readonly address: string;
  /** TLS (and mutual TLS); plaintext when absent. */
  readonly tls?: TlsOptions | undefined;
  /** Largest message accepted, in bytes (a full append batch or snapshot chunk must fit). */
  readonly maxMessageBytes?: number;
  /** Serves the KV service. */
  readonly kv: KvHandler;
  /** Serves the Cluster service. */
  readonly cluster: ClusterHandler;
  /** Receives peer messages and snapshots. */
  readonly peer: PeerHandler;
  /** Where refusals and failures are logged. */
  readonly logger?: TransportLogger;
}

/** 64 MiB: room for a 1 MiB append batch of maximum-size entries, with margin. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const protoDir = fileURLToPath(new URL("../proto", import.meta.url));

/**
 * What server reflection serves: the FileDescriptorProtos buf builds from proto/ (the
 * files' real names, snake_case fields and comments) and grpc.health.v1's, in the shape
 * @grpc/reflection reads (a package definition whose entries list encoded descriptors).
 */
function reflectionDescriptors(): PackageDefinition {
  const files: Uint8Array[] = [];
  for (const name of ["rockraft.binpb", "health.binpb"]) {
    files.push(...descriptorSetFiles(readFileSync(join(protoDir, name))));
  }
  return { "rockraft.v1": { fileDescriptorProtos: files } } as unknown as PackageDefinition;
}

/** The encoded FileDescriptorProtos of a FileDescriptorSet (field 1, repeated). */
function descriptorSetFiles(set: Uint8Array): Uint8Array[] {
  const files: Uint8Array[] = [];
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = set[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < set.length) {
    const tag = varint();
    if (tag !== ((1 << 3) | 2)) throw new Error(`not a FileDescriptorSet (tag ${tag})`);
    const length = varint();
    files.push(set.subarray(at, at + length));
    at += length;
  }
  return files;
}

/** A unary call's context; grpc-js reports "cancelled" at the end of many calls. */
function contextOf(call: {
  getDeadline(): Date | number;
  on(event: "cancelled", listener: () => void): unknown;
}): LazyCallContext {
  const cancel = new AbortController();
  call.on("cancelled", () => cancel.abort(CALL_CANCELLED));
  const raw = call.getDeadline();
  const deadline = raw instanceof Date ? raw.getTime() : raw;
  return new LazyCallContext(Number.isFinite(deadline) ? deadline : Infinity, cancel.signal);
}

/** The unary method each kind of Batch call stands for, to name it in errors and logs. */
const METHODS = {
  put: "Put",
  get: "Get",
  delete: "Delete",
  compareAndSwap: "CompareAndSwap",
  none: "Batch",
} as const;

const NO_HINT = { code: "", leaderId: 0n, leaderAddr: "", outcomeUnknown: false } as const;

function wireLogId(id: LogId): WireLogId {
  return { term: BigInt(id.term), nodeId: BigInt(id.nodeId), index: BigInt(id.index) };
}

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

/**
 * One gRPC server per node on its `raft_addr`: the peer service, the client KV service,
 * the Cluster admin service, grpc.health.v1.Health and reflection.
 */
export class RockraftServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  private readonly server: Server;
  private readonly health: HealthImplementation;
  private readonly batches: BatchStreams;
  private closing: Promise<void> | undefined;

  private constructor(
    server: Server,
    health: HealthImplementation,
    batches: BatchStreams,
    port: number,
  ) {
    this.server = server;
    this.health = health;
    this.batches = batches;
    this.port = port;
  }

  /**
   * Binds `options.address` and serves every service. Fails with TransportError
   * TRANSPORT_ADDRESS_IN_USE, TRANSPORT_BIND_FAILED or TRANSPORT_TLS.
   */
  static async start(options: ServerOptions): Promise<RockraftServer> {
    const logger = options.logger ?? SILENT_LOGGER;
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const credentials = serverCredentials(options.tls);
    const server = new Server({
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.http2.min_ping_interval_without_data_ms": 5_000,
    });

    /** What a failed call answers: its status, message and trailing metadata's content. */
    const callError = (error: unknown, what: string): CallError => {
      if (error instanceof RpcError) {
        const leader = error.leader !== undefined && error.leader.id > 0 ? error.leader : undefined;
        return {
          status: grpcStatusOf(error.status),
          message: error.message,
          code: error.code ?? "",
          leaderId: BigInt(leader?.id ?? 0),
          leaderAddr: leader?.addr ?? "",
          outcomeUnknown: error.outcomeUnknown,
        };
      }
      if (error instanceof WireError) {
        return { ...NO_HINT, status: GrpcStatus.INVALID_ARGUMENT, message: error.message };
      }
      logger.error({ err: error, call: what }, "handler failed");
      const message = `internal error in ${what}: ${(error as Error).message}`;
      return { ...NO_HINT, status: GrpcStatus.INTERNAL, message };
    };
    const fail = (error: unknown, what: string): ServiceError => {
      const answer = callError(error, what);
      const metadata = new Metadata();
      if (answer.leaderId > 0n) {
        metadata.set(LEADER_ID_METADATA, String(answer.leaderId));
        if (answer.leaderAddr !== "") metadata.set(LEADER_ADDR_METADATA, answer.leaderAddr);
      }
      if (answer.code !== "") metadata.set(ERROR_CODE_METADATA, answer.code);
      if (answer.outcomeUnknown) metadata.set(OUTCOME_UNKNOWN_METADATA, "1");
      metadata.set(ANSWERED_METADATA, "1");
      return Object.assign(new Error(answer.message), {
        code: answer.status,
        details: answer.message,
        metadata,
      });
    };

    function unary<Request, Response>(
      what: string,
      handle: (request: Request, context: CallContext) => Promise<Response>,
    ) {
      return (call: ServerUnaryCall<Request, Response>, callback: sendUnaryData<Response>) => {
        const context = contextOf(call);
        handle(call.request, context).then(
          (response) => {
            context.done();
            callback(null, response);
          },
          (error: unknown) => {
            context.done();
            callback(fail(error, what));
          },
        );
      };
    }

    const { kv, cluster, peer } = options;
    const kvCalls = {
      put: async (request: PutRequest, context: CallContext): Promise<PutResponse> => ({
        logId: wireLogId((await kv.put(request.key, request.value, context)).logId),
      }),
      get: async (request: GetRequest, context: CallContext): Promise<GetResponse> => {
        const result = await kv.get(request.key, context);
        return { found: result.found, value: Buffer.from(result.value) };
      },
      delete: async (request: DeleteRequest, context: CallContext): Promise<DeleteResponse> => {
        const result = await kv.delete(request.key, context);
        return { logId: wireLogId(result.logId), found: result.found };
      },
      compareAndSwap: async (
        request: CompareAndSwapRequest,
        context: CallContext,
      ): Promise<CompareAndSwapResponse> => {
        const result = await kv.compareAndSwap(request, context);
        return {
          succeeded: result.succeeded,
          found: result.found,
          current: Buffer.from(result.current),
          logId: wireLogId(result.logId),
        };
      },
    };
    const batches = new BatchStreams(
      async (call, context) => {
        const request = call.request;
        switch (request?.$case) {
          case "put":
            return { $case: "put", value: await kvCalls.put(request.value, context) };
          case "get":
            return { $case: "get", value: await kvCalls.get(request.value, context) };
          case "delete":
            return { $case: "delete", value: await kvCalls.delete(request.value, context) };
          case "compareAndSwap":
            return {
              $case: "compareAndSwap",
              value: await kvCalls.compareAndSwap(request.value, context),
            };
          default:
            throw new WireError(`call ${call.id}: no request`);
        }
      },
      (error, call) => callError(error, `KV.${METHODS[call.request?.$case ?? "none"]}`),
      maxMessageBytes,
    );
    const kvServer: KVServer = {
      put: unary("KV.Put", kvCalls.put),
      get: unary("KV.Get", kvCalls.get),
      delete: unary("KV.Delete", kvCalls.delete),
      compareAndSwap: unary("KV.CompareAndSwap", kvCalls.compareAndSwap),
      batch: batches.handle,
    };

    const clusterServer: ClusterServer = {
      initialize: unary("Cluster.Initialize", (request, context) =>
        cluster.initialize(
          request.members.map((m, i) => memberFromWire(m, `members[${i}]`)),
          context,
        ),
      ),
      metrics: unary("Cluster.Metrics", async (_request, context) => {
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
      addLearner: unary("Cluster.AddLearner", async (request, context) => ({
        logIndex: BigInt(
          (await cluster.addLearner(memberFromWire(request.member, "member"), context)).logIndex,
        ),
      })),
      changeMembership: unary("Cluster.ChangeMembership", async (request, context) => {
        const target = {
          voters: request.voters.map((m, i) => memberFromWire(m, `voters[${i}]`)),
          learners: request.learners.map((m, i) => memberFromWire(m, `learners[${i}]`)),
        };
        return { logIndex: BigInt((await cluster.changeMembership(target, context)).logIndex) };
      }),
      transferLeader: unary("Cluster.TransferLeader", async (request, context) => {
        await cluster.transferLeader(toNumber(request.nodeId, "node_id"), context);
        return {};
      }),
      triggerSnapshot: unary("Cluster.TriggerSnapshot", async (_request, context) => ({
        snapshotIndex: BigInt((await cluster.triggerSnapshot(context)).snapshotIndex),
      })),
    };

    const refuse = (status: "FAILED_PRECONDITION" | "INVALID_ARGUMENT", message: string) =>
      new RpcError(status, message);
    const checkPeer = (clusterId: string, to: bigint): void => {
      if (clusterId !== options.clusterId) {
        throw refuse(
          "FAILED_PRECONDITION",
          `refused: message from cluster "${clusterId}", this node belongs to cluster "${options.clusterId}"`,
        );
      }
      if (toNumber(to, "to") !== options.nodeId) {
        throw refuse(
          "FAILED_PRECONDITION",
          `refused: message for node ${to}, this is node ${options.nodeId}`,
        );
      }
    };

    const raftServer: RaftServiceServer = {
      send: (call: ServerReadableStream<SendRequest, unknown>, callback) => {
        // Headers at once. Until a call has them, grpc-js's sending side keeps every message
        // written on it in case it retries the call, and a Send stream lives for hours: its
        // small buffers pinned their 8 KiB pool slabs, tens of MB on a busy follower.
        call.sendMetadata(new Metadata());
        let failed = false;
        call.on("data", (batch: SendRequest) => {
          if (failed) return;
          try {
            checkPeer(batch.clusterId, batch.to);
            const from = toNumber(batch.from, "from");
            const messages: Message[] = batch.messages.map(messageFromWire);
            for (const message of messages) {
              if (message.from !== from || message.to !== options.nodeId) {
                throw refuse(
                  "INVALID_ARGUMENT",
                  `refused: a message from ${message.from} to ${message.to} in a batch from ${from} to ${options.nodeId}`,
                );
              }
            }
            peer.receive(messages, from, batch.fromAddr);
          } catch (error) {
            failed = true;
            logger.warn(
              { peer: String(batch.from), cluster: batch.clusterId, err: (error as Error).message },
              "refused a peer message batch",
            );
            callback(fail(error, "RaftService.Send"));
          }
        });
        call.on("end", () => {
          if (!failed) callback(null, {});
        });
        call.on("error", () => undefined);
      },
      installSnapshot: (call: ServerReadableStream<InstallSnapshotRequest, unknown>, callback) => {
        call.sendMetadata(new Metadata()); // as for Send: the sender keeps no chunk for a retry
        void (async () => {
          let sink: SnapshotSink | undefined;
          let header:
            | {
                from: number;
                term: number;
                metadata: ReturnType<typeof metadataFromWire>;
                fromAddr: string;
              }
            | undefined;
          let finished = false;
          // A sender that gives up (or dies) cancels the call: end the stream so the loop
          // below stops and the partial data is discarded.
          call.on("cancelled", () =>
            call.destroy(new WireError("the sender cancelled the snapshot stream")),
          );
          try {
            for await (const request of call as AsyncIterable<InstallSnapshotRequest>) {
              const part = request.part;
              if (header === undefined) {
                if (part?.$case !== "header")
                  throw new WireError("a snapshot stream must start with its header");
                checkPeer(part.value.clusterId, part.value.to);
                const from = toNumber(part.value.from, "from");
                const metadata = metadataFromWire(part.value.metadata);
                header = {
                  from,
                  term: toNumber(part.value.term, "term"),
                  metadata,
                  fromAddr: part.value.fromAddr,
                };
                sink = await peer.beginSnapshot(metadata, from, part.value.fromAddr);
                continue;
              }
              if (part?.$case !== "chunk")
                throw new WireError("a second header in a snapshot stream");
              if (finished) throw new WireError("a chunk after the last chunk");
              await sink!.write({
                offset: toNumber(part.value.offset, "offset"),
                data: part.value.data,
              });
              if (part.value.last) {
                await sink!.finish(part.value.checksum);
                finished = true;
              }
            }
            if (header === undefined || !finished)
              throw new WireError("the snapshot stream ended before its last chunk");
            peer.receive(
              [
                {
                  type: "MsgSnap",
                  from: header.from,
                  to: options.nodeId,
                  term: header.term,
                  snapshot: { metadata: header.metadata, data: new Uint8Array(0) },
                },
              ],
              header.from,
              header.fromAddr,
            );
            callback(null, {});
          } catch (error) {
            if (!finished) await sink?.abort().catch(() => undefined);
            logger.warn(
              { err: (error as Error).message, snapshot: header?.metadata.index },
              "snapshot install failed",
            );
            callback(fail(error, "RaftService.InstallSnapshot"));
          }
        })();
      },
    };

    server.addService(raftService, raftServer);
    server.addService(kvService, kvServer);
    server.addService(ClusterService, clusterServer);
    const health = new HealthImplementation({
      "": "NOT_SERVING",
      [SERVICE_NAMES.kv]: "NOT_SERVING",
      [SERVICE_NAMES.cluster]: "SERVING",
      [SERVICE_NAMES.raft]: "SERVING",
    });
    health.addToServer(server);
    new ReflectionService(reflectionDescriptors()).addToServer(server);

    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(options.address, credentials, (error, bound) => {
        if (error === null) {
          resolve(bound);
          return;
        }
        const inUse = /EADDRINUSE|address already in use/i.test(error.message);
        const tls = options.tls;
        if (
          !inUse &&
          tls !== undefined &&
          /mismatch|PEM|certificate|private key|OSSL|SSL/i.test(error.message)
        ) {
          // The TLS context is built at bind: name the files, as the other TLS errors do.
          reject(
            new TransportError(
              "TRANSPORT_TLS",
              `tls: the certificate ${tls.certFile} and the private key ${tls.keyFile} are unusable together: ${error.message.replace(/^.*?: /, "")}`,
              { cause: error },
            ),
          );
          return;
        }
        reject(
          new TransportError(
            inUse ? "TRANSPORT_ADDRESS_IN_USE" : "TRANSPORT_BIND_FAILED",
            inUse
              ? `${options.address} is already in use by another process`
              : `cannot listen on ${options.address}: ${error.message}`,
            { cause: error },
          ),
        );
      });
    });
    if (options.tls !== undefined && !logRefusedHandshakes(server, logger)) {
      logger.debug(
        {},
        "this grpc-js release hides its HTTP/2 servers: refused TLS handshakes go unlogged",
      );
    }
    logger.debug({ address: options.address, port }, "gRPC server listening");
    return new RockraftServer(server, health, batches, port);
  }

  /** Reports whether this node can serve clients (grpc.health.v1: "" and rockraft.v1.KV). */
  setServing(serving: boolean): void {
    const status = serving ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", status);
    this.health.setStatus(SERVICE_NAMES.kv, status);
  }

  /** Stops accepting calls; waits up to `graceMs` for calls in flight, then cuts them. */
  shutdown(graceMs = 2_000): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.setServing(false);
      // Batch streams live as long as their clients: end them once their calls are answered.
      this.batches.drain();
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.closing;
  }
}
