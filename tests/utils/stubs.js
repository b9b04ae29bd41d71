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

/** etcd's KV service from etcd's rpc.proto (as the etcd3 package ships it). */
export function etcdStub(address) {
  const KV = service("rpc.proto", [etcdProtoDir], "etcdserverpb.KV");
  const stub = new KV(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  return {
    put: (key, value) => call(stub, "Put", { key: Buffer.from(key), value: Buffer.from(value) }),
    // Linearizable, as rockraft's Get (serializable: false is etcd's default).
    get: (key) => call(stub, "Range", { key: Buffer.from(key) }),
    close: () => stub.close(),
  };
}

/** The KV service definition from our proto, for the bare echo server. */
export function rockraftService() {
  return service("rockraft/v1/kv.proto", [join(root, "proto")], "rockraft.v1.KV").service;
}

export { grpc };
