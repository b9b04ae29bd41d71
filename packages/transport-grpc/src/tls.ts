import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import { ChannelCredentials, ServerCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { TransportError } from "./errors.js";

/** TLS settings (the `[tls]` table of `@rockraft/config`): PEM file paths. */
export interface TlsOptions {
  /** CA bundle used to verify the other side; system roots when absent. */
  readonly caFile?: string | undefined;
  /** This node's certificate chain, presented as server and as client. */
  readonly certFile: string;
  /** This node's private key (PEM). */
  readonly keyFile: string;
  /** Mutual TLS: refuse clients without a certificate signed by `caFile`. */
  readonly requireClientCert?: boolean;
  /**
   * With mutual TLS: the common name of every peer's certificate. The peer service refuses
   * any other certificate (a client's from the same CA cannot act as a peer).
   */
  readonly peerCommonName?: string | undefined;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new TransportError(
      "TRANSPORT_TLS",
      `tls: cannot read the ${what} ${path}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}

export function serverCredentials(tls: TlsOptions | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  const ca = tls.caFile === undefined ? null : read(tls.caFile, "CA file");
  const requireClientCert = tls.requireClientCert ?? false;
  if (requireClientCert && ca === null) {
    throw new TransportError(
      "TRANSPORT_TLS",
      "tls: requireClientCert needs a caFile to verify client certificates",
    );
  }
  try {
    return ServerCredentials.createSsl(
      ca,
      [
        {
          cert_chain: read(tls.certFile, "certificate"),
          private_key: read(tls.keyFile, "private key"),
        },
      ],
      requireClientCert,
    );
  } catch (cause) {
    if (cause instanceof TransportError) throw cause;
    throw new TransportError(
      "TRANSPORT_TLS",
      `tls: the certificate ${tls.certFile} and the private key ${tls.keyFile} are unusable together: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** What a channel to one address needs: its credentials and channel options. */
export interface DialSettings {
  readonly credentials: ChannelCredentials;
  readonly options: ChannelOptions;
}

/**
 * Builds the credentials of channels to nodes: plaintext without `tls`; otherwise TLS
 * verified against `caFile` (system roots when absent), presenting `certFile`/`keyFile` when
 * given (mutual TLS), the files read once (unreadable or unusable ones are TRANSPORT_TLS
 * errors naming the file). For an address
 * whose host is an IP, the TLS server name (SNI) is not set to the IP (RFC 6066 forbids it,
 * and Node.js prints DEP0123 when it is): a placeholder name goes in its place, and the
 * server's certificate is still verified against the IP.
 */
export class TlsDialer {
  private readonly files:
    { ca: Buffer | null; key: Buffer | null; cert: Buffer | null } | undefined;

  constructor(
    private readonly tls:
      (Pick<TlsOptions, "caFile"> & Partial<Pick<TlsOptions, "certFile" | "keyFile">>) | undefined,
  ) {
    if (tls === undefined) return;
    const optional = (path: string | undefined, what: string) =>
      path === undefined ? null : read(path, what);
    this.files = {
      ca: optional(tls.caFile, "CA file"),
      key: optional(tls.keyFile, "private key"),
      cert: optional(tls.certFile, "certificate"),
    };
    this.credentialsFor(undefined); // unusable files fail here, at construction
  }

  /** Credentials and options for a channel to `address` (`host:port`; any when undefined). */
  credentialsFor(address: string | undefined): DialSettings {
    const tls = this.tls;
    const files = this.files;
    if (tls === undefined || files === undefined)
      return { credentials: ChannelCredentials.createInsecure(), options: {} };
    const host = address === undefined ? undefined : /^\[?([^\]]+)\]?:\d+$/.exec(address)?.[1];
    const ip = host !== undefined && isIP(host) !== 0 ? host : undefined;
    try {
      const credentials = ChannelCredentials.createSsl(
        files.ca,
        files.key,
        files.cert,
        ip === undefined
          ? {}
          : { checkServerIdentity: (_name, cert) => checkServerIdentity(ip, cert) },
      );
      return {
        credentials,
        options: ip === undefined ? {} : { "grpc.ssl_target_name_override": IP_TARGET_NAME },
      };
    } catch (cause) {
      if (cause instanceof TransportError) throw cause;
      throw new TransportError(
        "TRANSPORT_TLS",
        tls.certFile === undefined || tls.keyFile === undefined
          ? `tls: unusable client credentials (CA file ${tls.caFile ?? "none"}): ${(cause as Error).message}`
          : `tls: the certificate ${tls.certFile} and the private key ${tls.keyFile} are unusable together: ${(cause as Error).message}`,
        { cause },
      );
    }
  }
}

/** The TLS server name sent to an IP address in its place (a reserved, never-resolved name). */
const IP_TARGET_NAME = "rockraft-node.invalid";
