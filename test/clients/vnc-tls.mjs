// A VNC client for the tests that goes as far as a client without a certificate or a password can: the RFB
// 3.8 greeting, the VeNCrypt security type (19) and its first subtype, the TLS handshake with no client
// certificate (anonymous Diffie-Hellman for the TLS*None subtypes), then the server's SecurityResult.
// Usage: node vnc-tls.mjs HOST PORT   → one JSON line on stdout:
//   { types, subtypes, subtype, tls: "ok" | "failed: …", securityResult: 0 | 1 | null }
// SecurityResult 0 means the server let this client in.
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

const [host, port] = process.argv.slice(2);
const out = { types: [], subtypes: [], subtype: null, tls: null, securityResult: null };
const finish = (code) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
};
setTimeout(() => {
  out.tls ??= 'failed: no answer within 20 s';
  finish(3);
}, 20_000);

/** Reads exactly n bytes at a time from a stream. */
function reader(stream) {
  let buf = Buffer.alloc(0);
  let want = null;
  const pump = () => {
    if (want && buf.length >= want.n) {
      const { n, resolve } = want;
      want = null;
      const chunk = buf.subarray(0, n);
      buf = buf.subarray(n);
      resolve(chunk);
    }
  };
  stream.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    pump();
  });
  return {
    read: (n) =>
      new Promise((resolve, reject) => {
        want = { n, resolve };
        stream.once('error', reject);
        stream.once('close', () => reject(new Error('connection closed')));
        pump();
      }),
    detach: () => {
      stream.removeAllListeners('data');
      return buf;
    },
  };
}

const sock = connect(Number(port), host);
sock.on('error', (e) => {
  out.tls ??= `failed: ${e.message}`;
  finish(2);
});
sock.once('connect', async () => {
  try {
    const r = reader(sock);
    const version = (await r.read(12)).toString();
    if (!version.startsWith('RFB 003.')) throw new Error(`not RFB: ${JSON.stringify(version)}`);
    sock.write('RFB 003.008\n');
    const n = (await r.read(1))[0];
    out.types = [...(await r.read(n))];
    if (!out.types.includes(19)) return finish(1);
    sock.write(Buffer.from([19]));
    await r.read(2);
    sock.write(Buffer.from([0, 2]));
    if ((await r.read(1))[0] !== 0) throw new Error('VeNCrypt version refused');
    const count = (await r.read(1))[0];
    const subs = await r.read(4 * count);
    for (let i = 0; i < count; i++) out.subtypes.push(subs.readUInt32BE(4 * i));
    out.subtype = out.subtypes[0];
    const choice = Buffer.alloc(4);
    choice.writeUInt32BE(out.subtype);
    sock.write(choice);
    if ((await r.read(1))[0] !== 1) throw new Error('subtype refused');
    r.detach();
    // 257 TLSNone (anonymous credentials), 260 X509None (a server certificate).
    const anonymous = out.subtype === 257;
    const tls = tlsConnect({
      socket: sock,
      rejectUnauthorized: false,
      maxVersion: anonymous ? 'TLSv1.2' : undefined,
      ciphers: anonymous ? 'aNULL:@SECLEVEL=0' : undefined,
    });
    tls.on('error', (e) => {
      out.tls ??= `failed: ${e.message}`;
      finish(1);
    });
    tls.once('secureConnect', async () => {
      out.tls = 'ok';
      try {
        out.securityResult = (await reader(tls).read(4)).readUInt32BE(0);
      } catch (e) {
        out.tls = `ok, then: ${e.message}`;
      }
      finish(0);
    });
  } catch (e) {
    out.tls ??= `failed: ${e.message}`;
    finish(1);
  }
});
