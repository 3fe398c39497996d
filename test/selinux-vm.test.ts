// SELinux enforcing under a real kernel: Debian 12's kernel boots with `security=selinux enforcing=1` on a Debian 12
// root with the reference policy (test/selinux-vm.ts). Inside, `qemu-harden apply --start` installs an SELinux
// bundle on the live system (semodule loads its modules, restorecon relabels the guests' files) and systemd starts
// each guest's QEMU in the virt domain with its own category pair. Then the kernel is asked: each QEMU's context,
// each file's label, a denial when guest A's QEMU is pointed at guest B's disk (mode 0666, the systemd fence taken
// away so that only SELinux stands between them), what `status` and `audit` make of the guests and of QEMUs started
// outside their units, a network card in user space in beta's QEMU's place on beta's passt (test/guestnet.ts), a
// rollback that stops at its SELinux step and the rollback that completes it. One boot serves every check.
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { categoryPairs, level, processContext } from '../src/mcs.js';
import { macAddress } from '../src/identity.js';
import { defaultTapDevice } from '../src/names.js';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { assertGuestNetUnderSelinux, guestNetUnderSelinux, routedNamespace, SELINUX_CARD } from './guestnet.js';
import { BIN, generateBundle, REPO, tempDir } from './helpers.js';
import { bootSelinuxProof, selinuxProofTree, selinuxRootImage } from './selinux-vm.js';
import { diskSwapDropIn } from './unitfile.js';
import { assertProofDone, proofKernel, reported, reportedAll, type VmResult } from './vmboot.js';

const GUESTS = ['alpha', 'beta', 'gamma'];
// Gamma's network is a tap device, which its tap unit makes as root for gamma's user and QEMU opens in gamma's context.
const TAP = defaultTapDevice('gamma');
// Alpha's disk is named with glob characters, beside a file its name would match as a pattern: restorecon reads
// its arguments as patterns, and only the disk itself may be relabelled.
const disk = (g: string) => (g === 'alpha' ? '/srv/qemu/alpha/g*a?m[1] x,y.img' : `/srv/qemu/${g}/disk.img`);
const DECOY = '/srv/qemu/alpha/gXaYm1 x,y.img';
// A folder QEMU's 9p shares into alpha (read-only) and one into beta (writable), each holding a file named after it.
const SHARE = (g: string) => `/srv/shares/${g}`;
// Alpha's user-mode network is slirp inside its QEMU, which forwards this address's port to the guest's port 22. A
// guest on slirp may not listen on loopback (its unit denies it), so the VM gives its lo this address of its own.
const FORWARD = { listen: '10.79.0.1', port: 8022, guestPort: 22 };
// A forwarded UDP port each, bound as the network starts: alpha's by its QEMU (slirp), beta's by its passt. The
// policy lets the virt domain bind UDP ports but gives it no UDP socket; the shared module does.
const UDP = { alpha: 8054, beta: 8053 } as const;
const udpForward = (g: keyof typeof UDP) => ({ protocol: 'udp', listen: FORWARD.listen, port: UDP[g], guestPort: 53 });
// Node.js's compiler needs memory both writable and executable, which Debian's policy gives the administrator's
// domain (unconfined_t) only with the boolean allow_execmem: qemu-harden runs without it, interpreted.
const QH = `node --jitless ${BIN.replace(REPO, '/qh')}`;

const ANSWERS = {
  schemaVersion: 1,
  useCase: 'emulation',
  host: { confinement: 'selinux' },
  acceptedRisks: [
    { risk: 'emulation', reason: 'the proof VM has no KVM; its guests are test boot sectors' },
    { risk: 'selinux-execmem', reason: 'TCG writes the code it runs; the proof VM has no KVM' },
    { risk: 'share-writable', guest: 'beta', reason: 'the proof writes to it in beta’s context' },
    { risk: 'slirp', guest: 'alpha', reason: 'the proof shows slirp’s forwards in the virt domain' },
  ],
  // Beta has a TPM: its swtpm runs in a helper unit of its own, in beta's context. Gamma has a tap (vhost-net
  // needs KVM's ioeventfd, which TCG has not). Alpha and beta each have a shared folder, which QEMU serves (9p).
  // Alpha's network is slirp, with a forwarded port; beta's is passt, in a unit of its own.
  guests: GUESTS.map((name) => ({
    name,
    memoryMiB: 64,
    ...(name === 'alpha'
      ? {
          shares: [{ path: SHARE('alpha'), tag: 'docs' }],
          network: { mode: 'user', backend: 'slirp', forwards: [FORWARD, udpForward('alpha')] },
        }
      : {}),
    ...(name === 'beta'
      ? {
          tpm: 'tpm2',
          shares: [{ path: SHARE('beta'), tag: 'out', readOnly: false }],
          network: { mode: 'user', backend: 'passt', forwards: [udpForward('beta')] },
        }
      : {}),
    ...(name === 'gamma' ? { network: { mode: 'tap', vhost: false } } : {}),
    disks: [{ path: disk(name), format: 'raw' }],
  })),
};
// The bundle installed before: alpha alone. Rollback returns to it, which removes beta and gamma.
const ANSWERS_BEFORE = {
  ...ANSWERS,
  acceptedRisks: ANSWERS.acceptedRisks.filter((r) => !('guest' in r) || r.guest === 'alpha'),
  guests: ANSWERS.guests.filter((g) => g.name === 'alpha'),
};
const SHARED_MODULE = 'root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil';
// What rollback leaves of a removed guest, which must carry what the policy says without its module.
const REMOVED_FILES = (g: string) => [
  disk(g),
  `/var/lib/qemu-harden/${g}`,
  `/var/log/qemu-harden/${g}`,
  `/var/log/qemu-harden/${g}/serial.log`,
  ...(g === 'beta'
    ? ['/var/lib/qemu-harden/beta/tpm2/tpm2-00.permall', SHARE('beta'), `${SHARE('beta')}/beta.txt`]
    : []),
];

