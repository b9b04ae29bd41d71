import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { afterEach, describe, expect, test } from "vitest";
import {
  RockraftClient,
  RockraftClientError,
  RpcError,
  type KvHandler,
  type SessionTag,
} from "../src/index.js";
import { KVService, type PutRequest, type PutResponse } from "../src/gen/rockraft/v1/kv.js";
import { startServer, stubKv, waitFor } from "./helpers/servers.js";

// The client's side of sessions, against fake nodes that share one session table (as a
// cluster's replicated state would): the client numbers each write, sends a retry with the
// same tag, and the table answers it with the first application's response.
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(kv: KvHandler) {
  const started = await startServer({ kv });
  cleanups.push(() => started.server.shutdown(100));
  return started;
}

function client(endpoints: string[], options: { unaryCalls?: boolean; timeoutMs?: number } = {}) {
  const result = new RockraftClient({ endpoints, timeoutMs: 5_000, ...options });
  cleanups.push(() => result.close());
  return result;
}

/** A cluster's replicated state, shared by fake nodes: data, sessions, what arrived. */
class FakeState {
  readonly data = new Map<string, string>();
  /** Per session: each applied write's log index, by sequence number. */
  readonly sessions = new Map<number, Map<number, number>>();
  readonly arrived: (SessionTag | undefined)[] = [];
  readonly opened: number[] = [];
  readonly closed: number[] = [];
  applications = 0;
  private index = 0;

  /** A node over this state; `before` may answer a put itself (fail it, hang it). */
  node(before?: (tag: SessionTag | undefined) => Promise<never> | undefined): KvHandler {
    return {
      ...stubKv,
      openSession: () => {
        const id = ++this.index;
        this.sessions.set(id, new Map());
        this.opened.push(id);
        return Promise.resolve({ sessionId: id });
      },
      closeSession: (id) => {
        this.closed.push(id);
        return Promise.resolve({ found: this.sessions.delete(id) });
      },
      put: (key, value, _context, tag) => {
        this.arrived.push(tag);
        const answer = before?.(tag);
        if (answer !== undefined) return answer;
        return Promise.resolve({
          logId: { term: 1, nodeId: 1, index: this.apply(key, value, tag) },
        });
      },
    };
  }

  /** Applies a put once per session tag; its log index (the first application's). */
  apply(key: Uint8Array, value: Uint8Array, tag: SessionTag | undefined): number {
    const kept = tag === undefined ? undefined : this.sessions.get(tag.id)?.get(tag.seq);
    if (kept !== undefined) return kept;
    this.applications++;
    this.data.set(Buffer.from(key).toString(), Buffer.from(value).toString());
    const index = ++this.index;
    if (tag !== undefined) this.sessions.get(tag.id)?.set(tag.seq, index);
    return index;
  }
}

