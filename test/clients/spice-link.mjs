// A minimal SPICE client: only the link stage of the main channel, as spice-gtk's spice-channel.c speaks it and
// spice-server's reds.c answers. TLS to the tls-port, SpiceLinkHeader ("REDQ", 2.2) + SpiceLinkMess without
// capabilities (so the server expects the legacy ticket), SpiceLinkReply with the server's RSA key, the ticket
// (password + NUL) encrypted with RSA-OAEP/SHA-1, then the 4-byte link result: 0 is OK, 7 permission denied.
// Usage: node spice-link.mjs HOST PORT PASSWORD   → prints {"linkError":N,"result":N} on stdout.
import { constants, publicEncrypt } from 'node:crypto';
import { connect } from 'node:tls';

const [host, port, password] = process.argv.slice(2);
const MAGIC = Buffer.from('REDQ', 'latin1');
const CHANNEL_MAIN = 1;
const PUBKEY_BYTES = 162;

const mess = Buffer.alloc(18);
mess.writeUInt32LE(0, 0); // connection_id: a new session
mess.writeUInt8(CHANNEL_MAIN, 4);
mess.writeUInt8(0, 5); // channel_id
mess.writeUInt32LE(0, 6); // num_common_caps
mess.writeUInt32LE(0, 10); // num_channel_caps
mess.writeUInt32LE(18, 14); // caps_offset
const header = Buffer.alloc(16);
MAGIC.copy(header, 0);
header.writeUInt32LE(2, 4);
header.writeUInt32LE(2, 8);
header.writeUInt32LE(mess.length, 12);

const sock = connect({ host, port: Number(port), rejectUnauthorized: false });
let buf = Buffer.alloc(0);
let stage = 'reply';
let linkError = -1;
const done = (out) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  sock.destroy();
  process.exit(0);
};
sock.setTimeout(15000, () => done({ error: 'timeout', stage }));
sock.on('error', (e) => done({ error: e.message, stage }));
sock.on('close', () => done({ error: 'closed', stage, linkError }));
sock.on('secureConnect', () => sock.write(Buffer.concat([header, mess])));
sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  if (stage === 'reply') {
    if (buf.length < 16) return;
    if (!buf.subarray(0, 4).equals(MAGIC)) return done({ error: 'bad magic', stage });
    const size = buf.readUInt32LE(12);
    if (buf.length < 16 + size) return;
    const reply = buf.subarray(16, 16 + size);
    buf = buf.subarray(16 + size);
    linkError = reply.readUInt32LE(0);
    if (linkError !== 0) return done({ linkError });
    const key = reply.subarray(4, 4 + PUBKEY_BYTES);
    const ticket = publicEncrypt(
      { key, format: 'der', type: 'spki', padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
      Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]),
    );
    stage = 'result';
    sock.write(ticket);
  }
  if (stage === 'result' && buf.length >= 4) done({ linkError, result: buf.readUInt32LE(0) });
});
