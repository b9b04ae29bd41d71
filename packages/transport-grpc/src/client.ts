import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import {
  ClusterClient,
  type AddLearnerResponse,
  type ChangeMembershipResponse,
  type InitializeResponse,
  type MetricsResponse,
  type TransferLeaderResponse,
  type TriggerSnapshotResponse,
} from "./gen/rockraft/v1/cluster.js";
import { KvClient } from "./codecs.js";
import {
  type KVClient,
  type BatchCall,
  type CallError,
  type LogId as WireLogId,
} from "./gen/rockraft/v1/kv.js";
import { TransportError, type LeaderHint } from "./errors.js";
import type {
  ClusterMetrics,
  DeleteResult,
  InitializeResult,
  LogId,
  Member,
  MembershipResult,
  PutResult,
  SnapshotResult,
} from "./handlers.js";
import { BatchFailure, BatchSession, type BatchAnswer } from "./batch-client.js";
import { TlsDialer } from "./tls.js";
import { toNumber } from "./wire.js";
import { Backoff } from "./backoff.js";
import { callErrorFromStatus } from "./call-status.js";

/** Keys and values: bytes, or a string sent as UTF-8. */
export type Bytes = Uint8Array | string;

/** What {@link RockraftClient.get} returns. */
export interface ReadResult {
  /** Whether the key exists. */
  readonly found: boolean;
  /** The value; undefined when the key is absent. */
  readonly value: Uint8Array | undefined;
}

/** A compare-and-swap request to {@link RockraftClient.compareAndSwap}. */
export interface SwapRequest {
  /** The key. */
  readonly key: Bytes;
  /** Succeeds only if the key's presence equals this. */
  readonly expectFound: boolean;
  /** When `expectFound`: the value the key must hold. */
  readonly expected?: Bytes;
  /** The value written on success. */
  readonly value: Bytes;
}

/** What {@link RockraftClient.compareAndSwap} returns. */
export interface SwapResult {
  /** Whether the value was swapped. */
  readonly succeeded: boolean;
  /** Whether the key existed before. */
  readonly found: boolean;
  /** The value before; undefined when the key was absent. */
  readonly current: Uint8Array | undefined;
  /** Where the command landed; it is committed and applied either way. */
  readonly logId: LogId;
}

/** The membership {@link RockraftClient.changeMembership} moves the cluster to. */
export interface MembershipTarget {
  /** The voters afterwards. */
  readonly voters: readonly Member[];
  /** The learners afterwards; none when omitted. */
  readonly learners?: readonly Member[];
}

/** TLS settings of a {@link RockraftClient}. */
export interface ClientTlsOptions {
  /** CA bundle to verify servers; system roots when absent. */
  readonly caFile?: string;
  /** A client certificate and key, for servers that require one (mutual TLS). */
  readonly certFile?: string;
  /** The private key of `certFile`. */
  readonly keyFile?: string;
}

/** Options of {@link RockraftClient}. */
export interface RockraftClientOptions {
  /** `host:port` of one or more nodes; the client finds the leader from there. */
  readonly endpoints: readonly string[];
  /** TLS; plaintext when absent. */
  readonly tls?: ClientTlsOptions;
  /** Deadline of each call, retries included; default 5000 ms. */
  readonly timeoutMs?: number;
  /** Largest message, in bytes; default 64 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Send each KV call as a unary gRPC call of its own instead of over the node's shared
   * `KV.Batch` stream (the default, and much cheaper per call: no HTTP/2 stream per call,
   * and the calls of one event-loop turn travel as one message).
   */
  readonly unaryCalls?: boolean;
}

/** Per-call options. */
export interface CallOptions {
  /** The call's deadline, retries included; default: the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** One attempt only: no leader-following, no retries (for callers that retry themselves). */
  readonly once?: boolean;
}

/** A failed client call: `code` is the gRPC status name; `leader` what the server knew. */
export class RockraftClientError extends Error {
  /** Always `"RockraftClientError"`. */
  override readonly name = "RockraftClientError";
  /** gRPC status name: UNAVAILABLE, INVALID_ARGUMENT, FAILED_PRECONDITION, DEADLINE_EXCEEDED, ... */
  readonly code: string;
  /** The server's stable error code (e.g. RAFT_PROPOSAL_DROPPED), when it sent one. */
  readonly serverCode: string | undefined;
  /** The leader the server named, when it named one. */
  readonly leader: LeaderHint | undefined;
  /** The endpoint that answered last. */
  readonly endpoint: string;
  /**
   * A write (or membership change) may or may not have been applied: the call may have
   * reached the node but no answer came back (the connection broke, or the deadline
   * passed), or the node answered that it had proposed it and stopped waiting (say
   * `RAFT_TIMEOUT`). Such writes are not retried. When `false`, the write was not applied.
   */
  readonly outcomeUnknown: boolean;

