// Serializers for the streams every write crosses (Raft Send, KV Batch), and the service
// definitions and client constructors that use them. ts-proto's generated serializers encode
// into a new BinaryWriter each time, whose buffer grows by doubling (two or three allocations
// and copies for a 300-byte append) before `finish()` copies the result out and
// `Buffer.from` copies it again. Here one writer is kept across calls: its buffer has grown
// once, so a message costs the one copy `finish()` makes, and the Buffer is a view of it.
// The wire format is the generated code's: only where the bytes are built changes.
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { makeGenericClientConstructor } from "@grpc/grpc-js";
import { BatchRequest, BatchResponse, KVClient, KVService } from "./gen/rockraft/v1/kv.js";
import { RaftServiceClient, RaftServiceService, SendRequest } from "./gen/rockraft/v1/raft.js";

interface Encoder<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

/** Messages above this size are not worth keeping a buffer for: the writer starts afresh. */
const KEEP_BUFFER_BYTES = 1024 * 1024;

let shared = new BinaryWriter();

/**
 * A gRPC serializer for `type` that encodes into the writer shared by every such serializer
 * (encoding is synchronous, so no two encodes interleave). The returned Buffer is a view of
 * a fresh copy, owned by the caller.
 */
export function sharedWriterSerializer<T>(type: Encoder<T>): (value: T) => Buffer {
  return (value) => {
    let bytes: Uint8Array;
    try {
      bytes = type.encode(value, shared).finish();
    } catch (error) {
      shared = new BinaryWriter(); // a failed encode leaves the writer in mid-message
      throw error;
    }
    if (bytes.byteLength > KEEP_BUFFER_BYTES) shared = new BinaryWriter();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** RaftService with the shared writer for Send's requests (each peer batch). */
export const raftService = {
  ...RaftServiceService,
  send: { ...RaftServiceService.send, requestSerialize: sharedWriterSerializer(SendRequest) },
} as const satisfies typeof RaftServiceService;

/** KV with the shared writer for Batch's requests and answers. */
export const kvService = {
  ...KVService,
  batch: {
    ...KVService.batch,
    requestSerialize: sharedWriterSerializer(BatchRequest),
    responseSerialize: sharedWriterSerializer(BatchResponse),
  },
} as const satisfies typeof KVService;

/** The generated RaftServiceClient, built on {@link raftService}. */
export const PeerClient = makeGenericClientConstructor(
  raftService,
  "rockraft.v1.RaftService",
) as unknown as typeof RaftServiceClient;

/** The generated KVClient, built on {@link kvService}. */
export const KvClient = makeGenericClientConstructor(
  kvService,
  "rockraft.v1.KV",
) as unknown as typeof KVClient;
