// The client side of KV.Batch: the calls a RockraftClient makes to one node share one
// bidirectional stream. Calls made during an event-loop turn leave together as one message;
// answers come back in batches, matched by id.
import type { ClientDuplexStream, ServiceError } from "@grpc/grpc-js";
import type {
  BatchCall,
  BatchRequest,
  BatchResponse,
  BatchResult,
  KVClient,
} from "./gen/rockraft/v1/kv.js";

/** An answered call: its response, or the error the server answered with. */
export type BatchAnswer = NonNullable<BatchResult["response"]>;

/** Why a call has no answer from its node. */
export class BatchFailure extends Error {
  override readonly name = "BatchFailure";

  constructor(
    /** gRPC status name: UNAVAILABLE, DEADLINE_EXCEEDED or CANCELLED. */
    readonly code: "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "CANCELLED",
    message: string,
    /**
     * Whether the node may have received the call: a write may then have been applied, and
     * must not be retried blindly.
     */
    readonly mayHaveReached: boolean,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

interface Pending {
  readonly resolve: (answer: BatchAnswer) => void;
  readonly reject: (failure: BatchFailure) => void;
  readonly timer: NodeJS.Timeout;
  /** The stream it was handed to (it may or may not have reached the node); none yet. */
  stream: ClientDuplexStream<BatchRequest, BatchResponse> | undefined;
}

function sizeOf(request: NonNullable<BatchCall["request"]>): number {
  switch (request.$case) {
    case "put":
      return 32 + request.value.key.byteLength + request.value.value.byteLength;
    case "compareAndSwap":
      return (
        40 +
        request.value.key.byteLength +
        request.value.expected.byteLength +
        request.value.value.byteLength
      );
    case "get":
    case "delete":
      return 24 + request.value.key.byteLength;
    default:
      return 24;
  }
}

/** The Batch stream to one node; opened on the first call, again after it breaks. */
export class BatchSession {
  private stream: ClientDuplexStream<BatchRequest, BatchResponse> | undefined;
  private readonly pending = new Map<number, Pending>();
  private queue: BatchCall[] = [];
  private queueBytes = 0;
  private flushScheduled = false;
  private nextId = 0;
  private closed = false;

  constructor(
    private readonly client: KVClient,
    private readonly maxMessageBytes: number,
  ) {}

  /** Sends one call; resolves with its answer or rejects with a {@link BatchFailure}. */
  call(request: NonNullable<BatchCall["request"]>, deadline: number): Promise<BatchAnswer> {
    return new Promise<BatchAnswer>((resolve, reject) => {
      const remaining = deadline - Date.now();
      if (this.closed) {
        reject(new BatchFailure("CANCELLED", "the client is closed", false));
        return;
      }
      if (remaining <= 0) {
        reject(new BatchFailure("DEADLINE_EXCEEDED", "the call's deadline passed", false));
        return;
      }
      // Ids only need to be unique among the calls in flight; they wrap at 2^32.
      do this.nextId = (this.nextId + 1) >>> 0;
      while (this.nextId === 0 || this.pending.has(this.nextId));
      const id = this.nextId;
      const timer = setTimeout(() => {
        const entry = this.pending.get(id);
        if (entry === undefined) return;
        this.pending.delete(id);
        entry.reject(
          new BatchFailure(
            "DEADLINE_EXCEEDED",
            "the call's deadline passed without an answer",
            entry.stream !== undefined,
          ),
        );
      }, remaining);
      this.pending.set(id, { resolve, reject, timer, stream: undefined });
      const size = sizeOf(request);
      if (this.queue.length > 0 && this.queueBytes + size > this.maxMessageBytes / 2) this.flush();
      // The node is told a little less time than the call has, so that its own answer
      // (say, UNAVAILABLE: no leader) arrives before the call gives up waiting for one.
      const timeoutMs = Math.max(1, Math.floor(remaining - Math.min(100, remaining / 10)));
      this.queue.push({ id, timeoutMs, request });
      this.queueBytes += size;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  /**
   * Later calls go on a new stream (one opened with the client's new token); the calls in
   * flight on this one are still answered on it.
   */
  rotate(): void {
    const stream = this.stream;
    if (stream === undefined) return;
    this.stream = undefined;
    stream.end();
  }

  /** Fails every call in flight and closes the stream; later calls fail at once. */
  close(): void {
    this.closed = true;
    this.stream?.cancel();
    this.queue = [];
    this.queueBytes = 0;
    this.fail(undefined, "CANCELLED", "the client was closed", true);
  }

  private flush(): void {
    if (this.queue.length === 0 || this.closed) return;
    const calls = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    const stream = this.open();
    for (const call of calls) {
      const entry = this.pending.get(call.id);
      if (entry !== undefined) entry.stream = stream;
    }
    stream.write({ calls });
  }

  private open(): ClientDuplexStream<BatchRequest, BatchResponse> {
    if (this.stream !== undefined) return this.stream;
    const stream = this.client.batch();
    this.stream = stream;
    // The node sends its headers as soon as it has the stream. Until then nothing written
    // can have reached it: grpc-js reports a write done once it is buffered, not sent.
    let reachedNode = false;
    stream.on("metadata", () => {
      reachedNode = true;
    });
    stream.on("data", (response: BatchResponse) => {
      for (const result of response.results) {
        const entry = this.pending.get(result.id);
        if (entry === undefined || result.response === undefined) continue;
        this.pending.delete(result.id);
        clearTimeout(entry.timer);
        entry.resolve(result.response);
      }
      if (response.draining && this.stream === stream) {
        // The node is shutting down: no new calls here (the next ones open a new stream,
        // which a closing node refuses, so they move on); its answers still come.
        this.stream = undefined;
        stream.end();
      }
    });
    let done = false;
    const ended = (error: ServiceError | undefined) => {
      if (done) return;
      done = true;
      if (this.stream === stream) this.stream = undefined;
      this.fail(
        stream,
        "UNAVAILABLE",
        error === undefined
          ? "the node ended the call stream"
          : `the call stream broke: ${error.details || error.message}`,
        reachedNode,
        error,
      );
    };
    stream.on("error", (error: ServiceError) => ended(error));
    stream.on("end", () => ended(undefined));
    return stream;
  }

  /**
   * Fails the calls in flight on `stream` (all calls when undefined); a call counts as
   * having maybe reached the node only if it was handed to a stream that reached it.
   */
  private fail(
    stream: ClientDuplexStream<BatchRequest, BatchResponse> | undefined,
    code: BatchFailure["code"],
    message: string,
    reachedNode: boolean,
    cause?: unknown,
  ): void {
    for (const [id, entry] of this.pending) {
      if (stream !== undefined && entry.stream !== stream) continue;
      this.pending.delete(id);
      clearTimeout(entry.timer);
      const mayHaveReached = reachedNode && entry.stream !== undefined;
      entry.reject(new BatchFailure(code, message, mayHaveReached, cause));
    }
  }
}
