import { Metadata } from "@grpc/grpc-js";
import type {
  AddLearnerResponse,
  ChangeMembershipResponse,
  InitializeResponse,
  MetricsResponse,
  GetConfigResponse,
  ReloadConfigResponse,
  SetConfigResponse,
  TransferLeaderResponse,
  TriggerSnapshotResponse,
} from "./gen/rockraft/v1/cluster.js";
import type { OpenSessionResponse } from "./gen/rockraft/v1/kv.js";
import { TransportError } from "./errors.js";
import type {
  ClusterMetrics,
  DeleteResult,
  InitializeResult,
  LogId,
  Member,
  ConfigResult,
  MembershipResult,
  PutResult,
  ReloadResult,
  SnapshotResult,
} from "./handlers.js";
import { BatchFailure } from "./batch-client.js";
import { TlsDialer, type CertificateFiles } from "./tls.js";
import { metricsFromWire, toNumber } from "./wire.js";
import { Backoff } from "./backoff.js";
import {
  RockraftClientError,
  answeredError,
  logId,
  dial,
  unaryAttempt,
  unservedError,
  wireTag,
  withUnknownOutcome,
  type Attempt,
  type CallMode,
  type Endpoint,
  type Invoker,
  type KvRequest,
  type KvResponse,
} from "./client-calls.js";
import { ClientSessions, type SessionTag } from "./client-session.js";
import {
  AuthCalls,
  authMethod,
  clientToken,
  type ClientCredentials,
  type ClientToken,
  type ClientTokenSource,
} from "./client-auth.js";

/** Keys and values: bytes, or a string sent as UTF-8. */
export type Bytes = Uint8Array | string;

/** What {@link RockraftClient.get} returns. */
export interface ReadResult {
  /** Whether the key exists. */
  readonly found: boolean;
  /** The value; undefined when the key is absent. */
  readonly value: Uint8Array | undefined;
}

/** A compare-and-swap request to {@link RockraftClient.compareAndSwap}. */
export interface SwapRequest {
  /** The key. */
  readonly key: Bytes;
  /** Succeeds only if the key's presence equals this. */
  readonly expectFound: boolean;
  /** When `expectFound`: the value the key must hold. */
  readonly expected?: Bytes;
  /** The value written on success. */
  readonly value: Bytes;
}

/** What {@link RockraftClient.compareAndSwap} returns. */
export interface SwapResult {
  /** Whether the value was swapped. */
  readonly succeeded: boolean;
  /** Whether the key existed before. */
  readonly found: boolean;
  /** The value before; undefined when the key was absent. */
  readonly current: Uint8Array | undefined;
  /** Where the command landed; it is committed and applied either way. */
  readonly logId: LogId;
}

/** The membership {@link RockraftClient.changeMembership} moves the cluster to. */
export interface MembershipTarget {
  /** The voters afterwards. */
  readonly voters: readonly Member[];
  /** The learners afterwards; none when omitted. */
  readonly learners?: readonly Member[];
}

/** TLS settings of a {@link RockraftClient}. */
export interface ClientTlsOptions {
  /** CA bundle to verify servers; system roots when absent. */
  readonly caFile?: string;
  /** A client certificate and key, for servers that require one (mutual TLS). */
  readonly certFile?: string;
  /** The private key of `certFile`. */
  readonly keyFile?: string;
}

/** Options of {@link RockraftClient}. */
export interface RockraftClientOptions {
  /** `host:port` of one or more nodes; the client finds the leader from there. */
  readonly endpoints: readonly string[];
  /** TLS; plaintext when absent. */
  readonly tls?: ClientTlsOptions | CertificateFiles;
  /** Deadline of each call, retries included; default 5000 ms. */
  readonly timeoutMs?: number;
  /** Largest message, in bytes; default 64 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Send each KV call as a unary gRPC call of its own instead of over the node's shared
   * `KV.Batch` stream (the default, and much cheaper per call: no HTTP/2 stream per call,
   * and the calls of one event-loop turn travel as one message).
   */
  readonly unaryCalls?: boolean;
  /**
   * Writes in a client session (default true): the client opens one on its first write
   * and numbers each write in it, so that a write whose outcome is unknown (a broken
   * connection, a leader that crashed) is retried, on the same node or the next, until
   * its outcome is known or the deadline passes, and never applies twice. With `false`,
   * or against a cluster without sessions, such a write fails with `outcomeUnknown`.
   */
  readonly sessions?: boolean;
  /**
   * A user to call as, for a cluster with authentication enabled: the client gets a token
   * (Auth.Authenticate) before its first call and again before it expires, and sends it
   * with every call. Absent: calls carry no token.
   */
  readonly auth?: ClientCredentials | ClientTokenSource | undefined;
}

