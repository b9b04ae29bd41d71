// The workload of `pnpm chaos`: concurrent clients making put / get / delete /
// compare-and-swap calls on a few keys, every call recorded with its call and answer in the
// order this process saw them (a logical clock, for the checker) and in real time (for the
// report), and its outcome: ok, failed and not applied, or unknown.
import { rockraftStub, etcdStub } from "@rockraft/test-utils/stubs";
import { RockraftClient } from "@rockraft/transport-grpc";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (bytes) => (bytes === undefined ? undefined : Buffer.from(bytes).toString());

/**
 * A plain gRPC stub of `target` on `endpoint` (etcd's from its own proto, with serializable
 * reads when asked), its answers in `RockraftClient`'s shape.
 */
function stubClient(target, endpoint, { timeoutMs, serializable = false }) {
  const stub =
    target === "etcd"
      ? etcdStub(endpoint, { timeoutMs, serializable })
      : rockraftStub(endpoint, { timeoutMs });
  return {
    put: (key, value) => stub.put(key, value),
    get: async (key) => {
      const r = await stub.get(key);
      if (target === "etcd") {
        const kv = r.kvs?.[0];
        return { value: kv === undefined ? undefined : (kv.value ?? Buffer.alloc(0)) };
      }
      return { value: r.found === true ? (r.value ?? Buffer.alloc(0)) : undefined };
    },
    delete: async (key) => ({ found: (await stub.delete(key)).found === true }),
    compareAndSwap: async (request) => {
      const r = await stub.compareAndSwap(request);
      const found = r.found === true;
      return { succeeded: r.succeeded === true, found, current: r.current ?? Buffer.alloc(0) };
    },
    close: () => stub.close(),
  };
}

/** The deadline of each call with `--retries`: long enough to outlast a fault. */
export const RETRIES_TIMEOUT_MS = 30_000;

/**
 * Client `id`'s connection to `endpoints`. rockraft: even ids use `RockraftClient`, which
 * starts at its own node, follows the leader, and writes in a session (retrying a write
 * whose outcome is unknown until its deadline); odd ids a plain gRPC stub generated from
 * the proto, one unary call per operation and no session, that stays on its node (a
 * follower forwards its writes). etcd: a stub from etcd's proto that stays on its member,
 * with serializable reads when asked. Every call has a 2 s deadline. With `retries`, every
 * client is a `RockraftClient` and every call has a 30 s deadline.
 */
function connect(target, id, endpoints, { serializable, retries }) {
  const n = endpoints.length;
  const home = id % n;
  if (target === "rockraft" && (retries || id % 2 === 0)) {
    const ordered = endpoints.map((_, j) => endpoints[(home + j) % n]);
    const timeoutMs = retries ? RETRIES_TIMEOUT_MS : 2_000;
    return { client: new RockraftClient({ endpoints: ordered, timeoutMs }) };
  }
  const client = stubClient(target, endpoints[home], { timeoutMs: 2_000, serializable });
  return { node: home + 1, client };
}

export class Workload {
  /**
   * `target`: rockraft or etcd; `endpoints`: where clients dial each node; `random(n)`: the
   * workload's generator; `now()`: milliseconds since the run started.
   */
  constructor({ target, endpoints, clients, keys, random, now, serializable = false, retries }) {
    Object.assign(this, { target, endpoints, clientCount: clients, random, now, serializable });
    this.retries = retries === true;
    this.keys = Array.from({ length: keys }, (_, i) => `chaos-${i}`);
    /** Logical time: every call and every answer gets the next tick, in the order observed. */
    this.clock = 0;
    this.history = [];
    this.counts = { ok: 0, failed: 0, unknown: 0 };
    this.stopping = false;
  }

  /** Runs every client until stop(). */
  run() {
    this.running = Promise.all(
      Array.from({ length: this.clientCount }, (_, id) => this.runClient(id)),
    );
    return this.running;
  }

  stop() {
    this.stopping = true;
    return this.running;
  }

  /** One operation: its input and the call that makes it and reads the output. */
  nextOperation(id, n, client) {
    const random = this.random;
    const value = `c${id}-${n}`;
    const roll = random(100);
    if (roll < 30)
      return {
        input: { op: "put", value },
        call: async (key) => (await client.put(key, value), { op: "put" }),
      };
    if (roll < 60)
      return {
        input: { op: "get" },
        call: async (key) => ({ op: "get", value: text((await client.get(key)).value) }),
      };
    if (roll < 75)
      return {
        input: { op: "delete" },
        call: async (key) => ({ op: "delete", found: (await client.delete(key)).found }),
      };
    const expected =
      random(2) === 0 ? undefined : `c${random(this.clientCount)}-${1 + random(Math.max(1, n))}`;
    return {
      input: { op: "cas", expectFound: expected !== undefined, expected, value },
      call: async (key) => {
        const r = await client.compareAndSwap({
          key,
          expectFound: expected !== undefined,
          expected: expected ?? "",
          value,
        });
        const current = r.found ? text(r.current) : undefined;
        return { op: "cas", succeeded: r.succeeded, found: r.found, current };
      },
    };
  }

  async runClient(id) {
    const { client, node } = connect(this.target, id, this.endpoints, this);
    let n = 0;
    try {
      while (!this.stopping) {
        const key = this.keys[this.random(this.keys.length)];
        const { input, call } = this.nextOperation(id, ++n, client);
        const record = { client: id, ...(node === undefined ? {} : { node }), key, input };
        record.call = ++this.clock;
        record.t0 = this.now();
        try {
          record.output = await call(key);
          record.ret = ++this.clock;
          record.t1 = this.now();
          this.history.push(record);
          this.counts.ok++;
        } catch (error) {
          // A plain stub's failed write may have been applied: unknown. So is one of
          // RockraftClient's, unless the cluster answered that it was not applied.
          const unknown =
            input.op !== "get" &&
            (error?.name !== "RockraftClientError" || error.outcomeUnknown !== false);
          if (unknown) {
            // It may take effect at any point after its call, or never.
            this.history.push({ ...record, output: undefined, ret: Infinity });
            this.counts.unknown++;
          } else this.counts.failed++;
          // As a real client would: no tight loop against a node that is down or cut off.
          await sleep(50 + this.random(100));
        }
      }
    } finally {
      client.close();
    }
  }

  /** Reads every key from every node, linearizably, into the history. */
  async finalReads() {
    for (const [i, endpoint] of this.endpoints.entries()) {
      const stub = stubClient(this.target, endpoint, { timeoutMs: 10_000 });
      for (const key of this.keys) {
        const call = ++this.clock;
        const t0 = this.now();
        const value = text((await stub.get(key)).value);
        const ret = ++this.clock;
        this.history.push({
          client: 1000 + i,
          node: i + 1,
          key,
          input: { op: "get" },
          output: { op: "get", value },
          call,
          ret,
          t0,
          t1: this.now(),
        });
      }
      stub.close();
    }
  }
}
