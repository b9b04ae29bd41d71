import { writeFileSync } from "node:fs";
import { join } from "node:path";
import forge from "node-forge";

interface Issued {
  readonly cert: forge.pki.Certificate;
  readonly keys: forge.pki.rsa.KeyPair;
}

function certificate(commonName: string, issuer: Issued | undefined, isCa: boolean): Issued {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = String(Math.floor(Math.random() * 1e9) + 1);
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
  return { cert, keys };
}

/**
 * Throwaway PEM files in `dir`: a CA, a node certificate (common name "node") and a client
 * certificate ("client") it signed, and one from a stranger CA.
 */
export function makeCertificates(dir: string) {
  const ca = certificate("rockraft test CA", undefined, true);
  const node = certificate("node", ca, false);
  const client = certificate("client", ca, false);
  const strangerCa = certificate("stranger CA", undefined, true);
  const stranger = certificate("stranger", strangerCa, false);
  const write = (name: string, pem: string) => {
    const path = join(dir, name);
    writeFileSync(path, pem);
    return path;
  };
  return {
    caFile: write("ca.pem", forge.pki.certificateToPem(ca.cert)),
    certFile: write("node.pem", forge.pki.certificateToPem(node.cert)),
    keyFile: write("node.key", forge.pki.privateKeyToPem(node.keys.privateKey)),
    clientCertFile: write("client.pem", forge.pki.certificateToPem(client.cert)),
    clientKeyFile: write("client.key", forge.pki.privateKeyToPem(client.keys.privateKey)),
    strangerCertFile: write("stranger.pem", forge.pki.certificateToPem(stranger.cert)),
    strangerKeyFile: write("stranger.key", forge.pki.privateKeyToPem(stranger.keys.privateKey)),
  };
}
