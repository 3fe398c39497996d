// A Debian 13 bundle's helpers under a kernel that enforces all of its AppArmor policy, unix sockets included: the
// trixie root (its systemd 257, QEMU 10.0, passt, virtiofsd, AppArmor 4.1's parser) on forky's kernel
// (test/trixie-vm.test.ts says why that one). `qemu-harden apply --start` installs and starts two guests, fa and fb,
// each with passt as its user-mode network and a read-only shared folder served by virtiofsd. The proof reads the
// kernel's AppArmor features, who QEMU and every process of passt's and virtiofsd's units run as, their capabilities
// and AppArmor labels, that virtiofsd holds QEMU's vhost-user connection, and that nothing was denied while they
// started. Then it takes the units' fence away (their mount namespaces, and the modes of fb's directories) so that
// only AppArmor stands between fa's helpers and fb's: fa's passt making a socket in fb's network directory, which
// AppArmor refuses (the kernel's log names the profile) and which succeeds without the profile; fa's virtiofsd
// profile reading fb's folder, refused the same way, where it reads its own; fa's QEMU connecting to a socket in fb's
// directory, which goes through under its profile too: this kernel could mediate it, but Debian 13's parser does not
// ask it to. Last, fa's folder read through fa's virtiofsd in its profile: the guests are boot sectors, so a virtio-fs
// driver in user space (test/clients/virtiofs.py) does what the guest's kernel would, and a network card in user
// space (test/guestnet.ts) what its network stack would through fa's passt. A Linux guest mounting and reading its
// folder is test/trixie.test.ts's.
// A part of the shared trixie VM (test/trixie-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BOOT_MARKER, writeBootDisk } from '../bootdisk.js';
import {
  assertGuestNetUnderApparmor,
  guestNetFiles,
  guestNetUnderApparmor,
  routedNamespace,
  UNROUTE,
} from '../guestnet.js';
import { BIN, cli, REPO } from '../helpers.js';
import { assertProofDone, reported, reportedAll, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const GUESTS = ['fa', 'fb'] as const;

const PROOF = `cd /
aa=/sys/kernel/security/apparmor
r kernel "$(uname -r)"
r aa_af_unix "$(cat $aa/features/network_v9/af_unix 2>/dev/null)"
# passt serves the VM's own network: an address and a default route for it to give its guest (test/guestnet.ts).
${routedNamespace('veth')}
node ${BIN.replace(REPO, '/qh')} apply /bundle --yes --start > /run/apply.log 2>&1
r apply_exit $?
grep -E '^  FAIL ' /run/apply.log | sed 's/^  /RESULT apply_fail=/'
journalctl -b -o cat --no-pager -u 'qemu-f*' | grep -i -e fail -e denied -e error | tail -10 | sed 's/^/RESULT journal=/'
procs() { cat "/sys/fs/cgroup$(systemctl show -p ControlGroup --value "$1")/cgroup.procs" 2>/dev/null; }
for g in ${GUESTS.join(' ')}; do
  settled() { grep -qs '${BOOT_MARKER}' /var/log/qemu-harden/$g/serial.log || [ "$(systemctl is-active qemu-$g.service)" != active ]; }
  wait_until 600 settled
  grep -qs '${BOOT_MARKER}' /var/log/qemu-harden/$g/serial.log && r "$g.marker" yes || r "$g.marker" no
  r "$g.user_uid" "$(id -u qemu-$g)"
  qpid=$(systemctl show -p MainPID --value qemu-$g.service)
  for u in qemu-$g qemu-$g-net qemu-$g-fs0; do
    r "$u.active" "$(systemctl is-active $u.service)"
    pid=$(systemctl show -p MainPID --value $u.service)
    r "$u.uid" "$(grep '^Uid:' /proc/$pid/status | cut -f2)"
    r "$u.capeff" "$(grep '^CapEff:' /proc/$pid/status | cut -f2)"
    r "$u.label" "$(cat /proc/$pid/attr/current)"
    r "$u.exe" "$(readlink /proc/$pid/exe)"
    # Every process of the unit: its uids, its label, its capabilities and whether its user namespace is the host's.
    r "$u.procs" "$(for p in $(procs $u.service); do printf '%s|%s|%s|%s;' "$(grep '^Uid:' /proc/$p/status | cut -f2- | tr '\t' ' ')" "$(cat /proc/$p/attr/current)" "$(grep '^CapEff:' /proc/$p/status | cut -f2)" "$([ "$(readlink /proc/$p/ns/user)" = "$(readlink /proc/1/ns/user)" ] && echo host || echo own)"; done)"
  done
  r "$g.qemu_inet" "$(nsenter -t $qpid -n ss -Hna -A inet | wc -l)"
  # virtiofsd's end of QEMU's vhost-user connection: the socket it accepted on the one systemd handed it.
  vpid=$(systemctl show -p MainPID --value qemu-$g-fs0.service)
  r "$g.fs_estab" "$(ss -Hxp | grep "pid=$vpid," | grep -c ESTAB)"
  r "$g.fs_restarts" "$(systemctl show -p NRestarts --value qemu-$g-fs0.service)"
done
r denied_while_booting "$(dmesg | grep -c 'apparmor="DENIED"')"
dmesg | grep 'apparmor="DENIED"' | head -20 | sed 's/^/RESULT boot_denied=/'
dmesg -C

# Only AppArmor stands between fa's user and fb's network directory: every user may enter it, make a socket there and
# connect to one there.
chmod 0755 /run/qemu-harden/fb
chmod 0777 /run/qemu-harden/fb/net
as_fa() { setpriv --reuid="$(id -u qemu-fa)" --regid="$(id -g qemu-fa)" --init-groups "$@"; }
confined() { profile=$1; shift; as_fa aa-exec -p "$profile" -- "$@"; }
unconfined() { shift; as_fa "$@"; }
# The processes whose command line has $1 in it.
pids_of() { for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); case "$c" in *"$1"*) echo "\${p#/proc/}" ;; esac; done; }
qemu_probe() {
  name=$1 how=$2 profile=$3; shift 3
  err=$($how "$profile" /usr/bin/qemu-system-x86_64 -daemonize -nodefaults -no-user-config -display none -machine q35 -accel tcg -m 16 -S -name qh-probe-$name "$@" 2>&1 >/dev/null)
  r "$name.exit" $?
  r "$name.error" "$(printf '%s' "$err" | tr '\\n' ' ')"
  pid=$(pids_of "qh-probe-$name" | head -1)
  estab() { ss -Hxp | grep "pid=$1," | grep -q ESTAB; }
  [ -n "$pid" ] && wait_until 60 estab "$pid"
  n=0
  [ -n "$pid" ] && n=$(ss -Hxp | grep "pid=$pid," | grep -c ESTAB)
  r "$name.connected" "$n"
  [ -n "$pid" ] && kill "$pid"
}
# A socket in fb's network directory that every user may connect to, held by a QEMU of root's that accepts.
LISTEN=/run/qemu-harden/fb/net/listen.sock
/usr/bin/qemu-system-x86_64 -daemonize -nodefaults -no-user-config -display none -machine none -name qh-listener -chardev socket,id=l,path=$LISTEN,server=on,wait=off
wait_until 60 test -S $LISTEN
chmod 0777 $LISTEN
qemu_probe sock_cross confined qemu-harden-fa -netdev stream,id=n0,server=off,addr.type=unix,addr.path=$LISTEN -device virtio-net-pci,netdev=n0,romfile=
qemu_probe sock_cross_unconfined unconfined - -netdev stream,id=n0,server=off,addr.type=unix,addr.path=$LISTEN -device virtio-net-pci,netdev=n0,romfile=
kill $(pids_of qh-listener)
passt_probe() {
  name=$1 how=$2 profile=$3
  out=$($how "$profile" /usr/bin/passt --socket /run/qemu-harden/fb/net/$name.sock -t none -u none -1 2>&1)
  r "$name.exit" $?
  r "$name.bound" "$(test -S /run/qemu-harden/fb/net/$name.sock && echo yes || echo no)"
  for p in $(pids_of "fb/net/$name.sock"); do kill $p; done
  r "$name.said" "$(printf '%s' "$out" | grep -v syslog | grep -i -m1 -E 'denied|socket|bind')"
}
passt_probe passt_cross confined qemu-harden-fa-net
passt_probe passt_cross_unconfined unconfined -
# fa's virtiofsd profile reading fb's folder (every user may read it), and its own; a program that reads a file
# stands in for virtiofsd there, which reads a folder's files only when a guest asks for them.
fs_probe() {
  name=$1 how=$2 profile=$3 file=$4
  out=$($how "$profile" /usr/bin/cat "$file" 2>&1)
  r "$name.exit" $?
  r "$name.said" "$(printf '%s' "$out" | tr '\\n' ' ')"
}
fs_probe fs_own confined qemu-harden-fa-fs0 /srv/shares/fa/hello.txt
fs_probe fs_cross confined qemu-harden-fa-fs0 /srv/shares/fb/hello.txt
fs_probe fs_cross_unconfined unconfined - /srv/shares/fb/hello.txt
r sock_cross.denied "$(denied qemu-harden-fa $LISTEN)"
r passt_cross.denied "$(denied qemu-harden-fa-net /run/qemu-harden/fb/net/passt_cross.sock)"
r fs_cross.denied "$(denied qemu-harden-fa-fs0 /srv/shares/fb/hello.txt)"
r fs_own.denied "$(denied qemu-harden-fa-fs0 /srv/shares/fa/)"
dmesg | grep 'apparmor="DENIED"' | head -20 | sed 's/^/RESULT probe_denied=/'
for g in ${GUESTS.join(' ')}; do r "$g.still" "$(systemctl show -p ActiveState --value qemu-$g.service)"; done
# What fa's guest reads through its own virtiofsd, in its enforced profile, as the guest's kernel would: fa's QEMU
# stopped (and the virtiofsd serving it), then a virtio-fs driver in user space (test/clients/virtiofs.py) as fa's
# user, started by systemd and needing the unit's virtiofsd as QEMU's unit does (the unit stops when nothing needs
# it).
dmesg -C
systemctl stop qemu-fa.service qemu-fa-fs0.service qemu-fa-fs0.socket
systemd-run --wait --pipe --quiet -p User=qemu-fa -p Group=qemu-fa -p Requires=qemu-fa-fs0.service -p After=qemu-fa-fs0.service \\
  /usr/bin/python3 /qh/test/clients/virtiofs.py /run/qemu-harden/fa/fs0.sock read:hello.txt mkdir:new outside:fb > /run/fa-client.out 2>&1
r fa.client_exit $?
sed 's/^/RESULT fa.client=/' /run/fa-client.out
journalctl -b -u qemu-fa-fs0.service --no-pager -o cat | tail -8 | sed 's/^/RESULT fa.fs_journal=/'
dmesg | grep 'apparmor="DENIED"' | head -20 | sed 's/^/RESULT client_denied=/'
# fa's network as its guest sees it, through its passt in its enforced profile (test/guestnet.ts): a network card
# in user space takes the place of fa's QEMU. Its first ping goes unanswered, while Debian's range for ping sockets
# admits no group; the README's command then lets the guests' groups ping.
${guestNetUnderApparmor('fa', { serversRunning: false, pingBefore: true })}
r done yes
`;

export const helpersTrixie: VmPart = {
  name: 'helpers-trixie',
  cpuSeconds: 86,
  timeoutSeconds: 1500,
  modules: ['veth'],
  // The veth pair passt takes its address and route from outlives the part's unit, and so do the namespace at its
  // other end, apply's log, the page served and the clients' output.
  cleanup: UNROUTE + `rm -rf /run/apply.log /run/fa-client.out ${guestNetFiles('fa')}\n`,
  async prepare(root, work) {
    mkdirSync(join(root, 'images'), { recursive: true });
    for (const g of GUESTS) {
      writeBootDisk(join(root, 'images', `${g}.img`));
      mkdirSync(join(root, 'srv', 'shares', g), { recursive: true, mode: 0o755 });
      writeFileSync(join(root, 'srv', 'shares', g, 'hello.txt'), `${g}'s shared file\n`, { mode: 0o644 });
    }
    const answers = {
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'the proof VM has no KVM; its guests are test boot sectors' }],
      guests: GUESTS.map((g) => ({
        name: g,
        memoryMiB: 64,
        disks: [{ path: `/images/${g}.img`, format: 'raw' }],
        network: { mode: 'user' },
        shares: [{ path: `/srv/shares/${g}`, tag: g }],
      })),
    };
    writeFileSync(join(work, 'answers.json'), JSON.stringify(answers));
    const bundle = join(work, 'bundle');
    const gen = await cli([
      'generate',
      '--answers',
      join(work, 'answers.json'),
      '--out',
      bundle,
      '--target',
      'debian-13',
    ]);
    assert.equal(gen.code, 0, gen.stderr);
    cpSync(bundle, join(root, 'bundle'), { recursive: true });
    return PROOF;
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('under forky’s kernel enforcing AppArmor, a Debian 13 guest’s QEMU, passt and virtiofsd run confined and reach only their own', () => {
    const result = (key: string) => reported(part(), key);
    const all = (prefix: string) =>
      [...part().results.entries()]
        .filter(([k]) => k.startsWith(prefix))
        .map(([k, v]) => `${k}=${v}`)
        .join('\n');
    const lines = (key: string) => reportedAll(part(), key);

    test('the VM ran the whole proof on a kernel whose AppArmor can mediate unix sockets, and the bundle applied', () => {
      assertProofDone(part());
      assert.match(result('kernel'), /^\d+\.\d+.*\+deb14-amd64$/);
      assert.equal(result('aa_af_unix'), 'yes', 'features/network_v9/af_unix');
      assert.equal(result('veth'), '0');
      assert.equal(result('apply_exit'), '0', all('apply_fail') + '\n' + all('journal'));
    });

    test('each guest boots with passt as its network and virtiofsd serving its folder, nothing denied meanwhile', () => {
      for (const g of GUESTS) {
        assert.equal(result(`${g}.marker`), 'yes', g);
        for (const u of [`qemu-${g}`, `qemu-${g}-net`, `qemu-${g}-fs0`])
          assert.equal(result(`${u}.active`), 'active', u);
        // virtiofsd started once and stayed up: a unit that fails and is restarted also reads active between tries.
        assert.equal(result(`${g}.fs_restarts`), '0', `${g}'s virtiofsd was restarted\n${all('journal')}`);
        // QEMU's vhost-user-fs device connects when QEMU starts (QEMU does not start without it): virtiofsd holds it.
        assert.notEqual(result(`${g}.fs_estab`), '0', `${g}'s virtiofsd holds QEMU's vhost-user connection`);
        assert.equal(result(`${g}.still`), 'active', `${g} still runs after the probes`);
      }
      assert.equal(result('denied_while_booting'), '0', all('boot_denied'));
    });

    test('QEMU and every process of passt’s and virtiofsd’s units run as the guest’s user in their own enforced profile, no capability in the host’s user namespace (virtiofsd none at all); QEMU holds no IP socket', () => {
      for (const g of GUESTS) {
        const uid = result(`${g}.user_uid`);
        assert.notEqual(uid, '0');
        for (const [unit, profile] of [
          [`qemu-${g}`, `qemu-harden-${g}`],
          [`qemu-${g}-net`, `qemu-harden-${g}-net`],
          [`qemu-${g}-fs0`, `qemu-harden-${g}-fs0`],
        ] as const) {
          assert.equal(result(`${unit}.uid`), uid, unit);
          assert.equal(result(`${unit}.capeff`), '0000000000000000', unit);
          assert.equal(result(`${unit}.label`), `${profile} (enforce)`, unit);
          const procs = result(`${unit}.procs`).split(';').filter(Boolean);
          assert.ok(procs.length >= 1, unit);
          for (const p of procs) {
            const [uids, label, capEff, userns] = p.split('|');
            assert.deepEqual(new Set(uids!.split(' ')), new Set([uid]), `${unit}: ${p}`);
            assert.equal(label, `${profile} (enforce)`, `${unit}: ${p}`);
            // passt holds capabilities only in the user namespace it makes for its own sandbox; virtiofsd, which makes
            // none (--sandbox=none), holds none anywhere.
            if (unit.endsWith('-fs0')) assert.equal(capEff, '0000000000000000', `${unit}: ${p}`);
            else assert.ok(capEff === '0000000000000000' || userns === 'own', `${unit}: ${p}`);
          }
        }
        assert.match(result(`qemu-${g}-net.exe`), /^(\/usr)?\/bin\/passt(\.avx2)?$/);
        assert.equal(result(`qemu-${g}-fs0.exe`), '/usr/libexec/virtiofsd');
        assert.equal(result(`${g}.qemu_inet`), '0', `${g}'s QEMU has no IP socket in its network namespace`);
      }
    });

    test('a socket in fb’s network directory is kept from fa’s QEMU by the fence, not by AppArmor: Debian 13’s policy does not ask this kernel to mediate unix sockets', () => {
      // Without a profile, fa's user connects to a socket there that every user may connect to.
      assert.equal(result('sock_cross_unconfined.connected'), '1', result('sock_cross_unconfined.error'));
      // Under fa's QEMU profile the connect goes through too, and nothing is denied: the kernel offers the mediation
      // at features/network_v9/af_unix (upstream's place), but Debian 13's parser (AppArmor 4.1) knows it only at
      // network/af_unix (Ubuntu's), so the policy it compiles does not ask for it. What keeps fb's sockets from fa's
      // units is their mount namespace (fb's runtime directory is not in it) and the directory's mode.
      assert.equal(result('sock_cross.connected'), '1', result('sock_cross.error'));
      assert.equal(result('sock_cross.denied'), '0', all('probe_denied'));
    });

    test('fa’s passt cannot make a socket in fb’s network directory, which it makes without the profile: AppArmor refuses it', () => {
      assert.equal(result('passt_cross_unconfined.bound'), 'yes', result('passt_cross_unconfined.said'));
      assert.equal(result('passt_cross.bound'), 'no', result('passt_cross.said'));
      assert.notEqual(result('passt_cross.denied'), '0', all('probe_denied'));
    });

    test('through its own virtiofsd, in its profile, fa’s guest reads its folder, cannot write it, and sees nothing beside it', () => {
      // Read-only: EROFS (30) from virtiofsd itself. Beside the folder: ENOENT (2), the unit's fence hiding fb's.
      assert.deepEqual(
        lines('fa.client'),
        ["read:hello.txt ok fa's shared file", 'mkdir:new error 30', 'outside:fb error 2'],
        lines('fa.fs_journal').join('\n'),
      );
      assert.equal(result('fa.client_exit'), '0');
      assert.deepEqual(lines('client_denied'), [], 'nothing was denied to fa’s virtiofsd');
    });

    test('through its passt, in its profile, fa’s guest gets an address, pings and fetches a page from a server in a namespace, and cannot reach the host’s loopback', () => {
      assertGuestNetUnderApparmor(part(), 'fa', true);
    });

    test('fa’s virtiofsd profile cannot read fb’s folder, which fa’s user reads without it: AppArmor refuses it', () => {
      // Under the profile fa's own folder reads, so the refusal is of fb's folder, not of the program.
      assert.equal(result('fs_own.exit'), '0', result('fs_own.said'));
      assert.equal(result('fs_own.said'), "fa's shared file");
      assert.equal(result('fs_own.denied'), '0', all('probe_denied'));
      assert.equal(result('fs_cross_unconfined.exit'), '0', result('fs_cross_unconfined.said'));
      assert.equal(result('fs_cross_unconfined.said'), "fb's shared file");
      assert.notEqual(result('fs_cross.exit'), '0', result('fs_cross.said'));
      assert.match(result('fs_cross.said'), /Permission denied/);
      assert.notEqual(result('fs_cross.denied'), '0', all('probe_denied'));
    });
  });
}
