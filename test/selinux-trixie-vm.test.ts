// Debian 13's helpers under SELinux enforcing: Debian 13's own kernel boots with `security=selinux enforcing=1` on a
// Debian 13 root with the reference policy, the Rust virtiofsd, swtpm and passt (test/selinux-vm.ts). Inside,
// `qemu-harden apply --start` installs a bundle whose two guests each have a shared folder, served by a virtiofsd in a
// unit of its own, in the guest's context (the virt domain, the guest's category pair); beta also has a TPM and passt
// as its network, each in a unit of its own in beta's context. The kernel is then asked what each helper runs as,
// how each folder and helper file is labelled, and what a guest reads through its virtiofsd and reaches through its
// passt: the guests are boot sectors, which never mount a folder and have no network stack, so a virtio-fs driver
// (test/clients/virtiofs.py) and a network card (test/guestnet.ts) in user space, in the guest's QEMU context, do
// what the guest's kernel would, through the unit's own virtiofsd and passt. A virtiofsd in alpha's context serving
// beta's folder, as beta's user (file permissions allow it), is refused by the kernel. One boot serves every check.
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { categoryPairs, level, processContext } from '../src/mcs.js';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { assertGuestNetUnderSelinux, guestNetUnderSelinux, routedNamespace, SELINUX_CARD } from './guestnet.js';
import { BIN, generateBundle, REPO, tempDir } from './helpers.js';
import { bootSelinuxProof, selinuxProofTree, selinuxRootImage } from './selinux-vm.js';
import { assertProofDone, proofKernel, reported, reportedAll, type VmResult } from './vmboot.js';

const GUESTS = ['alpha', 'beta'] as const;
// Alpha's folder is read-only, beta's writable; each holds a file named after its guest.
const SHARE = (g: string) => `/srv/shares/${g}`;
// The virtio-fs client, where the virt domain may read and run it (usr_t), as it may QEMU's own files.
const CLIENT = '/usr/local/share/qh-proof/virtiofs.py';
// Node.js's compiler needs memory both writable and executable, which Debian's policy gives the administrator's
// domain only with the boolean allow_execmem: qemu-harden runs without it, interpreted.
const QH = `node --jitless ${BIN.replace(REPO, '/qh')}`;

const ANSWERS = {
  schemaVersion: 1,
  useCase: 'emulation',
  host: { target: 'debian-13', confinement: 'selinux' },
  acceptedRisks: [
    { risk: 'emulation', reason: 'the proof VM has no KVM; its guests are test boot sectors' },
    { risk: 'selinux-execmem', reason: 'TCG writes the code it runs; the proof VM has no KVM' },
    { risk: 'share-writable', guest: 'beta', reason: 'the proof writes to it through beta’s virtiofsd' },
  ],
  guests: GUESTS.map((name) => ({
    name,
    memoryMiB: 64,
    network: { mode: 'none' },
    shares: [{ path: SHARE(name), tag: 'docs', ...(name === 'beta' ? { readOnly: false } : {}) }],
    // Beta has a TPM and passt as its network, each in a unit of its own and in beta's context.
    ...(name === 'beta' ? { tpm: 'tpm2', network: { mode: 'user', backend: 'passt' } } : {}),
    disks: [{ path: `/srv/qemu/${name}/disk.img`, format: 'raw' }],
  })),
};