const PROOF = `cd /
t() { r "time.$1" "$(cut -d' ' -f1 /proc/uptime)"; }
t booted
r enforce "$(cat /sys/fs/selinux/enforce)"
ip addr add ${FORWARD.listen}/32 dev lo
# passt gives its guest the host's own route (test/guestnet.ts).
${routedNamespace('netup')}
${QH} apply /bundle0 --yes > /run/apply0.log 2>&1
r apply0_exit $?
grep -E '^  (done|skip|FAIL) ' /run/apply0.log | sed 's/^  /RESULT apply0_step=/'
t applied_before
${QH} apply /bundle --yes --start > /run/apply.log 2>&1
r apply_exit $?
grep -E '^  (done|skip|FAIL) ' /run/apply.log | sed 's/^  /RESULT apply_step=/'
t applied
semodule -l | grep qemu-harden | sed 's/^/RESULT module=/'
for g in ${GUESTS.join(' ')}; do
  wait_until 120 grep -qs '${BOOT_MARKER}' "/var/log/qemu-harden/$g/serial.log" && r "$g.marker" yes || r "$g.marker" no
  pid=$(systemctl show -p MainPID --value qemu-$g.service)
  r "$g.label" "$(cat /proc/$pid/attr/current)"
  r "$g.uid" "$(grep '^Uid:' /proc/$pid/status | cut -f2)"
  [ $g = alpha ] && d='${disk('alpha')}' || d=/srv/qemu/$g/disk.img
  r "$g.disk" "$(stat -c %C "$d")"
  for d in /var/lib/qemu-harden/$g /var/log/qemu-harden/$g/serial.log /run/qemu-harden/$g/qmp.sock; do
    r "$g.file" "$d $(stat -c %C $d)"
  done
done
r decoy "$(stat -c %C '${DECOY}')"
tpm=$(systemctl show -p MainPID --value qemu-beta-tpm.service)
r beta.tpm_active "$(systemctl is-active qemu-beta-tpm.service)"
r beta.tpm_program "$(cat /proc/$tpm/comm)"
r beta.tpm_label "$(cat /proc/$tpm/attr/current)"
r beta.tpm_uid "$(grep '^Uid:' /proc/$tpm/status | cut -f2)"
# Beta's passt: its unit, its process (and every process of its unit), its socket, and beta's QEMU connected to it.
net=$(systemctl show -p MainPID --value qemu-beta-net.service)
r beta.net_pid "$net"
r beta.net_active "$(systemctl is-active qemu-beta-net.service)"
r beta.net_program "$(cat /proc/$net/comm)"
r beta.net_label "$(cat /proc/$net/attr/current)"
r beta.net_uid "$(grep '^Uid:' /proc/$net/status | cut -f2)"
r beta.net_capeff "$(grep '^CapEff:' /proc/$net/status | cut -f2)"
net_cg=$(systemctl show -p ControlGroup --value qemu-beta-net.service)
[ -n "$net_cg" ] && for p in $(cat "/sys/fs/cgroup$net_cg/cgroup.procs"); do
  r beta.net_proc "$(cat /proc/$p/comm) $(cat /proc/$p/attr/current)"
done
journalctl -b -u qemu-beta-net.service --no-pager -o cat | tail -5 | sed 's/^/RESULT beta.net_journal=/'
r beta.net_socket "$(stat -c %C /run/qemu-harden/beta/net/passt.sock 2>&1)"
r beta.net_estab "$(ss -Hxp | grep "pid=$net," | grep -c ESTAB)"
r beta.qemu_inet "$(nsenter -t $(systemctl show -p MainPID --value qemu-beta.service) -n ss -Hna -A inet | wc -l)"
for f in /var/lib/qemu-harden/beta/tpm2/tpm2-00.permall /run/qemu-harden/beta/tpm.sock; do
  r beta.tpm_file "$f $(stat -c %C $f)"
done
# Gamma's tap: made by its unit, and attached by gamma's QEMU (the kernel turns the carrier on when a process
# holds the device), which QEMU's monitor shows as its network card's peer.
r gamma.tap_unit "$(systemctl is-active qemu-gamma-tap.service)"
r gamma.tap_owner "$(cat /sys/class/net/${TAP}/owner)"
r gamma.tap_carrier "$(cat /sys/class/net/${TAP}/carrier)"
# The client runs at gamma's level: the socket QEMU accepts takes the client's level, and MCS keeps gamma's QEMU
# from reading or writing one at the administrator's whole range (libvirt sets its monitor socket's label likewise).
# Its answers are JSON with backslash escapes, which the shell's echo (and so r) would turn into line breaks.
qmp() { runcon -l "$(cat /proof/gamma.level)" node --jitless /proof/qmp.mjs /run/qemu-harden/gamma/qmp.sock "$1"; }
printf 'RESULT gamma.info_network=%s\\n' "$(qmp '{"execute":"human-monitor-command","arguments":{"command-line":"info network"}}')"
printf 'RESULT gamma.rx_filter=%s\\n' "$(qmp '{"execute":"query-rx-filter"}')"
# Alpha's forward: bound by its QEMU, in its own context, as it started; a client's connection is accepted by it.
fwd=$(ss -Hltnp 'sport = :${FORWARD.port}')
r alpha.fwd_local "$(printf '%s' "$fwd" | awk '{print $4}')"
r alpha.fwd_pid "$(printf '%s' "$fwd" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)"
r alpha.main_pid "$(systemctl show -p MainPID --value qemu-alpha.service)"
# The client holds its connection while QEMU's slirp accepts it: accepted, the socket is QEMU's (ss names it).
node --jitless -e 'const s = require("net").connect(${FORWARD.port}, "${FORWARD.listen}", () => { console.log("connected"); setTimeout(() => s.destroy(), 60000); }); s.on("error", (e) => console.log(e.code));' > /run/fwd.out 2> /run/fwd.err &
client=$!
accepted() { ss -Htnp state established '( sport = :${FORWARD.port} )' | grep -q "pid=$(systemctl show -p MainPID --value qemu-alpha.service),"; }
wait_until 60 accepted && r alpha.fwd_accepted yes || r alpha.fwd_accepted no
# QEMU's side shows the connection as soon as the kernel completes it; the client says so once its own callback has
# run, which under emulation can be seconds later.
wait_until 60 test -s /run/fwd.out
r alpha.fwd_connect "$(head -1 /run/fwd.out)"
kill $client
wait $client
# Each user-mode network's UDP forward, bound as it started: by alpha's QEMU and by beta's passt.
udp_owner() { ss -Hulnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
r alpha.udp_pid "$(udp_owner ${UDP.alpha})"
r beta.udp_pid "$(udp_owner ${UDP.beta})"
t guests_up
avcs() { journalctl -b _TRANSPORT=audit --no-pager -o cat | grep 'avc: *denied'; }
# The denials logged after the first N: a check reads only those logged since it began.
since() { avcs | tail -n +$(($1 + 1)); }
r denied_while_booting "$(avcs | grep -c 'scontext=system_u:system_r:svirt_t')"
avcs | grep 'scontext=system_u:system_r:svirt_t' | sed 's/^/RESULT booting_avc=/'
avcs | grep -e 'tclass=tun_socket' -e 'tun_tap_device_t' -e 'comm="ip"' | sed 's/^/RESULT tap_avc=/'
# The shared folders, and a shell in each guest's context as its QEMU runs (its user, the virt domain, its pair),
# started by systemd as the guest's unit is: the folders' modes let everyone in, so only the labels stand between a
# guest and what it may not do. Each probe ends with the shell's status, written to the journal by the probe itself.
# Debian's policy keeps the virt domain's denials on virt_content_t out of the log (dontaudit), so only the refusal
# of beta's folder to alpha is logged; the others show in what the shell was told.
# Beta's writable folder belongs to beta's user (0700, from the bundle's tmpfiles.d), opened to everyone here.
chmod 0777 ${SHARE('beta')}
for g in alpha beta; do
  r "$g.share" "$(stat -c '%C %a' ${SHARE('$g')}) $(stat -c '%C %a' ${SHARE('$g')}/$g.txt)"
done
share_probe() {
  systemd-run --wait --quiet --unit=share-$1-$2 -p User=qemu-$1 -p Group=qemu-$1 -p NoNewPrivileges=yes -p RuntimeMaxSec=60 -p "SELinuxContext=system_u:system_r:svirt_t:$(cat /proof/$1.level)" /bin/sh -c "$3; echo status=\\$?"
  said() { journalctl -b _SYSTEMD_UNIT=share-$1-$2.service --no-pager -o cat; }
  wait_until 30 eval "said $1 $2 | grep -q '^status='"
  r "share.$1.$2" "$(said $1 $2 | tr '\n' ' ')"
}
share_mark=$(avcs | wc -l)
share_probe alpha read 'cat ${SHARE('alpha')}/alpha.txt'
share_probe alpha write 'echo x > ${SHARE('alpha')}/new'
share_probe beta write 'echo written > ${SHARE('beta')}/new && cat ${SHARE('beta')}/new'
share_probe alpha other 'cat ${SHARE('beta')}/beta.txt'
share_probe beta other 'cat ${SHARE('alpha')}/alpha.txt'
r share.beta_new "$(stat -c %C ${SHARE('beta')}/new)"
# journald reads the kernel's audit records on its own time: until alpha's refusal is there.
wait_until 60 eval "since $share_mark | grep -q 'tcontext=system_u:object_r:svirt_image_t:$(cat /proof/beta.level) '"
since $share_mark | sed 's/^/RESULT share_avc=/'
t shares_probed

compact() { node --jitless -e 'process.stdout.write(JSON.stringify(JSON.parse(require("fs").readFileSync(0, "utf8"))))'; }
${QH} status --json > /run/status.json
r status_exit $?
r status "$(compact < /run/status.json)"

# Guest alpha's QEMU pointed at beta's disk, with the systemd fence that hides it taken away.
cross() {
  name=$1
  systemctl stop qemu-alpha.service
  mkdir -p /run/systemd/system/qemu-alpha.service.d
  cp /proof/alpha-beta.conf /run/systemd/system/qemu-alpha.service.d/test.conf
  systemctl daemon-reload
  refusals() { journalctl -b -u qemu-alpha.service --no-pager -o cat | grep -c "Could not open"; }
  markers() { grep -c '${BOOT_MARKER}' /var/log/qemu-harden/alpha/serial.log; }
  before=$(refusals); booted=$(markers)
  systemctl start qemu-alpha.service
  # Until QEMU has said it could not open the disk and has exited, or has booted it (the other wait then ends
  # after its own time).
  refused_again() { [ "$(refusals)" -gt "$before" ]; }
  booted_again() { [ "$(markers)" -gt "$booted" ]; }
  ended() { [ "$(systemctl show -p ActiveState --value qemu-alpha.service)" != active ]; }
  either() { refused_again || booted_again; }
  wait_until 90 either
  refused_again && wait_until 10 ended
  r "$name.state" "$(systemctl show -p ActiveState --value qemu-alpha.service)"
  r "$name.booted" "$(booted_again && echo yes || echo no)"
  r "$name.error" "$(journalctl -b -u qemu-alpha.service --no-pager -o cat | grep -o "Could not open '[^']*': [A-Za-z ]*" | tail -1)"
  r "$name.pid_label" "$(cat /proc/$(systemctl show -p MainPID --value qemu-alpha.service)/attr/current 2>/dev/null)"
  systemctl stop qemu-alpha.service
  rm -r /run/systemd/system/qemu-alpha.service.d
  systemctl daemon-reload
}
t status_read
chmod 0666 ${disk('beta')}
# Each check below reads only the denials logged since it began (after those of the shared folders' probes).
mark=$(avcs | wc -l)
cross selinux_only
since $mark | grep "scontext=$(cat /proof/alpha.context)" | grep "tcontext=system_u:object_r:svirt_image_t:$(cat /proof/beta.level)" | sed 's/^/RESULT cross_avc=/'
# The same, with beta's disk labelled with alpha's pair: the label is the one thing that kept alpha out. Beta
# stops first, or its QEMU's lock on the image would refuse alpha's.
systemctl stop qemu-beta.service
chcon "system_u:object_r:svirt_image_t:$(cat /proof/alpha.level)" ${disk('beta')}
cross same_pair
restorecon -F ${disk('beta')}
r beta.disk_restored "$(stat -c %C ${disk('beta')})"
systemctl start qemu-alpha.service qemu-beta.service
wait_until 60 systemctl is-active -q qemu-beta-tpm.service
# A QEMU in alpha's context, as alpha's user, pointed at one of beta's sockets, with file modes that let it in:
# only the pairs stand between them. It runs at most a minute, in case it connects; the modes are put back after.
cross_socket() {
  name=$1 sock=$2
  shift 2
  modes="$(stat -c %a "$@" $sock | tr '\n' ' ')"
  chmod 0755 "$@"
  chmod 0666 $sock
  mark=$(avcs | wc -l)
  systemd-run --wait --quiet --unit=$name -p User=qemu-alpha -p Group=qemu-alpha -p NoNewPrivileges=yes -p RuntimeMaxSec=60 -p "SELinuxContext=$(cat /proof/alpha.context)" /usr/bin/qemu-system-x86_64 -machine none -nodefaults -display none -monitor none -chardev socket,id=s,path=$sock
  r $name.exit $?
  r $name.error "$(journalctl -b -u $name.service --no-pager -o cat | grep -o "Failed to connect to '[^']*': [A-Za-z ]*" | tail -1)"
  for f in "$@" $sock; do chmod "\${modes%% *}" $f; modes="\${modes#* }"; done
  since $mark | grep "scontext=$(cat /proof/alpha.context)" | grep -v 'tclass=file ' | sed "s/^/RESULT $name.avc=/"
}
cross_socket tpm_cross /run/qemu-harden/beta/tpm.sock /run/qemu-harden/beta
cross_socket net_cross /run/qemu-harden/beta/net/passt.sock /run/qemu-harden/beta /run/qemu-harden/beta/net
t crossed

# QEMUs the audit must report: one started by hand as root (unconfined), one in the virt domain without
# categories, one holding alpha's pair; beta's disk relabelled without its pair, and its shared folder with alpha's.
# Debian's policy gives root's domain no writable code unless allow_execmem is on, and TCG needs it.
setsebool allow_execmem 1
qemu-system-x86_64 -name guest=rogue -machine none -S -nodefaults -display none -monitor none &
rogue=$!
idle() { systemd-run --unit=$1 -p "SELinuxContext=$2" /usr/bin/qemu-system-x86_64 -name guest=$1 -machine none -S -nodefaults -display none -monitor none; }
idle nocats system_u:system_r:svirt_t:s0
idle twin "$(cat /proof/alpha.context)"
chcon system_u:object_r:svirt_image_t:s0 ${disk('beta')}
chcon "system_u:object_r:svirt_image_t:$(cat /proof/alpha.level)" ${SHARE('beta')}
running() { kill -0 $rogue && systemctl is-active -q nocats twin qemu-alpha.service qemu-beta.service; }
wait_until 60 running && r extra_qemus running || r extra_qemus "not all running"
${QH} audit --json > /run/audit.json
r audit_exit $?
# One line per finding: a console line of the whole report would be cut.
node --jitless -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8")).findings) console.log("RESULT finding=" + JSON.stringify({ check: f.check, guest: f.guest, severity: f.severity, summary: f.summary }))' < /run/audit.json
t audited

# Beta's network as its guest sees it, through its passt in beta's context: a network card in user space in place
# of beta's QEMU (test/guestnet.ts).
${guestNetUnderSelinux('beta')}
t guest_net

# Rollback to the bundle before (alpha alone), once the QEMUs the audit needed are gone and beta's disk has its
# pair again: beta and gamma stop, their modules go and their files get what the policy says without them.
kill $rogue
systemctl stop nocats twin
restorecon -F ${disk('beta')} ${SHARE('beta')}
avcs_before=$(avcs | wc -l)
# First the rollback stops at its SELinux step (a semodule that lists the store and refuses every change stands in
# for any failure there): beta and gamma are stopped and their files gone, their modules still in the store.
mkdir -p /run/qh-failing
printf '#!/bin/sh\n[ "$1" = -l ] && exec /usr/sbin/semodule "$@"\necho "stand-in refuses: $*" >&2\nexit 1\n' > /run/qh-failing/semodule
chmod 755 /run/qh-failing/semodule
PATH=/run/qh-failing:$PATH ${QH} rollback --yes > /run/rollback0.log 2>&1
r rollback0_exit $?
grep -E '^  (done|skip|FAIL) ' /run/rollback0.log | sed 's/^  /RESULT rollback0_step=/'
rm -r /run/qh-failing
semodule -l | grep qemu-harden | sed 's/^/RESULT rb0_module=/'
r rb0_beta_cil "$(ls /usr/share/selinux/packages/qemu-harden/qemu-harden-beta.cil 2>&1 | grep -c 'No such file')"
# Then rollback again completes it, as the one that stopped said.
grep -q 'run rollback again to complete it' /run/rollback0.log && r rollback0_way_on yes || r rollback0_way_on no
${QH} rollback --yes > /run/rollback.log 2>&1
r rollback_exit $?
grep -E '^  (done|skip|FAIL) ' /run/rollback.log | sed 's/^  /RESULT rollback_step=/'
t rolled_back
semodule -l | grep qemu-harden | sed 's/^/RESULT rb_module=/'
for u in qemu-beta.service qemu-beta-tpm.service qemu-gamma.service qemu-gamma-tap.service; do
  r "rb_unit" "$u $(systemctl is-active $u) $(systemctl is-enabled $u 2>/dev/null || echo absent)"
done
r rb_tap "$(ip -o link show ${TAP} 2>&1 | cut -c1-60)"
for l in $(cat /proof/beta.level) $(cat /proof/gamma.level); do
  r rb_holding "$l $(grep -lz ":$l$" /proc/[0-9]*/attr/current 2>/dev/null | wc -l)"
done
for f in ${['beta', 'gamma']
  .flatMap(REMOVED_FILES)
  .map((f) => `'${f}'`)
  .join(' ')}; do
  r rb_file "$f|$(stat -c %C "$f")|$(matchpathcon -n "$f")"
done
r rb_alpha "$(cat /proc/$(systemctl show -p MainPID --value qemu-alpha.service)/attr/current) $(stat -c %C '${disk('alpha')}')"
since $avcs_before | sed 's/^/RESULT rb_avc=/'
# The shared module loaded now, as semodule keeps it: the one of the bundle before, without the TPM's rules.
# semodule writes it where its domain may write: /tmp (/run is closed to it).
(cd /tmp && semodule --cil -E qemu-harden)
cmp -s /tmp/qemu-harden.cil /bundle0/${SHARED_MODULE} && r rb_shared before || r rb_shared "$(diff /bundle0/${SHARED_MODULE} /tmp/qemu-harden.cil | head -5 | tr '\n' '|')"
r rb_shared_connectto "$(grep -c connectto /tmp/qemu-harden.cil)"
idle twin2 "$(cat /proof/alpha.context)"
wait_until 60 systemctl is-active -q twin2 && r twin2 running || r twin2 "not running"
# A changed bundle (beta's memory) while the twin, outside qemu.slice, holds alpha's pair: apply refuses to load it.
${QH} apply /bundle2 --yes > /run/apply2.log 2>&1
r apply2_exit $?
grep -E '^  (done|skip|FAIL) ' /run/apply2.log | sed 's/^  /RESULT apply2_step=/'
t applied_again
avcs | grep -v 'scontext=system_u:system_r:svirt_t' | sed 's/^/RESULT other_avc=/'
r done yes
`;

