import { readFileSync } from "node:fs";
import { isIP, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { TlsOptions } from "./tls.js";

/**
 * Why a connection to `address` fails, found by dialling it once the way gRPC does (TCP,
 * then TLS with the same files): gRPC itself reports only that it could not connect. For
 * TLS the reason names the check that failed (an untrusted certificate, a name mismatch,
 * the server refusing our certificate). Resolves within `timeoutMs`.
 */
export function probeConnection(
  address: string,
  tls: TlsOptions | undefined,
  timeoutMs = 2_000,
): Promise<string> {
  const match = /^\[?([^\]]+)\]?:(\d+)$/.exec(address);
  if (match === null) return Promise.resolve(`not a host:port address: ${address}`);
  const host = match[1]!;
  const port = Number(match[2]);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
    let socket: ReturnType<typeof tcpConnect>;
    if (tls === undefined) {
      socket = tcpConnect({ host, port }, () =>
        finish("TCP connects; the gRPC connection itself failed"),
      );
    } else {
      const read = (path: string | undefined) => {
        if (path === undefined) return undefined;
        try {
          return readFileSync(path);
        } catch {
          return undefined;
        }
      };
      const tlsSocket = tlsConnect({
        host,
        port,
        ca: read(tls.caFile),
        cert: read(tls.certFile),
        key: read(tls.keyFile),
        ALPNProtocols: ["h2"],
        ...(isIP(host) === 0 ? { servername: host } : {}),
      });
      socket = tlsSocket;
      tlsSocket.once("secureConnect", () => {
        // A server that refuses our certificate may only say so after the handshake.
        tlsSocket.once("data", () => finish("TLS connects; the gRPC connection itself failed"));
        tlsSocket.once("end", () =>
          finish(
            "TLS: the peer closed the connection after the handshake (it may refuse this node's certificate)",
          ),
        );
        setTimeout(() => finish("TLS connects; the gRPC connection itself failed"), 200);
      });
    }
    socket.once("error", (error: NodeJS.ErrnoException) => {
      const code = error.code === undefined ? "" : `${error.code}: `;
      finish(tls === undefined ? `${code}${error.message}` : `TLS or TCP: ${code}${error.message}`);
    });
  });
}
