import { status, type ChannelOptions, type ClientWritableStream } from "@grpc/grpc-js";
import type { Message, MsgSnap, NodeId } from "@rockraft/raft-core";
import { TransportError } from "./errors.js";
import { PeerClient } from "./codecs.js";
import {
  type RaftServiceClient,
  type InstallSnapshotRequest,
  type SendRequest,
} from "./gen/rockraft/v1/raft.js";
import { SILENT_LOGGER, type SnapshotSource, type TransportLogger } from "./handlers.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./server.js";
import { Backoff } from "./backoff.js";
import { probeConnection } from "./probe.js";
import { CertificateFiles, TlsDialer, type TlsOptions } from "./tls.js";
import { estimateSize, messageToWire, metadataToWire } from "./wire.js";

/** Options of {@link PeerTransport}. */
export interface PeerTransportOptions {
  /** This node's id, sent with every batch. */
  readonly nodeId: NodeId;
  /** The cluster id, sent with every batch; peers refuse another cluster's. */
  readonly clusterId: string;
  /** This node's advertised address, sent with every batch so peers can answer. */
  readonly advertiseAddr?: string;
  /**
   * TLS for the connections to peers (a node's `CertificateFiles`: connections made after
   * a reload present the new certificate); plaintext when absent.
   */
  readonly tls?: TlsOptions | CertificateFiles | undefined;
  /** Largest message sent; batches are cut below it (match the peers' server limit). */
  readonly maxMessageBytes?: number;
  /** Messages queued per peer before new ones are dropped; default 4096. */
  readonly queueLimit?: number;
  /** Reconnection backoff: first delay and cap, in ms (with ±20% jitter); default 100 and 3000. */
  readonly backoffInitialMs?: number;
  /** Cap of the reconnection backoff, in ms. */
  readonly backoffMaxMs?: number;
  /** A message to `peer` was dropped (peer down, or its queue full): tell raft-core. */
  readonly onUnreachable: (peer: NodeId) => void;
  /**
   * The messages dropped, when they are known never to have been written to the peer's
   * stream (peer not connected, queue full, too large, or queued when the connection was
   * lost). Messages lost after being written are not reported: their fate is unknown.
   */
  readonly onDropped?: (peer: NodeId, messages: readonly Message[]) => void;
  /** How a snapshot transfer to `peer` ended: tell raft-core (`reportSnapshot`). */
  readonly onSnapshotStatus: (peer: NodeId, ok: boolean) => void;
  /** Opens the snapshot to send for a MsgSnap (its metadata may be newer than the message's). */
  readonly snapshotSource: () => Promise<SnapshotSource>;
  /** Where connection changes and refusals are logged. */
  readonly logger?: TransportLogger;
}

type State = "connecting" | "ready" | "backoff" | "closed";

/** The connection to one peer: a long-lived Send stream fed from a bounded queue. */
class PeerConnection {
  private client: RaftServiceClient;
  private stream: ClientWritableStream<SendRequest> | undefined;
  private state: State = "connecting";
  /**
   * Whether the first connection attempt is still under way: messages wait for it in the
   * queue (a new cluster's first votes, and the answers on the peers' own new connections
   * back, are sent before any connection is up). Later, a peer that is not connected is
   * down or unreachable, and its messages are dropped at once.
   */
  private firstAttempt = true;
  private queue: Message[] = [];
  private flushScheduled = false;
  private waitingForDrain = false;
  private readonly backoff: Backoff;
  private readonly dialer: TlsDialer;
  private readonly channelOptions: ChannelOptions;
  private dialedGeneration = 0;
  private timer: NodeJS.Timeout | undefined;
  private snapshotInFlight = false;
  /** When a failure to connect was last logged, and how many went unlogged since. */
  private failureLoggedAt = -Infinity;
  private failuresUnlogged = 0;

  constructor(
    readonly peer: NodeId,
    readonly address: string,
    private readonly options: Required<
      Pick<
        PeerTransportOptions,
        "queueLimit" | "backoffInitialMs" | "backoffMaxMs" | "maxMessageBytes"
      >
    > &
      PeerTransportOptions,
    channelOptions: ChannelOptions,
  ) {
    this.backoff = new Backoff(options.backoffInitialMs, options.backoffMaxMs);
    this.dialer = new TlsDialer(options.tls);
    this.channelOptions = channelOptions;
    this.client = this.dial();
    this.connect();
  }

  /** A channel to the peer, with the certificates as they are now. */
  private dial(): RaftServiceClient {
    this.dialedGeneration = this.dialer.generation;
    const { credentials, options: tlsOptions } = this.dialer.credentialsFor(this.address);
    return new PeerClient(this.address, credentials, { ...this.channelOptions, ...tlsOptions });
  }

