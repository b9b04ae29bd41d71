import type { Config } from "@rockraft/config";
import { openStorage } from "@rockraft/storage-level";
import {
  CertificateFiles,
  PeerTransport,
  RockraftServer,
  routeGrpcLogs,
} from "@rockraft/transport-grpc";
import type { Logger } from "pino";
import { RaftApi } from "./api.js";
import { RockraftError } from "./errors.js";
import { createLogger } from "./logger.js";
import {
  applyReload,
  reloadFromFile,
  setConfigKey,
  type ConfigChange,
  type ReloadContext,
} from "./reload.js";
import { NodeMetricsExporter } from "./metrics.js";
import { GrpcLeaderCalls } from "./leader-calls.js";
import { NodeRuntime } from "./runtime.js";
import { cryptoRandomness, systemClock, type RuntimeEnvironment } from "./seams.js";
import { maxMessageBytesOf } from "./options.js";
import { AuthGate } from "./auth.js";
import { authHandler, clusterHandler, kvHandler, peerHandler } from "./services.js";
import type { NodeMetrics } from "./wait.js";
import { YoungGcScheduler, v8YoungGcHooks } from "./young-gc.js";

/** Options of {@link RaftNodeBuilder.build}. */
export interface BuildOptions {
  /** A pino logger to use instead of one made from the `[log]` config. */
  readonly logger?: Logger;
  /**
   * When V8 collects the young generation on the leader. `"v8"` (the default): wherever its
   * allocation runs out, as in any Node.js program. `"scheduled"`: once it is 60% full, the
   * leader collects it right after sending appends, while it waits for the followers, where
   * a pause delays a write least (the 1-client write p99 9–14% lower at the median of two
   * alternating benchmark series). Needs the process to expose the collector (`node
   * --expose-gc`, as the example's `start` script runs); without it the node logs a warning
   * and keeps V8's timing.
   */
  readonly youngGc?: "v8" | "scheduled";
  /**
   * Deliberate rule breaking, for tests that prove a checker can fail (`pnpm chaos`). Never
   * set outside tests.
   *
   * @internal
   */
  readonly testingUnsafe?: RuntimeEnvironment["testingUnsafe"];
}

/** A started node: storage open, Raft running, gRPC serving. */
export class RaftNode {
  /** Resolves once `shutdown` has finished. */
  readonly closed: Promise<void>;
  /**
   * Resolves with a `RAFT_NODE_STOPPED` error (its `cause` the failure) if the node stops
   * by itself: a storage write failed (disk full, I/O error), data is corrupt, or a Raft
   * invariant broke. It then serves nothing (health `NOT_SERVING`, every call rejects,
   * `metrics().state` is `stopped`); call `shutdown()` to release its port and files, and
   * exit or restart the process. Never settles otherwise.
   */
  readonly failed: Promise<RockraftError>;
  private resolveClosed!: () => void;
  private shutdownPromise: Promise<void> | undefined;

  /** @internal Made by {@link RaftNodeBuilder.build}. */
  constructor(
    private readonly runtime: NodeRuntime,
    private readonly server: RockraftServer,
    private readonly api: RaftApi,
    private readonly exporter: NodeMetricsExporter | undefined,
    /** The port the gRPC server is bound to (useful when the config says port 0). */
    readonly port: number,

    /** What a reload needs to know of how the node was built. */
    private readonly reloading: ReloadContext,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.failed = runtime.failed;
  }

  /** The port of the Prometheus endpoint, when `[metrics]` is configured (a reload may move it). */
  get metricsPort(): number | undefined {
    return this.exporter?.port;
  }

  /** The Raft API: initialize, clientWrite, read, metrics, wait, membership, ... */
  raft(): RaftApi {
    return this.api;
  }

  /** This node's metrics (the same as `raft().metrics()`). */
  metrics(): NodeMetrics {
    return this.api.metrics();
  }

  /** The config this node runs with (the last one reloaded). */
  config(): Config {
    return this.runtime.config;
  }

