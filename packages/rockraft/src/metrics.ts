import { RockraftError } from "./errors.js";
import { createServer, type Server } from "node:http";
import { parseAddress } from "@rockraft/config";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { NodeMetrics } from "./wait.js";

const ROLES = ["follower", "pre-candidate", "candidate", "leader", "removed", "stopped"] as const;

/** The node's metrics in Prometheus format (prom-client), optionally served over HTTP. */
export class NodeMetricsExporter {
  readonly registry = new Registry();
  readonly proposals: Counter;
  readonly snapshotsTaken: Counter;
  readonly snapshotsInstalled: Counter;
  readonly snapshotsSent: Counter;
  readonly applyLatency: Histogram;
  private readonly role: Gauge;
  private readonly term: Gauge;
  private readonly commitIndex: Gauge;
  private readonly appliedIndex: Gauge;
  private readonly lastLogIndex: Gauge;
  private readonly replicationLag: Gauge;
  private readonly openSessions: Gauge;
  private readonly configGeneration: Gauge;
  private server: Server | undefined;
  private boundPort: number | undefined;
  private route: { path: string } | undefined;
  private stopped = false;

  constructor(nodeId: number) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node_id: String(nodeId) });
    this.role = new Gauge({
      name: "rockraft_role",
      help: "1 for this node's current role",
      labelNames: ["role"],
      registers,
    });
    this.term = new Gauge({ name: "rockraft_term", help: "Current term", registers });
    this.commitIndex = new Gauge({
      name: "rockraft_commit_index",
      help: "Commit index",
      registers,
    });
    this.appliedIndex = new Gauge({
      name: "rockraft_applied_index",
      help: "Last applied index",
      registers,
    });
    this.lastLogIndex = new Gauge({
      name: "rockraft_last_log_index",
      help: "Last log index",
      registers,
    });
    this.replicationLag = new Gauge({
      name: "rockraft_replication_lag_entries",
      help: "On the leader: entries each follower lacks",
      labelNames: ["peer"],
      registers,
    });
    this.openSessions = new Gauge({
      name: "rockraft_sessions_open",
      help: "Client sessions open in this node's applied state",
      registers,
    });
    this.configGeneration = new Gauge({
      name: "rockraft_config_generation",
      help: "How many configs the node has run with: 1, then one more at each reload",
      registers,
    });
    this.proposals = new Counter({
      name: "rockraft_proposals_total",
      help: "Writes proposed through this node (as leader, or forwarded to the leader)",
      registers,
    });
    this.snapshotsTaken = new Counter({
      name: "rockraft_snapshots_taken_total",
      help: "Snapshots taken",
      registers,
    });
    this.snapshotsInstalled = new Counter({
      name: "rockraft_snapshots_installed_total",
      help: "Snapshots installed from a leader",
      registers,
    });
    this.snapshotsSent = new Counter({
      name: "rockraft_snapshots_sent_total",
      help: "Snapshots sent to followers",
      registers,
    });
    this.applyLatency = new Histogram({
      name: "rockraft_apply_latency_seconds",
      help: "From proposal to applied, on the node that took the write",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
  }

  /** Where the gauges' values come from; read at each scrape, not on every change. */
  source: (() => NodeMetrics) | undefined;

  /** The registry's text, with the gauges brought up to date from `source` first. */
  async scrape(): Promise<string> {
    if (this.source !== undefined) this.update(this.source());
    return this.registry.metrics();
  }

  update(m: NodeMetrics): void {
    for (const role of ROLES) this.role.set({ role }, m.state === role ? 1 : 0);
    this.term.set(m.currentTerm);
    this.commitIndex.set(m.commitIndex);
    this.appliedIndex.set(m.lastApplied?.index ?? 0);
    this.lastLogIndex.set(m.lastLogIndex);
    this.openSessions.set(m.openSessions);
    this.configGeneration.set(m.configGeneration);
    this.replicationLag.reset();
    for (const progress of m.replication) {
      if (progress.nodeId !== m.nodeId)
        this.replicationLag.set(
          { peer: String(progress.nodeId) },
          Math.max(0, m.lastLogIndex - progress.matchIndex),
        );
    }
  }

  /** Serves `path` on `addr` (`host:port`); resolves with the bound port. */
  async listen(addr: string, path: string): Promise<number> {
    const bound = await this.bind(addr, path);
    await bound.activate();
    return bound.port;
  }

  /** The port the endpoint is served on (undefined: none). */
  get port(): number | undefined {
    return this.boundPort;
  }

  /**
   * Binds `addr` to serve `path` there, without leaving the current endpoint yet:
   * `activate()` closes the current one and serves from the new one, `discard()` closes
   * the new one (a reload that failed later changes nothing). A port in use, or an address
   * that cannot be bound, is RAFT_INVALID_ARGUMENT naming it.
   */
  async bind(
    addr: string,
    path: string,
  ): Promise<{ port: number; activate(): Promise<void>; discard(): Promise<void> }> {
    const parsed = parseAddress(addr);
    if (parsed === undefined) throw new RangeError(`metrics address ${addr}: expected host:port`);
    const route = { path };
    const server = createServer((request, response) => {
      if (request.url !== route.path) {
        response.writeHead(404).end();
        return;
      }
      this.scrape().then(
        (body) => response.writeHead(200, { "content-type": this.registry.contentType }).end(body),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
    });
    const host = parsed.host.replace(/^\[|\]$/g, "");
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) => {
        reject(
          new RockraftError(
            "RAFT_INVALID_ARGUMENT",
            error.code === "EADDRINUSE"
              ? `metrics.addr: ${addr} is already in use by another process`
              : `metrics.addr: cannot listen on ${addr}: ${error.message}`,
            { cause: error },
          ),
        );
      });
      server.listen(parsed.port, host, () => resolve());
    });
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : parsed.port;
    return {
      port,
      activate: async () => {
        await this.close();
        if (this.stopped) {
          // The node shut down while this endpoint was being bound: it serves nothing.
          await new Promise<void>((resolve) => server.close(() => resolve()));
          return;
        }
        this.server = server;
        this.boundPort = port;
        this.route = route;
      },
      discard: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  /** Serves the metrics at `path` from now on, on the same address. */
  setPath(path: string): void {
    if (this.route !== undefined) this.route.path = path;
  }

  /** Closes the endpoint for good (the node shut down): a later `activate` serves nothing. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.close();
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    this.boundPort = undefined;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
