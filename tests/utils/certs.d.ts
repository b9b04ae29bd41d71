/** A certificate, its PEM text and its private key's. */
export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
  /** Its serial number (hex), as `tls` reports a peer certificate's. */
  readonly serialNumber: string;
}

/** A new certificate authority. */
export function makeCa(name?: string): Issued;

/** A certificate `ca` issues to `commonName`, for 127.0.0.1 and localhost. */
export function issue(ca: Issued, commonName: string): Issued;

/** Writes `text` to `dir/name`; returns the path. */
export function writePem(dir: string, name: string, text: string): string;

/**
 * Writes `ca`'s certificate and `issued`'s certificate and key as PEM files in `dir`
 * (ca.pem, NAME.pem, NAME.key, NAME "node" by default); returns their paths, in the shape a
 * TLS option takes.
 */
export function writeTlsFiles(
  dir: string,
  ca: Issued,
  issued: Issued,
  name?: string,
): { caFile: string; certFile: string; keyFile: string };

/**
 * Throwaway PEM files in `dir`: a CA, a node certificate (common name "node") and a client
 * certificate ("client") it signed, and one from a stranger CA.
 */
export function makeCertificates(dir: string): {
  caFile: string;
  certFile: string;
  keyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  strangerCertFile: string;
  strangerKeyFile: string;
};

/**
 * A TLS handshake with the server at `address`, trusting `ca` and presenting `client`: the
 * serial number of the certificate the server presents, or why it refused the client's.
 */
export function handshake(
  address: string,
  ca: string,
  client: { certPem: string; keyPem: string },
): Promise<{ serial: string } | { refused: string }>;

/** A certificate's serial number as `handshake` reports it. */
export function serialOf(issued: Issued): string;