export { RockraftClientError };

/** Per-call options. */
export interface CallOptions {
  /** The call's deadline, retries included; default: the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** One attempt only: no leader-following, no retries (for callers that retry themselves). */
  readonly once?: boolean;
}

const encoder = new TextEncoder();
const asBytes = (value: Bytes): Buffer =>
  typeof value === "string"
    ? Buffer.from(encoder.encode(value))
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);

/**
 * A client of a rockraft cluster's KV and Cluster services. It sends each call to the node
 * it believes leads, follows the leader named in the answer, and retries UNAVAILABLE with
 * backoff on the other endpoints until the call's deadline. KV calls to a node share one
 * `KV.Batch` stream unless `unaryCalls` is set.
 */
export class RockraftClient {
  private readonly endpoints = new Map<string, Endpoint>();
  private preferred: string;
  private readonly dialer: TlsDialer;
  private readonly timeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly unaryCalls: boolean;
  /** The client's session; undefined when sessions are off. */
  private readonly sessions: ClientSessions | undefined;
  /** The token of the client's user; undefined without `auth`. */
  private readonly token: ClientToken | undefined;
  /** The Auth service: tokens, users and roles. */
  readonly auth: AuthCalls;
  private closed = false;

  constructor(options: RockraftClientOptions) {
    if (options.endpoints.length === 0)
      throw new RangeError("RockraftClient: at least one endpoint is required");
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
    this.unaryCalls = options.unaryCalls ?? false;
    this.sessions =
      options.sessions === false
        ? undefined
        : new ClientSessions({
            open: (deadline) => this.openSession(deadline),
            expired: (error) => ({
              expired:
                error instanceof RockraftClientError && error.serverCode === "RAFT_SESSION_EXPIRED",
              outcomeUnknown: error instanceof RockraftClientError && error.outcomeUnknown,
            }),
            tooLate: () =>
              new RockraftClientError(
                "DEADLINE_EXCEEDED",
                "the call's deadline passed while the client's session was being opened; the write was not sent",
                this.preferred,
              ),
            openAgain: (error) =>
              error instanceof RockraftClientError &&
              (error.code === "UNAVAILABLE" || error.code === "DEADLINE_EXCEEDED"),
          });
    this.auth = new AuthCalls(
      <Response>(
        method: string,
        request: unknown,
        mode: CallMode,
        callOptions: CallOptions,
      ): Promise<Response> =>
        this.call(
          unaryAttempt<Response>((e, m, o, cb) => authMethod(e.auth, method)(request, m, o, cb)),
          callOptions,
          mode,
          method !== "authenticate",
        ),
    );
    this.token =
      options.auth === undefined
        ? undefined
        : clientToken(options.auth, this.auth, () => this.endpoints.values());
    this.dialer = new TlsDialer(options.tls);
    for (const address of options.endpoints) this.endpoint(address);
    this.preferred = options.endpoints[0]!;
  }

  /** Writes `key`; resolves once the write is committed and applied. */
  async put(key: Bytes, value: Bytes, options: CallOptions = {}): Promise<PutResult> {
    const [k, v] = [asBytes(key), asBytes(value)];
    const response = await this.write(options, (tag, callOptions) => {
      const request = { key: k, value: v, session: wireTag(tag) };
      return this.kvCall(
        { $case: "put", value: request },
        (e, m, o, cb) => e.kv.put(request, m, o, cb),
        callOptions,
        tag === undefined ? "write" : "retry-safe-write",
      );
    });
    return { logId: logId(response.logId) };
  }

  /** A linearizable read; `value` is undefined when the key is absent. */
  async get(key: Bytes, options: CallOptions = {}): Promise<ReadResult> {
    const request = { key: asBytes(key) };
    const response = await this.kvCall(
      { $case: "get", value: request },
      (e, m, o, cb) => e.kv.get(request, m, o, cb),
      options,
      "read",
    );
    return {
      found: response.found,
      value: response.found ? new Uint8Array(response.value) : undefined,
    };
  }

  /** Deletes `key`; resolves once committed and applied, with whether it existed. */
  async delete(key: Bytes, options: CallOptions = {}): Promise<DeleteResult> {
    const k = asBytes(key);
    const response = await this.write(options, (tag, callOptions) => {
      const request = { key: k, session: wireTag(tag) };
      return this.kvCall(
        { $case: "delete", value: request },
        (e, m, o, cb) => e.kv.delete(request, m, o, cb),
        callOptions,
        tag === undefined ? "write" : "retry-safe-write",
      );
    });
    return { logId: logId(response.logId), found: response.found };
  }

