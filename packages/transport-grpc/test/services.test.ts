import {
  ChannelCredentials,
  credentials,
  loadPackageDefinition,
  type Client,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { afterEach, describe, expect, test } from "vitest";
import {
  RockraftClient,
  RockraftClientError,
  RpcError,
  TransportError,
  type KvHandler,
  type LogId,
} from "../src/index.js";
import { KVClient } from "../src/gen/rockraft/v1/kv.js";
import { startServer, stubKv, waitFor } from "./helpers/servers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(overrides: Parameters<typeof startServer>[0] = {}) {
  const started = await startServer(overrides);
  cleanups.push(() => started.server.shutdown(100));
  return started;
}

/** A client; these tests are of writes without a session (client-sessions.test.ts has theirs). */
function client(endpoints: string[], timeoutMs = 2_000, unaryCalls = false) {
  const result = new RockraftClient({ endpoints, timeoutMs, unaryCalls, sessions: false });
  cleanups.push(() => result.close());
  return result;
}

/** A KV store in memory that is "leader" while `leading()` and otherwise names `leader`. */
function kvNode(
  nodeId: number,
  leading: () => boolean,
  leader: () => { id: number; addr: string },
): KvHandler & { data: Map<string, Uint8Array> } {
  const data = new Map<string, Uint8Array>();
  let index = 0;
  const check = () => {
    if (!leading())
      throw new RpcError("UNAVAILABLE", `node ${nodeId} is not the leader`, {
        leader: leader(),
        code: "RAFT_NOT_LEADER",
      });
  };
  const logId = (): LogId => ({ term: 1, nodeId, index: ++index });
  const key = (k: Uint8Array) => Buffer.from(k).toString("hex");
  return {
    data,
    ...stubKv,
    put: (k, v) => {
      check();
      data.set(key(k), v);
      return Promise.resolve({ logId: logId() });
    },
    get: (k) => {
      check();
      const value = data.get(key(k));
      return Promise.resolve({ found: value !== undefined, value: value ?? new Uint8Array() });
    },
    delete: (k) => {
      check();
      return Promise.resolve({ logId: logId(), found: data.delete(key(k)) });
    },
    compareAndSwap: (request) => {
      check();
      const current = data.get(key(request.key));
      const found = current !== undefined;
      const succeeded =
        found === request.expectFound &&
        (!found || Buffer.compare(current, request.expected) === 0);
      if (succeeded) data.set(key(request.key), request.value);
      return Promise.resolve({
        succeeded,
        found,
        current: current ?? new Uint8Array(),
        logId: logId(),
      });
    },
  };
}

/** A KV handler over a Map, answering after `delayMs`. */
const memoryKv = (delayMs = 0): KvHandler => {
  const data = new Map<string, Uint8Array>();
  let index = 0;
  const later = <T>(value: T) =>
    new Promise<T>((resolve) => setTimeout(() => resolve(value), delayMs));
  return {
    ...stubKv,
    put: (k, v) => {
      data.set(Buffer.from(k).toString(), v);
      return later({ logId: { term: 1, nodeId: 2, index: ++index } });
    },
    get: (k) => {
      const value = data.get(Buffer.from(k).toString());
      return later({ found: value !== undefined, value: value ?? new Uint8Array() });
    },
  };
};

