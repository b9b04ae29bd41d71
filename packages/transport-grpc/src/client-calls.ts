// One attempt of a client call at one endpoint, and how its failures read: the errors a
// RockraftClient rejects with (client.ts retries and follows the leader around these).
import { Metadata, status as GrpcStatus, type Interceptor, type ServiceError } from "@grpc/grpc-js";
import { KvClient } from "./codecs.js";
import { ClusterClient } from "./gen/rockraft/v1/cluster.js";
import { AuthClient } from "./gen/rockraft/v1/auth.js";
import type {
  BatchCall,
  CallError,
  KVClient,
  LogId as WireLogId,
  SessionTag as WireSessionTag,
} from "./gen/rockraft/v1/kv.js";
import type { LeaderHint } from "./errors.js";
import { BatchSession, type BatchAnswer } from "./batch-client.js";
import type { TlsDialer } from "./tls.js";
import { callErrorFromStatus } from "./call-status.js";
import type { SessionTag } from "./client-session.js";
import type { LogId } from "./handlers.js";
import { toNumber } from "./wire.js";

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
   * `RAFT_TIMEOUT`). A write in a session is retried until its deadline, so this means
   * its deadline passed with its outcome still unknown; a write without one is not
   * retried. When `false`, the write was not applied.
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

function statusName(code: number): string {
  return (GrpcStatus as unknown as Record<number, string>)[code] ?? `STATUS_${code}`;
}

/** A node the client calls: its generated clients and its Batch stream. */
export interface Endpoint {
  readonly address: string;
  readonly kv: KVClient;
  readonly cluster: ClusterClient;
  readonly auth: AuthClient;
  readonly batch: BatchSession;
}

/** Makes one unary call on an endpoint's generated client. */
export type Invoker<Response> = (
  endpoint: Endpoint,
  metadata: Metadata,
  options: { deadline: number },
  callback: (error: ServiceError | null, response: Response) => void,
) => unknown;

/** One attempt of a call at one endpoint; rejects with a RockraftClientError. */
export type Attempt<Response> = (endpoint: Endpoint, deadline: number) => Promise<Response>;

/** `error`, saying that an earlier attempt of its write may have applied. */
export function withUnknownOutcome(error: RockraftClientError): RockraftClientError {
  if (error.outcomeUnknown) return error;
  const message = `${error.message} (an earlier attempt may have applied: the outcome is unknown)`;
  return new RockraftClientError(error.code, message, error.endpoint, {
    serverCode: error.serverCode,
    leader: error.leader,
    outcomeUnknown: true,
    cause: error,
  });
}

/**
 * The error of a call whose retries ended with no answer served: UNAVAILABLE with what the
 * last node said (`last`), or DEADLINE_EXCEEDED when none answered; `unknown` when an
 * attempt may have applied.
 */
export function unservedError(
  last: RockraftClientError | undefined,
  unknown: boolean,
  endpoint: string,
): RockraftClientError {
  return new RockraftClientError(
    last === undefined ? "DEADLINE_EXCEEDED" : "UNAVAILABLE",
    `no node could serve the call within its deadline: ${last?.message ?? "no answer"}${unknown ? "; an attempt may have applied: the outcome is unknown" : ""}`,
    last?.endpoint ?? endpoint,
    { serverCode: last?.serverCode, leader: last?.leader, outcomeUnknown: unknown, cause: last },
  );
}

/** The error of a call the node answered with a failure (a unary status, or a CallError). */
export function answeredError(
  address: string,
  error: CallError,
  cause?: unknown,
): RockraftClientError {
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
export function unaryAttempt<Response>(invoker: Invoker<Response>): Attempt<Response> {
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

/** A log id from the wire (zeros when absent). */
export function logId(wire: WireLogId | undefined): LogId {
  if (wire === undefined) return { term: 0, nodeId: 0, index: 0 };
  return {
    term: toNumber(wire.term, "log_id.term"),
    nodeId: toNumber(wire.nodeId, "log_id.node_id"),
    index: toNumber(wire.index, "log_id.index"),
  };
}

/** The KV requests, as the Batch stream carries them. */
export type KvRequest = NonNullable<BatchCall["request"]>;
/** The response a Batch call of kind `C` is answered with. */
export type KvResponse<C extends KvRequest["$case"]> = Extract<BatchAnswer, { $case: C }>["value"];

/**
 * How a call may be retried after an attempt that may have reached a node: a read may be
 * asked again; a write in a session may be sent again (the session makes the retry safe);
 * any other write, or a membership change, may not.
 */
export type CallMode = "read" | "retry-safe-write" | "write";

/** A session tag for the wire. */
export function wireTag(tag: SessionTag | undefined): WireSessionTag | undefined {
  if (tag === undefined) return undefined;
  return { id: BigInt(tag.id), seq: BigInt(tag.seq), acknowledged: BigInt(tag.acknowledged) };
}

/** Connects to a node: its generated clients, sharing one channel's settings, and its Batch stream. */
export function dial(
  address: string,
  dialer: TlsDialer,
  maxMessageBytes: number,
  interceptors: Interceptor[],
): Endpoint {
  const { credentials, options: tlsOptions } = dialer.credentialsFor(address);
  const channelOptions = {
    ...tlsOptions,
    "grpc.max_send_message_length": maxMessageBytes,
    "grpc.max_receive_message_length": maxMessageBytes,
    // The Batch stream outlives its calls: notice a node that vanished without a word.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    ...(interceptors.length === 0 ? {} : { interceptors }),
  };
  const kv = new KvClient(address, credentials, channelOptions);
  return {
    address,
    kv,
    cluster: new ClusterClient(address, credentials, channelOptions),
    auth: new AuthClient(address, credentials, channelOptions),
    batch: new BatchSession(kv, maxMessageBytes),
  };
}