  constructor(
    code: string,
    message: string,
    endpoint: string,
    options: {
      serverCode?: string | undefined;
      leader?: RockraftClientError["leader"];
      outcomeUnknown?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.endpoint = endpoint;
    this.serverCode = options.serverCode;
    this.leader = options.leader;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}

const encoder = new TextEncoder();
const asBytes = (value: Bytes): Buffer =>
  typeof value === "string"
    ? Buffer.from(encoder.encode(value))
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);

function logId(wire: WireLogId | undefined): LogId {
  if (wire === undefined) return { term: 0, nodeId: 0, index: 0 };
  return {
    term: toNumber(wire.term, "log_id.term"),
    nodeId: toNumber(wire.nodeId, "log_id.node_id"),
    index: toNumber(wire.index, "log_id.index"),
  };
}

function statusName(code: number): string {
  return (GrpcStatus as unknown as Record<number, string>)[code] ?? `STATUS_${code}`;
}

interface Endpoint {
  readonly address: string;
  readonly kv: KVClient;
  readonly cluster: ClusterClient;
  readonly batch: BatchSession;
}

/** Makes one unary call on an endpoint's generated client. */
type Invoker<Response> = (
  endpoint: Endpoint,
  metadata: Metadata,
  options: { deadline: number },
  callback: (error: ServiceError | null, response: Response) => void,
) => unknown;

/** One attempt of a call at one endpoint; rejects with a RockraftClientError. */
type Attempt<Response> = (endpoint: Endpoint, deadline: number) => Promise<Response>;

/** The KV requests, as the Batch stream carries them. */
type KvRequest = NonNullable<BatchCall["request"]>;
/** The response a Batch call of kind `C` is answered with. */
type KvResponse<C extends KvRequest["$case"]> = Extract<BatchAnswer, { $case: C }>["value"];

/** The error of a call the node answered with a failure (a unary status, or a CallError). */
function answeredError(address: string, error: CallError, cause?: unknown): RockraftClientError {
  const id = Number(error.leaderId);
  const leader: LeaderHint | undefined =
    id === 0 ? undefined : error.leaderAddr === "" ? { id } : { id, addr: error.leaderAddr };
  return new RockraftClientError(
    statusName(error.status),
    `${address}: ${error.message}`,
    address,
    {
      serverCode: error.code === "" ? undefined : error.code,
      leader,
      outcomeUnknown: error.outcomeUnknown,
      cause,
    },
  );
}

/**
 * A client of a rockraft cluster's KV and Cluster services. It sends each call to the node
 * it believes leads, follows the leader named in the answer, and retries UNAVAILABLE with
 * backoff on the other endpoints until the call's deadline. KV calls to a node share one
 * `KV.Batch` stream unless `unaryCalls` is set.
 */
export class RockraftClient {
  private readonly endpoints = new Map<string, Endpoint>();
  private preferred: string;
  private readonly dialer: TlsDialer;
  private readonly timeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly unaryCalls: boolean;
  private closed = false;

  constructor(options: RockraftClientOptions) {
    if (options.endpoints.length === 0)
      throw new RangeError("RockraftClient: at least one endpoint is required");
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
    this.unaryCalls = options.unaryCalls ?? false;
    this.dialer = new TlsDialer(options.tls);
    for (const address of options.endpoints) this.endpoint(address);
    this.preferred = options.endpoints[0]!;
  }

  /** Writes `key`; resolves once the write is committed and applied. */
  async put(key: Bytes, value: Bytes, options: CallOptions = {}): Promise<PutResult> {
    const request = { key: asBytes(key), value: asBytes(value) };
    const response = await this.kvCall(
      { $case: "put", value: request },
      (e, m, o, cb) => e.kv.put(request, m, o, cb),
      options,
    );
    return { logId: logId(response.logId) };
  }

