// Files, names and inputs (issue 11, part A), each proven with the program that acts on them: systemd-sysusers and
// systemd-tmpfiles on a throwaway root, the kernel's own permission check, cmark for the bundle README,
// systemd-escape for unit names, and the built qemu-harden binary for what it refuses.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { plan } from '../src/plan.js';
import { BIN, cli, guestFilesDir, requireTool, tempDir } from './helpers.js';

const noTrace = (s: string) => assert.doesNotMatch(s, /\n\s+at |node:internal|\.ts:\d+|\.js:\d+/, 'no stack trace');

/** Write an answers document and run `generate` on it with the built binary. */
async function generate(t: { after(fn: () => void): void }, doc: unknown) {
  const dir = tempDir(t, 'qh-files-');
  const file = join(dir, 'answers.json');
  writeFileSync(file, JSON.stringify(doc));
  return { dir, r: await cli(['generate', '--answers', file, '--out', join(dir, 'bundle')]) };
}

/** An answers document; a guest given neither disks nor a kernel gets a disk of its own, so it has something to boot. */
const doc = (guests: Record<string, unknown>[], extra: Record<string, unknown> = {}) => ({
  schemaVersion: 1,
  useCase: 'virtualization',
  guests: guests.map((g) =>
    g.disks || g.boot ? g : { ...g, disks: [{ path: `/srv/${String(g.name)}.img`, format: 'raw' }] },
  ),
  ...extra,
});