describe.each([
  ["over the Batch stream", false],
  ["as unary calls", true],
])("the KV service and the client, %s", (_mode, unaryCalls) => {
  const kvClient = (endpoints: string[], timeoutMs?: number) =>
    client(endpoints, timeoutMs, unaryCalls);

  test("put, get, delete and compare-and-swap, with string or byte keys", async () => {
    const { address } = await server({
      kv: kvNode(
        2,
        () => true,
        () => ({ id: 2, addr: "" }),
      ),
    });
    const kv = kvClient([address]);
    expect(await kv.put("my_key", "my_value")).toEqual({ logId: { term: 1, nodeId: 2, index: 1 } });
    expect(await kv.get(new TextEncoder().encode("my_key"))).toEqual({
      found: true,
      value: new TextEncoder().encode("my_value"),
    });
    expect(await kv.get("missing")).toEqual({ found: false, value: undefined });
    const swapped = await kv.compareAndSwap({
      key: "my_key",
      expectFound: true,
      expected: "my_value",
      value: "v2",
    });
    expect([swapped.succeeded, swapped.found, new TextDecoder().decode(swapped.current)]).toEqual([
      true,
      true,
      "my_value",
    ]);
    const refused = await kv.compareAndSwap({ key: "my_key", expectFound: false, value: "v3" });
    expect([refused.succeeded, refused.found]).toEqual([false, true]);
    expect((await kv.delete("my_key")).found).toBe(true);
    expect((await kv.delete("my_key")).found).toBe(false);
  });

  test("the client follows the leader named in trailing metadata, and follows a leader change", async () => {
    let leaderId = 2;
    const addresses: Record<number, string> = {};
    const nodeA = kvNode(
      1,
      () => leaderId === 1,
      () => ({ id: leaderId, addr: addresses[leaderId]! }),
    );
    const nodeB = kvNode(
      2,
      () => leaderId === 2,
      () => ({ id: leaderId, addr: addresses[leaderId]! }),
    );
    const a = await server({ nodeId: 1, kv: nodeA });
    const b = await server({ nodeId: 2, kv: nodeB });
    addresses[1] = a.address;
    addresses[2] = b.address;
    const kv = kvClient([a.address]);
    expect((await kv.put("k", "1")).logId.nodeId).toBe(2);
    expect(kv.currentEndpoint()).toBe(b.address);
    leaderId = 1; // leadership moves: node 2 now names node 1
    expect((await kv.put("k", "2")).logId.nodeId).toBe(1);
    expect(kv.currentEndpoint()).toBe(a.address);
  });

  // A read, whose last attempt may run out of time with nothing lost: a write's last
  // attempt that is not answered in time may have applied, and is reported so (below).
  test("without any leader, a read fails UNAVAILABLE at its deadline, with what the server said", async () => {
    const { address } = await server();
    const kv = kvClient([address], 1_000);
    const error = await kv.get("k").catch((e: unknown) => e as RockraftClientError);
    expect(error).toBeInstanceOf(RockraftClientError);
    expect(error).toMatchObject({ code: "UNAVAILABLE", endpoint: address });
    expect((error as Error).message).toBe(
      `no node could serve the call within its deadline: ${address}: not serving`,
    );
  });

  test("a write without a session is not tried again without time for its answer: refused, its outcome known", async () => {
    let calls = 0;
    // Each refusal takes 300 ms (the server's latency, not a wait of the test), so after the
    // first only about 475 ms are left, less than twice that: a second attempt could be cut
    // short by the deadline, which would leave the write's outcome unknown.
    const put: KvHandler["put"] = async () => {
      calls += 1;
      await new Promise((resolve) => setTimeout(resolve, 300));
      throw new RpcError("UNAVAILABLE", "election in progress");
    };
    const { address } = await server({ kv: { ...stubKv, put } });
    const error = await kvClient([address], 800)
      .put("k", "v")
      .catch((e: unknown) => e as RockraftClientError);
    expect(error).toMatchObject({ code: "UNAVAILABLE", endpoint: address, outcomeUnknown: false });
    expect((error as Error).message).toBe(
      `no node could serve the call within its deadline: ${address}: election in progress`,
    );
    expect(calls).toBe(1);
  });

  test("the wait for the client's token does not count as a refusal's time: the write is tried again", async () => {
    let calls = 0;
    const put: KvHandler["put"] = () => {
      calls += 1;
      return Promise.reject(new RpcError("UNAVAILABLE", "election in progress"));
    };
    const { address } = await server({ kv: { ...stubKv, put } });
    // The token takes 800 ms to come (the server's latency, not a wait of the test), the
    // refusal a few: counted with the token's wait, the refusal would leave less than twice
    // its time before the 2 s deadline, and the write would not be tried again.
    const token = async () => {
      await new Promise((resolve) => setTimeout(resolve, 800));
      return { token: "t", expiresAtMs: Date.now() + 60_000, ttlMs: 60_000 };
    };
    const tokenClient = new RockraftClient({
      endpoints: [address],
      timeoutMs: 2_000,
      unaryCalls,
      sessions: false,
      auth: { token },
    });
    cleanups.push(() => tokenClient.close());
    await tokenClient.put("k", "v").catch(() => undefined);
    expect(calls).toBeGreaterThan(1);
  });

  test("a deadline that passes during a retry reports the earlier UNAVAILABLE answer", async () => {
    let calls = 0;
    const get: KvHandler["get"] = () => {
      calls += 1;
      if (calls === 1) return Promise.reject(new RpcError("UNAVAILABLE", "election in progress"));
      return new Promise(() => {}); // the retry never answers
    };
    const { address } = await server({ kv: { ...stubKv, get } });
    // A deadline wide enough for the retry on a loaded machine (the retry never answers).
    const error = await kvClient([address], 2_000)
      .get("k")
      .catch((e: unknown) => e as RockraftClientError);
    expect(calls).toBe(2);
    expect(error).toMatchObject({ code: "UNAVAILABLE", endpoint: address });
    expect((error as Error).message).toBe(
      `no node could serve the call within its deadline: ${address}: election in progress`,
    );
  });

  test("a write that reached a node and got no answer fails with its outcome unknown, not retried", async () => {
    let calls = 0;
    const put: KvHandler["put"] = () => {
      calls += 1;
      if (calls === 1) return Promise.reject(new RpcError("UNAVAILABLE", "election in progress"));
      return new Promise(() => {}); // the retry reaches the node and never answers
    };
    const { address } = await server({ kv: { ...stubKv, put } });
    // Wide enough that the refusal, however slow the first call's connection is, leaves
    // time for the retry (a plain write is retried only with twice its refusal's time left).
    const error = await kvClient([address], 2_000)
      .put("k", "v")
      .catch((e: unknown) => e as RockraftClientError);
    expect(calls).toBe(2);
    expect(error).toMatchObject({
      code: "DEADLINE_EXCEEDED",
      endpoint: address,
      outcomeUnknown: true,
    });
  });

  test("a node that dies: a write in flight fails with its outcome unknown, a read moves on", async () => {
    let arrived = 0;
    const hanging: KvHandler = {
      ...stubKv,
      put: () => (arrived++, new Promise(() => {})),
      get: () => (arrived++, new Promise(() => {})),
    };
    const dying = await startServer({ kv: hanging });
    const healthy = await server({ kv: memoryKv() });
    const kv = kvClient([dying.address, healthy.address], 5_000);
    const write = kv.put("k", "v").catch((e: unknown) => e as RockraftClientError);
    const read = kv.get("k");
    await waitFor(() => arrived === 2, "both calls to reach the dying node");
    await dying.server.shutdown(0); // cuts the stream with the calls in it
    expect(await write).toMatchObject({ code: "UNAVAILABLE", outcomeUnknown: true });
    expect(((await write) as RockraftClientError).message).toContain(
      unaryCalls ? "the call broke" : "the call stream broke",
    );
    expect(await read).toEqual({ found: false, value: undefined });
    expect(kv.currentEndpoint()).toBe(healthy.address);
  });

  test("a write to a node that is down never reached it, so it is retried on the next node", async () => {
    const gone = await startServer();
    await gone.server.shutdown(0);
    const healthy = await server({ kv: memoryKv() });
    const kv = kvClient([gone.address, healthy.address]);
    expect((await kv.put("k", "v")).logId.index).toBe(1);
    expect(kv.currentEndpoint()).toBe(healthy.address);
  });

  test("a call that never gets an answer fails DEADLINE_EXCEEDED", async () => {
    const { address } = await server({ kv: { ...stubKv, put: () => new Promise(() => {}) } });
    const error = await kvClient([address], 300)
      .put("k", "v")
      .catch((e: unknown) => e as RockraftClientError);
    expect(error).toMatchObject({ code: "DEADLINE_EXCEEDED", endpoint: address });
  });

  test.each([
    ["DEADLINE_EXCEEDED", "RAFT_TIMEOUT", "the write was not applied within the deadline"],
    ["UNAVAILABLE", "RAFT_NODE_STOPPED", "node 1 stopped after a failure"],
  ] as const)(
    "a node that answers %s with the outcome unknown: the flag reaches the caller and the write is not retried",
    async (status, code, message) => {
      let calls = 0;
      const put: KvHandler["put"] = () => {
        calls += 1;
        return Promise.reject(new RpcError(status, message, { code, outcomeUnknown: true }));
      };
      const first = await server({ kv: { ...stubKv, put } });
      const healthy = memoryKv();
      const second = await server({ kv: healthy });
      const error = await kvClient([first.address, second.address])
        .put("k", "v")
        .catch((e: unknown) => e as RockraftClientError);
      expect(error).toBeInstanceOf(RockraftClientError);
      expect(error).toMatchObject({ code: status, serverCode: code, outcomeUnknown: true });
      expect((error as Error).message).toBe(`${first.address}: ${message}`);
      expect(calls).toBe(1);
      expect(await kvClient([second.address]).get("k")).toEqual({ found: false, value: undefined });
    },
  );

  test("a node's answer without the flag means the write was not applied", async () => {
    const put: KvHandler["put"] = () =>
      Promise.reject(
        new RpcError("DEADLINE_EXCEEDED", "the write's deadline passed before it was proposed", {
          code: "RAFT_TIMEOUT",
        }),
      );
    const { address } = await server({ kv: { ...stubKv, put } });
    const error = await kvClient([address])
      .put("k", "v")
      .catch((e: unknown) => e as RockraftClientError);
    expect(error).toMatchObject({
      code: "DEADLINE_EXCEEDED",
      serverCode: "RAFT_TIMEOUT",
      outcomeUnknown: false,
    });
  });

  test.each([
    [
      "INVALID_ARGUMENT",
      new RpcError("INVALID_ARGUMENT", "key: expected 1 to 4096 bytes, got 0", {
        code: "KV_INVALID_KEY",
      }),
    ],
    ["FAILED_PRECONDITION", new RpcError("FAILED_PRECONDITION", "the cluster is not initialized")],
    ["INTERNAL", new Error("boom")],
  ])("a handler's error becomes status %s", async (status, thrown) => {
    const { address } = await server({ kv: { ...stubKv, put: () => Promise.reject(thrown) } });
    const error = await kvClient([address])
      .put("k", "v")
      .catch((e: unknown) => e as RockraftClientError);
    expect(error).toBeInstanceOf(RockraftClientError);
    expect((error as RockraftClientError).code).toBe(status);
    if (thrown instanceof RpcError) {
      expect((error as Error).message).toBe(`${address}: ${thrown.message}`);
      expect((error as RockraftClientError).serverCode).toBe(thrown.code);
    } else {
      expect((error as Error).message).toBe(`${address}: internal error in KV.Put: boom`);
    }
  });

  test("a handler sees the call's deadline and an abort signal when it passes", async () => {
    let sawDeadline = 0;
    const { address } = await server({
      kv: {
        ...stubKv,
        get: (_key, context) => {
          sawDeadline = context.deadline;
          return new Promise((_resolve, reject) =>
            context.signal.addEventListener("abort", () => reject(context.signal.reason as Error)),
          );
        },
      },
    });
    const began = Date.now();
    const error = await kvClient([address], 1_000)
      .get("k")
      .catch((e: unknown) => e as RockraftClientError);
    expect((error as RockraftClientError).code).toBe("DEADLINE_EXCEEDED");
    expect(sawDeadline).toBeGreaterThanOrEqual(began + 800);
  });
});

