// One attempt of a client call at one endpoint, and how its failures read: the errors a
// RockraftClient rejects with (client.ts retries and follows the leader around these).
import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import type { ClusterClient } from "./gen/rockraft/v1/cluster.js";
import type { CallError, KVClient } from "./gen/rockraft/v1/kv.js";
import type { LeaderHint } from "./errors.js";
import type { BatchSession } from "./batch-client.js";
import { callErrorFromStatus } from "./call-status.js";

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
