// What the runtime implements for the server: the KV and Cluster services, and the
// receiving end of peer traffic. Handlers signal failures by throwing RpcError.
import { logVerbosity, setLogVerbosity, setLogger } from "@grpc/grpc-js";
import type { Message, NodeId, SnapshotMetadata } from "@rockraft/raft-core";

/** Per-call context: aborted when the client cancels or the call's deadline passes. */
export interface CallContext {
  readonly signal: AbortSignal;
  /** The call's deadline (ms since the epoch), or Infinity. */
  readonly deadline: number;
}

export interface LogId {
  readonly term: number;
  readonly nodeId: number;
  readonly index: number;
}

export interface KvHandler {
  put(key: Uint8Array, value: Uint8Array, context: CallContext): Promise<{ logId: LogId }>;
  /** Linearizable read. */
  get(key: Uint8Array, context: CallContext): Promise<{ found: boolean; value: Uint8Array }>;
  delete(key: Uint8Array, context: CallContext): Promise<{ logId: LogId; found: boolean }>;
  compareAndSwap(
    request: { key: Uint8Array; expectFound: boolean; expected: Uint8Array; value: Uint8Array },
    context: CallContext,
  ): Promise<{ succeeded: boolean; found: boolean; current: Uint8Array; logId: LogId }>;
}

export interface Member {
  readonly nodeId: NodeId;
  readonly addr: string;
}

export interface ReplicationStatus {
  readonly nodeId: NodeId;
  readonly matchIndex: number;
  readonly nextIndex: number;
  readonly state: string;
}

/** A node's view of the cluster, as the Metrics call reports it. */
export interface ClusterMetrics {
  readonly nodeId: NodeId;
  readonly initialized: boolean;
  readonly state: string;
  readonly currentTerm: number;
  /** 0 when no leader is known. */
  readonly currentLeader: NodeId;
  readonly lastLogIndex: number;
  readonly commitIndex: number;
  readonly lastApplied: { readonly index: number; readonly term: number };
  readonly voters: readonly Member[];
  readonly learners: readonly Member[];
  readonly votersOutgoing: readonly Member[];
  readonly snapshotIndex: number;
  readonly replication: readonly ReplicationStatus[];
}

export interface ClusterHandler {
  initialize(members: readonly Member[], context: CallContext): Promise<{ initialized: boolean }>;
  metrics(context: CallContext): Promise<ClusterMetrics>;
  addLearner(member: Member, context: CallContext): Promise<{ logIndex: number }>;
  changeMembership(
    target: { voters: readonly Member[]; learners: readonly Member[] },
    context: CallContext,
  ): Promise<{ logIndex: number }>;
  transferLeader(nodeId: NodeId, context: CallContext): Promise<void>;
  triggerSnapshot(context: CallContext): Promise<{ snapshotIndex: number }>;
}

/** Where a received snapshot's data goes (storage-level's SnapshotInstaller fits). */
export interface SnapshotSink {
  write(chunk: { offset: number; data: Uint8Array }): Promise<void>;
  /** Verifies the stream's checksum and stages the data; throws if it does not match. */
  finish(checksum: number): Promise<void>;
  abort(): Promise<void>;
}

/** A snapshot to send (storage-level's SnapshotReader fits). */
export interface SnapshotSource {
  readonly metadata: SnapshotMetadata;
  chunks(): AsyncIterable<{ offset: number; data: Uint8Array; last: boolean; checksum?: number }>;
  close(): Promise<void>;
}

export interface PeerHandler {
  /** Raft messages from peer `from` (which advertises `fromAddr`), in the order sent. */
  receive(messages: Message[], from: NodeId, fromAddr: string): void;
  /** A snapshot stream from `from` begins; returns where to write its data. */
  beginSnapshot(metadata: SnapshotMetadata, from: NodeId, fromAddr: string): Promise<SnapshotSink>;
}

/** Structured log lines; pino's methods fit. Defaults to silence. */
export interface TransportLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

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
