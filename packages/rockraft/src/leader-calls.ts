// Membership calls a follower forwards to the leader, over gRPC (one RockraftClient per
// leader address), and how their errors are reported here.
import type { Config } from "@rockraft/config";
import {
  RockraftClient,
  RockraftClientError,
  TransportError,
  type CertificateFiles,
  type ClientTokenSource,
} from "@rockraft/transport-grpc";
import { RockraftError } from "./errors.js";
import { maxMessageBytesOf } from "./options.js";
import type { LeaderCalls } from "./seams.js";

/**
 * A call forwarded to the leader (as a RockraftClient call) failed: the error to report
 * here. One that may have reached the leader without an answer is RAFT_TIMEOUT with an
 * unknown outcome (the change may be made), never a code that invites a blind retry.
 */
export function forwardedError(error: unknown): Error {
  if (error instanceof TransportError) {
    return new RockraftError("RAFT_NO_LEADER", `cannot reach the leader: ${error.message}`, {
      cause: error,
    });
  }
  if (!(error instanceof RockraftClientError)) return error as Error;
  const code =
    error.code === "DEADLINE_EXCEEDED" || error.outcomeUnknown
      ? "RAFT_TIMEOUT"
      : error.code === "INVALID_ARGUMENT"
        ? "RAFT_INVALID_ARGUMENT"
        : error.code === "UNAUTHENTICATED"
          ? "RAFT_UNAUTHENTICATED"
          : error.code === "PERMISSION_DENIED"
            ? "RAFT_PERMISSION_DENIED"
            : error.code === "FAILED_PRECONDITION"
              ? error.serverCode === "RAFT_REQUEST_REFUSED"
                ? "RAFT_REQUEST_REFUSED"
                : "RAFT_NOT_INITIALIZED"
              : error.serverCode === "RAFT_PROPOSAL_DROPPED"
                ? "RAFT_PROPOSAL_DROPPED"
                : "RAFT_NO_LEADER";
  return new RockraftError(code, `forwarded to the leader: ${error.message}`, {
    outcomeUnknown: error.outcomeUnknown,
    cause: error,
  });
}

/**
 * Forwards over gRPC with the node's TLS settings and, while authentication is on, a token
 * of the node's own (`nodeToken`): a forwarded call was checked by this node already.
 */
export class GrpcLeaderCalls implements LeaderCalls {
  private readonly clients = new Map<string, RockraftClient>();

  /** The certificates' generation the clients were made with (a rotation makes new ones). */
  private generation = 0;

  constructor(
    private readonly config: Config,
    private readonly certificates: CertificateFiles | undefined,
    private readonly nodeToken: ClientTokenSource["token"],
  ) {}

  // Through a promise: a client that cannot be made (TLS files being rewritten) fails the
  // call as a RockraftError too.
  addLearner: LeaderCalls["addLearner"] = (addr, member, timeoutMs) =>
    Promise.resolve()
      .then(() => this.client(addr).addLearner(member, { timeoutMs }))
      .catch(rethrowForwarded);

  changeMembership: LeaderCalls["changeMembership"] = (addr, target, timeoutMs) =>
    Promise.resolve()
      .then(() => this.client(addr).changeMembership(target, { timeoutMs }))
      .catch(rethrowForwarded);

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private client(addr: string): RockraftClient {
    const generation = this.certificates?.generation ?? 0;
    if (generation !== this.generation) {
      // Connections made from now on present the rotated certificate; calls in flight on
      // the old clients finish (a membership call waits at most its deadline) first.
      const retired = [...this.clients.values()];
      this.clients.clear();
      setTimeout(() => {
        for (const client of retired) client.close();
      }, RETIRE_AFTER_MS).unref();
      this.generation = generation;
    }
    let client = this.clients.get(addr);
    if (client === undefined) {
      client = new RockraftClient({
        endpoints: [addr],
        maxMessageBytes: maxMessageBytesOf(this.config),
        auth: { token: this.nodeToken },
        // The files as the node holds them (checked, and rotated by reloads).
        ...(this.certificates === undefined ? {} : { tls: this.certificates }),
      });
      this.clients.set(addr, client);
    }
    return client;
  }
}

/** How long a leader client replaced by a certificate rotation lives on for its calls. */
const RETIRE_AFTER_MS = 60_000;

function rethrowForwarded(error: unknown): never {
  throw forwardedError(error);
}