/** The POSIX ACL of a file as [tag, perm, id] entries, read from its xattr (no acl tools needed). */
function aclOf(path: string): { user: number; perm: number }[] {
  const out = execFileSync(
    'python3',
    [
      '-c',
      `
import os, struct, json, sys
try:
    raw = os.getxattr(sys.argv[1], 'system.posix_acl_access')
except OSError:
    raw = b''
entries = [struct.unpack('<HHI', raw[i:i + 8]) for i in range(4, len(raw), 8)]
print(json.dumps([{'user': e[2], 'perm': e[1]} for e in entries if e[0] == 2]))
`,
      path,
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(out) as { user: number; perm: number }[];
}

describe('files handed to guests', () => {
  test('tmpfiles on a throwaway root: no system file changes owner or mode; read-only files by ACL; a writable disk becomes its guest’s', (t) => {
    const sysusers = requireTool('systemd-sysusers', 'systemd');
    const tmpfiles = requireTool('systemd-tmpfiles', 'systemd');
    requireTool('unshare', 'util-linux');
    requireTool('setpriv', 'util-linux');
    requireTool('python3', 'python3');
    const root = tempDir(t, 'qh-tmpfiles-root-');
    chmodSync(root, 0o755);
    const a = validate(
      doc([
        {
          name: 'a',
          firmware: { type: 'uefi' },
          boot: { kernel: '/boot/vmlinuz-6.1.0-test', initrd: '/boot/initrd.img-6.1.0-test' },
          disks: [
            { path: '/srv/a.img', format: 'raw' },
            { path: '/srv/iso/shared.iso', format: 'raw', readOnly: true },
          ],
        },
        {
          name: 'b',
          disks: [
            { path: '/srv/iso/shared.iso', format: 'raw', readOnly: true },
            { path: '/usr/share/images/tools.iso', format: 'raw', readOnly: true },
          ],
        },
      ]),
    );
    const files: Record<string, number> = {
      '/usr/share/OVMF/OVMF_CODE_4M.fd': 0o644,
      '/usr/share/OVMF/OVMF_VARS_4M.fd': 0o644,
      '/boot/vmlinuz-6.1.0-test': 0o644,
      '/boot/initrd.img-6.1.0-test': 0o644,
      '/usr/share/images/tools.iso': 0o644,
      '/srv/iso/shared.iso': 0o640,
      '/srv/a.img': 0o640,
    };
    for (const [p, mode] of Object.entries(files)) {
      mkdirSync(join(root, dirname(p)), { recursive: true, mode: 0o755 });
      writeFileSync(join(root, p), 'data\n', { mode });
      chmodSync(join(root, p), mode);
    }
    const bundle = plan(a);
    for (const f of ['root/etc/sysusers.d/qemu-harden.conf', 'root/etc/tmpfiles.d/qemu-harden.conf']) {
      mkdirSync(join(root, dirname(f.slice(5))), { recursive: true });
      writeFileSync(join(root, f.slice(5)), bundle.find((x) => x.path === f)!.content);
    }
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    execFileSync(sysusers, [`--root=${root}`], { stdio: 'pipe' });
    // tmpfiles resolves the user names of ACL entries through this host's NSS: run it where /etc/passwd and
    // /etc/group are the throwaway root's (a private mount namespace; the host's files are never touched).
    const r = spawnSync(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$1/etc/passwd" /etc/passwd && mount --bind "$1/etc/group" /etc/group && exec "$2" --root="$1" --create',
        'sh',
        root,
        tmpfiles,
      ],
      { encoding: 'utf8' },
    );
    const uid = (name: string) =>
      Number(
        readFileSync(join(root, 'etc/passwd'), 'utf8')
          .split('\n')
          .find((l) => l.startsWith(`${name}:`))!
          .split(':')[2],
      );
    const [ua, ub] = [uid('qemu-a'), uid('qemu-b')];
    for (const p of [
      '/usr/share/OVMF/OVMF_CODE_4M.fd',
      '/usr/share/OVMF/OVMF_VARS_4M.fd',
      '/boot/vmlinuz-6.1.0-test',
      '/boot/initrd.img-6.1.0-test',
      '/usr/share/images/tools.iso',
    ]) {
      const st = statSync(join(root, p));
      assert.deepEqual(
        [st.uid, st.gid, st.mode & 0o7777],
        [0, 0, files[p]],
        `${p} keeps root:root ${files[p]!.toString(8)}`,
      );
      assert.deepEqual(aclOf(join(root, p)), [], `${p} gets no ACL entry`);
    }
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'systemd-tmpfiles applied every line without complaint');
    const iso = statSync(join(root, '/srv/iso/shared.iso'));
    assert.deepEqual(
      [iso.uid, iso.gid, iso.mode & 0o700, iso.mode & 0o007],
      [0, 0, 0o600, 0],
      'the shared ISO keeps its owner, group, owner and other bits',
    );
    assert.deepEqual(
      aclOf(join(root, '/srv/iso/shared.iso')).sort((x, y) => x.user - y.user),
      [
        { user: ua, perm: 4 },
        { user: ub, perm: 4 },
      ].sort((x, y) => x.user - y.user),
    );
    const disk = statSync(join(root, '/srv/a.img'));
    assert.deepEqual(
      [disk.uid, disk.gid, disk.mode & 0o7777],
      [ua, uid('qemu-a'), 0o600],
      'the writable disk is guest a’s alone',
    );

    // The kernel's own permission check, as each guest's user and as a stranger.
    const read = (u: number, p: string) =>
      spawnSync('setpriv', [`--reuid=${u}`, `--regid=${u}`, '--clear-groups', '--', 'cat', join(root, p)]).status;
    assert.equal(read(ua, '/srv/iso/shared.iso'), 0, 'guest a reads the shared ISO');
    assert.equal(read(ub, '/srv/iso/shared.iso'), 0, 'guest b reads the shared ISO');
    assert.notEqual(read(65000, '/srv/iso/shared.iso'), 0, 'another user does not');
    assert.notEqual(read(ub, '/srv/a.img'), 0, 'guest b cannot read guest a’s disk');
    assert.equal(read(ua, '/boot/vmlinuz-6.1.0-test'), 0, 'a world-readable kernel is read as it is');
  });

  test('verify runs tmpfiles over stand-ins: a line that changes a system file or copies into a guest’s directory is a finding', async (t) => {
    requireTool('systemd-tmpfiles', 'systemd');
    const { dir, r } = await generate(
      t,
      doc([{ name: 'efi', firmware: { type: 'uefi' }, boot: { kernel: '/boot/vmlinuz-6.1' } }]),
    );
    assert.equal(r.code, 0, r.stderr);
    const bundle = join(dir, 'bundle');
    const clean = await cli(['verify', bundle, '--json']);
    assert.equal(clean.code, 0, clean.stdout);
    // What the bundle used to say: copy the vars template as root into the guest-owned directory, then chown it,
    // and hand the kernel to the guest.
    const conf = join(bundle, 'root/etc/tmpfiles.d/qemu-harden.conf');
    writeFileSync(
      conf,
      readFileSync(conf, 'utf8') +
        [
          'C /var/lib/qemu-harden/efi/OVMF_VARS.fd - - - - /usr/share/OVMF/OVMF_VARS_4M.fd',
          'z /var/lib/qemu-harden/efi/OVMF_VARS.fd 0600 qemu-efi qemu-efi -',
          'z /boot/vmlinuz-6.1 0400 qemu-efi qemu-efi -',
          '',
        ].join('\n'),
    );
    const v = await cli(['verify', bundle, '--json']);
    assert.equal(v.code, 1);
    const found = (JSON.parse(v.stdout) as { findings: { check: string; message: string }[] }).findings
      .filter((f) => f.check === 'sysusers/tmpfiles')
      .map((f) => f.message);
    assert.ok(
      found.some((m) => /unsafe path transition .*OVMF_VARS\.fd/i.test(m)),
      found.join('\n'),
    );
    assert.ok(
      found.some((m) => m.includes('changes the system file /boot/vmlinuz-6.1')),
      found.join('\n'),
    );
  });

  test('generate refuses read-only files from places holding host secrets or system state, naming the field', async (t) => {
    const refused: [Record<string, unknown>, string, RegExp][] = [
      [
        { name: 'a', disks: [{ path: '/etc/shadow', format: 'raw', readOnly: true }] },
        'guests.0.disks.0.path',
        /under \/etc, which holds host secrets/,
      ],
      [
        { name: 'a', disks: [{ path: '/root/.ssh/id_ed25519', format: 'raw', readOnly: true }] },
        'guests.0.disks.0.path',
        /under \/root/,
      ],
      [{ name: 'a', boot: { kernel: '/proc/self/environ' } }, 'guests.0.boot.kernel', /under \/proc/],
      [
        { name: 'a', boot: { kernel: '/boot/vmlinuz-6', initrd: '/boot/grub/grub.cfg' } },
        'guests.0.boot.initrd',
        /under \/boot/,
      ],
      [
        { name: 'a', disks: [{ path: '/boot/vmlinuz-6', format: 'raw', readOnly: true }] },
        'guests.0.disks.0.path',
        /under \/boot/,
      ],
      [
        { name: 'a', firmware: { type: 'uefi', code: '/etc/ssl/private/key.pem' } },
        'guests.0.firmware.code',
        /under \/etc/,
      ],
      [
        { name: 'a', disks: [{ path: '/var/lib/qemu-harden/a/disk.img', format: 'raw' }] },
        'guests.0.disks.0.path',
        /under \/var\/lib\/qemu-harden, which qemu-harden creates and each guest owns/,
      ],
      [
        { name: 'a', disks: [{ path: '/usr/share/images/x.img', format: 'raw' }] },
        'guests.0.disks.0.path',
        /writable guest file must live elsewhere/,
      ],
    ];
    for (const [g, field, msg] of refused) {
      const { r } = await generate(t, doc([g]));
      assert.equal(r.code, 2, `${JSON.stringify(g)}: exit ${r.code}\n${r.stderr}`);
      const line = r.stderr.split('\n').find((l) => l.startsWith(`qemu-harden: ${field}: `));
      assert.ok(line, `names ${field}:\n${r.stderr}`);
      assert.match(line, msg);
      noTrace(r.stderr);
    }
    const allowed = [
      {
        name: 'a',
        firmware: { type: 'uefi', code: '/usr/share/OVMF/OVMF_CODE_4M.fd' },
        boot: { kernel: '/boot/vmlinuz-6.1.0-test', initrd: '/boot/initrd.img-6.1.0-test' },
      },
      {
        name: 'b',
        disks: [
          { path: '/usr/share/images/x.iso', format: 'raw', readOnly: true },
          { path: '/srv/b.img', format: 'qcow2' },
        ],
      },
    ];
    assert.doesNotThrow(() => validate(doc(allowed)));
  });

  test('a system file the guest could not read is refused at generate, never chmod-ed', (t) => {
    requireTool('unshare', 'util-linux');
    const dir = tempDir(t);
    const answers = join(dir, 'answers.json');
    writeFileSync(
      answers,
      JSON.stringify(
        doc([{ name: 'a', boot: { kernel: '/boot/vmlinuz-9.9-test', initrd: '/boot/initrd.img-9.9-test' } }]),
      ),
    );
    // A private mount namespace with its own /boot: the host's /boot is never touched.
    const script =
      'mount -t tmpfs tmpfs /boot && : > /boot/vmlinuz-9.9-test && chmod 0644 /boot/vmlinuz-9.9-test && ' +
      ': > /boot/initrd.img-9.9-test && chmod 0600 /boot/initrd.img-9.9-test && "$@"; echo "exit=$?"; stat -c %a /boot/initrd.img-9.9-test';
    const r = spawnSync(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        script,
        'sh',
        process.execPath,
        BIN,
        'generate',
        '--answers',
        answers,
        '--out',
        join(dir, 'out'),
      ],
      { encoding: 'utf8' },
    );
    assert.match(r.stdout, /^exit=2\n600\n$/m, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /^qemu-harden: guests\.0\.boot\.initrd: \/boot\/initrd\.img-9\.9-test is not readable by other users \(mode 0600\); qemu-harden never changes a system file's owner or mode/m,
    );
    assert.doesNotMatch(r.stderr, /boot\.kernel/, 'the world-readable kernel is fine');
    noTrace(r.stderr);
  });
});

