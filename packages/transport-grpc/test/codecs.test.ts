import { describe, expect, test } from "vitest";
import { sharedWriterSerializer } from "../src/codecs.js";
import { BatchResponse } from "../src/gen/rockraft/v1/kv.js";
import { SendRequest } from "../src/gen/rockraft/v1/raft.js";

const request = (data: Uint8Array): SendRequest =>
  SendRequest.fromPartial({
    clusterId: "c",
    from: 1n,
    to: 2n,
    fromAddr: "127.0.0.1:1",
    messages: [
      {
        type: 3,
        from: 1n,
        to: 2n,
        term: 4n,
        logTerm: 4n,
        index: 10n,
        commit: 9n,
        entries: [{ term: 4n, index: 11n, type: 0, data: Buffer.from(data) }],
      },
    ],
  });

describe("serializers on the shared writer", () => {
  const serialize = sharedWriterSerializer(SendRequest);

  test("write the bytes ts-proto's own encoder writes, message after message", () => {
    for (const size of [0, 10, 300, 5_000, 300]) {
      const value = request(new Uint8Array(size).fill(size % 251));
      const bytes = serialize(value);
      expect(Buffer.compare(bytes, Buffer.from(SendRequest.encode(value).finish()))).toBe(0);
      expect(SendRequest.decode(bytes)).toEqual(
        SendRequest.decode(SendRequest.encode(value).finish()),
      );
    }
  });

  test("hand out buffers that later calls do not overwrite", () => {
    const first = serialize(request(new Uint8Array(300).fill(1)));
    const copy = Buffer.from(first);
    serialize(request(new Uint8Array(300).fill(2)));
    expect(Buffer.compare(first, copy)).toBe(0);
  });

  test("start afresh after an encode that throws", () => {
    const broken = { ...request(new Uint8Array(8)), from: -1n }; // not a uint64
    expect(() => serialize(broken)).toThrow();
    const value = request(new Uint8Array(40).fill(7));
    expect(Buffer.compare(serialize(value), Buffer.from(SendRequest.encode(value).finish()))).toBe(
      0,
    );
  });

  test("are shared across message types", () => {
    const answer = sharedWriterSerializer(BatchResponse);
    const value: BatchResponse = { results: [], draining: true };
    expect(answer(value).byteLength).toBe(BatchResponse.encode(value).finish().byteLength);
    expect(serialize(request(new Uint8Array(3))).byteLength).toBeGreaterThan(0);
  });
});
