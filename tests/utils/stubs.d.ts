// Plain grpc-js stubs generated at run time from each system's own proto (stubs.js).
import type * as grpcJs from "@grpc/grpc-js";

/** A plain stub's calls: one unary call per operation. */
export interface KvStub {
  put(key: string | Uint8Array, value: string | Uint8Array): Promise<unknown>;
  get(key: string | Uint8Array): Promise<{ found?: boolean; value?: Buffer; kvs?: unknown[] }>;
  close(): void;
}

/**
 * rockraft's KV service from proto/rockraft/v1/kv.proto, one connection of its own;
 * `timeoutMs`: each call's deadline (none when omitted).
 */
export function rockraftStub(
  address: string,
  options?: { timeoutMs?: number },
): KvStub & {
  delete(key: string | Uint8Array): Promise<{ found?: boolean }>;
  compareAndSwap(request: {
    key: string | Uint8Array;
    expectFound: boolean;
    expected?: string | Uint8Array;
    value: string | Uint8Array;
  }): Promise<{ succeeded?: boolean; found?: boolean; current?: Buffer }>;
};

/** The same operations as rockraft's, over etcd's KV service (a CAS is a one-comparison Txn). */
export interface EtcdStub extends KvStub {
  delete(key: string | Uint8Array): Promise<{ found: boolean }>;
  compareAndSwap(request: {
    key: string | Uint8Array;
    expectFound: boolean;
    expected?: string | Uint8Array;
    value: string | Uint8Array;
  }): Promise<{ succeeded: boolean; found: boolean; current?: Buffer }>;
  /** The member's Raft term and the leader's member id. */
  status(): Promise<{ term: number; leader: string }>;
}

/**
 * etcd's KV service from etcd's rpc.proto (as the etcd3 package ships it); `timeoutMs`: each
 * call's deadline; `serializable`: reads from the member's own state (may be stale).
 */
export function etcdStub(
  address: string,
  options?: { timeoutMs?: number; serializable?: boolean },
): EtcdStub;

/** The KV service definition from our proto, for a bare grpc-js server. */
export function rockraftService(): grpcJs.ServiceDefinition;

export const grpc: typeof grpcJs;
