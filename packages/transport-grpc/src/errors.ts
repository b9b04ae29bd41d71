import { status as GrpcStatus } from "@grpc/grpc-js";

/** The gRPC statuses rockraft's services answer with (docs/architecture.md, "Errors"). */
export type RpcStatus =
  | "INVALID_ARGUMENT"
  | "FAILED_PRECONDITION"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "RESOURCE_EXHAUSTED"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "UNIMPLEMENTED"
  | "INTERNAL";

/** Trailing metadata keys naming the leader when a node cannot serve a call itself. */
export const LEADER_ID_METADATA = "rockraft-leader-id";
/** Trailing metadata key with the leader's advertised address. */
export const LEADER_ADDR_METADATA = "rockraft-leader-addr";
/** Trailing metadata key carrying the server-side error's stable code. */
export const ERROR_CODE_METADATA = "rockraft-error-code";
/**
 * Trailing metadata key set on every error a rockraft server answers, so a client can tell
 * the node's answer (the call was handled, nothing more will come of it unless the answer
 * says so) from a transport failure (the call may have reached the node, or not).
 */
export const ANSWERED_METADATA = "rockraft-answered";
/**
 * Trailing metadata key (value `1`) on an error answered for a change the node had started
 * and stopped waiting for (e.g. a write proposed whose deadline passed): it may or may not
 * be made.
 */
export const OUTCOME_UNKNOWN_METADATA = "rockraft-outcome-unknown";

/** The leader a node knows of, sent so that a client can go there. */
export interface LeaderHint {
  /** The leader's node id. */
  readonly id: number;
  /** The leader's advertised address, when known. */
  readonly addr?: string;
}

/**
 * Thrown by KV and Cluster handlers to answer a call with a status: UNAVAILABLE (with the
 * leader, when known) when there is no leader or the node cannot serve; INVALID_ARGUMENT
 * for bad input; FAILED_PRECONDITION when the cluster is not initialized. Any other error a
 * handler throws becomes INTERNAL.
 */
export class RpcError extends Error {
  /** Always `"RpcError"`. */
  override readonly name = "RpcError";
  /** The gRPC status the call is answered with. */
  readonly status: RpcStatus;
  /** The leader, sent in trailing metadata, when known. */
  readonly leader: LeaderHint | undefined;
  /** A stable code of the underlying failure (e.g. RAFT_PROPOSAL_DROPPED), passed to clients. */
  readonly code: string | undefined;
  /**
   * The handler had started the change (proposed the write) and stopped waiting for it: it
   * may or may not be made. Passed to clients as `RockraftClientError.outcomeUnknown`.
   */
  readonly outcomeUnknown: boolean;

  constructor(
    status: RpcStatus,
    message: string,
    options: { leader?: LeaderHint; code?: string; outcomeUnknown?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.leader = options.leader;
    this.code = options.code;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}

/** The numeric grpc-js status of a status name. */
export function grpcStatusOf(status: RpcStatus): GrpcStatus {
  return GrpcStatus[status];
}

/** Stable codes of {@link TransportError}. */
export type TransportErrorCode =
  /** The listen address is taken by another process. */
  | "TRANSPORT_ADDRESS_IN_USE"
  /** The listen address cannot be bound (bad host, no permission). */
  | "TRANSPORT_BIND_FAILED"
  /** TLS files cannot be read or used. */
  | "TRANSPORT_TLS"
  /** The server or peer transport was shut down. */
  | "TRANSPORT_CLOSED";

/** An error of the server or peer transport, with a stable `code`. */
export class TransportError extends Error {
  /** Always `"TransportError"`. */
  override readonly name = "TransportError";
  /** Stable code to branch on. */
  readonly code: TransportErrorCode;

  constructor(code: TransportErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}