  /** A linearizable read; `value` is undefined when the key is absent. */
  async get(key: Bytes, options: CallOptions = {}): Promise<ReadResult> {
    const request = { key: asBytes(key) };
    const response = await this.kvCall(
      { $case: "get", value: request },
      (e, m, o, cb) => e.kv.get(request, m, o, cb),
      options,
    );
    return {
      found: response.found,
      value: response.found ? new Uint8Array(response.value) : undefined,
    };
  }

  /** Deletes `key`; resolves once committed and applied, with whether it existed. */
  async delete(key: Bytes, options: CallOptions = {}): Promise<DeleteResult> {
    const request = { key: asBytes(key) };
    const response = await this.kvCall(
      { $case: "delete", value: request },
      (e, m, o, cb) => e.kv.delete(request, m, o, cb),
      options,
    );
    return { logId: logId(response.logId), found: response.found };
  }

  /**
   * Sets `value` if the key's presence equals `expectFound` and, when present, its value
   * equals `expected`. Returns whether it did, and the key's state before.
   */
  async compareAndSwap(request: SwapRequest, options: CallOptions = {}): Promise<SwapResult> {
    const wire = {
      key: asBytes(request.key),
      expectFound: request.expectFound,
      expected: asBytes(request.expected ?? new Uint8Array()),
      value: asBytes(request.value),
    };
    const response = await this.kvCall(
      { $case: "compareAndSwap", value: wire },
      (e, m, o, cb) => e.kv.compareAndSwap(wire, m, o, cb),
      options,
    );
    return {
      succeeded: response.succeeded,
      found: response.found,
      current: response.found ? new Uint8Array(response.current) : undefined,
      logId: logId(response.logId),
    };
  }

  /** Initializes a brand-new cluster through `endpoint` (default: the first endpoint). */
  async initialize(
    members: readonly Member[],
    options: CallOptions & { endpoint?: string } = {},
  ): Promise<InitializeResult> {
    const request = { members: members.map((m) => ({ nodeId: BigInt(m.nodeId), addr: m.addr })) };
    return this.callAt<InitializeResponse>(
      options.endpoint ?? this.preferred,
      (e, m, o, cb) => e.cluster.initialize(request, m, o, cb),
      options,
    );
  }

  /** One node's metrics (default: the node the client prefers). */
  async metrics(options: CallOptions & { endpoint?: string } = {}): Promise<ClusterMetrics> {
    const response = await this.callAt<MetricsResponse>(
      options.endpoint ?? this.preferred,
      (e, m, o, cb) => e.cluster.metrics({}, m, o, cb),
      options,
    );
    return metricsFromWire(response);
  }

  /** Adds a learner; resolves once the change is applied. */
  async addLearner(member: Member, options: CallOptions = {}): Promise<MembershipResult> {
    const request = { member: { nodeId: BigInt(member.nodeId), addr: member.addr } };
    const response = await this.call(
      unaryAttempt<AddLearnerResponse>((e, m, o, cb) => e.cluster.addLearner(request, m, o, cb)),
      options,
    );
    return { logIndex: toNumber(response.logIndex, "log_index") };
  }

  /** Changes the membership (joint consensus when voters change); resolves once applied. */
  async changeMembership(
    target: MembershipTarget,
    options: CallOptions = {},
  ): Promise<MembershipResult> {
    const wire = (list: readonly Member[]) =>
      list.map((m) => ({ nodeId: BigInt(m.nodeId), addr: m.addr }));
    const request = { voters: wire(target.voters), learners: wire(target.learners ?? []) };
    const response = await this.call(
      unaryAttempt<ChangeMembershipResponse>((e, m, o, cb) =>
        e.cluster.changeMembership(request, m, o, cb),
      ),
      options,
    );
    return { logIndex: toNumber(response.logIndex, "log_index") };
  }

  /** Hands leadership to voter `nodeId`; resolves once it leads. */
  async transferLeader(nodeId: number, options: CallOptions = {}): Promise<void> {
    const request = { nodeId: BigInt(nodeId) };
    await this.call(
      unaryAttempt<TransferLeaderResponse>((e, m, o, cb) =>
        e.cluster.transferLeader(request, m, o, cb),
      ),
      options,
    );
  }

