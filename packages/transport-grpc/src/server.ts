// The node's gRPC server: it binds one address and serves, from their own modules, the
// peer service (services/raft.ts), KV (services/kv.ts), Cluster (services/cluster.ts),
// Auth (services/auth.ts), grpc.health.v1.Health and reflection (reflection.ts).
import { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { NodeId } from "@rockraft/raft-core";
import type { BatchStreams } from "./batch-server.js";
import { kvService as kvServiceDefinition, raftService } from "./codecs.js";
import { TransportError } from "./errors.js";
import { AuthService } from "./gen/rockraft/v1/auth.js";
import { ClusterService } from "./gen/rockraft/v1/cluster.js";
import {
  SILENT_LOGGER,
  type AuthHandler,
  type ClusterHandler,
  type KvHandler,
  type PeerHandler,
  type TransportLogger,
} from "./handlers.js";
import { reflectionDescriptors } from "./reflection.js";
import { logRefusedHandshakes } from "./refusals.js";
import { authService } from "./services/auth.js";
import { clusterService } from "./services/cluster.js";
import { kvService } from "./services/kv.js";
import { raftPeerService } from "./services/raft.js";
import { CertificateFiles, serverCredentials, type TlsOptions } from "./tls.js";

/** Services whose health the server reports through grpc.health.v1.Health. */
export const SERVICE_NAMES = {
  /** The client key-value service. */
  kv: "rockraft.v1.KV",
  /** The admin service. */
  cluster: "rockraft.v1.Cluster",
  /** Users, roles and tokens. */
  auth: "rockraft.v1.Auth",
  /** The peer service. */
  raft: "rockraft.v1.RaftService",
} as const;

/** Options of {@link RockraftServer.start}. */
export interface ServerOptions {
  /** This node's id. */
  readonly nodeId: NodeId;
  /** The cluster id; peer messages from another cluster are refused. */
  readonly clusterId: string;
  /** `host:port` to bind; port 0 picks a free one (see `port`). */
  readonly address: string;
  /**
   * TLS (and mutual TLS); plaintext when absent. A `CertificateFiles` is followed: after its
   * `reload()`, connections accepted present the new certificate.
   */
  readonly tls?: TlsOptions | CertificateFiles | undefined;
  /** Largest message accepted, in bytes (a full append batch or snapshot chunk must fit). */
  readonly maxMessageBytes?: number;
  /** Serves the KV service. */
  readonly kv: KvHandler;
  /** Serves the Cluster service. */
  readonly cluster: ClusterHandler;
  /** Serves the Auth service; absent: it is not served (UNIMPLEMENTED). */
  readonly auth?: AuthHandler | undefined;
  /** Receives peer messages and snapshots. */
  readonly peer: PeerHandler;
  /** Where refusals and failures are logged. */
  readonly logger?: TransportLogger;
}

/** 64 MiB: room for a 1 MiB append batch of maximum-size entries, with margin. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * One gRPC server per node on its `raft_addr`: the peer service, the client KV service,
 * the Cluster admin service, grpc.health.v1.Health and reflection.
 */
export class RockraftServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  private readonly server: Server;
  private readonly health: HealthImplementation;
  private readonly batches: BatchStreams;
  private closing: Promise<void> | undefined;

  private constructor(
    server: Server,
    health: HealthImplementation,
    batches: BatchStreams,
    port: number,
  ) {
    this.server = server;
    this.health = health;
    this.batches = batches;
    this.port = port;
  }

  /**
   * Binds `options.address` and serves every service. Fails with TransportError
   * TRANSPORT_ADDRESS_IN_USE, TRANSPORT_BIND_FAILED or TRANSPORT_TLS.
   */
  static async start(options: ServerOptions): Promise<RockraftServer> {
    const logger = options.logger ?? SILENT_LOGGER;
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const certificates =
      options.tls === undefined || options.tls instanceof CertificateFiles
        ? options.tls
        : new CertificateFiles(options.tls);
    const credentials = serverCredentials(certificates);
    const server = new Server({
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.http2.min_ping_interval_without_data_ms": 5_000,
    });

    const kv = kvService(options.kv, logger, maxMessageBytes);
    const batches = kv.batches;
    const peerCommonName = certificates?.tls.peerCommonName;
    server.addService(raftService, raftPeerService({ ...options, logger, peerCommonName }));
    server.addService(kvServiceDefinition, kv.server);
    server.addService(ClusterService, clusterService(options.cluster, logger));
    if (options.auth !== undefined)
      server.addService(AuthService, authService(options.auth, logger));
    const health = new HealthImplementation({
      "": "NOT_SERVING",
      [SERVICE_NAMES.kv]: "NOT_SERVING",
      [SERVICE_NAMES.cluster]: "SERVING",
      [SERVICE_NAMES.auth]: "SERVING",
      [SERVICE_NAMES.raft]: "SERVING",
    });
    health.addToServer(server);
    new ReflectionService(reflectionDescriptors()).addToServer(server);

    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(options.address, credentials, (error, bound) => {
        if (error === null) {
          resolve(bound);
          return;
        }
        const inUse = /EADDRINUSE|address already in use/i.test(error.message);
        const tls = certificates?.tls;
        if (
          !inUse &&
          tls !== undefined &&
          /mismatch|PEM|certificate|private key|OSSL|SSL/i.test(error.message)
        ) {
          // The TLS context is built at bind: name the files, as the other TLS errors do.
          reject(
            new TransportError(
              "TRANSPORT_TLS",
              `tls: the certificate ${tls.certFile} and the private key ${tls.keyFile} are unusable together: ${error.message.replace(/^.*?: /, "")}`,
              { cause: error },
            ),
          );
          return;
        }
        reject(
          new TransportError(
            inUse ? "TRANSPORT_ADDRESS_IN_USE" : "TRANSPORT_BIND_FAILED",
            inUse
              ? `${options.address} is already in use by another process`
              : `cannot listen on ${options.address}: ${error.message}`,
            { cause: error },
          ),
        );
      });
    });
    if (options.tls !== undefined && !logRefusedHandshakes(server, logger)) {
      logger.debug(
        {},
        "this grpc-js release hides its HTTP/2 servers: refused TLS handshakes go unlogged",
      );
    }
    logger.debug({ address: options.address, port }, "gRPC server listening");
    return new RockraftServer(server, health, batches, port);
  }

  /** Reports whether this node can serve clients (grpc.health.v1: "" and rockraft.v1.KV). */
  setServing(serving: boolean): void {
    const status = serving ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", status);
    this.health.setStatus(SERVICE_NAMES.kv, status);
  }

  /** Stops accepting calls; waits up to `graceMs` for calls in flight, then cuts them. */
  shutdown(graceMs = 2_000): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.setServing(false);
      // Batch streams live as long as their clients: end them once their calls are answered.
      this.batches.drain();
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.closing;
  }
}
