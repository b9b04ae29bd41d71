// What the runtime implements for the server: the KV and Cluster services, and the
// receiving end of peer traffic. Handlers signal failures by throwing RpcError.
import { logVerbosity, setLogVerbosity, setLogger } from "@grpc/grpc-js";
import type { LogPosition, Message, NodeId, SnapshotMetadata } from "@rockraft/raft-core";
import type { SessionTag } from "./client-session.js";

/** Per-call context: aborted when the client cancels or the call's deadline passes. */
export interface CallContext {
  /** Aborted when the client cancels or the deadline passes. */
  readonly signal: AbortSignal;
  /** The call's deadline (ms since the epoch), or Infinity. */
  readonly deadline: number;
  /** The caller's token (metadata `authorization: Bearer <token>`), if it sent one. */
  readonly token?: string | undefined;
  /** The common name of the caller's verified client certificate (mutual TLS), if any. */
  readonly certificateName?: string | undefined;
}

/** Where a write landed in the log. */
export interface LogId {
  /** Term of the entry. */
  readonly term: number;
  /** The leader that created the entry (0 when unknown). */
  readonly nodeId: number;
  /** Log index of the entry. */
  readonly index: number;
}

/** Result of a put. */
export interface PutResult {
  /** Where the write landed; it is committed and applied. */
  readonly logId: LogId;
}

/** Result of a get. */
export interface GetResult {
  /** Whether the key exists. */
  readonly found: boolean;
  /** The value; empty when not found. */
  readonly value: Uint8Array;
}

/** Result of a delete. */
export interface DeleteResult {
  /** Where the delete landed; it is committed and applied. */
  readonly logId: LogId;
  /** Whether the key existed. */
  readonly found: boolean;
}

/** A compare-and-swap request. */
export interface CompareAndSwapRequest {
  /** The key. */
  readonly key: Uint8Array;
  /** Succeeds only if the key's presence equals this. */
  readonly expectFound: boolean;
  /** When `expectFound`: the value the key must hold. */
  readonly expected: Uint8Array;
  /** The value written on success. */
  readonly value: Uint8Array;
  /** The client session the write belongs to; absent: none. */
  readonly session?: SessionTag | undefined;
}

/** Result of a compare-and-swap. */
export interface CompareAndSwapResult {
  /** Whether the value was swapped. */
  readonly succeeded: boolean;
  /** Whether the key existed before. */
  readonly found: boolean;
  /** The value before (empty when absent). */
  readonly current: Uint8Array;
  /** Where the command landed; it is committed and applied either way. */
  readonly logId: LogId;
}

/** The KV service, implemented by the runtime. */
export interface KvHandler {
  /** Writes `key` (in `session`, when given); resolves once committed and applied. */
  put(
    key: Uint8Array,
    value: Uint8Array,
    context: CallContext,
    session?: SessionTag,
  ): Promise<PutResult>;
  /** Linearizable read. */
  get(key: Uint8Array, context: CallContext): Promise<GetResult>;
  /** Deletes `key` (in `session`, when given); resolves once committed and applied. */
  delete(key: Uint8Array, context: CallContext, session?: SessionTag): Promise<DeleteResult>;
  /** Compare-and-swap; resolves once committed and applied. */
  compareAndSwap(
    request: CompareAndSwapRequest,
    context: CallContext,
  ): Promise<CompareAndSwapResult>;
  /** Opens a client session through the log; resolves with its id. */
  openSession(context: CallContext): Promise<OpenSessionResult>;
  /** Closes a client session; resolves with whether it was open. */
  closeSession(sessionId: number, context: CallContext): Promise<CloseSessionResult>;
}

/** Result of opening a client session. */
export interface OpenSessionResult {
  /** The new session's id, for the `session` tag of each write. */
  readonly sessionId: number;
}

/** Result of closing a client session. */
export interface CloseSessionResult {
  /** Whether the session was open (a retry after the close applied finds it closed). */
  readonly found: boolean;
}

/** A cluster member and its address. */
export interface Member {
  /** The member's node id. */
  readonly nodeId: NodeId;
  /** The member's `host:port` for peers and clients. */
  readonly addr: string;
}

/** The leader's view of one member's replication. */
export interface ReplicationProgress {
  /** The member. */
  readonly nodeId: NodeId;
  /** Highest index known to match the leader's log. */
  readonly matchIndex: number;
  /** Next index the leader sends. */
  readonly nextIndex: number;
  /** `probe`, `replicate` or `snapshot`. */
  readonly state: string;
}

/** A node's view of the cluster, as the Metrics call reports it. */
export interface ClusterMetrics {
  /** The node answering. */
  readonly nodeId: NodeId;
  /** Whether it has a configuration. */
  readonly initialized: boolean;
  /** `follower`, `pre-candidate`, `candidate`, `leader`, or `stopped` (shut down or stopped by a failure). */
  readonly state: string;
  /** Its current term. */
  readonly currentTerm: number;
  /** 0 when no leader is known. */
  readonly currentLeader: NodeId;
  /** Last index of its log. */
  readonly lastLogIndex: number;
  /** Its commit index. */
  readonly commitIndex: number;
  /** The last entry its state machine applied. */
  readonly lastApplied: LogPosition;
  /** Voters (the incoming ones during a joint configuration). */
  readonly voters: readonly Member[];
  /** Learners. */
  readonly learners: readonly Member[];
  /** Outgoing voters during a joint configuration; empty otherwise. */
  readonly votersOutgoing: readonly Member[];
  /** Index of its latest snapshot (0 when none). */
  readonly snapshotIndex: number;
  /** Per member, on the leader only. */
  readonly replication: readonly ReplicationProgress[];
}