test("a client that cancels a unary call aborts the handler's signal; an answered call is never aborted", async () => {
  const reasons: string[] = [];
  let started = false;
  let answered: AbortSignal | undefined;
  const { address } = await server({
    kv: {
      ...stubKv,
      get: (_key, context) =>
        new Promise((_resolve, reject) => {
          started = true;
          context.signal.addEventListener("abort", () => {
            reasons.push((context.signal.reason as Error).message);
            reject(context.signal.reason as Error);
          });
        }),
      put: (_key, _value, context) => {
        answered = context.signal;
        return Promise.resolve({ logId: { term: 1, nodeId: 1, index: 1 } });
      },
    },
  });
  const stub = new KVClient(address, credentials.createInsecure());
  cleanups.push(() => stub.close());
  await new Promise<void>((resolve, reject) =>
    stub.put({ key: Buffer.from("k"), value: Buffer.from("v") }, (error) =>
      error ? reject(error) : resolve(),
    ),
  );
  const call = stub.get({ key: Buffer.from("k") }, () => {});
  await waitFor(() => started || undefined, "the handler to be called");
  call.cancel();
  await waitFor(() => reasons.length > 0 || undefined, "the handler's signal to abort");
  expect(reasons).toEqual(["the call was cancelled"]);
  expect(answered?.aborted).toBe(false);
});

