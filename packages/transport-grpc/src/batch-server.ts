// The server side of KV.Batch: many client calls multiplexed over one bidirectional stream.
// Each call is served by the same KvHandler as the unary methods; answers are gathered for
// the rest of the event-loop turn and written as one message, so that a busy stream costs a
// few HTTP/2 frames per turn instead of a stream (headers, data, trailers) per call.
import { Metadata, type ServerDuplexStream } from "@grpc/grpc-js";
import type {
  BatchCall,
  BatchRequest,
  BatchResponse,
  BatchResult,
  CallError,
} from "./gen/rockraft/v1/kv.js";
import { CALL_CANCELLED, LazyCallContext, bearerToken } from "./context.js";
import type { CallContext } from "./handlers.js";

/** Serves one call of a batch: the wire response, or throws as a unary handler would. */
export type BatchCallServer = (
  call: BatchCall,
  context: CallContext,
) => Promise<NonNullable<BatchResult["response"]>>;

/** Rough wire size of an answer, to keep each response message under the size limit. */
function sizeOf(result: BatchResult): number {
  const response = result.response;
  if (response?.$case === "get") return 32 + response.value.value.byteLength;
  if (response?.$case === "compareAndSwap") return 48 + response.value.current.byteLength;
  if (response?.$case === "error") return 64 + response.value.message.length * 3;
  return 48;
}

/** How long a draining stream waits for its client to close its side before ending it. */
const DRAIN_LINGER_MS = 250;

const SHUTTING_DOWN: CallError = {
  status: 14, // UNAVAILABLE: the client tries another node
  message: "the node is shutting down",
  code: "",
  leaderId: 0n,
  leaderAddr: "",
  outcomeUnknown: false,
};

/** One client's Batch stream. */
class BatchStream {
  private pending = 0;
  private out: BatchResult[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private clientDone = false;
  private draining = false;
  private lingered = false;
  private ended = false;
  private readonly cancel = new AbortController();
  /** The token the stream was opened with: every call on it is made with it. */
  private readonly token: string | undefined;

  constructor(
    private readonly call: ServerDuplexStream<BatchRequest, BatchResponse>,
    private readonly serve: BatchCallServer,
    private readonly toCallError: (error: unknown, call: BatchCall) => CallError,
    private readonly maxMessageBytes: number,
    private readonly owner: BatchStreams,
  ) {
    // Headers at once: the client learns that the stream reached this node, and so whether
    // the calls it wrote may have been received when the stream breaks.
    call.sendMetadata(new Metadata());
    this.token = bearerToken(call.metadata);
    call.on("data", (request: BatchRequest) => {
      for (const batchCall of request.calls) this.start(batchCall);
    });
    call.on("end", () => {
      this.clientDone = true;
      this.endIfIdle();
    });
    const gone = () => {
      this.ended = true;
      this.owner.forget(this);
      this.cancel.abort(CALL_CANCELLED);
    };
    call.on("cancelled", gone);
    call.on("error", gone);
  }

  /**
   * The node is shutting down: tells the client (`draining`), which closes its side once it
   * has seen it; later calls are answered UNAVAILABLE. The stream ends when the client has
   * closed its side and every call is answered, or, for a client that does not, once it has
   * been idle for 250 ms.
   */
  drain(): void {
    if (this.ended || this.draining) return;
    this.draining = true;
    this.call.write({ results: this.out, draining: true });
    this.out = [];
    this.outBytes = 0;
    setTimeout(() => {
      this.lingered = true;
      this.endIfIdle();
    }, DRAIN_LINGER_MS).unref();
    this.endIfIdle();
  }

  private start(batchCall: BatchCall): void {
    if (this.ended) return;
    if (this.draining) {
      this.answer({ id: batchCall.id, response: { $case: "error", value: SHUTTING_DOWN } });
      return;
    }
    const deadline = batchCall.timeoutMs > 0 ? Date.now() + batchCall.timeoutMs : Infinity;
    const context = new LazyCallContext(deadline, this.cancel.signal, this.token, this.call);
    this.pending++;
    this.serve(batchCall, context).then(
      (response) => this.settle(context, { id: batchCall.id, response }),
      (error: unknown) =>
        this.settle(context, {
          id: batchCall.id,
          response: { $case: "error", value: this.toCallError(error, batchCall) },
        }),
    );
  }

  private settle(context: LazyCallContext, result: BatchResult): void {
    context.done();
    this.pending--;
    this.answer(result);
  }

  private answer(result: BatchResult): void {
    if (this.ended) return;
    const size = sizeOf(result);
    if (this.out.length > 0 && this.outBytes + size > this.maxMessageBytes / 2) this.flush();
    this.out.push(result);
    this.outBytes += size;
    // Nothing else in flight on this stream: no answer to wait for, send it now.
    if (this.pending === 0) {
      this.flush();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    if (this.out.length > 0 && !this.ended) {
      this.call.write({ results: this.out, draining: this.draining });
      this.out = [];
      this.outBytes = 0;
    }
    this.endIfIdle();
  }

  private endIfIdle(): void {
    if (this.ended || this.pending > 0 || this.out.length > 0) return;
    if (!this.clientDone && !this.lingered) return;
    this.ended = true;
    this.owner.forget(this);
    this.call.end();
  }
}

/** Every open Batch stream of a server, so that shutdown can end them. */
export class BatchStreams {
  private readonly open = new Set<BatchStream>();
  /** Set by {@link drain}: new calls are refused with UNAVAILABLE. */
  draining = false;

  constructor(
    private readonly serve: BatchCallServer,
    private readonly toCallError: (error: unknown, call: BatchCall) => CallError,
    private readonly maxMessageBytes: number,
  ) {}

  /** The gRPC handler of KV.Batch. */
  readonly handle = (call: ServerDuplexStream<BatchRequest, BatchResponse>): void => {
    const stream = new BatchStream(call, this.serve, this.toCallError, this.maxMessageBytes, this);
    this.open.add(stream);
    if (this.draining) stream.drain();
  };

  /** Refuses new calls and ends every stream once the calls it carries are answered. */
  drain(): void {
    this.draining = true;
    for (const stream of [...this.open]) stream.drain();
  }

  /** @internal */
  forget(stream: BatchStream): void {
    this.open.delete(stream);
  }
}
