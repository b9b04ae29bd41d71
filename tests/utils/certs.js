// Throwaway X.509 certificates for tests (node-forge: Node.js itself cannot make them): a CA,
// certificates it issues for 127.0.0.1 and localhost, written as PEM files.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "node:tls";
import forge from "node-forge";

let serial = 1;

/** A certificate and its keys; `issuer` signs it (itself when absent). */
function certificate(commonName, issuer, isCa) {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = `${Date.now().toString(16)}${(serial++).toString(16).padStart(4, "0")}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const subject = [{ name: "commonName", value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(issuer === undefined ? subject : issuer.cert.subject.attributes);
  cert.setExtensions(
    isCa
      ? [
          { name: "basicConstraints", cA: true },
          { name: "keyUsage", keyCertSign: true, cRLSign: true },
        ]
      : [
          { name: "basicConstraints", cA: false },
          { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
          { name: "extKeyUsage", serverAuth: true, clientAuth: true },
          {
            name: "subjectAltName",
            altNames: [
              { type: 7, ip: "127.0.0.1" },
              { type: 2, value: "localhost" },
            ],
          },
        ],
  );
  cert.sign((issuer ?? { keys }).keys.privateKey, forge.md.sha256.create());
  return {
    cert,
    keys,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
    serialNumber: cert.serialNumber,
  };
}

/** A new certificate authority. */
export function makeCa(name = "rockraft test CA") {
  return certificate(name, undefined, true);
}

/** A certificate `ca` issues to `commonName`, for 127.0.0.1 and localhost. */
export function issue(ca, commonName) {
  return certificate(commonName, ca, false);
}

/** Writes `text` to `dir/name`; returns the path. */
export function writePem(dir, name, text) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/**
 * Writes `ca`'s certificate and `issued`'s certificate and key as PEM files in `dir`
 * (ca.pem, NAME.pem, NAME.key); returns their paths, in the shape a TLS option takes.
 */
export function writeTlsFiles(dir, ca, issued, name = "node") {
  return {
    caFile: writePem(dir, "ca.pem", ca.certPem),
    certFile: writePem(dir, `${name}.pem`, issued.certPem),
    keyFile: writePem(dir, `${name}.key`, issued.keyPem),
  };
}

/**
 * Throwaway PEM files in `dir`: a CA, a node certificate (common name "node") and a client
 * certificate ("client") it signed, and one from a stranger CA.
 */
export function makeCertificates(dir) {
  const ca = makeCa();
  const node = issue(ca, "node");
  const client = issue(ca, "client");
  const stranger = issue(makeCa("stranger CA"), "stranger");
  return {
    ...writeTlsFiles(dir, ca, node),
    clientCertFile: writePem(dir, "client.pem", client.certPem),
    clientKeyFile: writePem(dir, "client.key", client.keyPem),
    strangerCertFile: writePem(dir, "stranger.pem", stranger.certPem),
    strangerKeyFile: writePem(dir, "stranger.key", stranger.keyPem),
  };
}

/**
 * A TLS handshake with the server at `address` (`host:port`), trusting `ca` and presenting
 * `client` (PEM): the serial number of the certificate the server presents (hex, without
 * leading zeros), or why the server refused the client's. TLS 1.3 tells of a refused
 * client certificate only after the handshake: the server's alert, or its closing the
 * connection; an accepted one gets the server's HTTP/2 preface.
 */
export function handshake(address, ca, client) {
  const [host, port] = address.split(":");
  return new Promise((resolve) => {
    const socket = connect({
      host,
      port: Number(port),
      ca,
      cert: client.certPem,
      key: client.keyPem,
      ALPNProtocols: ["h2"],
      servername: "localhost",
    });
    socket.once("secureConnect", () => {
      const serial = socket.getPeerCertificate().serialNumber.replace(/^0+/, "");
      socket.once("data", () => {
        socket.destroy();
        resolve({ serial });
      });
      socket.once("close", () => resolve({ refused: "the server closed the connection" }));
    });
    socket.once("error", (error) => resolve({ refused: error.message }));
  });
}

/** A certificate's serial number as `handshake` reports it. */
export function serialOf(issued) {
  return issued.serialNumber.toUpperCase().replace(/^0+/, "");
}