describe("the Batch stream", () => {
  test("hundreds of concurrent calls on one stream each get their own answer", async () => {
    const { address } = await server({ kv: memoryKv(1) });
    const kv = client([address]);
    const puts = await Promise.all(
      Array.from({ length: 400 }, (_, i) => kv.put(`key-${i}`, `value-${i}`)),
    );
    expect(new Set(puts.map((p) => p.logId.index)).size).toBe(400);
    const reads = await Promise.all(Array.from({ length: 400 }, (_, i) => kv.get(`key-${i}`)));
    reads.forEach((read, i) => {
      expect(new TextDecoder().decode(read.value)).toBe(`value-${i}`);
    });
  });

  test("calls of one turn larger than the message limit are split over several messages", async () => {
    const { address } = await server({ kv: memoryKv() });
    const kv = new RockraftClient({
      endpoints: [address],
      maxMessageBytes: 64 * 1024,
      sessions: false,
    });
    cleanups.push(() => kv.close());
    const value = new Uint8Array(10 * 1024).fill(7);
    const puts = await Promise.all(Array.from({ length: 30 }, (_, i) => kv.put(`big-${i}`, value)));
    expect(puts).toHaveLength(30);
    expect((await kv.get("big-29")).value).toEqual(value);
  });

  test("shutdown answers the calls in flight, ends the stream and does not wait out its grace", async () => {
    const slow = memoryKv(200);
    let arrived = 0;
    const counting: KvHandler = { ...slow, put: (k, v, c) => (arrived++, slow.put(k, v, c)) };
    const { address, server: node } = await startServer({ kv: counting });
    const kv = client([address]);
    await kv.put("warm", "up"); // the stream is open
    const inFlight = kv.put("k", "v");
    await waitFor(() => arrived === 2, "the second write to reach the server");
    const began = Date.now();
    await node.shutdown(10_000);
    expect(Date.now() - began).toBeLessThan(5_000);
    expect((await inFlight).logId.index).toBe(2);
  });

  test("a node shutting down under load: every write is answered or moves on, none is left unknown", async () => {
    const leaving = await startServer({ kv: memoryKv(2) });
    const staying = await server({ kv: memoryKv(2) });
    const kv = client([leaving.address, staying.address], 5_000);
    const failures: unknown[] = [];
    let writes = 0;
    let running = true;
    const writers = Array.from({ length: 32 }, async (_, w) => {
      for (let i = 0; running; i++) {
        await kv.put(`w${w}-${i}`, "v").then(
          () => writes++,
          (error: unknown) => failures.push(error),
        );
      }
    });
    await waitFor(() => writes > 200, "writes to the first node");
    await leaving.server.shutdown(5_000);
    const after = writes;
    await waitFor(() => writes > after + 200, "writes moving to the second node");
    running = false;
    await Promise.all(writers);
    expect(failures).toEqual([]);
    expect(kv.currentEndpoint()).toBe(staying.address);
  });

  test("a closed client fails its calls in flight and refuses new ones", async () => {
    let arrived = false;
    const { address } = await server({
      kv: { ...stubKv, put: () => ((arrived = true), new Promise(() => {})) },
    });
    const kv = new RockraftClient({ endpoints: [address], sessions: false });
    const pending = kv.put("k", "v").catch((e: unknown) => e as RockraftClientError);
    await waitFor(() => arrived, "the write to reach the server");
    kv.close();
    expect(await pending).toMatchObject({ code: "CANCELLED" });
    await expect(kv.put("k", "v")).rejects.toMatchObject({ code: "TRANSPORT_CLOSED" });
  });
});