describe('names, groups and devices', () => {
  test('every derived name is unique and never a shared name: collisions exit 2 naming the field', async (t) => {
    const cases: [unknown, string, RegExp][] = [
      [
        doc([{ name: 'a', network: { mode: 'tap' } }, { name: 'a-tap' }]),
        'guests.1.name',
        /unit "qemu-a-tap\.service", which is already the tap helper unit of guest "a"/,
      ],
      [
        doc([{ name: 'a-tap' }, { name: 'a', network: { mode: 'tap' } }]),
        'guests.1.name',
        /tap helper unit "qemu-a-tap\.service", which is already the unit of guest "a-tap"/,
      ],
      [
        doc([{ name: 'net', network: { mode: 'tap' } }]),
        'guests.0.name',
        /user and group "qemu-net", which is already the shared group for \/dev\/net\/tun/,
      ],
      [
        doc([{ name: 'x' }], { host: { kvmGroup: 'qemu-x' } }),
        'guests.0.name',
        /"qemu-x", which is already the shared group for \/dev\/kvm/,
      ],
      [
        doc([
          { name: 'a', network: { mode: 'tap', tapDevice: 'qh-b' } },
          { name: 'b', network: { mode: 'tap' } },
        ]),
        'guests.1.network.name',
        /tap device "qh-b", which is already the tap device of guest "a"/,
      ],
      [
        doc([{ name: 'a', network: { mode: 'tap', tapDevice: 'br0', bridge: 'br0' } }]),
        'guests.0.network.bridge',
        /"br0" is the tap device of guest "a"/,
      ],
      [
        doc([
          { name: 'a', network: { mode: 'tap', bridge: 'qh-b' } },
          { name: 'b', network: { mode: 'tap' } },
        ]),
        'guests.0.network.bridge',
        /"qh-b" is the tap device of guest "b"/,
      ],
      [doc([{ name: 'a' }], { host: { kvmGroup: 'disk' } }), 'host.kvmGroup', /"disk" already grants access on a host/],
      [
        doc([{ name: 'a', network: { mode: 'tap' } }], { host: { netGroup: 'shadow' } }),
        'host.netGroup',
        /"shadow" already grants access/,
      ],
      [doc([{ name: 'a' }], { host: { kvmGroup: 'root' } }), 'host.kvmGroup', /"root" already grants access/],
      [
        doc([{ name: 'a', network: { mode: 'tap' } }], { host: { netGroup: 'kvm' } }),
        'host.netGroup',
        /shared group "kvm", which is already the shared group for \/dev\/kvm/,
      ],
      [
        doc([{ name: 'a', network: { mode: 'tap' } }], {
          useCase: 'emulation',
          host: { netGroup: 'kvm' },
          acceptedRisks: [{ risk: 'emulation', reason: 'a test of groups' }],
        }),
        'host.netGroup',
        /must not be the group that holds \/dev\/kvm/,
      ],
      [
        doc([{ name: 'a', network: { mode: 'tap', tapDevice: 'lo' } }]),
        'guests.0.network.tapDevice',
        /"lo" is named like one of a host's own interfaces/,
      ],
    ];
    for (const [d, field, msg] of cases) {
      const { r } = await generate(t, d);
      assert.equal(r.code, 2, `${JSON.stringify(d)}: exit ${r.code}\n${r.stderr}`);
      const line = r.stderr.split('\n').find((l) => l.startsWith(`qemu-harden: ${field}: `));
      assert.ok(line, `names ${field}:\n${r.stderr}`);
      assert.match(line, msg);
      noTrace(r.stderr);
      assert.equal(r.stdout, '');
    }
  });

  test('a tap name that is an interface of this host (not the guest’s own tap) is refused at generate', (t) => {
    requireTool('ip', 'iproute2');
    requireTool('unshare', 'util-linux');
    // The interface exists only in a network namespace of the test's own, whose sysfs generate reads.
    const dir = tempDir(t, 'qh-files-netns-');
    const file = join(dir, 'answers.json');
    writeFileSync(file, JSON.stringify(doc([{ name: 'a', network: { mode: 'tap', tapDevice: 'qhtest0' } }])));
    const r = spawnSync(
      'unshare',
      [
        '--net',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'ip link add qhtest0 type veth peer name qhtest1 && mount -t sysfs sysfs /sys && exec "$@"',
        'sh',
        process.execPath,
        BIN,
        'generate',
        '--answers',
        file,
        '--out',
        join(dir, 'bundle'),
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /guests\.0\.network\.tapDevice: the network interface qhtest0 already exists on this host and is not this guest's tap/,
    );
    assert.ok(!existsSync(join(dir, 'bundle')));
  });

  test('a character device given as a disk is refused, whether or not it is marked blockDevice', async (t) => {
    const dir = guestFilesDir(t);
    const chr = join(dir, 'null');
    execFileSync('mknod', ['-m', '0600', chr, 'c', '1', '3']);
    for (const d of [
      { path: chr, format: 'raw' },
      { path: chr, format: 'raw', readOnly: true },
    ]) {
      const { r } = await generate(t, doc([{ name: 'a', disks: [d] }]));
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /guests\.0\.disks\.0\.path: .* is a character device, not a disk/);
      noTrace(r.stderr);
    }
    const { r } = await generate(
      t,
      doc([{ name: 'a', disks: [{ path: '/dev/null', format: 'raw', blockDevice: true }] }]),
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /guests\.0\.disks\.0\.path: \/dev\/null is a character device/);
  });

  test('block-device disks: the real udev rules engine gives the node to its guest’s user, by kernel name and by link name', (t) => {
    const udevadm = requireTool('udevadm', 'udev');
    requireTool('unshare', 'util-linux');
    const disks = readdirSync('/sys/class/block').filter(
      (d) => !/^(loop|zram|ram)/.test(d) && !existsSync(`/sys/class/block/${d}/partition`),
    );
    const loops = readdirSync('/sys/class/block')
      .filter((d) => /^loop\d+$/.test(d))
      .sort();
    assert.ok(
      disks.length > 0 && loops.length > 1,
      `this test needs a disk and two loop devices: ${readdirSync('/sys/class/block').join(' ')}`,
    );
    const dir = tempDir(t);
    const rules = join(dir, 'rules');
    mkdirSync(rules);
    writeFileSync(
      join(dir, 'passwd'),
      'root:x:0:0::/root:/bin/sh\nqemu-a:x:990:990::/:/usr/sbin/nologin\nqemu-b:x:991:991::/:/usr/sbin/nologin\n',
    );
    writeFileSync(join(dir, 'group'), 'root:x:0:\nqemu-a:x:990:\nqemu-b:x:991:\n');
    // udevadm test runs the rules for real: in a private mount namespace whose /dev and /run are empty tmpfs and
    // whose /etc/udev/rules.d holds only the bundle's rules, so no node or database of this host is touched.
    const udevTest = (dev: string) =>
      spawnSync(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount -t tmpfs tmpfs /dev && mount -t tmpfs tmpfs /run && mount --bind "$1/rules" /etc/udev/rules.d && ' +
            'mount --bind "$1/passwd" /etc/passwd && mount --bind "$1/group" /etc/group && exec "$2" test --action=add "/sys/class/block/$3"',
          'sh',
          dir,
          udevadm,
          dev,
        ],
        { encoding: 'utf8' },
      );
    const udevLog = (dev: string) => {
      const r = udevTest(dev);
      return `${r.stdout}${r.stderr}`;
    };
    const disk = disks.find((d) => /LINK 'disk\/by-/.test(udevLog(d)));
    assert.ok(disk, 'a disk with a /dev/disk/by-* link');
    const link = /LINK '(disk\/by-[^']+)'/.exec(udevLog(disk))![1]!;
    const a = validate(
      doc([
        { name: 'a', disks: [{ path: `/dev/${loops[0]}`, format: 'raw', blockDevice: true }] },
        { name: 'b', disks: [{ path: `/dev/${link}`, format: 'raw', blockDevice: true, readOnly: true }] },
      ]),
    );
    writeFileSync(
      join(rules, '65-qemu-harden.rules'),
      plan(a).find((f) => f.path === 'root/etc/udev/rules.d/65-qemu-harden.rules')!.content,
    );
    const applied = (out: string) =>
      [...out.matchAll(/65-qemu-harden\.rules:\d+ (OWNER|GROUP|MODE) (\d+)/g)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(
      applied(udevLog(loops[0]!)),
      ['OWNER 990', 'GROUP 990', 'MODE 0600'],
      `/dev/${loops[0]} is guest a's, read-write`,
    );
    assert.deepEqual(
      applied(udevLog(disk)),
      ['OWNER 991', 'GROUP 991', 'MODE 0400'],
      `/dev/${link} → ${disk} is guest b's, read-only`,
    );
    assert.deepEqual(applied(udevLog(loops[1]!)), [], `/dev/${loops[1]} is nobody's`);
  });

  test('USB passthrough with a port names exactly that device to QEMU and to udev; without one, the README says so', () => {
    const qemu = requireTool('qemu-system-x86_64', 'qemu-system-x86');
    const a = validate(
      doc(
        [
          {
            name: 'a',
            passthrough: {
              usb: [
                { vendorId: '046d', productId: 'c52b', port: '1-2.3' },
                { vendorId: '046d', productId: 'c52b', port: '3-1' },
                { vendorId: '1050', productId: '0407' },
              ],
            },
          },
        ],
        { acceptedRisks: [{ risk: 'usb-passthrough', guest: 'a', reason: 'the operator’s own keys' }] },
      ),
    );
    const files = plan(a);
    const unit = files.find((f) => f.path === 'root/etc/systemd/system/qemu-a.service')!.content;
    const usbArgs = unit
      .split('\n')
      .join(' ')
      .match(/usb-host,[^ ]+/g)!;
    const r = spawnSync(
      qemu,
      [
        '-machine',
        'q35',
        '-accel',
        'tcg',
        '-nodefaults',
        '-display',
        'none',
        '-S',
        '-qmp',
        'stdio',
        '-device',
        'qemu-xhci,id=usb',
        ...usbArgs.flatMap((d) => ['-device', d]),
      ],
      {
        input:
          '{"execute":"qmp_capabilities"}\n{"execute":"human-monitor-command","arguments":{"command-line":"info qtree"}}\n{"execute":"quit"}\n',
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const qtree = (JSON.parse(r.stdout.split('\n').find((l) => l.includes('"return": "'))!) as { return: string })
      .return;
    const hosts = qtree
      .split('dev: usb-host')
      .slice(1)
      .map((b) => ({
        bus: /hostbus = (\d+)/.exec(b)![1],
        port: /hostport = "([^"]*)"/.exec(b)![1],
        vendor: /vendorid = \d+ \((0x[0-9a-f]+)\)/.exec(b)![1],
      }));
    const order = (x: { bus?: string; port?: string }, y: { bus?: string; port?: string }) =>
      `${x.bus}-${x.port}` < `${y.bus}-${y.port}` ? -1 : 1;
    assert.deepEqual(hosts.sort(order), [
      { bus: '0', port: '', vendor: '0x1050' },
      { bus: '1', port: '2.3', vendor: '0x46d' },
      { bus: '3', port: '1', vendor: '0x46d' },
    ]);
    const udev = files.find((f) => f.path === 'root/etc/udev/rules.d/65-qemu-harden.rules')!.content;
    assert.match(
      udev,
      /^SUBSYSTEM=="usb", ENV\{DEVTYPE\}=="usb_device", KERNEL=="1-2\.3", ATTR\{idVendor\}=="046d", ATTR\{idProduct\}=="c52b", OWNER="qemu-a"/m,
    );
    assert.match(
      udev,
      /^# Every USB device 1050:0407 belongs to guest a \(no port given: any device with these ids\)\.$/m,
    );
    const aa = files.find((f) => f.path === 'root/etc/apparmor.d/qemu-harden.d/a')!.content;
    assert.match(
      aa,
      /^ {2}owner \/dev\/bus\/usb\/\[0-9\]\*\/\[0-9\]\* rw,$/m,
      'AppArmor: only USB nodes owned by the guest’s user',
    );
    assert.throws(
      () =>
        validate(
          doc(
            [
              { name: 'a', passthrough: { usb: [{ vendorId: '046d', productId: 'c52b' }] } },
              { name: 'b', passthrough: { usb: [{ vendorId: '046d', productId: 'c52b', port: '1-1' }] } },
            ],
            {
              acceptedRisks: [
                { risk: 'usb-passthrough', guest: 'a', reason: 'the operator’s own keys' },
                { risk: 'usb-passthrough', guest: 'b', reason: 'the operator’s own keys' },
              ],
            },
          ),
        ),
      /guests\.1\.passthrough\.usb\.0: USB device 046d:c52b on port 1-1 can be the one already passed through to guest "a"/,
    );
  });

  test('a guest with a block device by link, a USB device by port and a PCI device: every real parser accepts its bundle', async (t) => {
    requireTool('apparmor_parser', 'apparmor');
    requireTool('systemd-analyze', 'systemd');
    const { dir, r } = await generate(
      t,
      doc(
        [
          {
            name: 'd',
            disks: [
              { path: '/dev/disk/by-id/ata-EXAMPLE_SERIAL-1', format: 'raw', blockDevice: true },
              { path: '/dev/sdz', format: 'raw', blockDevice: true, readOnly: true },
            ],
            passthrough: {
              usb: [{ vendorId: '046d', productId: 'c52b', port: '1-2.3' }],
              pci: [{ address: '0000:01:00.0', iommuGroup: 7 }],
            },
          },
        ],
        {
          acceptedRisks: [
            { risk: 'usb-passthrough', guest: 'd', reason: 'the operator’s own keys' },
            { risk: 'pci-passthrough', guest: 'd', reason: 'the operator’s own card' },
          ],
        },
      ),
    );
    assert.equal(r.code, 0, r.stderr);
    const v = await cli(['verify', join(dir, 'bundle'), '--json']);
    const report = JSON.parse(v.stdout) as { findings: unknown[]; checks: { check: string; status: string }[] };
    assert.deepEqual(report.findings, []);
    assert.ok(
      report.checks.every((c) => c.status === 'passed'),
      JSON.stringify(report.checks),
    );
    const rules = readFileSync(join(dir, 'bundle/root/etc/apparmor.d/qemu-harden.d/d'), 'utf8');
    assert.match(
      rules,
      /^ {2}\/sys\/devices\/pci\[0-9\]\*\/\*\*\/0000:01:00\.0\/\*\* r,$/m,
      'the resolved sysfs path of the PCI device',
    );
    assert.match(rules, /^ {2}owner \/dev\/\* rw,$/m, 'the node the by-id link resolves to, when it is the guest’s');
  });

  test('a bridge with "-" in its name: the tap unit orders after the device unit systemd-escape names', () => {
    const escape = requireTool('systemd-escape', 'systemd');
    const a = validate(doc([{ name: 'a', network: { mode: 'tap', bridge: 'br-lan.10' } }]));
    const unit = plan(a).find((f) => f.path === 'root/etc/systemd/system/qemu-a-tap.service')!.content;
    const expected = execFileSync(escape, ['--path', '--suffix=device', '/sys/subsystem/net/devices/br-lan.10'], {
      encoding: 'utf8',
    }).trim();
    assert.equal(expected, 'sys-subsystem-net-devices-br\\x2dlan.10.device');
    assert.ok(unit.split('\n').includes(`After=${expected}`), unit);
  });

  test('an internal error says what failed and how to report it, exits 70, and shows no stack trace', async (t) => {
    const dir = tempDir(t);
    const answers = join(dir, 'answers.json');
    writeFileSync(answers, JSON.stringify(doc([{ name: 'a' }])));
    // A fault injected into the built binary: renaming the finished bundle into place fails with an error
    // qemu-harden does not expect.
    const inject = `data:text/javascript,${encodeURIComponent("import fs from 'node:fs'; import { syncBuiltinESMExports } from 'node:module'; fs.renameSync = () => { throw new Error('injected fault'); }; syncBuiltinESMExports();")}`;
    const r = spawnSync(
      process.execPath,
      ['--import', inject, BIN, 'generate', '--answers', answers, '--out', join(dir, 'out')],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 70, r.stderr);
    assert.match(r.stderr, /^qemu-harden: internal error in 'generate': injected fault$/m);
    assert.match(r.stderr, /this is a bug in qemu-harden/);
    assert.match(r.stderr, /please report it/);
    noTrace(r.stderr);
    assert.match((await cli(['--help'])).stdout, /70 internal error/);
  });
});

