// A guest's helpers under a real kernel enforcing AppArmor: Debian's kernel boots real systemd under TCG, `qemu-harden
// apply` installs a bundle of two guests, pa and pb, each with passt as its user-mode network and a read-only shared
// folder, which Debian 12 serves through QEMU's own 9p (its virtiofsd needs root). Both guests start; the proof reads
// who their QEMU and passt run as, their capabilities and AppArmor labels, that QEMU holds no IP socket, and that
// nothing was denied while they booted, what each unit's mount namespace shows of the guests' directories, and that
// passt's unit cannot reach the host's loopback (IPAddressDeny=, a BPF program on its cgroup). Then it tries, as pa's
// user and under pa's own profiles, to reach pb's: pa's QEMU serving pb's folder over 9p, pa's passt making a socket
// in pb's network directory, pa's QEMU connecting to pb's passt socket. The modes of pb's folder and directories are
// opened to every user first, so only AppArmor stands in the way, and each attempt is made again without the
// profile, where it succeeds. The kernel's own log says which profile refused which path. Debian 12's kernel does not
// mediate connect() to a unix socket's path: there it is the unit's fence (pb's runtime directory is not in pa's
// units' mount namespaces) and its mode that keep pa's helpers from pb's socket, and the proof says so. Last, a
// network card in user space (test/guestnet.ts) takes the place of pa's QEMU on pa's passt, in passt's profile.
// A part of the shared AppArmor VM (test/apparmor-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BOOT_MARKER, writeBootDisk } from '../bootdisk.js';
import {
  assertGuestNetUnderApparmor,
  guestNetFiles,
  guestNetUnderApparmor,
  routedNamespace,
  UNROUTE,
  WEB,
  WEB_SERVERS,
} from '../guestnet.js';
import { BIN, generateBundle, REPO } from '../helpers.js';
import { execStartBlock } from '../unitfile.js';
import { assertProofDone, reported, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const GUESTS = ['pa', 'pb'] as const;
const share = (g: string) => `/srv/shares/${g}`;

/**
 * A copy of passt's unit that keeps its sandbox, cgroup and network settings but runs a probe instead of passt, once.
 * Left out: its AppArmor profile (passt's alone), its runtime directory (the running passt's: the probe's stop would
 * remove it), and its ties to QEMU's unit.
 */
function probeUnit(unit: string, probes: string): string {
  return unit
    .replace(execStartBlock(unit), `ExecStart=/usr/bin/python3 /proof/probe.py ${probes}`)
    .split('\n')
    .filter(
      (l) =>
        !/^(ExecStartPre|ExecStop|AppArmorProfile|Restart|RestartSec|Type|WantedBy|RuntimeDirectory|RuntimeDirectoryMode|BindPaths|PartOf|StopWhenUnneeded)=/.test(
          l,
        ) && l !== '[Install]',
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

// A QEMU that serves `path` over 9p as the real units do, started with -daemonize: its first process exits 0 once
// the devices are up (the folder opened), 1 with QEMU's error when they are not. The daemon is then stopped by its
// own mount tag. pa's user runs it, under pa's QEMU profile or none.
const PROOF = `cd /
# passt serves the VM's own network: an address and a default route for it to give its guest (test/guestnet.ts).
${routedNamespace('veth')}
node ${BIN.replace(REPO, '/qh')} apply /bundle --yes > /run/apply.log 2>&1
r apply_exit $?
grep -E '^  FAIL ' /run/apply.log | sed 's/^  /RESULT apply_fail=/'
for g in ${GUESTS.join(' ')}; do
  systemctl start qemu-$g.service
  wait_until 600 grep -qs '${BOOT_MARKER}' /var/log/qemu-harden/$g/serial.log && r "$g.marker" yes || r "$g.marker" no
  r "$g.user_uid" "$(id -u qemu-$g)"
  for u in qemu-$g qemu-$g-net; do
    pid=$(systemctl show -p MainPID --value $u.service)
    r "$u.uid" "$(grep '^Uid:' /proc/$pid/status | cut -f2)"
    r "$u.capeff" "$(grep '^CapEff:' /proc/$pid/status | cut -f2)"
    r "$u.label" "$(cat /proc/$pid/attr/current)"
    r "$u.exe" "$(readlink /proc/$pid/exe)"
    # What the unit's mount namespace shows of the guests' runtime directories and shared folders.
    r "$u.run_seen" "$(nsenter -t $pid -m ls -A /run/qemu-harden 2>/dev/null | tr '\n' ' ')"
    r "$u.shares_seen" "$(nsenter -t $pid -m ls -A /srv/shares 2>/dev/null | tr '\n' ' ')"
  done
  qpid=$(systemctl show -p MainPID --value qemu-$g.service)
  r "$g.qemu_inet" "$(nsenter -t $qpid -n ss -Hna -A inet | wc -l)"
  r "$g.qemu_9p" "$(tr '\\0' '\\n' < /proc/$qpid/cmdline | grep -A1 -x -- -virtfs | tail -1)"
done
r denied_while_booting "$(dmesg | grep -c 'apparmor="DENIED"')"
dmesg | grep 'apparmor="DENIED"' | head -20 | sed 's/^/RESULT boot_denied=/'
dmesg -C

${WEB_SERVERS}
systemctl start qh-probe-passt.service
journalctl -b -u qh-probe-passt.service --no-pager -o cat | grep '^PROBE ' | sed 's/^PROBE /RESULT /'
systemd-run --quiet --wait --pipe -p User=qemu-pa /usr/bin/python3 /proof/probe.py loopback_undenied/127.0.0.1/${WEB.loopbackPort} | sed 's/^PROBE /RESULT /'

# Only AppArmor stands between pa's user and pb's things: every user may read pb's folder, enter pb's runtime
# directories, connect to pb's passt socket and make a socket beside it.
chmod 0755 /run/qemu-harden/pb
chmod 0777 /run/qemu-harden/pb/net /run/qemu-harden/pb/net/passt.sock
LISTEN=/run/qemu-harden/pb/net/listen.sock
as_pa() { setpriv --reuid="$(id -u qemu-pa)" --regid="$(id -g qemu-pa)" --init-groups "$@"; }
confined() { profile=$1; shift; as_pa aa-exec -p "$profile" -- "$@"; }
unconfined() { shift; as_pa "$@"; }
qemu_probe() {
  name=$1 how=$2 profile=$3; shift 3
  err=$($how "$profile" /usr/bin/qemu-system-x86_64 -daemonize -nodefaults -no-user-config -display none -machine q35 -accel tcg -m 16 -S "$@" 2>&1 >/dev/null)
  r "$name.exit" $?
  r "$name.error" "$(printf '%s' "$err" | tr '\\n' ' ')"
  pid=$(pgrep -f "qh-probe-$name" | head -1)
  estab() { ss -Hxp | grep "pid=$1," | grep -q ESTAB; }
  case $name in sock_*) [ -n "$pid" ] && wait_until 120 estab "$pid" ;; esac
  # Its connected unix sockets: the only one it could have is to the socket its -netdev names.
  n=0
  [ -n "$pid" ] && n=$(ss -Hxp | grep "pid=$pid," | grep -c ESTAB)
  r "$name.connected" "$n"
  [ -n "$pid" ] && kill "$pid"
}
qemu_probe share_own confined qemu-harden-pa -virtfs local,path=${share('pa')},mount_tag=qh-probe-share_own,security_model=none,readonly=on
qemu_probe share_cross confined qemu-harden-pa -virtfs local,path=${share('pb')},mount_tag=qh-probe-share_cross,security_model=none,readonly=on
qemu_probe share_cross_unconfined unconfined - -virtfs local,path=${share('pb')},mount_tag=qh-probe-share_cross_unconfined,security_model=none,readonly=on
# A socket in pb's network directory that accepts every connection (pb's passt takes one client, its QEMU).
python3 -c "import os, socket, time; s = socket.socket(socket.AF_UNIX); s.bind('$LISTEN'); os.chmod('$LISTEN', 0o777); s.listen(8); time.sleep(3600)" &
listener=$!
wait_until 120 test -S $LISTEN
r aa_unix "$(test -e /sys/kernel/security/apparmor/features/network/af_unix && echo yes || echo no)"
qemu_probe sock_cross confined qemu-harden-pa -netdev stream,id=n0,server=off,addr.type=unix,addr.path=$LISTEN -device virtio-net-pci,netdev=n0,romfile=,id=qh-probe-sock_cross
qemu_probe sock_cross_unconfined unconfined - -netdev stream,id=n0,server=off,addr.type=unix,addr.path=$LISTEN -device virtio-net-pci,netdev=n0,romfile=,id=qh-probe-sock_cross_unconfined
kill $listener
passt_probe() {
  name=$1 how=$2 profile=$3
  out=$($how "$profile" /usr/bin/passt --socket /run/qemu-harden/pb/net/$name.sock -t none -u none -1 2>&1)
  r "$name.exit" $?
  r "$name.bound" "$(test -S /run/qemu-harden/pb/net/$name.sock && echo yes || echo no)"
  pid=$(pgrep -f "pb/net/$name.sock" | head -1)
  [ -n "$pid" ] && kill "$pid"
  r "$name.said" "$(printf '%s' "$out" | grep -v syslog | grep -i -m1 -E 'denied|socket|bind')"
}
passt_probe passt_cross confined qemu-harden-pa-net
passt_probe passt_cross_unconfined unconfined -
r share_cross.denied "$(denied qemu-harden-pa ${share('pb')})"
r sock_cross.denied "$(denied qemu-harden-pa $LISTEN)"
r passt_cross.denied "$(denied qemu-harden-pa-net /run/qemu-harden/pb/net/passt_cross.sock)"
r share_own.denied "$(dmesg | grep 'apparmor="DENIED"' | grep -c "name=\\"${share('pa')}")"
dmesg | grep 'apparmor="DENIED"' | head -20 | sed 's/^/RESULT probe_denied=/'
for g in ${GUESTS.join(' ')}; do r "$g.still" "$(systemctl show -p ActiveState --value qemu-$g.service)"; done
# pa's network as its guest sees it, through its passt in its enforced profile (test/guestnet.ts): a network card
# in user space takes the place of pa's QEMU.
${guestNetUnderApparmor('pa', { serversRunning: true, pingBefore: false })}
r done yes
`;

export const helpersApparmor: VmPart = {
  name: 'helpers-apparmor',
  cpuSeconds: 45,
  timeoutSeconds: 1800,
  tools: [
    ['passt', 'passt'],
    ['aa-exec', 'apparmor'],
    ['setpriv', 'util-linux'],
  ],
  modules: ['veth'],
  // The veth pair passt takes its address and route from outlives the part's unit, and so do the namespace at its
  // other end, apply's log, the page served and the client's output.
  cleanup: UNROUTE + `rm -rf /run/apply.log ${guestNetFiles('pa')}\n`,
  async prepare(root, work) {
    const bundle = await generateBundle(work, {
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'the proof VM has no KVM; its guests are test boot sectors' }],
      guests: GUESTS.map((g) => ({
        name: g,
        memoryMiB: 64,
        disks: [{ path: `/images/${g}.img`, format: 'raw' }],
        network: { mode: 'user' },
        shares: [{ path: share(g), tag: 'data' }],
      })),
    });
    cpSync(bundle, join(root, 'bundle'), { recursive: true });
    mkdirSync(join(root, 'images'), { recursive: true });
    for (const g of GUESTS) {
      writeBootDisk(join(root, 'images', `${g}.img`));
      const dir = join(root, share(g));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, g === 'pa' ? 'hello.txt' : 'secret.txt'), `${g}'s own\n`, { mode: 0o644 });
      chmodSync(dir, 0o755);
    }
    chmodSync(join(root, 'srv'), 0o755);
    chmodSync(join(root, 'srv/shares'), 0o755);
    mkdirSync(join(root, 'proof'));
    writeFileSync(join(root, 'proof/probe.py'), PROBE_PY);
    // Loaded by the daemon-reload of the apply that comes before it starts.
    const units = join(root, 'etc/systemd/system');
    mkdirSync(units, { recursive: true });
    const passtUnit = readFileSync(join(bundle, 'root/etc/systemd/system/qemu-pa-net.service'), 'utf8');
    assert.match(passtUnit, /^IPAddressDeny=127\.0\.0\.0\/8 ::1\/128 169\.254\.0\.0\/16 fe80::\/10$/m);
    writeFileSync(
      join(units, 'qh-probe-passt.service'),
      probeUnit(passtUnit, `loopback/127.0.0.1/${WEB.loopbackPort}`),
    );
    return PROOF;
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('under a real kernel enforcing AppArmor, a guest’s helpers reach only its own share and sockets', () => {
    const result = (key: string) => reported(part(), key);

    test('the VM ran the whole proof and the bundle applied', () => {
      assertProofDone(part());
      assert.equal(result('veth'), '0');
      assert.equal(result('apply_exit'), '0', part().results.get('apply_fail'));
    });

    test('each guest boots with passt as its network and its folder over QEMU’s 9p, nothing denied meanwhile', () => {
      for (const g of GUESTS) {
        assert.equal(result(`${g}.marker`), 'yes', g);
        assert.equal(result(`${g}.qemu_9p`), `local,path=${share(g)},mount_tag=data,security_model=none,readonly=on`);
        assert.equal(result(`${g}.still`), 'active', `${g} still runs after the probes`);
      }
      assert.equal(result('denied_while_booting'), '0', part().results.get('boot_denied'));
    });

    test('QEMU (which serves the folder) and passt run as the guest’s user with no capabilities, each in its own enforced profile, and QEMU holds no IP socket', () => {
      for (const g of GUESTS) {
        const uid = result(`${g}.user_uid`);
        assert.notEqual(uid, '0');
        for (const [unit, profile] of [
          [`qemu-${g}`, `qemu-harden-${g}`],
          [`qemu-${g}-net`, `qemu-harden-${g}-net`],
        ] as const) {
          assert.equal(result(`${unit}.uid`), uid, unit);
          assert.equal(result(`${unit}.capeff`), '0000000000000000', unit);
          assert.equal(result(`${unit}.label`), `${profile} (enforce)`, unit);
        }
        assert.match(result(`qemu-${g}-net.exe`), /^(\/usr)?\/bin\/passt(\.avx2)?$/);
        assert.equal(result(`${g}.qemu_inet`), '0', `${g}'s QEMU has no IP socket in its network namespace`);
      }
    });

    test('pa’s QEMU serves its own folder but not pb’s, which it serves without the profile: AppArmor refuses it', () => {
      assert.equal(result('share_own.exit'), '0', result('share_own.error'));
      assert.equal(result('share_own.denied'), '0');
      assert.equal(result('share_cross_unconfined.exit'), '0', result('share_cross_unconfined.error'));
      assert.notEqual(result('share_cross.exit'), '0');
      assert.match(result('share_cross.error'), /Permission denied/);
      assert.notEqual(result('share_cross.denied'), '0', part().results.get('probe_denied'));
    });

    test('pa’s passt cannot make a socket in pb’s network directory, which it makes without the profile: AppArmor refuses it', () => {
      assert.equal(result('passt_cross_unconfined.bound'), 'yes', result('passt_cross_unconfined.said'));
      // passt itself says it bound the socket, and forks: the kernel refused to create it (mknod), and it is not there.
      assert.equal(result('passt_cross.bound'), 'no', result('passt_cross.said'));
      assert.notEqual(result('passt_cross.denied'), '0', part().results.get('probe_denied'));
    });

    test('pb’s sockets are kept from pa’s helpers by the fence; by AppArmor too only where the kernel mediates unix sockets', () => {
      // A socket in pb's directory that every user may connect to: without a profile, pa's user connects.
      assert.equal(result('sock_cross_unconfined.connected'), '1');
      if (result('aa_unix') === 'yes') {
        assert.equal(result('sock_cross.connected'), '0');
        assert.notEqual(result('sock_cross.denied'), '0', part().results.get('probe_denied'));
      } else {
        // Debian 12's kernel has no AppArmor mediation of unix sockets: under pa's QEMU profile the connect goes
        // through. What keeps pb's sockets from pa's units is their mount namespace, and the directory's mode.
        assert.equal(result('sock_cross.connected'), '1');
        assert.equal(result('sock_cross.denied'), '0');
      }
      for (const g of GUESTS) {
        assert.equal(result(`qemu-${g}.run_seen`), g, `qemu-${g} sees only its own runtime directory`);
        assert.equal(result(`qemu-${g}.shares_seen`), g, `qemu-${g} sees only its own folder`);
        // passt has pivoted into an empty root of its own (or, seen from its unit, holds its own directory alone).
        assert.ok(['', g].includes(result(`qemu-${g}-net.run_seen`)), result(`qemu-${g}-net.run_seen`));
        assert.equal(result(`qemu-${g}-net.shares_seen`), '');
      }
    });

    test('passt’s unit cannot reach a listener on the host’s loopback; the same user outside it can', () => {
      // The BPF egress filter drops the SYN: the connect times out (or fails at once with EPERM).
      assert.match(result('loopback'), /^(EPERM|TimeoutError)$/);
      assert.equal(result('loopback_undenied'), 'ok');
    });

    test('through its passt, in its profile, pa’s guest gets an address, pings and fetches a page from a server in a namespace, and cannot reach the host’s loopback', () => {
      assertGuestNetUnderApparmor(part(), 'pa', false);
    });
  });
}