describe('under a real kernel with SELinux enforcing, each guest runs in the virt domain with its own pair', () => {
  let vm: VmResult;
  const work = tempDir({ after }, 'qh-selinux-vm-');
  const answers = validate(ANSWERS);
  const pairs = categoryPairs(answers.guests);
  const pair = (g: string) => pairs.get(g)!;

  before(async () => {
    const kernel = proofKernel([
      ['setfiles', 'policycoreutils'],
      ['mke2fs', 'e2fsprogs'],
      ['debootstrap', 'debootstrap'],
    ]);
    const image = await selinuxRootImage();
    const bundle = await generateBundle(work, ANSWERS);
    const tree = selinuxProofTree(work, PROOF, bundle);
    mkdirSync(join(work, 'v0'));
    cpSync(await generateBundle(join(work, 'v0'), ANSWERS_BEFORE), join(tree, 'bundle0'), { recursive: true });
    cpSync(join(REPO, 'test/clients/qmp.mjs'), join(tree, 'proof/qmp.mjs'));
    mkdirSync(join(tree, 'usr/local/share/qh-proof'), { recursive: true });
    cpSync(join(REPO, 'test/clients/passt.py'), join(tree, SELINUX_CARD));
    const changed = structuredClone(ANSWERS);
    changed.guests[1]!.memoryMiB = 96;
    mkdirSync(join(work, 'v2'));
    cpSync(await generateBundle(join(work, 'v2'), changed), join(tree, 'bundle2'), { recursive: true });
    for (const g of GUESTS) {
      mkdirSync(join(tree, 'srv/qemu', g), { recursive: true });
      writeBootDisk(join(tree, disk(g)));
    }
    writeBootDisk(join(tree, DECOY));
    for (const g of ['alpha', 'beta']) {
      mkdirSync(join(tree, SHARE(g)), { recursive: true, mode: 0o777 });
      chmodSync(join(tree, SHARE(g)), 0o777);
      writeFileSync(join(tree, SHARE(g), `${g}.txt`), `${g}'s shared file\n`);
      chmodSync(join(tree, SHARE(g), `${g}.txt`), 0o666);
    }
    const unit = readFileSync(join(bundle, 'root/etc/systemd/system/qemu-alpha.service'), 'utf8');
    writeFileSync(
      join(tree, 'proof/alpha-beta.conf'),
      diskSwapDropIn(unit, disk('alpha'), disk('beta'), [
        'TemporaryFileSystem=',
        'InaccessiblePaths=',
        `ReadWritePaths=${disk('beta')}`,
      ]),
    );
    writeFileSync(join(tree, 'proof/alpha.context'), processContext(pair('alpha')));
    writeFileSync(join(tree, 'proof/alpha.level'), level(pair('alpha')));
    writeFileSync(join(tree, 'proof/beta.level'), level(pair('beta')));
    writeFileSync(join(tree, 'proof/beta.context'), processContext(pair('beta')));
    writeFileSync(join(tree, 'proof/gamma.level'), level(pair('gamma')));
    vm = await bootSelinuxProof(kernel, image, tree, work, 2_700_000);
    writeFileSync(join(REPO, '.cache', 'selinux-vm-console.log'), vm.console);
  });

  const result = (key: string) => reported(vm, key);
  const all = (key: string) => reportedAll(vm, key);

  test('the kernel enforces SELinux, and the VM ran the whole proof', () => {
    assertProofDone(vm);
    assert.equal(result('enforce'), '1');
  });

  test('apply on the live system: the modules loaded, the guests’ files relabelled, the guests started', () => {
    assert.equal(result('apply_exit'), '0', all('apply_step').join('\n'));
    const steps = all('apply_step');
    assert.ok(
      steps.some((s) => /^done +load the SELinux modules and relabel the guests’ files: .*qemu-harden-alpha/.test(s)),
      steps.join('\n'),
    );
    assert.deepEqual(
      all('module')
        .map((m) => m.split(/\s+/)[0])
        .sort(),
      ['qemu-harden', 'qemu-harden-alpha', 'qemu-harden-beta', 'qemu-harden-gamma'],
    );
    assert.equal(result('apply0_exit'), '0', all('apply0_step').join('\n'));
  });

  test('a shared folder is its guest’s alone: alpha reads its read-only folder and cannot write it, beta writes its own, neither opens the other’s', () => {
    const label = (type: string, g: string) => `system_u:object_r:${type}:${level(pair(g))}`;
    // QEMU opened each folder as it started (9p opens its root), and the guests booted: alpha.marker, beta.marker.
    // Each folder and its file with the guest's pair, and modes that let every user in.
    for (const [g, type] of [
      ['alpha', 'virt_content_t'],
      ['beta', 'svirt_image_t'],
    ] as const)
      assert.equal(result(`${g}.share`), `${label(type, g)} 777 ${label(type, g)} 666`);
    assert.match(result('share.alpha.read'), /^alpha's shared file status=0$/);
    assert.match(result('share.alpha.write'), /cannot create \/srv\/shares\/alpha\/new: Permission denied status=2$/);
    assert.match(result('share.beta.write'), /^written status=0$/);
    assert.equal(result('share.beta_new'), label('svirt_image_t', 'beta'), 'what beta writes carries its pair');
    assert.match(result('share.alpha.other'), /beta\.txt: Permission denied status=1$/);
    assert.match(result('share.beta.other'), /alpha\.txt: Permission denied status=1$/);
    // Beta's folder is an image (svirt_image_t), whose denials the policy logs: the kernel's line for alpha's shell.
    // Those on read-only content (virt_content_t) it keeps out of the log (dontaudit svirt_t virt_content_t).
    const avc = all('share_avc');
    for (const l of avc) assert.match(l, / permissive=0/);
    assert.ok(
      avc.some(
        (l) =>
          / name="beta(\.txt)?" /.test(l) &&
          l.includes(` scontext=${processContext(pair('alpha'))} `) &&
          l.includes(` tcontext=${label('svirt_image_t', 'beta')} `),
      ),
      `the kernel logged the refusal of beta's folder to alpha:\n${avc.join('\n')}`,
    );
    assert.deepEqual(
      avc.filter((l) => !l.includes(` tcontext=${label('svirt_image_t', 'beta')} `)),
      [],
      'no other denial while the probes ran',
    );
  });

  for (const g of GUESTS) {
    test(`${g}: its QEMU booted in svirt_t with its own pair, as its own user, and its files carry the pair`, () => {
      assert.equal(result(`${g}.marker`), 'yes');
      assert.equal(result(`${g}.label`), processContext(pair(g)));
      assert.notEqual(result(`${g}.uid`).split('\t')[0], '0');
      assert.equal(result(`${g}.disk`), `system_u:object_r:svirt_image_t:${level(pair(g))}`);
      if (g === 'alpha')
        assert.doesNotMatch(
          result('decoy'),
          /svirt_image_t/,
          'the file the disk’s name matches as a pattern keeps its label',
        );
      const files = all(`${g}.file`);
      assert.equal(files.length, 3);
      if (g === 'alpha') {
        // Its user-mode network (slirp inside QEMU) took its forward in the virt domain, with no denial.
        assert.equal(result('alpha.fwd_local'), `${FORWARD.listen}:${FORWARD.port}`);
        assert.equal(result('alpha.fwd_pid'), result('alpha.main_pid'));
        assert.equal(result('alpha.fwd_connect'), 'connected');
        assert.equal(result('alpha.fwd_accepted'), 'yes');
        assert.equal(result('alpha.udp_pid'), result('alpha.main_pid'), 'alpha’s QEMU bound its UDP forward');
      }
      for (const f of files) assert.match(f, new RegExp(` system_u:object_r:svirt_image_t:${level(pair(g))}$`), f);
    });
  }

  test('beta’s user-mode network: passt runs in beta’s context as beta’s user with no capability, binds its UDP forward, its socket carries beta’s pair, and beta’s QEMU is connected to it and holds no IP socket', () => {
    assert.equal(result('netup'), '0');
    assert.equal(result('beta.net_active'), 'active');
    assert.match(result('beta.net_program'), /^passt(\.avx2)?$/);
    assert.equal(result('beta.net_label'), processContext(pair('beta')));
    assert.equal(result('beta.net_uid').split('\t')[0], result('beta.uid').split('\t')[0]);
    assert.notEqual(result('beta.net_uid').split('\t')[0], '0');
    assert.equal(result('beta.net_capeff'), '0000000000000000');
    const procs = all('beta.net_proc');
    assert.ok(procs.length > 0);
    for (const p of procs) assert.match(p, new RegExp(`^passt(\\.avx2)? ${processContext(pair('beta'))}$`), p);
    assert.equal(result('beta.udp_pid'), result('beta.net_pid'), 'beta’s passt bound its UDP forward');
    assert.equal(result('beta.net_socket'), `system_u:object_r:svirt_image_t:${level(pair('beta'))}`);
    assert.ok(Number(result('beta.net_estab')) >= 1, 'beta’s QEMU holds a connection to passt');
    assert.equal(result('beta.qemu_inet'), '0', 'beta’s QEMU has no IP socket');
  });

  test('beta’s guest traffic through its passt: an address by DHCP, a ping and a page from a server in a namespace, and no way to the host’s loopback; SELinux denies passt nothing', () => {
    assertGuestNetUnderSelinux(vm, 'beta');
  });

  test('beta’s TPM: its swtpm runs in beta’s context, as beta’s user, its state and socket carry beta’s pair, and beta booted with it', () => {
    assert.equal(result('beta.tpm_active'), 'active');
    assert.equal(result('beta.tpm_program'), 'swtpm');
    assert.equal(result('beta.tpm_label'), processContext(pair('beta')));
    assert.notEqual(result('beta.tpm_uid').split('\t')[0], '0');
    assert.equal(result('beta.tpm_uid'), result('beta.uid'));
    const files = all('beta.tpm_file');
    assert.equal(files.length, 2);
    for (const f of files) assert.match(f, new RegExp(` system_u:object_r:svirt_image_t:${level(pair('beta'))}$`), f);
    // QEMU connects to the TPM's socket as it starts, and exits when it cannot: beta booting is beta reaching it.
    assert.equal(result('beta.marker'), 'yes');
  });

  // What cross_socket reported for one of beta's sockets: refused, and the kernel's AVC names beta's pair.
  for (const [name, what, sock] of [
    ['tpm_cross', 'TPM', '/run/qemu-harden/beta/tpm.sock'],
    ['net_cross', 'passt', '/run/qemu-harden/beta/net/passt.sock'],
  ] as const)
    test(`a QEMU in alpha’s context, pointed at beta’s ${what} socket (modes opened), is refused by SELinux, and the kernel logs the AVC`, () => {
      assert.notEqual(result(`${name}.exit`), '0');
      assert.equal(result(`${name}.error`), `Failed to connect to '${sock}': Permission denied`);
      const avc = all(`${name}.avc`);
      assert.ok(avc.length > 0, `an AVC denial of beta’s ${what} socket or its directory to alpha’s context`);
      for (const line of avc) {
        assert.match(line, new RegExp(`tcontext=system_u:object_r:svirt_image_t:${level(pair('beta'))} `));
        assert.match(line, / tclass=(sock_file|dir) /);
        assert.match(line, / permissive=0/);
      }
    });

  test('the guests hold different pairs', () => {
    assert.equal(new Set(GUESTS.map((g) => level(pair(g)))).size, GUESTS.length);
  });

  test('gamma: its QEMU, in its own context, opened the tap its unit made for gamma’s user, its card is attached to it, and the kernel denied nothing', () => {
    assert.equal(result('gamma.marker'), 'yes');
    assert.equal(result('gamma.label'), processContext(pair('gamma')));
    assert.equal(result('gamma.tap_unit'), 'active');
    assert.equal(result('gamma.tap_owner'), result('gamma.uid').split('\t')[0]);
    // The kernel turns a tap's carrier on when a process attaches to it: gamma's QEMU holds it.
    assert.equal(result('gamma.tap_carrier'), '1');
    const answer = (key: string) =>
      (JSON.parse(result(key)) as { return?: unknown }[]).filter((m) => m.return !== undefined).at(-1)?.return;
    const info = answer('gamma.info_network');
    assert.equal(typeof info, 'string', result('gamma.info_network'));
    assert.match(info as string, new RegExp(`type=tap,ifname=${TAP},script=no,downscript=no`));
    const mac = macAddress(answers.guests.find((g) => g.name === 'gamma')!);
    assert.match(info as string, new RegExp(`macaddr=${mac}`));
    const filters = answer('gamma.rx_filter') as { 'main-mac': string }[];
    assert.deepEqual(
      filters.map((f) => f['main-mac']),
      [mac],
      result('gamma.rx_filter'),
    );
    assert.deepEqual(all('tap_avc'), []);
  });

  test('no SELinux denial for the guests while they booted', () => {
    assert.equal(result('denied_while_booting'), '0', all('booting_avc').join('\n'));
  });

  test('status: each guest runs in the context its unit names', () => {
    assert.equal(result('status_exit'), '0', result('status'));
    const r = JSON.parse(result('status')) as {
      ok: boolean;
      guests: { name: string; weaker: string[]; process: { selinux: { label: string } | null } }[];
    };
    assert.equal(r.ok, true);
    for (const g of GUESTS) {
      const s = r.guests.find((x) => x.name === g)!;
      assert.equal(s.process.selinux?.label, processContext(pair(g)));
      assert.deepEqual(s.weaker, []);
    }
  });

  test('guest A pointed at guest B’s disk (mode 0666), the systemd fence taken away: SELinux denies it, and the kernel logs the AVC', () => {
    assert.equal(result('selinux_only.error'), `Could not open '${disk('beta')}': Permission denied`);
    assert.notEqual(result('selinux_only.state'), 'active');
    const avc = all('cross_avc');
    assert.ok(avc.length > 0, 'an AVC denial of beta’s disk to alpha’s QEMU');
    for (const line of avc) {
      assert.match(line, /avc: +denied +\{ [a-z ]*(read|write)[a-z ]* \}/);
      assert.match(line, / name="disk\.img" /);
      assert.match(line, / tclass=file /);
      assert.match(line, / permissive=0/);
    }
  });

  test('the same, with B’s disk labelled with A’s pair: A’s QEMU opens it and boots it (the pair is what kept it out)', () => {
    assert.equal(result('same_pair.booted'), 'yes');
    assert.equal(result('same_pair.pid_label'), processContext(pair('alpha')));
    assert.equal(result('beta.disk_restored'), `system_u:object_r:svirt_image_t:${level(pair('beta'))}`);
  });

  test('audit reports the QEMU started as root outside a unit, one without categories, two sharing a pair, a disk without its pair, and a shared folder with another guest’s', () => {
    assert.equal(result('extra_qemus'), 'running');
    const r = {
      findings: all('finding').map(
        (l) => JSON.parse(l) as { check: string; guest: string | null; summary: string; severity: string },
      ),
    };
    assert.equal(result('audit_exit'), '1');
    const of = (check: string, guest: string | null) =>
      r.findings.filter((f) => f.check === check && (guest === null || f.guest === guest));
    assert.ok(
      of('process.selinux', 'rogue').some((f) => /not confined by SELinux \(unconfined_t\)/.test(f.summary)),
      JSON.stringify(r.findings, null, 1),
    );
    assert.ok(of('process.selinux', 'nocats').some((f) => /without a category pair/.test(f.summary)));
    const shared = of('host.selinux-shared-pair', null);
    assert.equal(shared.length, 1, JSON.stringify(shared));
    assert.match(shared[0]!.summary, /alpha/);
    assert.match(shared[0]!.summary, /twin/);
    const image = of('process.selinux-image', 'beta');
    assert.equal(image.length, 1, JSON.stringify(r.findings, null, 1));
    assert.equal(image[0]!.severity, 'high');
    assert.match(image[0]!.summary, /without its category pair/);
    for (const g of GUESTS) assert.deepEqual(of('process.selinux', g), [], `${g}'s own context is not a finding`);
    assert.deepEqual(of('process.selinux-image', 'alpha'), []);
    const share = of('process.selinux-share', 'beta');
    assert.equal(share.length, 1, JSON.stringify(r.findings, null, 1));
    assert.equal(share[0]!.severity, 'medium');
    assert.equal(
      share[0]!.summary,
      `its shared folder ${SHARE('beta')} is labelled system_u:object_r:svirt_image_t:${level(pair('alpha'))}, not with its own categories (${processContext(pair('beta'))})`,
    );
    // alpha's read-only folder carries alpha's pair (virt_content_t): its own.
    assert.deepEqual(of('process.selinux-share', 'alpha'), []);
  });

  test('a rollback to the bundle before (alpha alone) that stops at its SELinux step leaves beta’s and gamma’s modules in the store, their files gone', () => {
    const steps = all('rollback0_step');
    assert.equal(result('rollback0_exit'), '1', steps.join('\n'));
    assert.ok(
      steps.some((s) => /^done +stop and disable beta, gamma: /.test(s)),
      steps.join('\n'),
    );
    // One transaction: the modules of the guests that leave go out as the bundle's come in.
    const failed = steps.filter((s) => s.startsWith('FAIL'));
    assert.equal(failed.length, 1, steps.join('\n'));
    assert.match(
      failed[0]!,
      /^FAIL +load the SELinux modules and relabel the guests’ files: exit 1: stand-in refuses: -r qemu-harden-beta -r qemu-harden-gamma -i \S+\/qemu-harden-alpha\.cil -i \S+\/qemu-harden\.cil$/,
    );
    assert.deepEqual(
      all('rb0_module')
        .map((m) => m.split(/\s+/)[0])
        .sort(),
      ['qemu-harden', 'qemu-harden-alpha', 'qemu-harden-beta', 'qemu-harden-gamma'],
    );
    assert.equal(result('rb0_beta_cil'), '1', 'beta’s module file is gone from the host');
  });

  test('rollback again completes it: beta and gamma stay stopped, their modules leave in the load’s own transaction though their files are gone, the shared module the one before, their files labelled as the policy says without them, no denial', () => {
    assert.equal(result('rollback0_way_on'), 'yes', 'the rollback that stopped said to run rollback again');
    const steps = all('rollback_step');
    assert.equal(result('rollback_exit'), '0', steps.join('\n'));
    assert.ok(
      steps.some((s) =>
        /^done +load the SELinux modules and relabel the guests’ files: qemu-harden-alpha qemu-harden loaded, qemu-harden-beta qemu-harden-gamma removed; \d+ paths relabelled/.test(
          s,
        ),
      ),
      steps.join('\n'),
    );
    assert.deepEqual(
      all('rb_module')
        .map((m) => m.split(/\s+/)[0])
        .sort(),
      ['qemu-harden', 'qemu-harden-alpha'],
    );
    assert.equal(result('rb_shared'), 'before', 'the shared module loaded is the bundle before’s, byte for byte');
    assert.equal(result('rb_shared_connectto'), '0', 'the TPM’s rule went with beta');
    const units = all('rb_unit');
    assert.equal(units.length, 4);
    for (const u of units) assert.match(u, /^\S+ inactive (absent|disabled)$/, u);
    assert.match(result('rb_tap'), /does not exist/);
    for (const g of ['beta', 'gamma'])
      assert.equal(
        all('rb_holding').find((h) => h.startsWith(`${level(pair(g))} `)),
        `${level(pair(g))} 0`,
        `no process holds ${g}’s pair`,
      );
    const files = all('rb_file').map((l) => l.split('|'));
    assert.equal(files.length, ['beta', 'gamma'].flatMap(REMOVED_FILES).length);
    for (const [path, label, policy] of files) {
      assert.equal(label, policy, `${path} is labelled as the policy says`);
      assert.doesNotMatch(label!, /svirt_image_t|:c\d+,c\d+$/, path);
    }
    assert.equal(
      result('rb_alpha'),
      `${processContext(pair('alpha'))} system_u:object_r:svirt_image_t:${level(pair('alpha'))}`,
      'alpha runs on, and its disk keeps its pair',
    );
    // semodule (semanage_t) may not write to qemu-harden's output pipes (unix sockets of the administrator's
    // domain): the policy's refusal of its output, on every run of semodule, apply's too.
    const avc = all('rb_avc').filter(
      (l) => !/ comm="semodule" .*:semanage_t:\S+ tcontext=\S+:unconfined_t:\S+ tclass=unix_stream_socket /.test(l),
    );
    assert.deepEqual(avc, []);
  });

  test('apply refuses to load a bundle whose guest’s pair a process it did not start holds (the twin, outside qemu.slice)', () => {
    assert.equal(result('apply2_exit'), '1');
    const failed = all('apply2_step').filter((l) => l.startsWith('FAIL'));
    assert.equal(failed.length, 1, all('apply2_step').join('\n'));
    assert.match(
      failed[0]!,
      new RegExp(
        `load the SELinux modules .*: qemu-harden-alpha’s pair ${level(pair('alpha'))} is held by pid \\d+ \\(qemu-system-x86, ${processContext(pair('alpha'))}\\), which this bundle did not start`,
      ),
    );
  });
});