describe('free text in the bundle README', () => {
  test('an accepted-risk reason cannot hide or forge Markdown: cmark renders it as exactly its text', async (t) => {
    const cmark = requireTool('cmark', 'cmark');
    const reason =
      'lab only <!-- hide the rest --> <script>alert(1)</script> `code` **bold** [link](http://evil) | cell | # not a heading &amp; done';
    const multi = doc([{ name: 'a' }], {
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'first line\n### Forged heading' }],
    });
    const bad = (await generate(t, multi)).r;
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /acceptedRisks\.0\.reason: must be one line/);
    const disk = '/srv/a`b``c <!-- x | y *z* .img';
    const { dir, r } = await generate(
      t,
      doc([{ name: 'a', isolation: { apparmor: false }, disks: [{ path: disk, format: 'raw' }] }], {
        acceptedRisks: [{ risk: 'apparmor-off', guest: 'a', reason }],
      }),
    );
    assert.equal(r.code, 0, r.stderr);
    const html = execFileSync(cmark, [join(dir, 'bundle/README.md')], { encoding: 'utf8' });
    assert.doesNotMatch(html, /<!--|<script|<a href|<strong>bold|<code>code/, 'no markup from the reason');
    const li = html.split('\n').find((l) => l.includes('why it was accepted'))!;
    const text = li
      .replace(/<[^>]+>/g, '')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&');
    assert.equal(text, `why it was accepted: ${reason}`);
    const diskItem = html.split('\n').find((l) => l.startsWith('<li>file <code>'))!;
    const code = /<code>(.*?)<\/code>/
      .exec(diskItem)![1]!
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&');
    assert.equal(
      code,
      disk,
      'a path with backticks, a comment opener and a pipe is one code span holding exactly the path',
    );
    const headings = [...html.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]);
    assert.ok(headings.includes('Accepted risks') && headings.at(-1) === 'Accepted risks', headings.join(', '));
  });
});