  /**
   * Sets `value` if the key's presence equals `expectFound` and, when present, its value
   * equals `expected`. Returns whether it did, and the key's state before.
   */
  async compareAndSwap(request: SwapRequest, options: CallOptions = {}): Promise<SwapResult> {
    const fields = {
      key: asBytes(request.key),
      expectFound: request.expectFound,
      expected: asBytes(request.expected ?? new Uint8Array()),
      value: asBytes(request.value),
    };
    const response = await this.write(options, (tag, callOptions) => {
      const wire = { ...fields, session: wireTag(tag) };
      return this.kvCall(
        { $case: "compareAndSwap", value: wire },
        (e, m, o, cb) => e.kv.compareAndSwap(wire, m, o, cb),
        callOptions,
        tag === undefined ? "write" : "retry-safe-write",
      );
    });
    return {
      succeeded: response.succeeded,
      found: response.found,
      current: response.found ? new Uint8Array(response.current) : undefined,
      logId: logId(response.logId),
    };
  }

  /** Initializes a brand-new cluster through `endpoint` (default: the first endpoint). */
  async initialize(
    members: readonly Member[],
    options: CallOptions & { endpoint?: string } = {},
  ): Promise<InitializeResult> {
    const request = { members: members.map((m) => ({ nodeId: BigInt(m.nodeId), addr: m.addr })) };
    return this.callAt<InitializeResponse>(
      (e, m, o, cb) => e.cluster.initialize(request, m, o, cb),
      options,
    );
  }

  /** One node's metrics (default: the node the client prefers). */
  async metrics(options: CallOptions & { endpoint?: string } = {}): Promise<ClusterMetrics> {
    const response = await this.callAt<MetricsResponse>(
      (e, m, o, cb) => e.cluster.metrics({}, m, o, cb),
      options,
    );
    return metricsFromWire(response);
  }

  /** Adds a learner; resolves once the change is applied. */
  async addLearner(member: Member, options: CallOptions = {}): Promise<MembershipResult> {
    const request = { member: { nodeId: BigInt(member.nodeId), addr: member.addr } };
    const response = await this.call(
      unaryAttempt<AddLearnerResponse>((e, m, o, cb) => e.cluster.addLearner(request, m, o, cb)),
      options,
    );
    return { logIndex: toNumber(response.logIndex, "log_index") };
  }

  /** Changes the membership (joint consensus when voters change); resolves once applied. */
  async changeMembership(
    target: MembershipTarget,
    options: CallOptions = {},
  ): Promise<MembershipResult> {
    const wire = (list: readonly Member[]) =>
      list.map((m) => ({ nodeId: BigInt(m.nodeId), addr: m.addr }));
    const request = { voters: wire(target.voters), learners: wire(target.learners ?? []) };
    const response = await this.call(
      unaryAttempt<ChangeMembershipResponse>((e, m, o, cb) =>
        e.cluster.changeMembership(request, m, o, cb),
      ),
      options,
    );
    return { logIndex: toNumber(response.logIndex, "log_index") };
  }

  /** Hands leadership to voter `nodeId`; resolves once it leads. */
  async transferLeader(nodeId: number, options: CallOptions = {}): Promise<void> {
    const request = { nodeId: BigInt(nodeId) };
    await this.call(
      unaryAttempt<TransferLeaderResponse>((e, m, o, cb) =>
        e.cluster.transferLeader(request, m, o, cb),
      ),
      options,
    );
  }

  /** Takes a snapshot on `endpoint` (default: the node the client prefers). */
  async triggerSnapshot(
    options: CallOptions & { endpoint?: string } = {},
  ): Promise<SnapshotResult> {
    const response = await this.callAt<TriggerSnapshotResponse>(
      (e, m, o, cb) => e.cluster.triggerSnapshot({}, m, o, cb),
      options,
    );
    return { snapshotIndex: toNumber(response.snapshotIndex, "snapshot_index") };
  }

  /** A node's running config and generation (default: the node the client prefers). */
  async getConfig(options: CallOptions & { endpoint?: string } = {}): Promise<ConfigResult> {
    const r = await this.callAt<GetConfigResponse>(
      (e, m, o, cb) => e.cluster.getConfig({}, m, o, cb),
      options,
    );
    return { ...r, generation: toNumber(r.generation, "generation") };
  }