  enqueue(messages: Message[]): void {
    const waiting = this.state === "connecting" && this.firstAttempt;
    if (this.state !== "ready" && !waiting) {
      this.drop(messages, "peer is not connected");
      return;
    }
    if (this.queue.length + messages.length > this.options.queueLimit) {
      this.drop(messages, "send queue is full");
      return;
    }
    for (const message of messages) this.queue.push(message);
    if (!waiting) this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  sendSnapshot(message: MsgSnap): void {
    if (this.snapshotInFlight || this.state === "closed") return;
    this.snapshotInFlight = true;
    void this.streamSnapshot(message).then(
      () => {
        this.snapshotInFlight = false;
        this.options.onSnapshotStatus(this.peer, true);
      },
      (error: unknown) => {
        this.snapshotInFlight = false;
        this.log().warn(
          { peer: this.peer, err: (error as Error).message },
          "snapshot transfer failed",
        );
        this.options.onSnapshotStatus(this.peer, false);
      },
    );
  }

  /**
   * Closes the connection. `reportQueued` (the peer moved or left, the transport goes on):
   * messages queued for the next flush (or for the first attempt) were never sent, and are
   * handed back as dropped. Without it (the transport closes with its node) they are
   * discarded.
   */
  close(reportQueued = false): void {
    this.state = "closed";
    clearTimeout(this.timer);
    this.stream?.end();
    this.stream = undefined;
    const queued = this.queue;
    this.queue = [];
    this.client.close();
    if (reportQueued && queued.length > 0) this.options.onDropped?.(this.peer, queued);
  }

  private log(): TransportLogger {
    return this.options.logger ?? SILENT_LOGGER;
  }

  private connect(): void {
    if (this.state === "closed") return;
    this.state = "connecting";
    // The certificates were read again since this channel was made: a new connection
    // presents the new ones.
    if (this.dialer.generation !== this.dialedGeneration) {
      this.client.close();
      this.client = this.dial();
    }
    this.client.waitForReady(Date.now() + Math.max(1_000, this.backoff.base), (error) => {
      if (this.state === "closed") return;
      if (error !== undefined && error !== null) {
        this.down(error);
        return;
      }
      this.openStream();
    });
  }

  private openStream(): void {
    const stream = this.client.send((error) => {
      if (this.stream !== stream) return;
      this.down(error ?? new Error("the peer ended the stream"));
    });
    this.stream = stream;
    this.state = "ready";
    this.firstAttempt = false;
    this.backoff.reset();
    this.log().debug({ peer: this.peer, address: this.address }, "connected to peer");
    if (this.queue.length > 0) this.scheduleFlush(); // what waited for the first attempt
  }

  private down(error: Error): void {
    if (this.state === "closed") return;
    const wasReady = this.state === "ready";
    this.firstAttempt = false;
    this.stream = undefined;
    this.waitingForDrain = false;
    const dropped = this.queue;
    this.queue = [];
    if (wasReady) {
      // A peer that shuts down cancels our stream (a crash or the network resets it instead):
      // that is news, not a problem.
      const shutDown = (error as { code?: number }).code === status.CANCELLED;
      this.log()[shutDown ? "info" : "warn"](
        { peer: this.peer, address: this.address, err: error.message },
        shutDown ? "peer closed the connection (shutting down)" : "lost connection to peer",
      );
    } else this.connectFailed(error);
    if (dropped.length > 0) this.options.onDropped?.(this.peer, dropped);
    if (dropped.length > 0 || wasReady) this.options.onUnreachable(this.peer);
    this.state = "backoff";
    const delay = this.backoff.next();
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /**
   * A connection attempt failed: logged at WARN with its reason (gRPC's own error says only
   * that it could not connect, so the peer is dialled once more to find out why, e.g. which
   * TLS check failed), at most once per peer every 30 s, with the number of failures since.
   */
  private connectFailed(error: Error): void {
    this.failuresUnlogged++;
    const now = performance.now();
    if (now - this.failureLoggedAt < 30_000) return;
    this.failureLoggedAt = now;
    const failures = this.failuresUnlogged;
    this.failuresUnlogged = 0;
    const tls = this.options.tls;
    const files = tls instanceof CertificateFiles ? tls.tls : tls;
    void probeConnection(this.address, files).then((reason) => {
      if (this.state === "closed") return;
      this.log().warn(
        { peer: this.peer, address: this.address, reason, err: error.message, failures },
        `cannot connect to peer ${this.peer} at ${this.address}: ${reason}`,
      );
    });
  }

  private drop(messages: readonly Message[], why: string): void {
    this.log().debug({ peer: this.peer, count: messages.length, why }, "dropped messages to peer");
    this.options.onDropped?.(this.peer, messages);
    this.options.onUnreachable(this.peer);
  }

  private flush(): void {
    const stream = this.stream;
    if (stream === undefined || this.waitingForDrain) return;
    const budget = this.options.maxMessageBytes - 64 * 1024;
    while (this.queue.length > 0) {
      const batch: Message[] = [];
      let size = 0;
      while (this.queue.length > 0) {
        const next = this.queue[0]!;
        const nextSize = estimateSize(next);
        if (nextSize > budget) {
          this.queue.shift();
          this.log().error(
            { peer: this.peer, type: next.type, bytes: nextSize },
            "dropped a message larger than the message size limit",
          );
          this.options.onDropped?.(this.peer, [next]);
          this.options.onUnreachable(this.peer);
          continue;
        }
        if (batch.length > 0 && size + nextSize > budget) break;
        batch.push(this.queue.shift()!);
        size += nextSize;
      }
      if (batch.length === 0) continue;
      const request: SendRequest = {
        clusterId: this.options.clusterId,
        from: BigInt(this.options.nodeId),
        to: BigInt(this.peer),
        messages: batch.map(messageToWire),
        fromAddr: this.options.advertiseAddr ?? "",
      };
      if (!stream.write(request)) {
        this.waitingForDrain = true;
        stream.once("drain", () => {
          this.waitingForDrain = false;
          this.flush();
        });
        return;
      }
    }
  }

  private async streamSnapshot(message: MsgSnap): Promise<void> {
    const source = await this.options.snapshotSource();
    try {
      await new Promise<void>((resolve, reject) => {
        const call: ClientWritableStream<InstallSnapshotRequest> = this.client.installSnapshot(
          (error) => {
            if (error !== null) reject(error);
            else resolve();
          },
        );
        void (async () => {
          const write = async (request: InstallSnapshotRequest) => {
            if (!call.write(request)) await new Promise((drained) => call.once("drain", drained));
          };
          try {
            await write({
              part: {
                $case: "header",
                value: {
                  clusterId: this.options.clusterId,
                  from: BigInt(this.options.nodeId),
                  to: BigInt(this.peer),
                  term: BigInt(message.term),
                  metadata: metadataToWire(source.metadata),
                  fromAddr: this.options.advertiseAddr ?? "",
                },
              },
            });
            for await (const chunk of source.chunks()) {
              if (this.state === "closed")
                throw new TransportError("TRANSPORT_CLOSED", "peer transport closed");
              await write({
                part: {
                  $case: "chunk",
                  value: {
                    offset: BigInt(chunk.offset),
                    data: Buffer.from(
                      chunk.data.buffer,
                      chunk.data.byteOffset,
                      chunk.data.byteLength,
                    ),
                    last: chunk.last,
                    checksum: chunk.checksum ?? 0,
                  },
                },
              });
            }
            call.end();
          } catch (error) {
            call.cancel();
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        })();
      });
    } finally {
      await source.close();
    }
  }
}

/**
 * Sends raft-core's messages to peers: one long-lived stream per peer carrying batches, a
 * bounded queue per peer, drops (reported as unreachable) when a peer is down or slow, and
 * reconnection with exponential backoff and jitter. A slow or dead peer never blocks the
 * others. Snapshots go on their own stream, in chunks.
 */
export class PeerTransport {
  private readonly peers = new Map<NodeId, PeerConnection>();
  private readonly options: ConstructorParameters<typeof PeerConnection>[2];
  private readonly channelOptions: ChannelOptions;
  private closed = false;

  constructor(options: PeerTransportOptions) {
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.options = {
      ...options,
      maxMessageBytes,
      queueLimit: options.queueLimit ?? 4096,
      backoffInitialMs: options.backoffInitialMs ?? 100,
      backoffMaxMs: options.backoffMaxMs ?? 3_000,
    };
    this.channelOptions = {
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.initial_reconnect_backoff_ms": this.options.backoffInitialMs,
      "grpc.max_reconnect_backoff_ms": this.options.backoffMaxMs,
    };
  }

  /** Sets the peers' addresses (the node's own id is ignored); connections follow changes. */
  setPeers(peers: Iterable<readonly [NodeId, string]>): void {
    if (this.closed) return;
    const wanted = new Map([...peers].filter(([id]) => id !== this.options.nodeId));
    for (const [id, connection] of this.peers) {
      if (wanted.get(id) !== connection.address) {
        connection.close(true);
        this.peers.delete(id);
      }
    }
    for (const [id, address] of wanted) {
      if (!this.peers.has(id)) {
        this.peers.set(id, new PeerConnection(id, address, this.options, this.channelOptions));
      }
    }
  }

  /** Queues messages for their peers (Ready's `messages` and `messagesAfterPersist`). */
  send(messages: readonly Message[]): void {
    if (this.closed) return;
    const byPeer = new Map<NodeId, Message[]>();
    for (const message of messages) {
      const connection = this.peers.get(message.to);
      if (connection === undefined) {
        this.options.onDropped?.(message.to, [message]);
        this.options.onUnreachable(message.to);
        continue;
      }
      if (message.type === "MsgSnap") {
        connection.sendSnapshot(message);
        continue;
      }
      const list = byPeer.get(message.to);
      if (list === undefined) byPeer.set(message.to, [message]);
      else list.push(message);
    }
    for (const [peer, list] of byPeer) this.peers.get(peer)!.enqueue(list);
  }

  /** Closes every peer connection; later sends are dropped. Idempotent. */
  close(): void {
    this.closed = true;
    for (const connection of this.peers.values()) connection.close();
    this.peers.clear();
  }
}
