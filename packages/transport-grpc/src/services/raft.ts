// The peer service: Send, one stream of Raft message batches per peer, and InstallSnapshot,
// a snapshot streamed in chunks. Messages from another cluster or for another node are
// refused.
import { Metadata, type ServerReadableStream, type ServiceError } from "@grpc/grpc-js";
import type { Message, NodeId } from "@rockraft/raft-core";
import { serviceErrorOf } from "../call-status.js";
import { RpcError } from "../errors.js";
import type {
  InstallSnapshotRequest,
  RaftServiceServer,
  SendRequest,
} from "../gen/rockraft/v1/raft.js";
import type { PeerHandler, SnapshotSink, TransportLogger } from "../handlers.js";
import { WireError, messageFromWire, metadataFromWire, toNumber } from "../wire.js";

/** The peer service of node `nodeId` of cluster `clusterId`, delivering to `peer`. */
export function raftPeerService(options: {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly peer: PeerHandler;
  readonly logger: TransportLogger;
  /**
   * The common name every peer's client certificate must have (mutual TLS); undefined:
   * any certificate the server accepts is a peer's.
   */
  readonly peerCommonName?: string | undefined;
}): RaftServiceServer {
  const { peer, logger } = options;
  const fail = (error: unknown, what: string): ServiceError => serviceErrorOf(error, what, logger);
  const refuse = (
    status: "FAILED_PRECONDITION" | "INVALID_ARGUMENT" | "PERMISSION_DENIED",
    message: string,
  ) => new RpcError(status, message);
  /** Refuses a caller whose certificate is not a peer's (a client's, from the same CA). */
  const checkCertificate = (call: ServerReadableStream<unknown, unknown>, what: string): void => {
    const expected = options.peerCommonName;
    if (expected === undefined) return;
    const name = call.getAuthContext().sslPeerCertificate?.subject?.CN;
    if (name !== expected) {
      throw refuse(
        "PERMISSION_DENIED",
        `${what}: refused: the caller's certificate (common name ${JSON.stringify(name ?? null)}) is not a peer's; tls.peer_common_name is ${JSON.stringify(expected)}`,
      );
    }
  };
  const checkPeer = (clusterId: string, to: bigint): void => {
    if (clusterId !== options.clusterId) {
      throw refuse(
        "FAILED_PRECONDITION",
        `refused: message from cluster "${clusterId}", this node belongs to cluster "${options.clusterId}"`,
      );
    }
    if (toNumber(to, "to") !== options.nodeId) {
      throw refuse(
        "FAILED_PRECONDITION",
        `refused: message for node ${to}, this is node ${options.nodeId}`,
      );
    }
  };

  const raftServer: RaftServiceServer = {
    send: (call: ServerReadableStream<SendRequest, unknown>, callback) => {
      // Headers at once. Until a call has them, grpc-js's sending side keeps every message
      // written on it in case it retries the call, and a Send stream lives for hours: its
      // small buffers pinned their 8 KiB pool slabs, tens of MB on a busy follower.
      call.sendMetadata(new Metadata());
      let failed = false;
      let certificateChecked = false; // once per stream: its certificate does not change
      call.on("data", (batch: SendRequest) => {
        if (failed) return;
        try {
          if (!certificateChecked) checkCertificate(call, "RaftService.Send");
          certificateChecked = true;
          checkPeer(batch.clusterId, batch.to);
          const from = toNumber(batch.from, "from");
          const messages: Message[] = batch.messages.map(messageFromWire);
          for (const message of messages) {
            if (message.from !== from || message.to !== options.nodeId) {
              throw refuse(
                "INVALID_ARGUMENT",
                `refused: a message from ${message.from} to ${message.to} in a batch from ${from} to ${options.nodeId}`,
              );
            }
          }
          peer.receive(messages, from, batch.fromAddr);
        } catch (error) {
          failed = true;
          logger.warn(
            { peer: String(batch.from), cluster: batch.clusterId, err: (error as Error).message },
            "refused a peer message batch",
          );
          callback(fail(error, "RaftService.Send"));
        }
      });
      call.on("end", () => {
        if (!failed) callback(null, {});
      });
      call.on("error", () => undefined);
    },
    installSnapshot: (call: ServerReadableStream<InstallSnapshotRequest, unknown>, callback) => {
      call.sendMetadata(new Metadata()); // as for Send: the sender keeps no chunk for a retry
      void (async () => {
        let sink: SnapshotSink | undefined;
        let header:
          | {
              from: number;
              term: number;
              metadata: ReturnType<typeof metadataFromWire>;
              fromAddr: string;
            }
          | undefined;
        let finished = false;
        // A sender that gives up (or dies) cancels the call: end the stream so the loop
        // below stops and the partial data is discarded.
        call.on("cancelled", () =>
          call.destroy(new WireError("the sender cancelled the snapshot stream")),
        );
        try {
          for await (const request of call as AsyncIterable<InstallSnapshotRequest>) {
            const part = request.part;
            if (header === undefined) {
              if (part?.$case !== "header")
                throw new WireError("a snapshot stream must start with its header");
              checkCertificate(call, "RaftService.InstallSnapshot");
              checkPeer(part.value.clusterId, part.value.to);
              const from = toNumber(part.value.from, "from");
              const metadata = metadataFromWire(part.value.metadata);
              header = {
                from,
                term: toNumber(part.value.term, "term"),
                metadata,
                fromAddr: part.value.fromAddr,
              };
              sink = await peer.beginSnapshot(metadata, from, part.value.fromAddr);
              continue;
            }
            if (part?.$case !== "chunk")
              throw new WireError("a second header in a snapshot stream");
            if (finished) throw new WireError("a chunk after the last chunk");
            await sink!.write({
              offset: toNumber(part.value.offset, "offset"),
              data: part.value.data,
            });
            if (part.value.last) {
              await sink!.finish(part.value.checksum);
              finished = true;
            }
          }
          if (header === undefined || !finished)
            throw new WireError("the snapshot stream ended before its last chunk");
          peer.receive(
            [
              {
                type: "MsgSnap",
                from: header.from,
                to: options.nodeId,
                term: header.term,
                snapshot: { metadata: header.metadata, data: new Uint8Array(0) },
              },
            ],
            header.from,
            header.fromAddr,
          );
          callback(null, {});
        } catch (error) {
          if (!finished) await sink?.abort().catch(() => undefined);
          logger.warn(
            { err: (error as Error).message, snapshot: header?.metadata.index },
            "snapshot install failed",
          );
          callback(fail(error, "RaftService.InstallSnapshot"));
        }
      })();
    },
  };
  return raftServer;
}
