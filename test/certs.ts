// Throwaway TLS credentials for the proofs, made with openssl for one run only.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl for this run only. */
export function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca-cert.pem',
    '-days',
    '2',
    '-subj',
    '/CN=qh-test-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  for (const [who, usage] of [
    ['server', 'serverAuth'],
    ['client', 'clientAuth'],
  ] as const) {
    writeFileSync(
      join(dir, `${who}.ext`),
      `subjectAltName=IP:127.0.0.1\nextendedKeyUsage=${usage}\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n`,
    );
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${who}-key.pem`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=qh-${who}`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca-cert.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-out',
      `${who}-cert.pem`,
      '-days',
      '2',
      '-extfile',
      `${who}.ext`,
    );
  }
}

/** Diffie-Hellman parameters for anonymous TLS (RFC 7919's ffdhe2048 group, in the PKCS#3 form GnuTLS reads). */
export function makeDhParams(file: string): void {
  execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'group:ffdhe2048', '-out', file], {
    stdio: 'pipe',
  });
}
