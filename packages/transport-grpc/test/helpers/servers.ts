import type { Message, SnapshotMetadata } from "@rockraft/raft-core";
import {
  RockraftServer,
  RpcError,
  type ClusterHandler,
  type KvHandler,
  type PeerHandler,
  type ServerOptions,
  type SnapshotSink,
  type TransportLogger,
} from "../../src/index.js";

export const notServing = (): never => {
  throw new RpcError("UNAVAILABLE", "not serving");
};

export const stubKv: KvHandler = {
  put: notServing,
  get: notServing,
  delete: notServing,
  compareAndSwap: notServing,
  openSession: notServing,
  closeSession: notServing,
};

export const stubCluster: ClusterHandler = {
  initialize: notServing,
  metrics: notServing,
  addLearner: notServing,
  changeMembership: notServing,
  transferLeader: notServing,
  triggerSnapshot: notServing,
  getConfig: notServing,
  reloadConfig: notServing,
  setConfig: notServing,
};

/** Records what a node's peer service received. */
export class Inbox implements PeerHandler {
  readonly messages: Message[] = [];
  readonly snapshots: {
    metadata: SnapshotMetadata;
    from: number;
    chunks: number;
    finished: boolean;
    aborted: boolean;
  }[] = [];

  receive(messages: Message[]): void {
    this.messages.push(...messages);
  }

  beginSnapshot(metadata: SnapshotMetadata, from: number): Promise<SnapshotSink> {
    const record = { metadata, from, chunks: 0, finished: false, aborted: false };
    this.snapshots.push(record);
    return Promise.resolve({
      write: () => {
        record.chunks++;
        return Promise.resolve();
      },
      finish: () => {
        record.finished = true;
        return Promise.resolve();
      },
      abort: () => {
        record.aborted = true;
        return Promise.resolve();
      },
    });
  }
}

export function recordingLogger(): TransportLogger & {
  lines: { level: string; message: string; fields: object }[];
} {
  const lines: { level: string; message: string; fields: object }[] = [];
  const at = (level: string) => (fields: object, message: string) => {
    lines.push({ level, message, fields });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A Cluster handler whose Metrics answers: node 2, leader of term 1. */
export const metricsCluster: ClusterHandler = {
  ...stubCluster,
  metrics: () =>
    Promise.resolve({
      nodeId: 2,
      initialized: true,
      state: "leader",
      currentTerm: 1,
      currentLeader: 2,
      lastLogIndex: 1,
      commitIndex: 1,
      lastApplied: { index: 1, term: 1 },
      voters: [],
      learners: [],
      votersOutgoing: [],
      snapshotIndex: 0,
      replication: [],
    }),
};

export async function startServer(
  overrides: Partial<ServerOptions> = {},
): Promise<{ server: RockraftServer; inbox: Inbox; address: string }> {
  const inbox = new Inbox();
  const server = await RockraftServer.start({
    nodeId: 2,
    clusterId: "test",
    address: "127.0.0.1:0",
    kv: stubKv,
    cluster: stubCluster,
    peer: inbox,
    ...overrides,
  });
  return { server, inbox, address: `127.0.0.1:${server.port}` };
}

export { waitFor } from "@rockraft/test-utils";
