import { readFileSync } from "node:fs";
import { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";
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

/**
 * Credentials for dialling a node: plaintext without `tls`; otherwise TLS verified against
 * `caFile` (system roots when absent), presenting `certFile`/`keyFile` when given (mutual
 * TLS). Unreadable or unusable files are TRANSPORT_TLS errors naming the file.
 */
export function channelCredentials(
  tls: (Pick<TlsOptions, "caFile"> & Partial<Pick<TlsOptions, "certFile" | "keyFile">>) | undefined,
): ChannelCredentials {
  if (tls === undefined) return ChannelCredentials.createInsecure();
  const optional = (path: string | undefined, what: string) =>
    path === undefined ? null : read(path, what);
  const ca = optional(tls.caFile, "CA file");
  try {
    return ChannelCredentials.createSsl(
      ca,
      optional(tls.keyFile, "private key"),
      optional(tls.certFile, "certificate"),
    );
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
