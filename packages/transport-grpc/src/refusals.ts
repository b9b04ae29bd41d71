import type { Socket } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import type { Server } from "@grpc/grpc-js";
import type { TransportLogger } from "./handlers.js";

/** How often one remote address's refused handshakes are logged, at most. */
const LOG_EVERY_MS = 30_000;

/**
 * Logs each TLS handshake the server refuses (a client or peer certificate from another CA,
 * no certificate where one is required, a plaintext client), at WARN with the remote address
 * and the check that failed, at most once per remote address every 30 s with the number of
 * refusals since. grpc-js handles these handshakes itself and logs nothing; it does not expose
 * its HTTP/2 servers either, so this reads its private `http2Servers` map: the one place that
 * does (with Node's private `_parent`, the TCP socket under a TLS socket, for the remote
 * address of a refused certificate), and `test/tls.test.ts` fails if either changes. Returns false when the
 * map is not there (the server then runs, without these log lines).
 */
export function logRefusedHandshakes(server: Server, logger: TransportLogger): boolean {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return false;
  const seen = new Map<string, { loggedAt: number; unlogged: number }>();
  for (const http2Server of servers.keys() as IterableIterator<unknown>) {
    const tls = http2Server as Partial<TlsServer>;
    if (typeof tls.setSecureContext !== "function" || typeof tls.on !== "function") continue;
    // Node destroys a socket whose certificate fails verification before it reports the
    // failure, and a destroyed socket no longer knows its peer: ask the TCP socket at once,
    // so that it keeps the answer.
    tls.prependListener!("connection", (raw: Socket) => void raw.remoteAddress);
    tls.on("tlsClientError", (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      const parent = (socket as unknown as { _parent?: Socket })._parent;
      const remote = parent?.remoteAddress ?? socket.remoteAddress ?? "an unknown address";
      const now = performance.now();
      let entry = seen.get(remote);
      if (entry === undefined) {
        if (seen.size > 1_000) seen.clear(); // a scan from many addresses: bound the memory
        entry = { loggedAt: -Infinity, unlogged: 0 };
        seen.set(remote, entry);
      }
      entry.unlogged++;
      if (now - entry.loggedAt < LOG_EVERY_MS) return;
      entry.loggedAt = now;
      const refusals = entry.unlogged;
      entry.unlogged = 0;
      // Node reports a refused client certificate as a hang-up; the check that failed is
      // kept on the socket.
      const reason =
        socket.authorizationError != null
          ? `its certificate failed verification: ${String(socket.authorizationError)}`
          : `${error.code === undefined ? "" : `${error.code}: `}${error.message}`;
      logger.warn(
        { remote, port: socket.remotePort, reason, refusals },
        `refused a TLS connection from ${remote}: ${reason}`,
      );
    });
  }
  return true;
}