describe.each([
  ["over the Batch stream", false],
  ["as unary calls", true],
])("client sessions, %s", (_mode, unaryCalls) => {
  test("writes are numbered in one session, each acknowledging the ones answered", async () => {
    const state = new FakeState();
    const { address } = await server(state.node());
    const kv = client([address], { unaryCalls });
    await kv.put("a", "1");
    await kv.put("b", "2");
    await Promise.all([kv.put("c", "3"), kv.put("d", "4")]);
    expect(state.opened).toEqual([1]);
    expect(state.arrived.slice(0, 2)).toEqual([
      { id: 1, seq: 1, acknowledged: 1 },
      { id: 1, seq: 2, acknowledged: 2 },
    ]);
    // Two in flight at once: both acknowledge up to the first of them.
    expect(state.arrived.slice(2).map((tag) => tag?.acknowledged)).toEqual([3, 3]);
  });

  test("a write whose node died before answering is retried on the next node with the same tag, and applies once", async () => {
    const state = new FakeState();
    let dying: Awaited<ReturnType<typeof startServer>> | undefined = undefined;
    // The first node applies the write, then dies before it answers.
    const first = state.node((tag) => {
      state.apply(Buffer.from("k"), Buffer.from("v"), tag);
      setTimeout(() => void dying!.server.shutdown(0), 20);
      return new Promise<never>(() => {});
    });
    dying = await startServer({ kv: first });
    const second = await server(state.node());
    const kv = client([dying.address, second.address], { unaryCalls });
    const result = await kv.put("k", "v");
    expect(state.applications).toBe(1);
    // Arrived at the first node and applied there, then retried at the second.
    expect(state.arrived).toEqual([
      { id: 1, seq: 1, acknowledged: 1 },
      { id: 1, seq: 1, acknowledged: 1 },
    ]);
    expect(result.logId.index).toBe(2); // the first application's index (1 is the session)
  });

  test("a session that expired is replaced, and the write made in the new one", async () => {
    const state = new FakeState();
    const expire = (tag: SessionTag | undefined) =>
      tag?.id === 1
        ? Promise.reject(
            new RpcError("FAILED_PRECONDITION", "session 1 has expired", {
              code: "RAFT_SESSION_EXPIRED",
            }),
          )
        : undefined;
    const { address } = await server(state.node(expire));
    const kv = client([address], { unaryCalls });
    expect((await kv.put("k", "v")).logId.index).toBe(3);
    expect(state.opened).toEqual([1, 2]);
    expect(state.arrived).toEqual([
      { id: 1, seq: 1, acknowledged: 1 },
      { id: 2, seq: 1, acknowledged: 1 },
    ]);
  });

  test("an expired session after an attempt that may have applied: the outcome is unknown", async () => {
    const state = new FakeState();
    let dying: Awaited<ReturnType<typeof startServer>> | undefined = undefined;
    dying = await startServer({
      kv: state.node(() => {
        setTimeout(() => void dying!.server.shutdown(0), 20);
        return new Promise<never>(() => {});
      }),
    });
    const expired = () =>
      Promise.reject(
        new RpcError("FAILED_PRECONDITION", "session 1 has expired", {
          code: "RAFT_SESSION_EXPIRED",
        }),
      );
    const second = await server(state.node(expired));
    const error = await client([dying.address, second.address], { unaryCalls })
      .put("k", "v")
      .catch((e: unknown) => e as RockraftClientError);
    expect(error).toBeInstanceOf(RockraftClientError);
    expect(error).toMatchObject({
      code: "FAILED_PRECONDITION",
      serverCode: "RAFT_SESSION_EXPIRED",
      outcomeUnknown: true,
    });
    expect(state.opened).toEqual([1]); // not made again in a new session
  });

  test("a session that could not be opened: the write was not sent, and says so", async () => {
    const state = new FakeState();
    const refusing: KvHandler = {
      ...state.node(),
      openSession: () =>
        Promise.reject(
          new RpcError("RESOURCE_EXHAUSTED", "4096 sessions are open", {
            code: "RAFT_SESSION_LIMIT",
          }),
        ),
    };
    const { address } = await server(refusing);
    const error = await client([address], { unaryCalls })
      .put("k", "v")
      .catch((e: unknown) => e as RockraftClientError);
    expect(error).toMatchObject({
      code: "RESOURCE_EXHAUSTED",
      serverCode: "RAFT_SESSION_LIMIT",
      outcomeUnknown: false,
    });
    expect((error as Error).message).toMatch(
      /^opening a client session: .*the write was not sent$/,
    );
    expect(state.arrived).toEqual([]);
  });

  test("a node with sessions disabled (UNIMPLEMENTED): the client writes without one", async () => {
    const state = new FakeState();
    const disabled: KvHandler = {
      ...state.node(),
      openSession: () =>
        Promise.reject(
          new RpcError("UNIMPLEMENTED", "sessions are disabled", {
            code: "RAFT_SESSIONS_DISABLED",
          }),
        ),
    };
    const { address } = await server(disabled);
    const kv = client([address], { unaryCalls });
    await kv.put("a", "1");
    await kv.put("b", "2");
    expect(state.arrived).toEqual([undefined, undefined]);
  });

  test("close() closes the session", async () => {
    const state = new FakeState();
    const { address } = await server(state.node());
    const kv = new RockraftClient({ endpoints: [address], unaryCalls });
    await kv.put("k", "v");
    kv.close();
    await waitFor(() => state.closed.length === 1, "the session to be closed");
    expect(state.closed).toEqual([1]);
  });
});

test("against a node without sessions (no OpenSession), the client writes without one, as before", async () => {
  const puts: PutRequest[] = [];
  const grpcServer = new Server();
  // Only Put: grpc-js answers every other method UNIMPLEMENTED, as an older node would.
  grpcServer.addService(KVService, {
    put: (call: ServerUnaryCall<PutRequest, PutResponse>, callback: sendUnaryData<PutResponse>) => {
      puts.push(call.request);
      callback(null, { logId: { term: 1n, nodeId: 1n, index: BigInt(puts.length) } });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  cleanups.push(() => void grpcServer.forceShutdown());
  const kv = client([`127.0.0.1:${port}`], { unaryCalls: true });
  expect((await kv.put("k", "v")).logId.index).toBe(1);
  expect((await kv.put("k", "w")).logId.index).toBe(2);
  expect(puts.map((p) => p.session)).toEqual([undefined, undefined]);
});
