// The KV service: Put, Get, Delete, CompareAndSwap as unary calls, and Batch, the same
// calls multiplexed over one stream.
import { BatchStreams } from "../batch-server.js";
import { callErrorOf, unary } from "../call-status.js";
import type { SessionTag } from "../client-session.js";
import type {
  CloseSessionRequest,
  CloseSessionResponse,
  CompareAndSwapRequest,
  CompareAndSwapResponse,
  DeleteRequest,
  DeleteResponse,
  GetRequest,
  GetResponse,
  KVServer,
  LogId as WireLogId,
  OpenSessionResponse,
  PutRequest,
  PutResponse,
  SessionTag as WireSessionTag,
} from "../gen/rockraft/v1/kv.js";
import type { CallContext, KvHandler, LogId, TransportLogger } from "../handlers.js";
import { WireError, toNumber } from "../wire.js";

/** The unary method each kind of Batch call stands for, to name it in errors and logs. */
const METHODS = {
  put: "Put",
  get: "Get",
  delete: "Delete",
  compareAndSwap: "CompareAndSwap",
  openSession: "OpenSession",
  closeSession: "CloseSession",
  none: "Batch",
} as const;

function wireLogId(id: LogId): WireLogId {
  return { term: BigInt(id.term), nodeId: BigInt(id.nodeId), index: BigInt(id.index) };
}

function sessionTag(wire: WireSessionTag | undefined): SessionTag | undefined {
  if (wire === undefined) return undefined;
  return {
    id: toNumber(wire.id, "session.id"),
    seq: toNumber(wire.seq, "session.seq"),
    acknowledged: toNumber(wire.acknowledged, "session.acknowledged"),
  };
}

/** The KV service over `kv`, and its Batch streams (which a shutdown drains). */
export function kvService(
  kv: KvHandler,
  logger: TransportLogger,
  maxMessageBytes: number,
): { server: KVServer; batches: BatchStreams } {
  const kvCalls = {
    put: async (request: PutRequest, context: CallContext): Promise<PutResponse> => {
      const session = sessionTag(request.session);
      return {
        logId: wireLogId((await kv.put(request.key, request.value, context, session)).logId),
      };
    },
    get: async (request: GetRequest, context: CallContext): Promise<GetResponse> => {
      const result = await kv.get(request.key, context);
      return { found: result.found, value: Buffer.from(result.value) };
    },
    delete: async (request: DeleteRequest, context: CallContext): Promise<DeleteResponse> => {
      const result = await kv.delete(request.key, context, sessionTag(request.session));
      return { logId: wireLogId(result.logId), found: result.found };
    },
    compareAndSwap: async (
      request: CompareAndSwapRequest,
      context: CallContext,
    ): Promise<CompareAndSwapResponse> => {
      const { session, ...rest } = request;
      const result = await kv.compareAndSwap({ ...rest, session: sessionTag(session) }, context);
      return {
        succeeded: result.succeeded,
        found: result.found,
        current: Buffer.from(result.current),
        logId: wireLogId(result.logId),
      };
    },
    openSession: async (_request: unknown, context: CallContext): Promise<OpenSessionResponse> => ({
      sessionId: BigInt((await kv.openSession(context)).sessionId),
    }),
    closeSession: async (
      request: CloseSessionRequest,
      context: CallContext,
    ): Promise<CloseSessionResponse> =>
      kv.closeSession(toNumber(request.sessionId, "session_id"), context),
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
        case "openSession":
          return { $case: "openSession", value: await kvCalls.openSession(request.value, context) };
        case "closeSession":
          return {
            $case: "closeSession",
            value: await kvCalls.closeSession(request.value, context),
          };
        default:
          throw new WireError(`call ${call.id}: no request`);
      }
    },
    (error, call) => callErrorOf(error, `KV.${METHODS[call.request?.$case ?? "none"]}`, logger),
    maxMessageBytes,
  );
  const kvServer: KVServer = {
    put: unary("KV.Put", kvCalls.put, logger),
    get: unary("KV.Get", kvCalls.get, logger),
    delete: unary("KV.Delete", kvCalls.delete, logger),
    compareAndSwap: unary("KV.CompareAndSwap", kvCalls.compareAndSwap, logger),
    openSession: unary("KV.OpenSession", kvCalls.openSession, logger),
    closeSession: unary("KV.CloseSession", kvCalls.closeSession, logger),
    batch: batches.handle,
  };
  return { server: kvServer, batches };
}
