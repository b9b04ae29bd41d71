// The status of a failed call, both ways: how the server encodes a handler's error (gRPC
// status, message, trailing metadata with rockraft's code, the leader to follow, whether a
// write's outcome is unknown) and how a client decodes it.
import {
  Metadata,
  status as GrpcStatus,
  type ServerUnaryCall,
  type ServiceError,
  type sendUnaryData,
} from "@grpc/grpc-js";
import {
  ANSWERED_METADATA,
  ERROR_CODE_METADATA,
  LEADER_ADDR_METADATA,
  LEADER_ID_METADATA,
  OUTCOME_UNKNOWN_METADATA,
  RpcError,
  grpcStatusOf,
} from "./errors.js";
import { CALL_CANCELLED, LazyCallContext, bearerToken, type CertificateSource } from "./context.js";
import type { CallError } from "./gen/rockraft/v1/kv.js";
import type { CallContext, TransportLogger } from "./handlers.js";
import { WireError } from "./wire.js";

const NO_HINT = { code: "", leaderId: 0n, leaderAddr: "", outcomeUnknown: false } as const;

/** What a failed call answers: its status, message and trailing metadata's content. */
export function callErrorOf(error: unknown, what: string, logger: TransportLogger): CallError {
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
}

/** A failed unary or client-streaming call's answer: the status with its trailing metadata. */
export function serviceErrorOf(
  error: unknown,
  what: string,
  logger: TransportLogger,
): ServiceError {
  const answer = callErrorOf(error, what, logger);
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
}

/**
 * A failed call as the client decodes it: what the server encoded (a CallError, as a Batch
 * call carries), and whether the server answered at all (`answered`; otherwise the call may
 * or may not have reached it).
 */
export function callErrorFromStatus(error: ServiceError): { answer: CallError; answered: boolean } {
  const text = (key: string) => String(error.metadata?.get(key)[0] ?? "");
  const leaderId = text(LEADER_ID_METADATA);
  return {
    answer: {
      status: error.code,
      message: error.details || error.message,
      code: text(ERROR_CODE_METADATA),
      leaderId: /^\d+$/.test(leaderId) ? BigInt(leaderId) : 0n,
      leaderAddr: text(LEADER_ADDR_METADATA),
      outcomeUnknown: text(OUTCOME_UNKNOWN_METADATA) === "1",
    },
    answered: text(ANSWERED_METADATA) !== "",
  };
}

/** A unary call's context; grpc-js reports "cancelled" at the end of many calls. */
export function contextOf(
  call: {
    readonly metadata: Metadata;
    getDeadline(): Date | number;
    on(event: "cancelled", listener: () => void): unknown;
  } & CertificateSource,
): LazyCallContext {
  const raw = call.getDeadline();
  const deadline = raw instanceof Date ? raw.getTime() : raw;
  const context = new LazyCallContext(
    Number.isFinite(deadline) ? deadline : Infinity,
    undefined,
    bearerToken(call.metadata),
    call,
  );
  // grpc-js reports "cancelled" at the end of many calls, answered or not: after the answer
  // it changes nothing, and costs no AbortController or event.
  call.on("cancelled", () => context.cancel(CALL_CANCELLED));
  return context;
}

/** A unary handler: answers with `handle`'s response, or its error encoded. */
export function unary<Request, Response>(
  what: string,
  handle: (request: Request, context: CallContext) => Promise<Response>,
  logger: TransportLogger,
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
        callback(serviceErrorOf(error, what, logger));
      },
    );
  };
}
