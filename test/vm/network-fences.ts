// Runtime isolation that needs a real kernel with cgroup v2 (IPAddressDeny= is a BPF program on the unit's
// cgroup) and AppArmor enforcing: one TCG VM boots real systemd, `qemu-harden apply` installs a
// bundle with a user-networked guest and a SPICE guest, and probes run with each guest unit's own settings;
// `start` restarts a guest whose AppArmor profile was written after its QEMU started. A part of the shared AppArmor
// VM (test/apparmor-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BOOT_MARKER, writeBootDisk } from '../bootdisk.js';
import { BIN, generateBundle, REPO } from '../helpers.js';
import { execStartBlock } from '../unitfile.js';
import { assertProofDone, reported, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const PASSWORD = 'qh-vm-spice-ticket';
const HOST_SERVICE_PORT = 8089;

/**
 * A copy of a guest's unit that keeps every setting but runs a probe instead of QEMU: same user, cgroup
 * settings, namespaces and filters. The AppArmor profile (QEMU's alone) and the FIFO helpers are left out.
 */
function probeUnit(unit: string, probes: string): string {
  const text = unit.replace(execStartBlock(unit), `ExecStart=/usr/bin/python3 /proof/probe.py ${probes}`);
  return text
    .split('\n')
    .filter(
      (l) => !/^(ExecStartPre|ExecStop|AppArmorProfile|Restart|RestartSec|Type|WantedBy)=/.test(l) && l !== '[Install]',
    )
    .map((l) => (l === '[Service]' ? '[Service]\nType=oneshot' : l))
    .join('\n');
}

const PROBE_PY = `import errno, socket, sys
for spec in sys.argv[1:]:
    name, host, port = spec.split('/')
    try:
        s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((host, int(port)))
        result = 'ok'
    except OSError as e:
        result = e.__class__.__name__ if e.errno is None else errno.errorcode[e.errno]
    print('PROBE %s=%s' % (name, result), flush=True)
`;

const PROOF = `cd /
node ${BIN.replace(REPO, '/qh')} apply /bundle --yes > /run/apply.log 2>&1
r apply_first_exit $?
grep 'check TLS keys' /run/apply.log | sed 's/^ */RESULT apply_first_check=/'
chown qemu-spice:qemu-spice /etc/qh-tls/spice/server-key.pem
chmod 0400 /etc/qh-tls/spice/server-key.pem
node ${BIN.replace(REPO, '/qh')} apply /bundle --yes > /run/apply2.log 2>&1
r apply_exit $?
grep 'check TLS keys' /run/apply2.log | sed 's/^ */RESULT apply_check=/'
python3 -m http.server --bind 127.0.0.1 ${HOST_SERVICE_PORT} > /dev/null 2>&1 &
python3 -m http.server --bind ::1 ${HOST_SERVICE_PORT} > /dev/null 2>&1 &
# Until both listen (python starts slowly under TCG).
both_listen() { [ "$(ss -Hltn "sport = :${HOST_SERVICE_PORT}" | wc -l)" -ge 2 ]; }
wait_until 600 both_listen

systemctl start qh-probe-net.service
journalctl -b -u qh-probe-net.service --no-pager -o cat | grep '^PROBE ' | sed 's/^PROBE /RESULT /'
systemd-run --quiet --wait --pipe -p User=qemu-net /usr/bin/python3 /proof/probe.py loopback_undenied/127.0.0.1/${HOST_SERVICE_PORT} | sed 's/^PROBE /RESULT /'

for g in net spice; do
  systemctl start qemu-$g.service
  wait_until 600 grep -qs '${BOOT_MARKER}' /var/log/qemu-harden/$g/serial.log
  grep -q '${BOOT_MARKER}' /var/log/qemu-harden/$g/serial.log && r "$g.marker" yes || r "$g.marker" no
  r "$g.label" "$(cat /proc/$(systemctl show -p MainPID --value qemu-$g.service)/attr/current)"
done
r spice_right "$(node /qh/test/clients/spice-link.mjs 127.0.0.1 5930 ${PASSWORD})"
r spice_wrong "$(node /qh/test/clients/spice-link.mjs 127.0.0.1 5930 guess)"
# spice's profile written after its QEMU started, and loaded, as apply does with a changed one: start names spice
# as running an older profile (net, started by hand, as not enabled), restarts spice alone, and then has nothing left.
actions() { node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(r.guests.map((g) => [g.name, g.action, ...(g.older ?? [])].join(":")).join(" "))'; }
spice_pid=$(systemctl show -p MainPID --value qemu-spice.service)
net_pid=$(systemctl show -p MainPID --value qemu-net.service)
touch /etc/apparmor.d/qemu-harden-spice
apparmor_parser -r /etc/apparmor.d/qemu-harden-spice
r start.before "$(node ${BIN.replace(REPO, '/qh')} start --dry-run --json | actions)"
node ${BIN.replace(REPO, '/qh')} start > /run/start.log 2>&1
r start.exit $?
sed 's/^ */RESULT start.line=/' /run/start.log
r start.spice_restarted "$([ "$(systemctl show -p MainPID --value qemu-spice.service)" != "$spice_pid" ] && echo yes || echo no)"
r start.net_same "$([ "$(systemctl show -p MainPID --value qemu-net.service)" = "$net_pid" ] && echo yes || echo no)"
r start.spice_label "$(cat /proc/$(systemctl show -p MainPID --value qemu-spice.service)/attr/current)"
r start.after "$(node ${BIN.replace(REPO, '/qh')} start --dry-run --json | actions)"
mkdir -p /run/systemd/system/qemu-net.service.d
# Long enough for ExecStop='s shell to start under TCG on a loaded host; the guest ignores the request anyway.
printf '[Service]\nTimeoutStopSec=20\n' > /run/systemd/system/qemu-net.service.d/timeout.conf
systemctl daemon-reload
QMP_TIMEOUT_MS=300000 node /qh/test/clients/qmp.mjs /run/qemu-harden/net/qmp.sock '{"wait-event":"POWERDOWN"}' > /run/events.json 2> /run/events.ready &
wait_until 600 grep -qs connected /run/events.ready
start=$(date +%s)
systemctl stop qemu-net.service
r net.stop_seconds "$(( $(date +%s) - start ))"
r net.stop_result "$(systemctl show -p Result --value qemu-net.service)"
wait_until 600 test -s /run/events.json
r net.events "$(cat /run/events.json)"
r net.stop_journal "$(journalctl -b -u qemu-net.service --no-pager -o cat | tail -n 8 | tr '\\n' '|')"
journalctl -b -u qemu-net.service --no-pager -o cat | grep -c 'terminating on signal 15' | sed 's/^/RESULT net.sigterm=/'
dmesg | grep 'apparmor="DENIED"' | sed 's/^/RESULT denied=/'
r done yes
`;

export const networkFences: VmPart = {
  name: 'network-fences',
  cpuSeconds: 74,
  timeoutSeconds: 1800,
  tools: [['openssl', 'openssl']],
  async prepare(root, work) {
    const bundle = await generateBundle(work, {
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [
        { risk: 'emulation', reason: 'the proof VM has no KVM; its guests are test boot sectors' },
        // The fence around QEMU's own user-mode network: passt's, a unit of its own, is test/vm/helpers-apparmor.ts's.
        { risk: 'slirp', guest: 'net', reason: 'this proof is of the fence the unit puts around slirp' },
      ],
      guests: [
        {
          name: 'net',
          memoryMiB: 64,
          disks: [{ path: '/images/net.img', format: 'raw' }],
          network: { mode: 'user', backend: 'slirp' },
        },
        {
          name: 'spice',
          memoryMiB: 64,
          disks: [{ path: '/images/spice.img', format: 'raw' }],
          display: {
            mode: 'spice-tls',
            listen: '127.0.0.1',
            port: 5930,
            tlsDir: '/etc/qh-tls/spice',
            passwordFile: '/etc/qh-tls/spice-password',
          },
        },
      ],
    });

    cpSync(bundle, join(root, 'bundle'), { recursive: true });
    mkdirSync(join(root, 'images'));
    for (const g of ['net', 'spice']) writeBootDisk(join(root, 'images', `${g}.img`));
    const tls = join(root, 'etc/qh-tls/spice');
    mkdirSync(tls, { recursive: true });
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: tls, stdio: 'pipe' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(work, 'ca-key.pem'),
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
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server-key.pem',
      '-out',
      join(work, 'server.csr'),
      '-subj',
      '/CN=127.0.0.1',
    );
    ssl(
      'x509',
      '-req',
      '-in',
      join(work, 'server.csr'),
      '-CA',
      'ca-cert.pem',
      '-CAkey',
      join(work, 'ca-key.pem'),
      '-CAcreateserial',
      '-CAserial',
      join(work, 'ca.srl'),
      '-out',
      'server-cert.pem',
      '-days',
      '2',
    );
    writeFileSync(join(root, 'etc/qh-tls/spice-password'), PASSWORD, { mode: 0o600 });
    mkdirSync(join(root, 'proof'));
    writeFileSync(join(root, 'proof/probe.py'), PROBE_PY);
    const unitText = (g: string) => readFileSync(join(bundle, `root/etc/systemd/system/qemu-${g}.service`), 'utf8');
    // Loaded by the daemon-reload of the apply that comes before it starts.
    const units = join(root, 'etc/systemd/system');
    mkdirSync(units, { recursive: true });
    writeFileSync(
      join(units, 'qh-probe-net.service'),
      probeUnit(unitText('net'), `loopback/127.0.0.1/${HOST_SERVICE_PORT} loopback6/::1/${HOST_SERVICE_PORT}`),
    );
    const netUnit = readFileSync(join(bundle, 'root/etc/systemd/system/qemu-net.service'), 'utf8');
    assert.match(netUnit, /^IPAddressDeny=127\.0\.0\.0\/8 ::1\/128 169\.254\.0\.0\/16 fe80::\/10$/m);
    return PROOF;
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('under a real kernel (cgroup v2, AppArmor), the units fence the network', () => {
    const result = (key: string) => reported(part(), key);

    test('the VM ran the whole proof and the bundle applied', () => {
      assertProofDone(part());
    });

    test('apply installs the bundle and refuses to pass a TLS key its guest cannot read; after the chown it passes', () => {
      assert.equal(result('apply_first_exit'), '1');
      assert.equal(
        result('apply_first_check'),
        'FAIL  check TLS keys and passwords: /etc/qh-tls/spice/server-key.pem belongs to uid 0, not qemu-spice',
      );
      assert.equal(result('apply_exit'), '0');
      assert.equal(result('apply_check'), 'done  check TLS keys and passwords: owners and modes as required');
    });

    test('user-mode networking: a process in the guest’s unit cannot reach a host loopback listener', () => {
      // The BPF egress filter drops the SYN: the connect times out (or fails at once with EPERM).
      assert.match(result('loopback'), /^(EPERM|TimeoutError)$/, '127.0.0.1 is denied');
      assert.match(result('loopback6'), /^(EPERM|TimeoutError)$/, '::1 is denied');
      assert.equal(
        result('loopback_undenied'),
        'ok',
        'the same probe as the same user in a unit without IPAddressDeny= reaches the listener',
      );
    });

    test('both guests boot under their AppArmor profiles with the new unit lines, without a denial', () => {
      for (const g of ['net', 'spice']) {
        assert.equal(result(`${g}.marker`), 'yes');
        assert.equal(result(`${g}.label`), `qemu-harden-${g} (enforce)`);
      }
      assert.deepEqual(
        [...part().console.matchAll(/RESULT denied=(.*)/g)].map((m) => m[1]),
        [],
      );
    });

    test('SPICE under AppArmor: the password from LoadCredential= is required', () => {
      assert.deepEqual(JSON.parse(result('spice_right')), { linkError: 0, result: 0 });
      assert.deepEqual(JSON.parse(result('spice_wrong')), { linkError: 0, result: 7 });
    });

    test('start under AppArmor: a guest whose profile was written after its QEMU started runs an older profile and is restarted, the other guest only enabled; then nothing is left', () => {
      assert.equal(result('start.before'), 'net:enable spice:restart:profile');
      assert.equal(result('start.exit'), '0');
      assert.equal(result('start.spice_restarted'), 'yes');
      assert.equal(result('start.net_same'), 'yes');
      assert.equal(result('start.spice_label'), 'qemu-harden-spice (enforce)');
      assert.equal(result('start.after'), 'net:none spice:none');
    });

    test('systemctl stop under AppArmor: ExecStop= sends system_powerdown; the ignoring guest gets SIGTERM after TimeoutStopSec', () => {
      const events = JSON.parse(result('net.events')) as { event?: string }[];
      assert.ok(
        events.some((e) => e.event === 'POWERDOWN'),
        `${JSON.stringify(events)}\n${result('net.stop_journal')}`,
      );
      assert.equal(result('net.stop_result'), 'timeout');
      assert.ok(Number(result('net.stop_seconds')) >= 19, `waited TimeoutStopSec=20 (${result('net.stop_seconds')} s)`);
      assert.equal(result('net.sigterm'), '1');
    });
  });
}