  /** Has a node read its config file again and apply its live keys (default: preferred). */
  async reloadConfig(options: CallOptions & { endpoint?: string } = {}): Promise<ReloadResult> {
    const r = await this.callAt<ReloadConfigResponse>(
      (e, m, o, cb) => e.cluster.reloadConfig({}, m, o, cb),
      options,
    );
    return { changes: r.changes, generation: toNumber(r.generation, "generation") };
  }

  /**
   * Sets live key `key` (e.g. `"limits.max_value_bytes"`) of one node to `value` in place
   * of its file's until it restarts, or with `undefined` goes back to the file's; it reloads.
   */
  async setConfig(
    key: string,
    value: unknown,
    options: CallOptions & { endpoint?: string } = {},
  ): Promise<ReloadResult> {
    const request = { key, valueJson: value === undefined ? "" : JSON.stringify(value) };
    const r = await this.callAt<SetConfigResponse>(
      (e, m, o, cb) => e.cluster.setConfig(request, m, o, cb),
      options,
    );
    return { changes: r.changes, generation: toNumber(r.generation, "generation") };
  }

  /** The endpoint calls go to first (the last known leader). */
  currentEndpoint(): string {
    return this.preferred;
  }

  /**
   * Closes the client: later calls fail with TRANSPORT_CLOSED. Its session, if one is
   * open, is closed first, in the background (one attempt, at most a second; otherwise it
   * expires); then every connection.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.closeSessionAndChannels();
  }

  private async closeSessionAndChannels(): Promise<void> {
    const id = await this.sessions?.openId();
    if (id !== undefined) {
      const endpoint = this.endpoint(this.preferred);
      await new Promise<void>((resolve) => {
        const request = { sessionId: BigInt(id) };
        endpoint.kv.closeSession(request, new Metadata(), { deadline: Date.now() + 1_000 }, () =>
          resolve(),
        );
      });
    }
    for (const endpoint of this.endpoints.values()) {
      endpoint.batch.close();
      endpoint.kv.close();
      endpoint.cluster.close();
      endpoint.auth.close();
    }
  }

  private endpoint(address: string): Endpoint {
    let endpoint = this.endpoints.get(address);
    if (endpoint === undefined) {
      const interceptors = this.token === undefined ? [] : [this.token.interceptor];
      endpoint = dial(address, this.dialer, this.maxMessageBytes, interceptors);
      this.endpoints.set(address, endpoint);
    }
    return endpoint;
  }

  /** A KV call, over the endpoint's Batch stream or as a unary call. */
  private kvCall<C extends KvRequest["$case"]>(
    request: Extract<KvRequest, { $case: C }>,
    invoker: Invoker<KvResponse<C>>,
    options: CallOptions,
    mode: CallMode,
  ): Promise<KvResponse<C>> {
    if (this.unaryCalls) return this.call(unaryAttempt(invoker), options, mode);
    const attempt: Attempt<KvResponse<C>> = (endpoint, deadline) =>
      endpoint.batch.call(request, deadline).then(
        (answer): unknown => {
          if (answer.$case === request.$case) return answer.value;
          if (answer.$case === "error") throw answeredError(endpoint.address, answer.value);
          throw new RockraftClientError(
            "INTERNAL",
            `${endpoint.address}: a ${request.$case} call was answered as ${answer.$case}`,
            endpoint.address,
          );
        },
        (failure: unknown) => {
          if (!(failure instanceof BatchFailure)) throw failure;
          throw new RockraftClientError(
            failure.code,
            `${endpoint.address}: ${failure.message}`,
            endpoint.address,
            { outcomeUnknown: failure.mayHaveReached, cause: failure.cause },
          );
        },
      ) as Promise<KvResponse<C>>;
    return this.call(attempt, options, mode);
  }

  /** A write: in the client's session (opened on first use) when sessions are on. */
  private write<T>(
    options: CallOptions,
    run: (tag: SessionTag | undefined, options: CallOptions) => Promise<T>,
  ): Promise<T> {
    if (this.sessions === undefined) return run(undefined, options);
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    return this.sessions.write(deadline, (tag) =>
      run(tag, { ...options, timeoutMs: Math.max(1, deadline - Date.now()) }),
    );
  }