  /**
   * Runs with `next` from now on, a config of this node read again (say on SIGHUP, with
   * `loadConfig`): only live keys may change (`LIVE_KEYS`, listed in this package's
   * README; sizes no larger than the message size the node started with), and the TLS
   * files are read again; a change to any other key is refused with RAFT_INVALID_ARGUMENT
   * naming each such key, and nothing changes. Reloads and sets run one at a time. Logs one line (info) with each changed key's old and new value, and
   * when something changed moves `metrics().configGeneration` on; resolves with the
   * changes. The log level is not set on a logger given in `BuildOptions.logger`.
   */
  reloadConfig(next: Config): Promise<ConfigChange[]> {
    return applyReload(this.runtime, next, this.reloading);
  }

  /**
   * Reads this node's config file (`config().source`) again and reloads it, as
   * `reloadConfig` does (the example does this on SIGHUP, the Cluster service's
   * ReloadConfig too); a file that cannot be read or parsed is RAFT_INVALID_ARGUMENT with
   * its own message, and nothing changes.
   */
  reloadConfigFile(): Promise<ConfigChange[]> {
    return reloadFromFile(this.runtime, this.reloading);
  }

  /**
   * Sets live key `key` (the file's spelling, e.g. `"limits.max_value_bytes"`) to `value`
   * in place of the file's, or with `undefined` goes back to the file's: the file is read
   * again with every key set so and reloaded as `reloadConfigFile` does. Set keys hold
   * through later reloads until the node restarts (the file is not changed); `configSet()`
   * lists them. A key that is not live (the TLS files neither: change them in the file) or
   * a value the schema refuses is RAFT_INVALID_ARGUMENT, and nothing changes.
   */
  setConfig(key: string, value: unknown): Promise<ConfigChange[]> {
    return setConfigKey(this.runtime, this.reloading, key, value);
  }

  /** The keys set by `setConfig` in place of the file's, and their values. */
  configSet(): ReadonlyMap<string, unknown> {
    return new Map(this.reloading.overrides);
  }

  /**
   * Stops ticking, lets in-flight work settle, stops the gRPC server (waiting briefly for
   * calls in flight), closes storage and the metrics endpoint. Idempotent.
   */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= (async () => {
      const reason = new RockraftError(
        "RAFT_NODE_STOPPED",
        `node ${this.runtime.nodeId} is shut down`,
      );
      await this.server.shutdown(1_000);
      await this.runtime.stop(reason);
      await this.runtime.storage.close();
      await this.exporter?.shutdown();
      this.runtime.logger.info("node shut down");
      // Resolve once every log line is written: a caller that prints or exits next must
      // not overtake the log (pino's destination writes asynchronously).
      await new Promise<void>((resolve) => this.runtime.logger.flush(() => resolve()));
      this.resolveClosed();
    })();
    return this.shutdownPromise;
  }
}

