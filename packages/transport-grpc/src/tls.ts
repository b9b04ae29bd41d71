import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity, createSecureContext } from "node:tls";
import {
  ChannelCredentials,
  ServerCredentials,
  experimental,
  type ChannelOptions,
} from "@grpc/grpc-js";
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
  /** With mutual TLS: calls without a token are made as the user their certificate names. */
  readonly clientCertAuth?: boolean | undefined;
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

/** What `[tls]`'s files hold. */
export interface TlsFileContents {
  /** The CA bundle (null: none, the system's roots). */
  readonly ca: Buffer | null;
  /** The certificate chain. */
  readonly cert: Buffer;
  /** Its private key. */
  readonly key: Buffer;
}

/**
 * The PEM files of `[tls]`, read into memory, and read again by `reload()` (certificate
 * rotation without a restart). It is a grpc-js certificate provider: the server's TLS
 * context follows it, so connections accepted after a reload present the new certificate
 * and verify clients against the new CA; channels dialled after it use them too
 * (`TlsDialer`, `generation`). Unreadable files, or a certificate and key that do not
 * belong together, are TRANSPORT_TLS errors naming the files; a failed reload keeps what
 * was loaded.
 */
export class CertificateFiles implements experimental.CertificateProvider {
  private files: { ca: Buffer | null; cert: Buffer; key: Buffer };
  private readonly caListeners = new Set<experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<experimental.IdentityCertificateUpdateListener>();
  /** One more at each reload that read different bytes. */
  generation = 0;

  constructor(private tlsOptions: TlsOptions) {
    this.files = load(tlsOptions);
  }

  /** The settings the files were last read from. */
  get tls(): TlsOptions {
    return this.tlsOptions;
  }

  /** The files' contents now. */
  current(): TlsFileContents {
    return this.files;
  }

  /**
   * Reads the files again (from `next`'s paths when given); returns whether anything
   * changed. Throws TRANSPORT_TLS, changing nothing, when they are unreadable or unusable.
   */
  reload(next: TlsOptions = this.tlsOptions): boolean {
    // The server was set up with, or without, a CA to verify clients with: that stays.
    if ((next.caFile === undefined) !== (this.tlsOptions.caFile === undefined)) {
      throw new TransportError(
        "TRANSPORT_TLS",
        `tls: ca_file was ${this.tlsOptions.caFile === undefined ? "added" : "removed"}: that needs a restart (the files may change, not whether there is a CA)`,
      );
    }
    const files = load(next);
    const peer = this.tlsOptions.peerCommonName;
    const name = commonName(files.cert);
    if (peer !== undefined && name !== peer) {
      throw new TransportError(
        "TRANSPORT_TLS",
        `tls: the certificate ${next.certFile} has common name ${JSON.stringify(name ?? null)}, not tls.peer_common_name ${JSON.stringify(peer)}: its peers would refuse it`,
      );
    }
    this.tlsOptions = next;
    const same = (a: Buffer | null, b: Buffer | null) =>
      a === null || b === null ? a === b : a.equals(b);
    const before = this.files;
    if (same(before.ca, files.ca) && same(before.cert, files.cert) && same(before.key, files.key))
      return false;
    this.files = files;
    this.generation++;
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.identityListeners) listener(this.identityUpdate());
    return true;
  }

  private caUpdate(): experimental.CaCertificateUpdate | null {
    return this.files.ca === null ? null : { caCertificate: this.files.ca };
  }

  private identityUpdate(): experimental.IdentityCertificateUpdate {
    return { certificate: this.files.cert, privateKey: this.files.key };
  }

  /** @internal grpc-js's provider interface. */
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    // On the next tick, as grpc-js's own providers do (it adds its watcher after this).
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener(this.caUpdate());
    });
  }

  /** @internal grpc-js's provider interface. */
  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }

  /** @internal grpc-js's provider interface. */
  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener(this.identityUpdate());
    });
  }

  /** @internal grpc-js's provider interface. */
  removeIdentityCertificateListener(
    listener: experimental.IdentityCertificateUpdateListener,
  ): void {
    this.identityListeners.delete(listener);
  }
}

/** The common name of the first certificate of a PEM chain (undefined when it has none). */
function commonName(chain: Buffer): string | undefined {
  try {
    const subject = new X509Certificate(chain).subject;
    return /^CN=(.*)$/m.exec(subject)?.[1];
  } catch {
    return undefined;
  }
}

/** Reads and checks `[tls]`'s files: TRANSPORT_TLS naming the file, or both, when unusable. */
function load(tls: TlsOptions): { ca: Buffer | null; cert: Buffer; key: Buffer } {
  const ca = tls.caFile === undefined ? null : read(tls.caFile, "CA file");
  if ((tls.requireClientCert ?? false) && ca === null) {
    throw new TransportError(
      "TRANSPORT_TLS",
      "tls: requireClientCert needs a caFile to verify client certificates",
    );
  }
  const cert = read(tls.certFile, "certificate");
  const key = read(tls.keyFile, "private key");
  try {
    createSecureContext({ cert, key, ...(ca === null ? {} : { ca }) });
  } catch (cause) {
    throw new TransportError(
      "TRANSPORT_TLS",
      `tls: the certificate ${tls.certFile} and the private key ${tls.keyFile} are unusable together: ${(cause as Error).message}`,
      { cause },
    );
  }
  return { ca, cert, key };
}

/** The server's credentials: plaintext without TLS; otherwise they follow `certificates`. */
export function serverCredentials(certificates: CertificateFiles | undefined): ServerCredentials {
  if (certificates === undefined) return ServerCredentials.createInsecure();
  const requireClientCert = certificates.tls.requireClientCert ?? false;
  // grpc-js passes its first argument on as the identity provider, its second as the CA's
  // (the reverse of its declared names): one object serves both here, and no CA is none.
  return experimental.createCertificateProviderServerCredentials(
    certificates,
    certificates.tls.caFile === undefined ? null : certificates,
    requireClientCert,
  );
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
 * errors naming the file), or as a node's `CertificateFiles` hold them now. For an address
 * whose host is an IP, the TLS server name (SNI) is not set to the IP (RFC 6066 forbids it,
 * and Node.js prints DEP0123 when it is): a placeholder name goes in its place, and the
 * server's certificate is still verified against the IP.
 */
export class TlsDialer {
  private readonly fixed:
    { ca: Buffer | null; key: Buffer | null; cert: Buffer | null } | undefined;

  constructor(
    /** A client's TLS files, read once; or a node's `CertificateFiles`, read as they are now. */
    private readonly source:
      | (Pick<TlsOptions, "caFile"> & Partial<Pick<TlsOptions, "certFile" | "keyFile">>)
      | CertificateFiles
      | undefined,
  ) {
    if (source === undefined || source instanceof CertificateFiles) return;
    const optional = (path: string | undefined, what: string) =>
      path === undefined ? null : read(path, what);
    this.fixed = {
      ca: optional(source.caFile, "CA file"),
      key: optional(source.keyFile, "private key"),
      cert: optional(source.certFile, "certificate"),
    };
    this.credentialsFor(undefined); // unusable files fail here, at construction
  }

  /** One more each time the files were read again with new contents (new channels use them). */
  get generation(): number {
    return this.source instanceof CertificateFiles ? this.source.generation : 0;
  }

  /** Credentials and options for a channel to `address` (`host:port`; any when undefined). */
  credentialsFor(address: string | undefined): DialSettings {
    const source = this.source;
    const tls = source instanceof CertificateFiles ? source.tls : source;
    const files = source instanceof CertificateFiles ? source.current() : this.fixed;
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
