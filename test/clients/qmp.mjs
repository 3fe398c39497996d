// A small QMP client for the tests, run inside the container (its /run holds the guests' sockets).
// Usage: node qmp.mjs SOCKET 'JSON command' ...   → runs qmp_capabilities, then each command in turn, and prints
// every line QEMU sent (greeting, answers, events) as one JSON array on stdout; "connected" on stderr once QEMU
// has greeted. A command
// {"wait-event": "NAME", "then": {...}} waits for that event and then sends the command in "then";
// {"poll-migrate": "completed"} repeats query-migrate until its status is that value (or failed).
import { connect } from 'node:net';

const [path, ...commands] = process.argv.slice(2);
const queue = commands.map((c) => JSON.parse(c));
const seen = [];
let buf = '';
let pending = null;
const sock = connect(path);
const finish = (code) => {
  process.stdout.write(JSON.stringify(seen) + '\n');
  sock.destroy();
  process.exit(code);
};
setTimeout(() => finish(3), Number(process.env.QMP_TIMEOUT_MS ?? 120000));
sock.on('error', (e) => {
  seen.push({ error: e.message });
  finish(2);
});
sock.on('close', () => finish(pending ? 1 : 0));
const send = (cmd) => {
  pending = cmd;
  sock.write(JSON.stringify(cmd) + '\n');
};
const next = () => {
  const cmd = queue.shift();
  if (!cmd) return finish(0);
  if (cmd['wait-event']) pending = cmd;
  else if (cmd['poll-migrate']) {
    pending = cmd;
    sock.write('{"execute":"query-migrate"}\n');
  } else send(cmd);
};
sock.on('data', (d) => {
  buf += d.toString('utf8');
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (!line) continue;
    const msg = JSON.parse(line);
    seen.push(msg);
    if (msg.QMP) {
      process.stderr.write('connected\n');
      send({ execute: 'qmp_capabilities' });
    } else if (pending && pending['wait-event'] && msg.event === pending['wait-event']) {
      const then = pending.then;
      pending = null;
      if (then) send(then);
      else next();
    } else if (pending && pending['poll-migrate'] && 'return' in msg) {
      const status = msg.return.status;
      if (status === pending['poll-migrate'] || status === 'failed') next();
      else setTimeout(() => sock.write('{"execute":"query-migrate"}\n'), 200);
    } else if (pending && !pending['wait-event'] && !pending['poll-migrate'] && ('return' in msg || 'error' in msg))
      next();
  }
});