  /** Takes a snapshot on `endpoint` (default: the node the client prefers). */
  async triggerSnapshot(
    options: CallOptions & { endpoint?: string } = {},
  ): Promise<SnapshotResult> {
    const response = await this.callAt<TriggerSnapshotResponse>(
      options.endpoint ?? this.preferred,
      (e, m, o, cb) => e.cluster.triggerSnapshot({}, m, o, cb),
      options,
    );
    return { snapshotIndex: toNumber(response.snapshotIndex, "snapshot_index") };
  }

  /** The endpoint calls go to first (the last known leader). */
  currentEndpoint(): string {
    return this.preferred;
  }

  /** Closes every connection; later calls fail with TRANSPORT_CLOSED. */
  close(): void {
    this.closed = true;
    for (const endpoint of this.endpoints.values()) {
      endpoint.batch.close();
      endpoint.kv.close();
      endpoint.cluster.close();
    }
  }

  private endpoint(address: string): Endpoint {
    let endpoint = this.endpoints.get(address);
    if (endpoint === undefined) {
      const { credentials, options: tlsOptions } = this.dialer.credentialsFor(address);
      const channelOptions = {
        ...tlsOptions,
        "grpc.max_send_message_length": this.maxMessageBytes,
        "grpc.max_receive_message_length": this.maxMessageBytes,
        // The Batch stream outlives its calls: notice a node that vanished without a word.
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": 5_000,
      };
      const kv = new KvClient(address, credentials, channelOptions);
      endpoint = {
        address,
        kv,
        cluster: new ClusterClient(address, credentials, channelOptions),
        batch: new BatchSession(kv, this.maxMessageBytes),
      };
      this.endpoints.set(address, endpoint);
    }
    return endpoint;
  }

  /** A KV call, over the endpoint's Batch stream or as a unary call. */
  private kvCall<C extends KvRequest["$case"]>(
    request: Extract<KvRequest, { $case: C }>,
    invoker: Invoker<KvResponse<C>>,
    options: CallOptions,
  ): Promise<KvResponse<C>> {
    const retrySent = request.$case === "get"; // a read may be asked again, a write not
    if (this.unaryCalls) return this.call(unaryAttempt(invoker), options, retrySent);
    const attempt: Attempt<KvResponse<C>> = (endpoint, deadline) =>
      endpoint.batch.call(request, deadline).then(
        (answer): unknown => {
          if (answer.$case === request.$case) return answer.value;
          if (answer.$case === "error") throw answeredError(endpoint.address, answer.value);
          throw new RockraftClientError(
            "INTERNAL",
            `${endpoint.address}: a ${request.$case} call was answered as ${answer.$case}`,
            endpoint.address,
          );
        },
        (failure: unknown) => {
          if (!(failure instanceof BatchFailure)) throw failure;
          throw new RockraftClientError(
            failure.code,
            `${endpoint.address}: ${failure.message}`,
            endpoint.address,
            { outcomeUnknown: failure.mayHaveReached, cause: failure.cause },
          );
        },
      ) as Promise<KvResponse<C>>;
    return this.call(attempt, options, retrySent);
  }

  /** One call at one endpoint, no retries. */
  private callAt<Response>(
    address: string,
    invoker: Invoker<Response>,
    options: CallOptions,
  ): Promise<Response> {
    if (this.closed) throw new TransportError("TRANSPORT_CLOSED", "RockraftClient is closed");
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    return unaryAttempt(invoker)(this.endpoint(address), deadline);
  }