/** Builds a node from its config, as the seed's `RaftNodeBuilder::build(&config)`. */
export const RaftNodeBuilder = {
  /**
   * Opens storage at `storage.dataPath`, restores Raft from it, starts the gRPC server on
   * `node.raftAddr` with every service, and returns the running node. Fails with the
   * storage's or transport's error (locked data path, port in use, ...), leaving nothing open.
   */
  async build(config: Config, options: BuildOptions = {}): Promise<RaftNode> {
    if (
      options.youngGc !== undefined &&
      options.youngGc !== "v8" &&
      options.youngGc !== "scheduled"
    ) {
      throw new RockraftError(
        "RAFT_INVALID_ARGUMENT",
        `BuildOptions.youngGc: expected "v8" or "scheduled", got ${JSON.stringify(options.youngGc)}`,
      );
    }
    const logger = options.logger ?? createLogger(config.log, config.node.nodeId);
    // Read (and checked) before anything opens; read again at each reload (rotation).
    const certificates = config.tls === undefined ? undefined : new CertificateFiles(config.tls);
    // grpc-js prints its own diagnostics to standard error; keep them in our log instead.
    routeGrpcLogs(logger.child({ component: "grpc-js" }));
    const storage = await openStorage({
      dataPath: config.storage.dataPath,
      nodeId: config.node.nodeId,
      clusterId: config.cluster.clusterId,
      maxOpenFiles: config.storage.maxOpenFiles,
      cacheSize: config.storage.cacheSize,
      writeBufferSize: config.storage.writeBufferSize,
      blockSize: config.storage.blockSize,
      compression: config.storage.compression,
      // A start that fails (port in use) must not claim a new data directory for this id.
      stampIdentity: false,
    });
    const exporter = new NodeMetricsExporter(config.node.nodeId);
    let youngGc: YoungGcScheduler | undefined;
    if (options.youngGc === "scheduled") {
      const hooks = v8YoungGcHooks();
      if (hooks === undefined) {
        logger.warn(
          'youngGc: "scheduled" needs the collector exposed (node --expose-gc); keeping V8\'s own timing',
        );
      } else {
        youngGc = new YoungGcScheduler(hooks);
      }
    }
    // Reads the applied users and roles; the running config once the runtime runs.
    const gate: AuthGate = new AuthGate(
      () => storage.authState(),
      (): number => runtime.config.auth.tokenTtlMs,
      systemClock,
      () => config.tls?.clientCertAuth === true,
    );
    const runtime: NodeRuntime = new NodeRuntime(config, {
      storage,
      clock: systemClock,
      random: cryptoRandomness,
      network: (events) =>
        new PeerTransport({
          nodeId: config.node.nodeId,
          clusterId: config.cluster.clusterId,
          advertiseAddr: config.node.advertiseAddr,
          tls: certificates,
          maxMessageBytes: maxMessageBytesOf(config),
          ...events,
          logger: logger.child({ component: "peers" }),
        }),
      leaderCalls: new GrpcLeaderCalls(config, certificates, () =>
        gate.nodeToken(config.node.nodeId),
      ),
      logger,
      metrics: exporter,
      youngGc,
      ...(options.testingUnsafe === undefined ? {} : { testingUnsafe: options.testingUnsafe }),
    });
    if (config.tls?.requireClientCert === true && config.tls.peerCommonName === undefined) {
      logger.warn(
        "tls: any certificate from ca_file is accepted as a peer's: if clients have certificates from it too, set tls.peer_common_name so that theirs cannot act as a peer",
      );
    }
    if (options.testingUnsafe !== undefined) {
      logger.warn(
        { testingUnsafe: options.testingUnsafe },
        "TESTING ONLY: this node breaks rules on purpose; never run it with real data",
      );
    }
    const api = new RaftApi(runtime, gate);
    const reloading: ReloadContext = {
      messageBytes: maxMessageBytesOf(config),
      ownLogger: options.logger === undefined,
      certificates,
      overrides: new Map(),
      exporter,
    };
    let server: RockraftServer;
    try {
      server = await RockraftServer.start({
        nodeId: config.node.nodeId,
        clusterId: config.cluster.clusterId,
        address: config.node.raftAddr,
        tls: certificates,
        maxMessageBytes: maxMessageBytesOf(config),
        kv: kvHandler(api, runtime, gate),
        cluster: clusterHandler(api, runtime, gate, reloading),
        auth: authHandler(api, runtime, gate),
        peer: peerHandler(runtime),
        logger: logger.child({ component: "grpc" }),
      });
    } catch (error) {
      await runtime.stop(new RockraftError("RAFT_NODE_STOPPED", "the gRPC server did not start"));
      await storage.close();
      throw error;
    }
    runtime.attachServer(server);
    if (config.metrics !== undefined) {
      try {
        await exporter.listen(config.metrics.addr, config.metrics.path);
      } catch (error) {
        await server.shutdown(0);
        await runtime.stop(
          new RockraftError("RAFT_NODE_STOPPED", "the metrics endpoint did not start"),
        );
        await storage.close();
        throw error;
      }
    }
    // Everything started: only now does a new data directory become this node's.
    try {
      await storage.stampIdentity();
    } catch (error) {
      await server.shutdown(0);
      await runtime.stop(
        new RockraftError("RAFT_NODE_STOPPED", "the data directory could not be claimed"),
      );
      await storage.close();
      await exporter.close();
      throw error;
    }
    logger.info(
      { raftAddr: config.node.raftAddr, port: server.port, dataPath: config.storage.dataPath },
      "node started",
    );
    return new RaftNode(runtime, server, api, exporter, server.port, reloading);
  },
};