describe("the server", () => {
  test("health reports NOT_SERVING until the node can serve, then SERVING", async () => {
    const { server: started, address } = await server();
    const definition = loadSync(healthProtoPath, { enums: String });
    const Health = (
      loadPackageDefinition(definition) as unknown as {
        grpc: {
          health: {
            v1: {
              Health: new (
                address: string,
                creds: ChannelCredentials,
              ) => Client & Record<string, unknown>;
            };
          };
        };
      }
    ).grpc.health.v1.Health;
    const health = new Health(address, credentials.createInsecure());
    cleanups.push(() => health.close());
    const check = (service: string) =>
      new Promise<string>((resolve, reject) =>
        (
          health.check as (
            r: object,
            cb: (e: ServiceError | null, r: { status: string }) => void,
          ) => void
        ).call(health, { service }, (error, response) =>
          error ? reject(error) : resolve(response.status),
        ),
      );
    expect(await check("")).toBe("NOT_SERVING");
    expect(await check("rockraft.v1.Cluster")).toBe("SERVING");
    started.setServing(true);
    expect(await check("")).toBe("SERVING");
    expect(await check("rockraft.v1.KV")).toBe("SERVING");
    started.setServing(false);
    expect(await check("rockraft.v1.KV")).toBe("NOT_SERVING");
  });

  test("reflection lists the services", async () => {
    const { address } = await server();
    const definition = loadSync("grpc/reflection/v1alpha/reflection.proto", {
      includeDirs: [
        new URL("../node_modules/@grpc/reflection/build/proto", import.meta.url).pathname,
      ],
    });
    const Reflection = (
      loadPackageDefinition(definition) as unknown as {
        grpc: {
          reflection: {
            v1alpha: {
              ServerReflection: new (
                a: string,
                c: ChannelCredentials,
              ) => Client & Record<string, unknown>;
            };
          };
        };
      }
    ).grpc.reflection.v1alpha.ServerReflection;
    const reflection = new Reflection(address, credentials.createInsecure());
    cleanups.push(() => reflection.close());
    const names = await new Promise<string[]>((resolve, reject) => {
      const call = (
        reflection.serverReflectionInfo as () => NodeJS.ReadWriteStream & { end(): void }
      ).call(reflection);
      call.on("data", (response: { listServicesResponse?: { service: { name: string }[] } }) => {
        resolve((response.listServicesResponse?.service ?? []).map((s) => s.name).sort());
        call.end();
      });
      call.on("error", reject);
      call.write({ listServices: "" } as never);
    });
    expect(names).toEqual(
      expect.arrayContaining([
        "grpc.health.v1.Health",
        "rockraft.v1.Cluster",
        "rockraft.v1.KV",
        "rockraft.v1.RaftService",
      ]),
    );

    // The files as proto/ has them: their own names, snake_case fields, comments.
    const file = await new Promise<Buffer[]>((resolve, reject) => {
      const call = (
        reflection.serverReflectionInfo as () => NodeJS.ReadWriteStream & { end(): void }
      ).call(reflection);
      call.on(
        "data",
        (response: {
          fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
          errorResponse?: { errorMessage: string };
        }) => {
          if (response.errorResponse !== undefined && response.errorResponse !== null)
            reject(new Error(response.errorResponse.errorMessage));
          else resolve(response.fileDescriptorResponse?.fileDescriptorProto ?? []);
          call.end();
        },
      );
      call.on("error", reject);
      call.write({ fileByFilename: "rockraft/v1/kv.proto" } as never);
    });
    const kv = file.find((bytes) => bytes.toString("latin1").includes("rockraft/v1/kv.proto"))!;
    const text = kv.toString("latin1");
    expect(text.slice(2, 2 + kv[1]!)).toBe("rockraft/v1/kv.proto");
    expect(text).toContain("\n\x0cexpect_found"); // a field named expect_found, as in kv.proto
    expect(text).toContain(".rockraft.v1.PutRequest");
  });

  test("an address in use is refused with TRANSPORT_ADDRESS_IN_USE", async () => {
    const { server: first } = await server();
    const error = await startServer({ address: `127.0.0.1:${first.port}` }).catch(
      (e: unknown) => e as TransportError,
    );
    expect(error).toBeInstanceOf(TransportError);
    expect([(error as TransportError).code, (error as Error).message]).toEqual([
      "TRANSPORT_ADDRESS_IN_USE",
      `127.0.0.1:${first.port} is already in use by another process`,
    ]);
  });

  test("shutdown is idempotent", async () => {
    const { server: started } = await startServer();
    await Promise.all([started.shutdown(50), started.shutdown(50)]);
    await started.shutdown(50);
  });
});