const PROOF = `cd /
t() { r "time.$1" "$(cut -d' ' -f1 /proc/uptime)"; }
t booted
r enforce "$(cat /sys/fs/selinux/enforce)"
# passt gives its guest the host's own route (test/guestnet.ts).
${routedNamespace('netup')}
# Debian 13's journald does not read the audit socket (systemd-journald-audit.socket is not enabled): with no
# audit daemon, the kernel prints its denials to its own log.
avcs() { dmesg | grep 'avc: *denied'; }
since() { avcs | tail -n +$(($1 + 1)); }
${QH} apply /bundle --yes --start > /run/apply.log 2>&1
r apply_exit $?
grep -E '^  (done|skip|FAIL) ' /run/apply.log | sed 's/^  /RESULT apply_step=/'
t applied
for g in ${GUESTS.join(' ')}; do
  wait_until 120 grep -qs '${BOOT_MARKER}' "/var/log/qemu-harden/$g/serial.log" && r "$g.marker" yes || r "$g.marker" no
  pid=$(systemctl show -p MainPID --value qemu-$g.service)
  r "$g.label" "$(cat /proc/$pid/attr/current)"
  fs=$(systemctl show -p MainPID --value qemu-$g-fs0.service)
  r "$g.fs_active" "$(systemctl is-active qemu-$g-fs0.service)"
  r "$g.fs_program" "$(cat /proc/$fs/comm)"
  r "$g.fs_label" "$(cat /proc/$fs/attr/current)"
  r "$g.fs_uid" "$(grep '^Uid:' /proc/$fs/status | cut -f2)"
  r "$g.fs_capeff" "$(grep '^CapEff:' /proc/$fs/status | cut -f2)"
  r "$g.uid" "$(id -u qemu-$g)"
  r "$g.share" "$(stat -c %C ${SHARE('$g')}) $(stat -c %C ${SHARE('$g')}/$g.txt)"
done
# Beta's TPM and passt: their units, their processes, their files and sockets, and beta's QEMU connected to passt.
for h in tpm net; do
  pid=$(systemctl show -p MainPID --value qemu-beta-$h.service)
  r "beta.$h" "$(systemctl is-active qemu-beta-$h.service) $(cat /proc/$pid/comm) $(cat /proc/$pid/attr/current)"
  r "beta.\${h}_ids" "$(grep '^Uid:' /proc/$pid/status | cut -f2) $(grep '^CapEff:' /proc/$pid/status | cut -f2)"
done
for f in /var/lib/qemu-harden/beta/tpm2/tpm2-00.permall /run/qemu-harden/beta/tpm.sock /run/qemu-harden/beta/net/passt.sock; do
  r beta.helper_file "$f $(stat -c %C $f)"
done
r beta.net_estab "$(ss -Hxp | grep "pid=$(systemctl show -p MainPID --value qemu-beta-net.service)," | grep -c ESTAB)"
r beta.qemu_inet "$(nsenter -t $(systemctl show -p MainPID --value qemu-beta.service) -n ss -Hna -A inet | wc -l)"
avcs | sed 's/^/RESULT start_avc=/'
t guests_up
# What each guest reads through its own virtiofsd, as its kernel would: its QEMU stopped (and the virtiofsd serving
# it, which goes with it), then the client in the guest's QEMU context, as its user, started by systemd as QEMU is,
# and needing the unit's virtiofsd as QEMU's unit does (the unit stops when nothing needs it). The client's lines go
# to the journal, ended by its status.
client() {
  name=$1 ctx=$2 needs=$3
  shift 3
  systemd-run --wait --quiet --unit=client-$name -p User=qemu-$ctx -p Group=qemu-$ctx -p NoNewPrivileges=yes \\
    -p "Requires=$needs" -p "After=$needs" \\
    -p RuntimeMaxSec=120 -p "SELinuxContext=$(cat /proof/$ctx.context)" /bin/sh -c "python3 ${CLIENT} $*; echo status=\\$?"
  said() { journalctl -b _SYSTEMD_UNIT=client-$name.service --no-pager -o cat; }
  wait_until 30 eval "said | grep -q '^status='"
  said | sed "s/^/RESULT $name.client=/"
}
mark=$(avcs | wc -l)
for g in ${GUESTS.join(' ')}; do
  # One transaction, waited for whole: nothing of the guest's is stopping when the client starts.
  systemctl stop qemu-$g.service qemu-$g-fs0.service qemu-$g-fs0.socket
  [ $g = alpha ] && other=beta || other=alpha
  client $g $g qemu-$g-fs0.service /run/qemu-harden/$g/fs0.sock read:$g.txt mkdir:$g-new outside:$other
  r "$g.fs_after" "$(systemctl show -p ActiveState --value qemu-$g-fs0.service)"
  journalctl -b -u qemu-$g-fs0.service --no-pager -o cat | tail -8 | sed "s/^/RESULT $g.fs_journal=/"
done
r beta.new "$(stat -c %C ${SHARE('beta')}/beta-new 2>&1)"
since $mark | sed 's/^/RESULT client_avc=/'
t clients
# Beta's network as its guest sees it, through its passt in beta's context: a network card in user space in place
# of beta's QEMU (test/guestnet.ts).
${guestNetUnderSelinux('beta')}
t guest_net
# A virtiofsd of alpha's (its user, its context) serving beta's folder, which the bundle gave beta's user alone and
# the proof opens to everyone: only the labels stand between them. systemd listens on its socket, in alpha's
# directory, and starts it as the unit does.
chmod 0777 ${SHARE('beta')}
mark=$(avcs | wc -l)
systemd-run --quiet --unit=cross-fs --socket-property=ListenStream=/run/qemu-harden/alpha/cross.sock \\
  --socket-property=SocketUser=qemu-alpha --socket-property=SocketMode=0600 -p User=qemu-alpha -p Group=qemu-alpha \\
  -p "SELinuxContext=$(cat /proof/alpha.context)" \\
  /usr/libexec/virtiofsd --fd=3 --shared-dir=${SHARE('beta')} --sandbox=none --readonly
# While it waits for its client, audit reads it as a helper of some guest's, whoever started it.
systemctl start cross-fs.service
wait_until 30 systemctl is-active -q cross-fs.service
${QH} audit --json > /run/audit.json 2> /run/audit.err
r audit_exit $?
node --jitless -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8")).findings) console.log("RESULT finding=" + JSON.stringify({ check: f.check, severity: f.severity, summary: f.summary }))' < /run/audit.json
client cross alpha cross-fs.socket /run/qemu-harden/alpha/cross.sock read:beta.txt
r cross.fs_state "$(systemctl show -p ActiveState,NRestarts,ExecMainStatus --value cross-fs.service | tr '\\n' ' ')"
journalctl -b -u cross-fs.service --no-pager -o cat | tail -8 | sed 's/^/RESULT cross.fs_journal=/'
wait_until 60 eval "since $mark | grep -q 'tcontext=system_u:object_r:svirt_image_t:$(cat /proof/beta.level) '"
since $mark | sed 's/^/RESULT cross_avc=/'
r done yes
`;

