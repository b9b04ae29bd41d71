// Plain gRPC stubs over grpc-js, generated at run time from each system's own proto by
// @grpc/proto-loader, with the same library, loader options and channel options for both:
// what a user of any language gets, one unary call per operation.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import grpc from "@grpc/grpc-js";
import loader from "@grpc/proto-loader";

const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: false };
/** Every stub its own TCP connection, as separate client processes would have. */
const CHANNEL_OPTIONS = { "grpc.use_local_subchannel_pool": 1 };

const root = join(import.meta.dirname, "../..");
const etcdProtoDir = join(
  dirname(createRequire(import.meta.url).resolve("etcd3/package.json")),
  "proto",
);

function service(file, includeDirs, path) {
  const definition = loader.loadSync(file, { ...LOADER_OPTIONS, includeDirs });
  let node = grpc.loadPackageDefinition(definition);
  for (const part of path.split(".")) node = node[part];
  return node;
}

const call = (stub, method, request, timeoutMs) =>
  new Promise((resolve, reject) =>
    stub[method](
      request,
      timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs },
      (error, response) => (error ? reject(error) : resolve(response)),
    ),
  );

/** rockraft's KV service from proto/rockraft/v1/kv.proto; `timeoutMs`: each call's deadline. */
export function rockraftStub(address, { timeoutMs } = {}) {
  const KV = service("rockraft/v1/kv.proto", [join(root, "proto")], "rockraft.v1.KV");
  const stub = new KV(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  const bytes = (value) => Buffer.from(value ?? "");
  return {
    put: (key, value) => call(stub, "Put", { key: bytes(key), value: bytes(value) }, timeoutMs),
    get: (key) => call(stub, "Get", { key: bytes(key) }, timeoutMs),
    delete: (key) => call(stub, "Delete", { key: bytes(key) }, timeoutMs),
    compareAndSwap: ({ key, expectFound, expected, value }) =>
      call(
        stub,
        "CompareAndSwap",
        {
          key: bytes(key),
          expect_found: expectFound,
          expected: bytes(expected),
          value: bytes(value),
        },
        timeoutMs,
      ),
    close: () => stub.close(),
  };
}

/**
 * etcd's KV service from etcd's rpc.proto (as the etcd3 package ships it, enum names in its
 * spelling), with the same
 * operations as rockraft's: `compareAndSwap` is a one-comparison Txn (value equal, or
 * create revision 0 for "absent"). `timeoutMs`: each call's deadline; `serializable`: reads
 * served from the member's own state (etcd's `serializable: true`, which may be stale).
 */
export function etcdStub(address, { timeoutMs, serializable = false } = {}) {
  const KV = service("rpc.proto", [etcdProtoDir], "etcdserverpb.KV");
  const Maintenance = service("rpc.proto", [etcdProtoDir], "etcdserverpb.Maintenance");
  const stub = new KV(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  let maintenance;
  const bytes = (value) => Buffer.from(value ?? "");
  const valueOf = (range) => {
    const kv = range?.kvs?.[0];
    return kv === undefined
      ? { found: false }
      : { found: true, value: kv.value ?? Buffer.alloc(0) };
  };
  return {
    put: (key, value) => call(stub, "Put", { key: bytes(key), value: bytes(value) }, timeoutMs),
    // Linearizable unless `serializable` (etcd's default is linearizable, as rockraft's Get).
    get: (key) =>
      call(
        stub,
        "Range",
        { key: bytes(key), ...(serializable ? { serializable } : {}) },
        timeoutMs,
      ),
    delete: async (key) => {
      const r = await call(stub, "DeleteRange", { key: bytes(key) }, timeoutMs);
      return { found: Number(r.deleted ?? 0) > 0 };
    },
    compareAndSwap: async ({ key, expectFound, expected, value }) => {
      const compare = expectFound
        ? { result: "Equal", target: "Value", key: bytes(key), value: bytes(expected) }
        : { result: "Equal", target: "Create", key: bytes(key), create_revision: "0" };
      const r = await call(
        stub,
        "Txn",
        {
          compare: [compare],
          success: [{ request_put: { key: bytes(key), value: bytes(value) } }],
          failure: [{ request_range: { key: bytes(key) } }],
        },
        timeoutMs,
      );
      if (r.succeeded === true)
        return { succeeded: true, found: expectFound, current: bytes(expected) };
      const current = valueOf(r.responses?.[0]?.response_range);
      return { succeeded: false, found: current.found, current: current.value };
    },
    /** The member's Raft term and the leader's member id (Maintenance.Status). */
    status: async () => {
      maintenance ??= new Maintenance(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
      const r = await call(maintenance, "Status", {}, timeoutMs);
      return { term: Number(r.raftTerm ?? 0), leader: String(r.leader ?? "0") };
    },
    close: () => {
      stub.close();
      maintenance?.close();
    },
  };
}

/** The KV service definition from our proto, for the bare echo server. */
export function rockraftService() {
  return service("rockraft/v1/kv.proto", [join(root, "proto")], "rockraft.v1.KV").service;
}

export { grpc };