  /**
   * A call with leader-following and retries: UNAVAILABLE moves to the leader named in
   * the answer, or else to the next endpoint after a backoff, until the deadline. A call
   * that reached a node without an answer is retried only if `retrySent` (reads).
   */
  private async call<Response>(
    attempt: Attempt<Response>,
    options: CallOptions,
    retrySent = false,
  ): Promise<Response> {
    if (this.closed) throw new TransportError("TRANSPORT_CLOSED", "RockraftClient is closed");
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    const backoff = new Backoff(25, 1_000);
    let lastError: RockraftClientError | undefined;
    while (Date.now() < deadline) {
      const endpoint = this.endpoint(this.preferred);
      try {
        return await attempt(endpoint, deadline);
      } catch (error) {
        if (options.once === true) throw error;
        if (!(error instanceof RockraftClientError)) throw error;
        // The deadline ran out during a retry: what the earlier answers said is the better
        // account of why the call failed than the bare deadline of the last attempt.
        const unknownWrite = error.outcomeUnknown && !retrySent;
        if (error.code === "DEADLINE_EXCEEDED" && lastError !== undefined && !unknownWrite) break;
        if (error.code !== "UNAVAILABLE") throw error;
        lastError = error;
        const leaderAddr = error.leader?.addr;
        if (leaderAddr !== undefined && leaderAddr !== endpoint.address) {
          this.preferred = leaderAddr;
          if (unknownWrite) throw error;
          continue; // follow the leader at once
        }
        const addresses = [...this.endpoints.keys()];
        this.preferred = addresses[(addresses.indexOf(endpoint.address) + 1) % addresses.length]!;
        if (unknownWrite) throw error; // the next call goes elsewhere; this one may have landed
        const wait = Math.min(backoff.next(), deadline - Date.now());
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    throw new RockraftClientError(
      lastError === undefined ? "DEADLINE_EXCEEDED" : "UNAVAILABLE",
      `no node could serve the call within its deadline: ${lastError?.message ?? "no answer"}`,
      lastError?.endpoint ?? this.preferred,
      { serverCode: lastError?.serverCode, leader: lastError?.leader, cause: lastError },
    );
  }
}

/** Statuses of a call that got no answer from the node (set by grpc-js). */
const UNANSWERED = new Set<number>([
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.CANCELLED,
  GrpcStatus.INTERNAL,
  GrpcStatus.UNKNOWN,
]);
/** grpc-js's details for a call that never left the client (no connection, closed channel). */
const NOT_STARTED = /^(No connection established|Channel closed before call started)/;

/** One unary call at one endpoint; a failure becomes a RockraftClientError. */
function unaryAttempt<Response>(invoker: Invoker<Response>): Attempt<Response> {
  return (endpoint, deadline) =>
    new Promise((resolve, reject) => {
      invoker(endpoint, new Metadata(), { deadline }, (error, response) => {
        if (error === null) {
          resolve(response);
          return;
        }
        // The status and trailing metadata carry what a Batch call's CallError does.
        const { answer, answered } = callErrorFromStatus(error);
        // No answer from the node: unless grpc-js never started the call, it may have
        // reached the node, and a write's outcome is unknown.
        const mayHaveReached =
          !answered && UNANSWERED.has(error.code) && !NOT_STARTED.test(answer.message);
        if (!mayHaveReached) {
          reject(answeredError(endpoint.address, answer, error));
          return;
        }
        // As over a Batch stream: a call cut off by the node or the network is UNAVAILABLE
        // (reads move on), one that ran out of time DEADLINE_EXCEEDED.
        const timedOut = error.code === GrpcStatus.DEADLINE_EXCEEDED;
        reject(
          new RockraftClientError(
            timedOut ? "DEADLINE_EXCEEDED" : "UNAVAILABLE",
            `${endpoint.address}: ${timedOut ? "" : "the call broke: "}${answer.message}`,
            endpoint.address,
            { outcomeUnknown: true, cause: error },
          ),
        );
      });
    });
}

function metricsFromWire(m: MetricsResponse): ClusterMetrics {
  const members = (list: MetricsResponse["voters"]) =>
    list.map((member) => ({ nodeId: toNumber(member.nodeId, "node_id"), addr: member.addr }));
  return {
    nodeId: toNumber(m.nodeId, "node_id"),
    initialized: m.initialized,
    state: m.state,
    currentTerm: toNumber(m.currentTerm, "current_term"),
    currentLeader: toNumber(m.currentLeader, "current_leader"),
    lastLogIndex: toNumber(m.lastLogIndex, "last_log_index"),
    commitIndex: toNumber(m.commitIndex, "commit_index"),
    lastApplied: {
      index: toNumber(m.lastAppliedIndex, "last_applied_index"),
      term: toNumber(m.lastAppliedTerm, "last_applied_term"),
    },
    voters: members(m.voters),
    learners: members(m.learners),
    votersOutgoing: members(m.votersOutgoing),
    snapshotIndex: toNumber(m.snapshotIndex, "snapshot_index"),
    replication: m.replication.map((r) => ({
      nodeId: toNumber(r.nodeId, "node_id"),
      matchIndex: toNumber(r.matchIndex, "match_index"),
      nextIndex: toNumber(r.nextIndex, "next_index"),
      state: r.state,
    })),
  };
}