/** Result of an initialize call. */
export interface InitializeResult {
  /** True if this call created the cluster; false if the node was already initialized. */
  readonly initialized: boolean;
}

/** Result of a membership change. */
export interface MembershipResult {
  /** Log index of the (last) configuration entry of the change; it is applied. */
  readonly logIndex: number;
}

/** Result of a snapshot request. */
export interface SnapshotResult {
  /** The index the snapshot covers. */
  readonly snapshotIndex: number;
}

/** One chunk of an outgoing snapshot. */
export interface SnapshotSourceChunk {
  /** Byte offset of `data` in the stream. */
  offset: number;
  /** The bytes. */
  data: Uint8Array;
  /** True on the last chunk. */
  last: boolean;
  /** CRC32 of the whole stream, on the last chunk. */
  checksum?: number;
}

/** Target of a membership change. */
export interface MembershipChange {
  /** The voters afterwards. */
  readonly voters: readonly Member[];
  /** The learners afterwards. */
  readonly learners: readonly Member[];
}

/** The Cluster admin service, implemented by the runtime. */
export interface ClusterHandler {
  /** Creates the cluster from `members`; `initialized: false` if it already was. */
  initialize(members: readonly Member[], context: CallContext): Promise<InitializeResult>;
  /** This node's view of the cluster. */
  metrics(context: CallContext): Promise<ClusterMetrics>;
  /** Adds a learner; resolves with the log index of the change once applied. */
  addLearner(member: Member, context: CallContext): Promise<MembershipResult>;
  /** Changes the membership; resolves with the log index of the change once applied. */
  changeMembership(target: MembershipChange, context: CallContext): Promise<MembershipResult>;
  /** Hands leadership to `nodeId`; resolves once it leads. */
  transferLeader(nodeId: NodeId, context: CallContext): Promise<void>;
  /** Takes a snapshot now. */
  triggerSnapshot(context: CallContext): Promise<SnapshotResult>;
  /** This node's running config and its generation. */
  getConfig(context: CallContext): Promise<ConfigResult>;
  /** Reads this node's config file again and applies its live keys. */
  reloadConfig(context: CallContext): Promise<ReloadResult>;
  /**
   * Sets live key `key` (the file's spelling) to `valueJson`'s value in place of the
   * file's, or drops what was set when undefined, and reloads.
   */
  setConfig(
    key: string,
    valueJson: string | undefined,
    context: CallContext,
  ): Promise<ReloadResult>;
}

/** A permission as the Auth service carries it. */
export interface AuthPermission {
  /** What it allows. */
  readonly type: "read" | "write" | "readwrite";
  /** The key, or the prefix when `prefix`; never empty. */
  readonly key: Uint8Array;
  /** Whether `key` is a prefix. */
  readonly prefix: boolean;
}

/** A change to the users and roles, as the Auth service's calls ask for it. */
export type AuthRequest =
  | AuthSwitch
  | AuthUserRequest
  | AuthPasswordRequest
  | AuthUserRoleRequest
  | AuthRoleRequest
  | AuthGrantRequest
  | AuthRevokeRequest;

/** Turn authentication on (it needs a user `root` with the root role) or off. */
export interface AuthSwitch {
  /** Which. */
  readonly op: "enable" | "disable";
}

/** Delete a user. */
export interface AuthUserRequest {
  /** The change. */
  readonly op: "user-delete";
  /** The user. */
  readonly user: string;
}

/** Add a user, or change its password. */
export interface AuthPasswordRequest {
  /** Which. */
  readonly op: "user-add" | "user-passwd";
  /** The user. */
  readonly user: string;
  /** Its password (hashed by the node that receives it). */
  readonly password: string;
}

/** Grant a role to a user, or revoke it. */
export interface AuthUserRoleRequest {
  /** Which. */
  readonly op: "user-grant" | "user-revoke";
  /** The user. */
  readonly user: string;
  /** The role (`root`: may do everything). */
  readonly role: string;
}

/** Add a role, or delete it (revoking it from every user). */
export interface AuthRoleRequest {
  /** Which. */
  readonly op: "role-add" | "role-delete";
  /** The role. */
  readonly role: string;
}

/** Grant a role a permission (one on the same key, or prefix, is replaced). */
export interface AuthGrantRequest {
  /** The change. */
  readonly op: "role-grant";
  /** The role. */
  readonly role: string;
  /** What it may do, where. */
  readonly permission: AuthPermission;
}