describe('under a real kernel with SELinux enforcing, each guest’s virtiofsd serves its folder in the guest’s context', () => {
  let vm: VmResult;
  const work = tempDir({ after }, 'qh-selinux-trixie-vm-');
  const pairs = categoryPairs(validate(ANSWERS).guests);
  const pair = (g: string) => pairs.get(g)!;

  before(async () => {
    const kernel = proofKernel(
      [
        ['setfiles', 'policycoreutils'],
        ['mke2fs', 'e2fsprogs'],
        ['debootstrap', 'debootstrap'],
      ],
      'trixie',
    );
    const image = await selinuxRootImage('debian-13');
    const bundle = await generateBundle(work, ANSWERS);
    const tree = selinuxProofTree(work, PROOF, bundle);
    mkdirSync(join(tree, 'usr/local/share/qh-proof'), { recursive: true });
    cpSync(join(REPO, 'test/clients/virtiofs.py'), join(tree, CLIENT));
    cpSync(join(REPO, 'test/clients/passt.py'), join(tree, SELINUX_CARD));
    for (const g of GUESTS) {
      mkdirSync(join(tree, 'srv/qemu', g), { recursive: true });
      writeBootDisk(join(tree, 'srv/qemu', g, 'disk.img'));
      mkdirSync(join(tree, SHARE(g)), { recursive: true });
      chmodSync(join(tree, SHARE(g)), 0o777);
      writeFileSync(join(tree, SHARE(g), `${g}.txt`), `${g}'s shared file\n`);
      chmodSync(join(tree, SHARE(g), `${g}.txt`), 0o666);
      writeFileSync(join(tree, `proof/${g}.context`), processContext(pair(g)));
      writeFileSync(join(tree, `proof/${g}.level`), level(pair(g)));
    }
    // veth for the interface passt takes its route from (test/guestnet.ts); the rest is built into Debian 13's kernel.
    vm = await bootSelinuxProof(kernel, image, tree, work, 1_800_000, ['veth']);
    writeFileSync(join(REPO, '.cache', 'selinux-trixie-vm-console.log'), vm.console);
  });

  const result = (key: string) => reported(vm, key);
  const all = (key: string) => reportedAll(vm, key);

  test('the kernel enforces SELinux, and the VM ran the whole proof', () => {
    assertProofDone(vm);
    assert.equal(result('enforce'), '1');
    assert.equal(result('apply_exit'), '0', all('apply_step').join('\n'));
  });

  test('each guest boots, and its virtiofsd runs in the guest’s context as its user, with no capabilities', () => {
    for (const g of GUESTS) {
      assert.equal(result(`${g}.marker`), 'yes', g);
      assert.equal(result(`${g}.label`), processContext(pair(g)), `${g}'s QEMU`);
      assert.equal(result(`${g}.fs_active`), 'active', `${g}'s virtiofsd`);
      assert.equal(result(`${g}.fs_program`), 'virtiofsd');
      assert.equal(result(`${g}.fs_label`), processContext(pair(g)), `${g}'s virtiofsd`);
      assert.equal(result(`${g}.fs_uid`).split(/\s+/)[0], result(`${g}.uid`), `${g}'s virtiofsd runs as its user`);
      assert.equal(result(`${g}.fs_capeff`), '0000000000000000');
    }
    // The root's own services meet a denial or two as it boots (journald, tmpfiles); none is the virt domain's.
    assert.deepEqual(
      all('start_avc').filter((l) => l.includes('scontext=system_u:system_r:svirt_t')),
      [],
      'nothing was denied to a guest’s QEMU or virtiofsd',
    );
  });

  test('beta’s swtpm and passt run in beta’s context as beta’s user, passt with no capability; their state and sockets carry beta’s pair, and beta’s QEMU is connected to passt and holds no IP socket', () => {
    assert.equal(result('netup'), '0');
    const context = processContext(pair('beta'));
    assert.equal(result('beta.tpm'), `active swtpm ${context}`);
    assert.match(result('beta.net'), new RegExp(`^active passt(\\.avx2)? ${context}$`));
    for (const h of ['tpm', 'net']) {
      const [uid, capEff] = result(`beta.${h}_ids`).split(/\s+/);
      assert.equal(uid, result('beta.uid'), h);
      if (h === 'net') assert.equal(capEff, '0000000000000000');
    }
    const files = all('beta.helper_file');
    assert.equal(files.length, 3, files.join('\n'));
    for (const f of files) assert.match(f, new RegExp(` system_u:object_r:svirt_image_t:${level(pair('beta'))}$`), f);
    assert.ok(Number(result('beta.net_estab')) >= 1, 'beta’s QEMU holds a connection to passt');
    assert.equal(result('beta.qemu_inet'), '0', 'beta’s QEMU has no IP socket');
  });

  test('beta’s guest traffic through its passt: an address by DHCP, a ping and a page from a server in a namespace, and no way to the host’s loopback; SELinux denies passt nothing', () => {
    assertGuestNetUnderSelinux(vm, 'beta');
  });

  test('each folder carries its guest’s pair: read-only content for alpha, an image beta may write', () => {
    assert.equal(
      result('alpha.share'),
      `system_u:object_r:virt_content_t:${level(pair('alpha'))} system_u:object_r:virt_content_t:${level(pair('alpha'))}`,
    );
    assert.equal(
      result('beta.share'),
      `system_u:object_r:svirt_image_t:${level(pair('beta'))} system_u:object_r:svirt_image_t:${level(pair('beta'))}`,
    );
  });

  test('through its own virtiofsd a guest reads its folder, writes only where it may, and sees nothing beside it', () => {
    // Read-only: EROFS (30) from virtiofsd itself. Beside the folder: ENOENT (2), the unit's fence hiding the other.
    assert.deepEqual(
      all('alpha.client'),
      ["read:alpha.txt ok alpha's shared file", 'mkdir:alpha-new error 30', 'outside:beta error 2', 'status=0'],
      all('alpha.fs_journal').join('\n'),
    );
    assert.deepEqual(
      all('beta.client'),
      ["read:beta.txt ok beta's shared file", 'mkdir:beta-new ok', 'outside:alpha error 2', 'status=0'],
      all('beta.fs_journal').join('\n'),
    );
    assert.equal(result('beta.new'), `system_u:object_r:svirt_image_t:${level(pair('beta'))}`);
    // The client's own Python reads a memory setting the virt domain may not (glibc's malloc, which does without):
    // that is the client's, not the bundle's. Nothing else was denied.
    assert.deepEqual(
      all('client_avc').filter((l) => !l.includes('comm="python3"')),
      [],
      'nothing was denied to either guest’s virtiofsd',
    );
  });

  test('audit reports the virtiofsd whose folder does not carry its pair, and no other folder', () => {
    // Exit 1: audit found something (this virtiofsd among it).
    assert.equal(result('audit_exit'), '1', all('finding').join('\n'));
    const findings = all('finding').map((l) => JSON.parse(l) as { check: string; severity: string; summary: string });
    assert.deepEqual(
      findings.filter((f) => f.check === 'helper.selinux-share'),
      [
        {
          check: 'helper.selinux-share',
          severity: 'medium',
          summary: `its shared folder ${SHARE('beta')} is labelled system_u:object_r:svirt_image_t:${level(pair('beta'))}, not with its own categories (${processContext(pair('alpha'))})`,
        },
      ],
      all('finding').join('\n'),
    );
  });

  test('a virtiofsd in alpha’s context cannot read beta’s folder: the kernel refuses it', () => {
    assert.deepEqual(
      all('cross.client'),
      ['read:beta.txt error 13', 'status=0'],
      `cross-fs.service: ${result('cross.fs_state')}\n${all('cross.fs_journal').join('\n')}`,
    );
    const avcs = all('cross_avc');
    assert.ok(
      avcs.some(
        (l) =>
          l.includes(`scontext=${processContext(pair('alpha'))} `) &&
          l.includes(`tcontext=system_u:object_r:svirt_image_t:${level(pair('beta'))} `),
      ),
      avcs.join('\n'),
    );
  });
});