  /** Opens a session by `deadline`; undefined when the cluster has no sessions. */
  private async openSession(deadline: number): Promise<number | undefined> {
    try {
      const response = await this.call(
        unaryAttempt<OpenSessionResponse>((e, m, o, cb) => e.kv.openSession({}, m, o, cb)),
        { timeoutMs: Math.max(1, deadline - Date.now()) },
        "retry-safe-write", // at worst a session nobody uses, which expires
      );
      return toNumber(response.sessionId, "session_id");
    } catch (error) {
      if (!(error instanceof RockraftClientError)) throw error;
      if (error.code === "UNIMPLEMENTED") return undefined;
      // The write that waited for the session was never sent: its outcome is known.
      throw new RockraftClientError(
        error.code,
        `opening a client session: ${error.message}; the write was not sent`,
        error.endpoint,
        { serverCode: error.serverCode, leader: error.leader, cause: error },
      );
    }
  }

  /** One call at one endpoint (`options.endpoint`, default: the preferred one), no retries. */
  private callAt<Response>(
    invoker: Invoker<Response>,
    options: CallOptions & { endpoint?: string },
  ): Promise<Response> {
    if (this.closed) throw new TransportError("TRANSPORT_CLOSED", "RockraftClient is closed");
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    return unaryAttempt(invoker)(this.endpoint(options.endpoint ?? this.preferred), deadline);
  }

  /**
   * A call with leader-following and retries: UNAVAILABLE moves to the leader named in
   * the answer, or else to the next endpoint after a backoff, until the deadline. A call
   * that reached a node without an answer is retried for a read or a write in a session
   * (whose error then says that an earlier attempt may have applied), not for any other
   * write; such a write is tried again only with twice its last answer's time left (an
   * attempt cut short by the deadline would make a refused write's outcome unknown).
   */
  private async call<Response>(
    attempt: Attempt<Response>,
    options: CallOptions,
    mode: CallMode = "write",
    /** Whether the call needs the client's token (all but Authenticate). */
    authenticated = true,
  ): Promise<Response> {
    if (this.closed) throw new TransportError("TRANSPORT_CLOSED", "RockraftClient is closed");
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    const token = authenticated ? this.token : undefined;
    let renewed = false; // the token was refused once and fetched again
    const backoff = new Backoff(25, 1_000);
    let lastError: RockraftClientError | undefined;
    let unknown = false; // an attempt of this session write may have applied
    let answeredIn = 0; // how long the last refused attempt took (ms)
    const noTimeFor = (wait: number) =>
      mode === "write" && deadline - Date.now() - wait < 2 * answeredIn;
    const fail = (error: RockraftClientError) => (unknown ? withUnknownOutcome(error) : error);
    while (Date.now() < deadline && !noTimeFor(0)) {
      const endpoint = this.endpoint(this.preferred);
      let started: number | undefined; // when the attempt left, after the token's wait
      try {
        await token?.ready(deadline);
        started = performance.now();
        return await attempt(endpoint, deadline);
      } catch (error) {
        if (!(error instanceof RockraftClientError)) throw error;
        if (mode === "retry-safe-write" && error.outcomeUnknown) unknown = true;
        // A node refused the token (it expired, or was voided): fetch another, once.
        if (error.code === "UNAUTHENTICATED" && token !== undefined && !renewed) {
          renewed = true;
          token.invalidate();
          continue;
        }
        if (options.once === true) throw fail(error);
        // The deadline ran out during a retry: what the earlier answers said is the better
        // account of why the call failed than the bare deadline of the last attempt.
        const unknownWrite = error.outcomeUnknown && mode === "write";
        if (error.code === "DEADLINE_EXCEEDED" && lastError !== undefined && !unknownWrite) break;
        // A node busy checking passwords (Authenticate) asks to be tried again, elsewhere.
        const busy = error.serverCode === "RAFT_AUTH_BUSY";
        if (error.code !== "UNAVAILABLE" && !busy) throw fail(error);
        lastError = error;
        if (started !== undefined) answeredIn = performance.now() - started;
        const leaderAddr = error.leader?.addr;
        if (leaderAddr !== undefined && leaderAddr !== endpoint.address) {
          this.preferred = leaderAddr;
          if (unknownWrite) throw error;
          continue; // follow the leader at once
        }
        const addresses = [...this.endpoints.keys()];
        this.preferred = addresses[(addresses.indexOf(endpoint.address) + 1) % addresses.length]!;
        if (unknownWrite) throw error; // the next call goes elsewhere; this one may have landed
        const wait = Math.min(backoff.next(), deadline - Date.now());
        if (noTimeFor(wait)) break; // at once, rather than after the wait
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    throw unservedError(lastError, unknown, this.preferred);
  }
}