/** Revoke a role's permission on a key, or on a prefix. */
export interface AuthRevokeRequest {
  /** The change. */
  readonly op: "role-revoke";
  /** The role. */
  readonly role: string;
  /** The key, or the prefix. */
  readonly key: Uint8Array;
  /** Whether `key` is a prefix. */
  readonly prefix: boolean;
}

/** A change to the table applied: its revision afterwards (the change's log index). */
export interface AuthRevision {
  /** The table's revision. */
  readonly revision: number;
}

/** A token, as Authenticate issues it. */
export interface AuthToken {
  /** Send it as metadata `authorization: Bearer <token>`. */
  readonly token: string;
  /** When it expires (ms since the epoch, by the issuing node's clock). */
  readonly expiresAtMs: number;
  /** How long it is valid from when it was issued, in ms (for clocks that differ). */
  readonly ttlMs: number;
}

/** Whether auth is on, and the revision of the users and roles table. */
export interface AuthStatus {
  /** Whether calls are checked. */
  readonly enabled: boolean;
  /** Log index of the table's last change (0: none). */
  readonly revision: number;
}

/** A user as UserList reports it. */
export interface AuthUserInfo {
  /** The user's name. */
  readonly name: string;
  /** Its roles. */
  readonly roles: readonly string[];
}

/** A role as RoleList reports it. */
export interface AuthRoleInfo {
  /** The role's name. */
  readonly name: string;
  /** What it allows (none for the built-in root role, which may do everything). */
  readonly permissions: readonly AuthPermission[];
}

/** The Auth service, implemented by the runtime. */
export interface AuthHandler {
  /** A token for `user`, if `password` is its password. */
  authenticate(user: string, password: string, context: CallContext): Promise<AuthToken>;
  /** Makes a change through the log; resolves with the table's revision once applied. */
  change(request: AuthRequest, context: CallContext): Promise<AuthRevision>;
  /** Whether auth is on. */
  status(context: CallContext): Promise<AuthStatus>;
  /** Every user. */
  users(context: CallContext): Promise<readonly AuthUserInfo[]>;
  /** Every role. */
  roles(context: CallContext): Promise<readonly AuthRoleInfo[]>;
}

/** A node's running config, as the GetConfig call reports it. */
export interface ConfigResult {
  /** The config's tables as JSON (camelCase keys). */
  readonly configJson: string;
  /** 1, then one more at each reload that changed something. */
  readonly generation: number;
  /** The file it was read from. */
  readonly source: string;
  /** The keys set by `setConfig` in place of the file's, as a JSON object. */
  readonly overridesJson: string;
}

/** One key a reload changed. */
export interface ReloadedKey {
  /** The key as the file spells it, e.g. `limits.max_value_bytes`. */
  readonly key: string;
  /** Its old value, as JSON. */
  readonly oldJson: string;
  /** Its new value, as JSON. */
  readonly newJson: string;
}

/** What a reload changed. */
export interface ReloadResult {
  /** Each changed key, with its old and new value. */
  readonly changes: readonly ReloadedKey[];
  /** The generation after the reload. */
  readonly generation: number;
}

/** Where a received snapshot's data goes (storage-level's SnapshotInstaller fits). */
export interface SnapshotSink {
  /** Writes one chunk; offsets are contiguous from 0. */
  write(chunk: { offset: number; data: Uint8Array }): Promise<void>;
  /** Verifies the stream's checksum and stages the data; throws if it does not match. */
  finish(checksum: number): Promise<void>;
  /** Discards what was written. */
  abort(): Promise<void>;
}

/** A snapshot to send (storage-level's SnapshotReader fits). */
export interface SnapshotSource {
  /** The position and membership the snapshot is at. */
  readonly metadata: SnapshotMetadata;
  /** The data in order; the last chunk carries the stream's CRC32. */
  chunks(): AsyncIterable<SnapshotSourceChunk>;
  /** Releases the source. */
  close(): Promise<void>;
}

/** The receiving end of peer traffic, implemented by the runtime. */
export interface PeerHandler {
  /** Raft messages from peer `from` (which advertises `fromAddr`), in the order sent. */
  receive(messages: Message[], from: NodeId, fromAddr: string): void;
  /** A snapshot stream from `from` begins; returns where to write its data. */
  beginSnapshot(metadata: SnapshotMetadata, from: NodeId, fromAddr: string): Promise<SnapshotSink>;
}

/** Structured log lines; pino's methods fit. Defaults to silence. */
export interface TransportLogger {
  /** Logs at debug level. */
  debug(fields: object, message: string): void;
  /** Logs at info level. */
  info(fields: object, message: string): void;
  /** Logs at warn level. */
  warn(fields: object, message: string): void;
  /** Logs at error level. */
  error(fields: object, message: string): void;
}

/** A logger that logs nothing. */
export const SILENT_LOGGER: TransportLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * Sends grpc-js's own diagnostics (which it otherwise prints to standard error) to
 * `logger` at debug level. grpc-js has one global logger: call this once per process.
 */
export function routeGrpcLogs(logger: TransportLogger): void {
  const line = (...args: unknown[]) =>
    logger.debug({ source: "grpc-js" }, args.map(String).join(" "));
  setLogger({ error: line, info: line, debug: line });
  setLogVerbosity(logVerbosity.ERROR);
}
