import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import {
  apparmorPath,
  qemuOpts,
  qemuValue,
  systemdBindWord,
  systemdExecWord,
  systemdPathWord,
  tmpfilesField,
  udevValue,
  visible,
} from '../src/escape.js';
import { guestFence } from '../src/fence.js';
import { profileName } from '../src/guest.js';
import * as AA from '../src/gen/apparmor.js';
import { sysusers, tmpfiles, udevRules } from '../src/gen/host.js';
import { qemuArgs } from '../src/gen/qemu.js';
import { guestService, helperService, helperSocket, tapService } from '../src/gen/systemd.js';
import { passt } from '../src/helpers/passt.js';
import { swtpm } from '../src/helpers/swtpm.js';
import { virtiofsd } from '../src/helpers/virtiofsd.js';
import { plan } from '../src/plan.js';
import { loadPreset } from '../src/sources/preset.js';
import { guestReach } from '../src/reach.js';
import { requireTool, tempDir } from './helpers.js';

/** Validated answers; a guest given neither disks nor a kernel gets a disk, so that it has something to boot. */
const answers = (guests: Record<string, unknown>[], extra: Record<string, unknown> = {}) =>
  validate({
    schemaVersion: 1,
    useCase: 'virtualization',
    guests: guests.map((g) =>
      g.disks || g.boot ? g : { ...g, disks: [{ path: `/srv/${String(g.name)}.img`, format: 'raw' }] },
    ),
    ...extra,
  });

const settings = (unit: string, key: string) =>
  unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

describe('escapers', () => {
  test('QEMU option values double commas so a value cannot add an option', () => {
    assert.equal(qemuValue('/srv/a,format=raw'), '/srv/a,,format=raw');
    assert.equal(
      visible('web\u001b[2J\u001b[Huid 997'),
      'web\\x1b[2J\\x1b[Huid 997',
      'escape sequences are shown, not run',
    );
    assert.equal(visible('a\nb\tc\\d'), 'a\\nb\\tc\\\\d');
    assert.equal(
      visible('\u009b31m \u202eevil \u200b'),
      '\\x9b31m \\u202eevil \\u200b',
      'C1, bidi override, zero width',
    );
    assert.equal(visible('/srv/vm/disk é.qcow2'), '/srv/vm/disk é.qcow2', 'ordinary text is unchanged');
    assert.equal(
      qemuOpts(undefined, [
        ['file', '/x,y'],
        ['readonly', true],
      ]),
      'file=/x,,y,readonly=on',
    );
  });
  test('systemd words: specifiers, variables (ExecStart only), quotes and spaces', () => {
    assert.equal(systemdExecWord('/srv/a.img'), '/srv/a.img');
    assert.equal(systemdExecWord('/srv/100%'), '/srv/100%%');
    assert.equal(systemdExecWord('/srv/$HOME'), '"/srv/$$HOME"');
    assert.equal(systemdPathWord('/srv/$HOME'), '"/srv/$HOME"');
    assert.equal(systemdPathWord('/srv/100%'), '/srv/100%%');
    assert.equal(systemdExecWord('/srv/a b"c\\d'), '"/srv/a b\\"c\\\\d"');
    assert.throws(() => systemdExecWord('a\nb'), /control character/);
  });
  test('bind paths: colons, spaces and quotes stay inside the one path', () => {
    assert.equal(systemdBindWord('/srv/a.img'), '/srv/a.img');
    assert.equal(systemdBindWord('/srv/50%'), '/srv/50%%');
    assert.equal(systemdBindWord('/srv/a:b c'), "'/srv/a:b c'");
    assert.equal(systemdBindWord(`/srv/it's "x"\\y`), `'/srv/it'"'"'s "x"\\\\y'`);
  });
  test('AppArmor paths: globs and variables are literal, spaces stay inside quotes', () => {
    assert.equal(apparmorPath('/srv/a*.img'), '"/srv/a\\*.img"');
    assert.equal(apparmorPath('/srv/@{HOME} [x]?'), '"/srv/\\@\\{HOME\\} \\[x\\]\\?"');
    assert.equal(apparmorPath('/srv/d', '/**'), '"/srv/d/**"');
  });
  test('tmpfiles/sysusers fields and udev values', () => {
    assert.equal(tmpfilesField('guest a'), '"guest a"');
    assert.equal(tmpfilesField('/srv/50%'), '/srv/50%%');
    assert.equal(udevValue('qemu-a'), '"qemu-a"');
    assert.throws(() => udevValue('a"b'), /udev/);
  });
});

describe('QEMU command line', () => {
  const a = answers([
    {
      name: 'a',
      disks: [
        { path: '/srv/a,b.img', format: 'qcow2', throttle: { readIops: 100 } },
        { path: '/srv/iso', format: 'raw', readOnly: true },
      ],
      network: { mode: 'tap' },
    },
  ]);
  const args = qemuArgs(a, a.guests[0]!);
  const after = (opt: string) => args.filter((_, i) => args[i - 1] === opt);

  test('nothing implicit, KVM, the default sandbox', () => {
    assert.ok(args.includes('-nodefaults') && args.includes('-no-user-config'));
    assert.deepEqual(after('-accel'), ['kvm']);
    assert.deepEqual(after('-sandbox'), ['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
  });
  test('every disk: a file node, a format node that never opens a backing file, a throttle node when limited', () => {
    const nodes = after('-blockdev').map((j) => JSON.parse(j));
    assert.deepEqual(nodes[0], {
      driver: 'file',
      'node-name': 'disk0-file',
      filename: '/srv/a,b.img',
      'read-only': false,
    });
    assert.deepEqual(nodes[1], {
      driver: 'qcow2',
      'node-name': 'disk0-format',
      file: 'disk0-file',
      'read-only': false,
      backing: null,
    });
    assert.deepEqual(nodes[2], {
      driver: 'throttle',
      'node-name': 'disk0',
      'throttle-group': 'disk0-throttle',
      file: 'disk0-format',
      'read-only': false,
    });
    assert.deepEqual(JSON.parse(after('-object')[0]!), {
      'qom-type': 'throttle-group',
      id: 'disk0-throttle',
      limits: { 'iops-read': 100 },
    });
    assert.deepEqual(nodes[3], { driver: 'file', 'node-name': 'disk1-file', filename: '/srv/iso', 'read-only': true });
    assert.deepEqual(nodes[4], { driver: 'raw', 'node-name': 'disk1-format', file: 'disk1-file', 'read-only': true });
    assert.deepEqual(
      after('-device').filter((d) => d.startsWith('virtio-blk')),
      ['virtio-blk-pci,drive=disk0,bootindex=1', 'virtio-blk-pci,drive=disk1-format,bootindex=2'],
    );
    assert.ok(!args.includes('-drive'), 'no -drive: its defaults would follow backing files');
  });
  test('QMP and serial on unix sockets under /run/qemu-harden/<guest>, serial logged', () => {
    const chardevs = after('-chardev');
    assert.ok(chardevs[0]!.startsWith('socket,id=qmp,path=/run/qemu-harden/a/qmp.sock,server=on,wait=off'));
    assert.equal(chardevs[1], 'pipe,id=stop,path=/run/qemu-harden/a/stop', 'the FIFO monitor ExecStop= writes to');
    assert.ok(chardevs[2]!.includes('logfile=/var/log/qemu-harden/a/serial.log'));
    assert.ok(!args.some((x) => /tcp:|telnet|\bhost=/.test(x)), 'no TCP monitor or serial');
  });
  test('tap attaches by name without scripts or helpers', () => {
    assert.deepEqual(after('-netdev'), ['tap,id=net0,ifname=qh-a,script=no,downscript=no,vhost=on']);
  });
  test('TCG for emulation', () => {
    const e = validate({
      schemaVersion: 1,
      useCase: 'emulation',
      guests: [{ name: 'e', disks: [{ path: '/srv/e.img', format: 'raw' }] }],
      acceptedRisks: [{ risk: 'emulation', reason: 'trusted sources only here' }],
    });
    const ea = qemuArgs(e, e.guests[0]!);
    assert.equal(ea[ea.indexOf('-accel') + 1], 'tcg');
    assert.equal(ea[ea.indexOf('-cpu') + 1], 'max');
  });
});

describe('systemd units', () => {
  const a = answers([
    { name: 'a', disks: [{ path: '/srv/a.img', format: 'raw' }] },
    { name: 'b', disks: [{ path: '/srv/b.img', format: 'raw' }], network: { mode: 'tap', bridge: 'br0' } },
  ]);
  const ua = guestService(a, a.guests[0]!);
  const ub = guestService(a, a.guests[1]!);

  test('runs as the guest’s own user with only the groups it needs', () => {
    assert.deepEqual(settings(ua, 'User'), ['qemu-a']);
    assert.deepEqual(settings(ua, 'SupplementaryGroups'), ['kvm']);
    assert.deepEqual(settings(ub, 'SupplementaryGroups'), ['kvm qemu-net']);
  });
  test('device policy closed, listing only the devices the guest uses', () => {
    assert.deepEqual(settings(ua, 'DevicePolicy'), ['closed']);
    assert.deepEqual(settings(ua, 'DeviceAllow'), ['/dev/kvm rw']);
    assert.deepEqual(settings(ub, 'DeviceAllow'), ['/dev/kvm rw', '/dev/net/tun rw', '/dev/vhost-net rw']);
  });
  test('writable only its own disk; other guests’ paths out of sight', () => {
    assert.deepEqual(settings(ua, 'ReadWritePaths'), ['/srv/a.img']);
    assert.deepEqual(
      settings(ua, 'InaccessiblePaths'),
      ['-/srv/b.img'],
      '/srv holds more than guests: b’s disk is hidden alone',
    );
    assert.deepEqual(settings(ua, 'TemporaryFileSystem'), [
      '/var/lib/qemu-harden:ro',
      '/var/log/qemu-harden:ro',
      '/run:ro',
      '/dev/shm:ro',
    ]);
    assert.deepEqual(settings(ua, 'BindPaths'), [
      '/run/qemu-harden/a',
      '/var/lib/qemu-harden/a',
      '/var/log/qemu-harden/a',
    ]);
  });
  test('no network without a network device', () => {
    assert.deepEqual(settings(ua, 'PrivateNetwork'), ['yes']);
    assert.deepEqual(settings(ub, 'PrivateNetwork'), []);
  });
  test('directories, sandbox, seccomp allow-list keeps the seccomp syscall', () => {
    assert.deepEqual(settings(ua, 'RuntimeDirectory'), ['qemu-harden/a']);
    assert.deepEqual(settings(ua, 'StateDirectory'), ['qemu-harden/a']);
    assert.deepEqual(settings(ua, 'LogsDirectory'), ['qemu-harden/a']);
    assert.deepEqual(settings(ua, 'CapabilityBoundingSet'), ['']);
    assert.ok(settings(ua, 'SystemCallFilter')[0]!.split(' ').includes('seccomp'));
    assert.ok(!settings(ua, 'SystemCallFilter').join(' ').includes('@resources'), 'QEMU calls set_mempolicy');
  });
  test('every hardening block is explained by a comment', () => {
    const lines = ua.split('\n');
    const i = lines.indexOf('DevicePolicy=closed');
    assert.ok(lines[i - 1]!.startsWith('# '));
  });
  test('the tap helper creates the tap for the guest’s user and bridges it', () => {
    const t = tapService(a, a.guests[1]!)!;
    assert.ok(t.includes('tuntap add dev qh-b mode tap user qemu-b group qemu-b vnet_hdr'));
    assert.ok(t.includes('link set dev qh-b master br0'));
    assert.deepEqual(settings(t, 'CapabilityBoundingSet'), ['CAP_NET_ADMIN']);
    assert.equal(tapService(a, a.guests[0]!), undefined);
  });
});

describe('host files', () => {
  const a = answers(
    [
      {
        name: 'a',
        disks: [{ path: '/srv/a.img', format: 'raw' }],
        passthrough: {
          pci: [{ address: '0000:01:00.0', iommuGroup: 7 }],
          usb: [{ vendorId: '046d', productId: 'c52b' }],
        },
      },
      { name: 'b', network: { mode: 'tap' }, disks: [{ path: '/srv/b.img', format: 'raw' }] },
    ],
    {
      acceptedRisks: [
        { risk: 'pci-passthrough', guest: 'a', reason: 'dedicated device for guest a' },
        { risk: 'usb-passthrough', guest: 'a', reason: 'dedicated token for guest a' },
      ],
    },
  );
  test('sysusers: one user per guest and the device groups', () => {
    const s = sysusers(a);
    assert.match(s, /^g kvm -$/m);
    assert.match(s, /^g qemu-net -$/m);
    assert.match(s, /^u qemu-a - "qemu-harden guest a" \/var\/lib\/qemu-harden\/a \/usr\/sbin\/nologin$/m);
    assert.match(s, /^u qemu-b /m);
  });
  test('tmpfiles: each guest owns its own disk', () => {
    assert.match(tmpfiles(a), /^z "\/srv\/a\.img" 0600 qemu-a qemu-a -$/m);
  });
  test('tmpfiles: a read-only file keeps owner and mode; each guest reading it gets an ACL entry; system files get no line', () => {
    const iso = (path: string) => ({ path, format: 'raw', readOnly: true });
    const t = tmpfiles(
      answers([
        {
          name: 'a',
          disks: [iso('/srv/shared.iso'), iso('/srv/a.iso'), iso('/usr/share/images/x.iso')],
          boot: { kernel: '/boot/vmlinuz-6', initrd: '/boot/initrd.img-6' },
        },
        { name: 'b', disks: [iso('/srv/shared.iso')], firmware: { type: 'uefi' } },
      ]),
    );
    assert.doesNotMatch(t, /^z .*\.iso/m);
    assert.match(t, /^a\+ "\/srv\/shared\.iso" - - - - u:qemu-a:r$/m);
    assert.match(t, /^a\+ "\/srv\/shared\.iso" - - - - u:qemu-b:r$/m);
    assert.match(t, /^a\+ "\/srv\/a\.iso" - - - - u:qemu-a:r$/m);
    const lines = t.split('\n').filter((l) => !l.startsWith('#'));
    assert.ok(
      !lines.some((l) => /usr\/share|\/boot\/|OVMF/.test(l)),
      'system files and the UEFI variables get no line',
    );
  });
  test('udev: devices to groups, never world; VFIO group and USB device to one guest', () => {
    const u = udevRules(a);
    assert.match(u, /^KERNEL=="kvm", SUBSYSTEM=="misc", GROUP="kvm", MODE="0660"$/m);
    assert.match(u, /^KERNEL=="tun", SUBSYSTEM=="misc", GROUP="qemu-net", MODE="0660"$/m);
    assert.match(u, /^SUBSYSTEM=="vfio", KERNEL=="7", OWNER="qemu-a", GROUP="qemu-a", MODE="0600"$/m);
    assert.match(u, /ATTR\{idVendor\}=="046d", ATTR\{idProduct\}=="c52b", OWNER="qemu-a"/);
    assert.doesNotMatch(u, /MODE="0?66[0-9]?6"/);
  });
  test('AppArmor: a guest’s rules name its own paths and nothing of another guest', () => {
    const ra = AA.guestRules(a, a.guests[0]!);
    const rb = AA.guestRules(a, a.guests[1]!);
    assert.ok(ra.includes('"/srv/a.img" rwk,'));
    assert.ok(ra.includes('"/dev/vfio/7" rw,'));
    assert.ok(!rb.includes('/srv/a.img') && !rb.includes('qemu-harden/a'));
    assert.ok(rb.includes('"/dev/net/tun" rw,'));
    assert.match(
      AA.profile(a, a.guests[0]!),
      /profile qemu-harden-a flags=\(attach_disconnected,mediate_deleted\) \{\n {2}include <abstractions\/qemu-harden>\n {2}include <qemu-harden.d\/a>\n\}/,
    );
  });
  test('AppArmor: an accepted sandbox-spawn lets QEMU run its helpers and /bin/sh under its own profile, and only then', (t) => {
    const doc = (spawn: 'allow' | 'deny') => ({
      schemaVersion: 1,
      useCase: 'virtualization',
      guests: [{ name: 's', disks: [{ path: '/srv/s.img', format: 'raw' }], isolation: { sandbox: { spawn } } }],
      acceptedRisks: spawn === 'allow' ? [{ risk: 'sandbox-spawn', guest: 's', reason: 'tap script run by QEMU' }] : [],
    });
    const allowed = validate(doc('allow'));
    const rules = AA.guestRules(allowed, allowed.guests[0]!);
    assert.match(rules, /^ {2}\/usr\/lib\/qemu\/\* ix,$/m);
    assert.match(rules, /^ {2}\/\{usr\/,\}bin\/\{sh,dash,bash\} ix,$/m);
    const denied = validate(doc('deny'));
    assert.doesNotMatch(AA.guestRules(denied, denied.guests[0]!), / ix,/);
    // The real parser compiles the profile with its exec rules.
    const parser = requireTool('apparmor_parser', 'apparmor');
    const dir = tempDir(t);
    for (const f of plan(allowed).filter((x) => x.path.startsWith('root/etc/apparmor.d/'))) {
      mkdirSync(dirname(join(dir, f.path)), { recursive: true });
      writeFileSync(join(dir, f.path), f.content);
    }
    const r = spawnSync(
      parser,
      [
        '-Q',
        '-K',
        '-I',
        join(dir, 'root/etc/apparmor.d'),
        join(dir, 'root/etc/apparmor.d', profileName(allowed.guests[0]!)),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
  });
});

describe('plan', () => {
  test('same answers, same bytes; sorted; manifest covers every other file', () => {
    const doc = {
      schemaVersion: 1,
      useCase: 'virtualization',
      guests: [
        { name: 'z', disks: [{ path: '/srv/z.img', format: 'raw' }] },
        { name: 'a', network: { mode: 'user' }, disks: [{ path: '/srv/a.img', format: 'raw' }] },
      ],
    };
    const p1 = plan(validate(doc));
    const p2 = plan(validate(structuredClone(doc)));
    assert.deepEqual(p1, p2);
    const paths = p1.map((f) => f.path);
    assert.deepEqual(paths.slice(0, -1), [...paths.slice(0, -1)].sort());
    const manifest = p1.at(-1)!;
    assert.equal(manifest.path, 'MANIFEST.sha256');
    assert.equal(manifest.content.trim().split('\n').length, p1.length - 1);
    assert.ok(!p1.some((f) => /\b20\d\d-\d\d-\d\d\b/.test(f.content)), 'no timestamps');
  });
  test('an emulation bundle says so at the top of its README', () => {
    const e = validate({
      schemaVersion: 1,
      useCase: 'emulation',
      guests: [{ name: 'e', disks: [{ path: '/srv/e.img', format: 'raw' }] }],
      acceptedRisks: [{ risk: 'emulation', reason: 'trusted sources only here' }],
    });
    const readme = plan(e).find((f) => f.path === 'README.md')!.content;
    const firstParagraph = readme.split('\n\n')[1]!;
    assert.match(firstParagraph, /no isolation guarantee/);
    assert.match(readme, /## Accepted risks[\s\S]*trusted sources only here/);
  });
});

describe('the fence between guests', () => {
  const disk = (path: string, extra: Record<string, unknown> = {}) => ({ path, format: 'raw', ...extra });
  const fenceOf = (guests: Record<string, unknown>[], name: string, extra: Record<string, unknown> = {}) => {
    const a = answers(guests, extra);
    return guestFence(
      a,
      a.guests.find((g) => g.name === name)!,
    );
  };

  test('one guest: nothing to fence', () => {
    assert.deepEqual(fenceOf([{ name: 'a', disks: [disk('/srv/qemu/a/disk.img')] }], 'a'), {
      tmpfs: [],
      bind: [],
      inaccessible: [],
    });
  });

  test('a directory per guest: their common parent is emptied once, and each guest’s own files come back', () => {
    const guests = ['a', 'b', 'c'].map((n) => ({
      name: n,
      disks: [disk(`/srv/qemu/${n}/disk.img`), disk(`/srv/qemu/${n}/seed.iso`, { readOnly: true })],
    }));
    const f = fenceOf(guests, 'b');
    assert.deepEqual(f.tmpfs, ['/run/qemu-harden', '/srv/qemu', '/var/lib/qemu-harden', '/var/log/qemu-harden']);
    assert.deepEqual(f.bind, [
      { path: '/run/qemu-harden/b', writable: true },
      { path: '/srv/qemu/b/disk.img', writable: true },
      { path: '/srv/qemu/b/seed.iso', writable: false },
      { path: '/var/lib/qemu-harden/b', writable: true },
      { path: '/var/log/qemu-harden/b', writable: true },
    ]);
    assert.deepEqual(f.inaccessible, []);
  });

  test('the unit binds writable disks read-write and read-only files read-only, and lists no ReadWritePaths= for them', () => {
    const a = answers(
      ['a', 'b'].map((n) => ({ name: n, disks: [disk(`/vm/${n}.img`), disk(`/vm/${n}.iso`, { readOnly: true })] })),
    );
    const u = guestService(a, a.guests[0]!);
    assert.ok(settings(u, 'TemporaryFileSystem').includes('/vm:ro'));
    assert.ok(settings(u, 'BindPaths').includes('/vm/a.img'));
    assert.deepEqual(settings(u, 'BindReadOnlyPaths'), ['/vm/a.iso']);
    assert.deepEqual(settings(u, 'ReadWritePaths'), []);
  });

  test('a read-only image several guests share is bound back into each of them', () => {
    const guests = ['a', 'b'].map((n) => ({
      name: n,
      disks: [disk(`/vm/${n}.img`), disk('/vm/base.iso', { readOnly: true })],
    }));
    for (const n of ['a', 'b']) {
      const f = fenceOf(guests, n);
      assert.ok(f.tmpfs.includes('/vm'));
      assert.ok(f.bind.some((b) => b.path === '/vm/base.iso' && !b.writable));
    }
  });

  test('a directory only this guest uses is not emptied for it, but is for the others', () => {
    const guests = [
      { name: 'a', disks: [disk('/vm/a/disk.img')] },
      { name: 'b', disks: [disk('/data/b/disk.img')] },
    ];
    assert.ok(!fenceOf(guests, 'a').tmpfs.includes('/vm/a'));
    assert.ok(fenceOf(guests, 'b').tmpfs.includes('/vm/a'));
    assert.ok(!fenceOf(guests, 'b').bind.some((b) => b.path.startsWith('/vm/')));
  });

  test('shared and system directories are never emptied: files there are hidden one by one', () => {
    const guests = [
      { name: 'a', disks: [disk('/var/lib/a.img')], boot: { kernel: '/boot/vmlinuz-a' } },
      { name: 'b', disks: [disk('/var/lib/b.img')], boot: { kernel: '/boot/vmlinuz-b' } },
    ];
    const f = fenceOf(guests, 'a');
    assert.deepEqual(f.tmpfs, ['/run/qemu-harden', '/var/lib/qemu-harden', '/var/log/qemu-harden']);
    assert.deepEqual(f.inaccessible, ['/boot/vmlinuz-b', '/var/lib/b.img']);
  });

  test('a directory TemporaryFileSystem= cannot name, or one above the QEMU binary, falls back to single paths', () => {
    const colon = [
      { name: 'a', disks: [disk('/vm:x/a.img')] },
      { name: 'b', disks: [disk('/vm:x/b.img')] },
    ];
    assert.deepEqual(fenceOf(colon, 'a').inaccessible, ['/vm:x/b.img']);
    const opt = [
      { name: 'a', disks: [disk('/opt/q/a/d.img')] },
      { name: 'b', disks: [disk('/opt/q/b/d.img')] },
    ];
    const f = fenceOf(opt, 'a', { host: { qemuBinary: '/opt/q/bin/qemu-system-x86_64' } });
    assert.ok(!f.tmpfs.includes('/opt/q'), 'the directory holding QEMU itself stays');
    assert.ok(f.tmpfs.includes('/opt/q/b'));
  });

  test('other guests’ block devices are hidden by path; the device policy refuses them as well', () => {
    const guests = [
      { name: 'a', disks: [disk('/dev/sdb', { blockDevice: true })] },
      { name: 'b', disks: [disk('/dev/sdc', { blockDevice: true })] },
    ];
    assert.deepEqual(fenceOf(guests, 'a').inaccessible, ['/dev/sdc']);
  });

  test('1,000 guests: each unit stays the size of one guest’s', () => {
    const many = Array.from({ length: 1000 }, (_, i) => ({
      name: `g${i}`,
      disks: [disk(`/srv/qemu/g${i}/disk.qcow2`)],
    }));
    const a = answers(many);
    const two = answers(many.slice(0, 2));
    const big = guestService(a, a.guests[500]!);
    const small = guestService(two, two.guests[0]!).replaceAll('g0', 'g500');
    assert.equal(big.length, small.length);
  });
});

describe('the bundle README, for an operator', () => {
  test('prerequisites, who may use each socket, restart after apply, checking the host; the reach section is guestReach()', () => {
    const a = validate(loadPreset('desktop-vnc').answers);
    const readme = plan(a).find((f) => f.path === 'README.md')!.content;
    for (const heading of [
      '## Before you install',
      '## Using the guests',
      '## After apply',
      '## Checking the host afterwards',
    ])
      assert.ok(readme.includes(heading), heading);
    for (const g of a.guests) {
      const r = guestReach(a, g);
      assert.ok(r.sockets.some((x) => x.what === 'VNC display') === (g.display.mode === 'vnc-unix'));
      for (const x of r.sockets)
        assert.ok(readme.includes(`- socket \`${x.path}\`: ${x.what}; may connect: ${x.who}`), x.path);
      for (const f of r.files) assert.ok(readme.includes(`\`${f.path}\``), f.path);
      assert.ok(readme.includes(`- network: ${r.network}`));
      assert.ok(readme.includes(`sudo systemctl restart ${r.unit}`));
      for (const e of r.enforcedOnly)
        for (const x of e.what) assert.ok(readme.includes(`- only while ${e.by} enforces: ${x}`));
      for (const d of g.disks) assert.ok(readme.includes(`\`${d.path}\` (${d.format}`), d.path);
    }
    assert.match(readme, /lose access unless they are added to that group/);
  });
});

describe('runtime isolation in the unit', () => {
  const spice = (extra: Record<string, unknown> = {}) => ({
    name: 's',
    display: { mode: 'spice-tls', listen: '192.0.2.1', port: 5930, tlsDir: '/etc/pki/qemu/s', ...extra },
  });
  test('SPICE takes its password from a systemd credential, never from the command line', () => {
    const a = answers([spice({ passwordFile: '/etc/pki/qemu/s.pw' })]);
    const unit = guestService(a, a.guests[0]!);
    assert.deepEqual(settings(unit, 'LoadCredential'), ['spice-password:/etc/pki/qemu/s.pw']);
    assert.ok(unit.includes('-object secret,id=spice-password,format=raw,file=%d/spice-password'));
    assert.ok(unit.includes(',password-secret=spice-password'));
    assert.ok(!unit.includes('disable-ticketing'));
  });
  test('SPICE without a password is an accepted risk, and only then is ticketing off', () => {
    assert.throws(() => answers([spice()]), /guests\.0\.display\.passwordFile: takes the risk "spice-no-password"/);
    const a = answers([spice()], {
      acceptedRisks: [{ risk: 'spice-no-password', guest: 's', reason: 'a lab display behind a VPN only' }],
    });
    assert.ok(guestService(a, a.guests[0]!).includes('disable-ticketing=on'));
  });
  test('every unit sees an empty /run with its own directory, an empty /dev/shm, private IPC', () => {
    const a = answers([{ name: 'solo' }]);
    const unit = guestService(a, a.guests[0]!);
    assert.deepEqual(settings(unit, 'TemporaryFileSystem'), ['/run:ro', '/dev/shm:ro']);
    assert.deepEqual(settings(unit, 'BindPaths'), ['/run/qemu-harden/solo']);
    assert.deepEqual(settings(unit, 'PrivateIPC'), ['yes']);
  });
  const slirp = { mode: 'user', backend: 'slirp' };
  const slirpRisk = (guest: string) => ({ risk: 'slirp', guest, reason: 'this host has no passt package yet' });
  test('slirp (user-mode networking inside QEMU): loopback and link-local denied', () => {
    const a = answers(
      [
        {
          name: 'u',
          network: slirp,
          display: { mode: 'vnc-tls', listen: '192.0.2.1', port: 5901, tlsDir: '/etc/pki/qemu/u' },
        },
      ],
      { acceptedRisks: [slirpRisk('u')] },
    );
    const unit = guestService(a, a.guests[0]!);
    assert.deepEqual(settings(unit, 'IPAddressDeny'), ['127.0.0.0/8 ::1/128 169.254.0.0/16 fe80::/10']);
    assert.deepEqual(settings(unit, 'RestrictAddressFamilies'), ['AF_UNIX AF_INET AF_INET6']);
  });
  test('a guest on slirp cannot listen on loopback: its unit denies that range', () => {
    assert.throws(
      () =>
        answers([{ name: 'u', network: slirp, migration: { enabled: true, port: 49152, tlsDir: '/etc/pki/qemu/u' } }], {
          acceptedRisks: [slirpRisk('u')],
        }),
      /guests\.0\.migration\.listen: 127\.0\.0\.1 is a loopback or link-local address/,
    );
  });
  test('migration: client and server credentials, and a destination unit with -incoming defer', () => {
    const a = answers([{ name: 'm', migration: { enabled: true, port: 49152, tlsDir: '/etc/pki/qemu/m' } }]);
    const files = plan(a).map((f) => f.path);
    assert.ok(files.includes('root/etc/systemd/system/qemu-m-incoming.service'));
    const normal = guestService(a, a.guests[0]!);
    const incoming = guestService(a, a.guests[0]!, { incoming: true });
    for (const u of [normal, incoming]) {
      assert.ok(u.includes('tls-creds-x509,id=migration-tls,dir=/etc/pki/qemu/m,endpoint=server,verify-peer=on'));
      assert.ok(
        u.includes('tls-creds-x509,id=migration-tls-client,dir=/etc/pki/qemu/m,endpoint=client,verify-peer=on'),
      );
    }
    assert.ok(!normal.includes('-incoming'));
    assert.ok(incoming.includes('-incoming defer'));
    assert.deepEqual(settings(incoming, 'Conflicts'), ['qemu-m.service']);
    assert.ok(!incoming.includes('[Install]'), 'never started at boot');
    assert.throws(
      () =>
        answers([
          { name: 'm', migration: { enabled: true, port: 49152, tlsDir: '/etc/pki/qemu/m' } },
          { name: 'm-incoming' },
        ]),
      /guests\.1\.name: .*migration destination unit/,
    );
  });
  test('another guest’s TLS directory is hidden; a directory two guests share is an accepted risk; one holding another’s is refused', () => {
    const g = (name: string, dir: string) => ({
      name,
      disks: [{ path: `/srv/qemu/${name}/disk.img`, format: 'raw' }],
      display: { mode: 'vnc-tls', listen: '192.0.2.1', port: name === 'x' ? 5901 : 5902, tlsDir: dir },
    });
    const a = answers([g('x', '/etc/pki/qemu/x'), g('y', '/etc/pki/qemu/y')]);
    assert.deepEqual(settings(guestService(a, a.guests[0]!), 'InaccessiblePaths'), ['-/etc/pki/qemu/y']);
    assert.deepEqual(settings(guestService(a, a.guests[1]!), 'InaccessiblePaths'), ['-/etc/pki/qemu/x']);
    assert.throws(() => answers([g('x', '/etc/pki/qemu'), g('y', '/etc/pki/qemu')]), /takes the risk "tls-shared"/);
    assert.throws(
      () => answers([g('x', '/etc/pki/qemu'), g('y', '/etc/pki/qemu/y')]),
      /guests\.0\.display\.tlsDir: holds guest "y"'s TLS directory \/etc\/pki\/qemu\/y/,
      'x would read y’s key: a directory a guest reads as a whole is its own',
    );
  });
  test('ExecStop= asks for a powerdown through the FIFO monitor and waits for QEMU to close its output, with sh and coreutils only', () => {
    const a = answers([{ name: 'p' }]);
    const unit = guestService(a, a.guests[0]!);
    assert.deepEqual(settings(unit, 'ExecStartPre'), [
      '/usr/bin/rm -f /run/qemu-harden/p/stop.in /run/qemu-harden/p/stop.out',
      '/usr/bin/mkfifo -m 0600 /run/qemu-harden/p/stop.in /run/qemu-harden/p/stop.out',
    ]);
    const stop = settings(unit, 'ExecStop')[0]!;
    assert.ok(stop.startsWith('/bin/sh -c '));
    assert.ok(
      stop.includes('system_powerdown') &&
        stop.includes('1<> /run/qemu-harden/p/stop.in') &&
        stop.includes('exec 3<> /run/qemu-harden/p/stop.out 4< /run/qemu-harden/p/stop.out 3>&-') &&
        stop.endsWith('exec cat <&4 >/dev/null"'),
      stop,
    );
  });
});

describe('helper units: the guest’s TPM', () => {
  const a = answers([
    { name: 'win', tpm: 'tpm2', firmware: { type: 'uefi', secureBoot: true } },
    { name: 'other', tpm: 'tpm2' },
  ]);
  const g = a.guests[0]!;
  const qemu = guestService(a, g);
  const tpm = helperService(a, g, swtpm);
  const keys = (unit: string) => [...new Set(unit.split('\n').flatMap((l) => /^([A-Z][A-Za-z]+)=/.exec(l)?.[1] ?? []))];

  test('the TPM’s unit has QEMU’s hardening, differing only where the helper’s record says', () => {
    /** Settings of QEMU's unit that are QEMU's own (its command, directories, devices, limits), not hardening. */
    const qemuOnly = new Set([
      'Description',
      'Documentation',
      'Requires',
      'After',
      'ExecStartPre',
      'ExecStart',
      'ExecStop',
      'KillSignal',
      'TimeoutStopSec',
      'Restart',
      'RestartSec',
      'SupplementaryGroups',
      'RuntimeDirectory',
      'RuntimeDirectoryMode',
      'RuntimeDirectoryPreserve',
      'StateDirectory',
      'LogsDirectory',
      'LogsDirectoryMode',
      'DeviceAllow',
      'ReadWritePaths',
      'BindPaths',
      'InaccessiblePaths',
      'TemporaryFileSystem',
      'AppArmorProfile',
      'CPUQuota',
      'MemoryMax',
      'IOWeight',
      'TasksMax',
      'WantedBy',
    ]);
    for (const k of keys(qemu).filter((k) => !qemuOnly.has(k)))
      assert.deepEqual(settings(tpm, k), settings(qemu, k), `${k}= as in QEMU's unit`);
    // Where it differs: no devices, no network, no code written at run time, its own profile and limits.
    assert.deepEqual(settings(tpm, 'PrivateDevices'), ['yes']);
    assert.deepEqual(settings(tpm, 'DeviceAllow'), []);
    assert.deepEqual(settings(tpm, 'PrivateNetwork'), ['yes']);
    assert.deepEqual(settings(tpm, 'RestrictAddressFamilies'), ['AF_UNIX']);
    assert.deepEqual(settings(tpm, 'MemoryDenyWriteExecute'), ['yes']);
    assert.deepEqual(settings(tpm, 'AppArmorProfile'), ['qemu-harden-win-tpm']);
    assert.deepEqual(settings(tpm, 'MemoryMax'), ['128M']);
    assert.deepEqual(settings(tpm, 'TasksMax'), ['16']);
    assert.deepEqual(settings(tpm, 'StateDirectory'), ['qemu-harden/win/tpm2']);
    assert.deepEqual(settings(tpm, 'StateDirectoryMode'), ['0700']);
    assert.deepEqual(settings(tpm, 'SystemCallFilter')[0], '@system-service seccomp');
    // The fence puts back only the TPM's state: neither the guest's disk nor its runtime directory.
    assert.deepEqual(settings(tpm, 'BindPaths'), ['/var/lib/qemu-harden/win/tpm2']);
    assert.deepEqual(settings(tpm, 'TemporaryFileSystem'), [
      '/var/lib/qemu-harden:ro',
      '/var/log/qemu-harden:ro',
      '/run:ro',
      '/dev/shm:ro',
    ]);
  });

  test('swtpm is set up on first start, then started on the socket systemd hands it, with its own seccomp', () => {
    assert.deepEqual(settings(tpm, 'ExecStartPre'), [
      '/usr/bin/swtpm_setup --tpm2 --tpmstate /var/lib/qemu-harden/win/tpm2 --createek --pcr-banks sha256 --not-overwrite --config /dev/null',
    ]);
    assert.deepEqual(settings(tpm, 'ExecStart'), [
      '/usr/bin/swtpm socket --tpm2 --tpmstate dir=/var/lib/qemu-harden/win/tpm2,mode=0600 --ctrl type=unixio,fd=3 --seccomp action=kill',
    ]);
    assert.deepEqual(settings(tpm, 'Requires'), ['qemu-win-tpm.socket']);
    assert.deepEqual(settings(tpm, 'PartOf'), ['qemu-win.service']);
    const socket = helperSocket(g, swtpm);
    assert.deepEqual(settings(socket, 'ListenStream'), ['/run/qemu-harden/win/tpm.sock']);
    assert.deepEqual(settings(socket, 'SocketUser'), ['qemu-win']);
    assert.deepEqual(settings(socket, 'SocketMode'), ['0600']);
    assert.deepEqual(settings(socket, 'PartOf'), ['qemu-win.service']);
  });

  test('QEMU starts after its TPM, connects to its socket, and neither its unit nor its profile reaches the state', () => {
    assert.ok(settings(qemu, 'Requires').includes('qemu-win-tpm.service'));
    assert.ok(settings(qemu, 'After').includes('qemu-win-tpm.service'));
    assert.ok(settings(qemu, 'InaccessiblePaths').includes('-/var/lib/qemu-harden/win/tpm2'));
    const args = qemuArgs(a, g);
    const at = args.indexOf('-tpmdev');
    assert.deepEqual(args.slice(at - 2, at + 4), [
      '-chardev',
      'socket,id=tpm,path=/run/qemu-harden/win/tpm.sock',
      '-tpmdev',
      'emulator,id=tpm0,chardev=tpm',
      '-device',
      'tpm-crb,tpmdev=tpm0',
    ]);
    assert.match(AA.guestRules(a, g), /deny "\/var\/lib\/qemu-harden\/win\/tpm2\/\*\*" rwklmx,/);
    const rules = AA.helperRules(g, swtpm);
    assert.match(rules, /"\/var\/lib\/qemu-harden\/win\/tpm2\/\*\*" rwk,/);
    assert.doesNotMatch(rules, /qemu-harden\/other/, 'nothing of the other guest');
    assert.doesNotMatch(rules, /\/srv\//, 'nothing of the guest’s own disks');
  });

  test('the migration destination unit needs the TPM too, and the TPM stops with either', () => {
    const m = answers([
      { name: 'win', tpm: 'tpm2', migration: { enabled: true, port: 49152, tlsDir: '/etc/pki/qemu' } },
    ]);
    const h = helperService(m, m.guests[0]!, swtpm);
    assert.deepEqual(settings(h, 'PartOf'), ['qemu-win.service qemu-win-incoming.service']);
    assert.ok(settings(guestService(m, m.guests[0]!, { incoming: true }), 'Requires').includes('qemu-win-tpm.service'));
  });

  test('a guest without a TPM has no helper files, and its units are as before', () => {
    const none = answers([{ name: 'plain' }]);
    assert.ok(!plan(none).some((f) => f.path.includes('tpm')));
    assert.doesNotMatch(guestService(none, none.guests[0]!), /tpm/);
  });
});

describe('helper units: the user-mode network from passt', () => {
  const a = answers([
    {
      name: 'web',
      network: {
        mode: 'user',
        forwards: [
          { listen: '192.0.2.10', port: 8022, guestPort: 22 },
          { protocol: 'udp', listen: '2001:db8::10', port: 5353 },
        ],
      },
    },
    { name: 'other', network: { mode: 'user' } },
  ]);
  const g = a.guests[0]!;
  const qemu = guestService(a, g);
  const net = helperService(a, g, passt);

  test('passt is the default user-mode network; slirp is a risk accepted by name', () => {
    assert.deepEqual(a.guests[1]!.network, { mode: 'user', backend: 'passt', forwards: [] });
    assert.throws(
      () => answers([{ name: 'old', network: { mode: 'user', backend: 'slirp' } }]),
      /guests\.0\.network\.backend: takes the risk "slirp"/,
    );
  });

  test('QEMU loses every IP socket: an empty network namespace, unix sockets only, and its netdev is passt’s socket', () => {
    assert.deepEqual(settings(qemu, 'PrivateNetwork'), ['yes']);
    assert.deepEqual(settings(qemu, 'RestrictAddressFamilies'), ['AF_UNIX']);
    assert.deepEqual(settings(qemu, 'IPAddressDeny'), ['any']);
    assert.ok(settings(qemu, 'Requires').includes('qemu-web-net.service'));
    assert.ok(settings(qemu, 'After').includes('qemu-web-net.service'));
    const args = qemuArgs(a, g);
    assert.ok(!args.some((x) => x.startsWith('user,')), 'no slirp');
    const at = args.indexOf('stream,id=net0,server=off,addr.type=unix,addr.path=/run/qemu-harden/web/net/passt.sock');
    assert.equal(args[at - 1], '-netdev');
    assert.ok(args.some((x) => x.startsWith('virtio-net-pci,netdev=net0,')));
    assert.doesNotMatch(AA.guestRules(a, g), /network inet/);
    assert.match(AA.guestRules(a, g), /"\/run\/qemu-harden\/web\/net\/passt\.sock" rw,/);
  });

  test('passt forks once its socket listens, in a directory of its own; no socket unit', () => {
    assert.deepEqual(settings(net, 'Type'), ['forking']);
    assert.deepEqual(settings(net, 'RuntimeDirectory'), ['qemu-harden/web/net']);
    assert.deepEqual(settings(net, 'RuntimeDirectoryMode'), ['0700']);
    assert.deepEqual(settings(net, 'Requires'), []);
    assert.deepEqual(settings(net, 'After'), ['network-online.target']);
    assert.deepEqual(settings(net, 'PartOf'), ['qemu-web.service']);
    assert.deepEqual(settings(net, 'ExecStart'), [
      '/usr/bin/passt --socket /run/qemu-harden/web/net/passt.sock --no-map-gw -t 192.0.2.10/8022:22 -u 2001:db8::10/5353',
    ]);
    assert.ok(!plan(a).some((f) => f.path.endsWith('-net.socket')));
    assert.deepEqual(
      helperService(a, a.guests[1]!, passt)
        .split('\n')
        .filter((l) => l.startsWith('ExecStart=')),
      ['ExecStart=/usr/bin/passt --socket /run/qemu-harden/other/net/passt.sock --no-map-gw -t none -u none'],
      'no forwards: none at all, not the UDP twins of forwarded TCP ports passt adds by default',
    );
  });

  test('passt’s unit: the host’s IP without loopback or link-local, its own sandbox, and nothing of the guest’s files', () => {
    assert.deepEqual(settings(net, 'RestrictAddressFamilies'), ['AF_UNIX AF_INET AF_INET6 AF_NETLINK']);
    assert.deepEqual(settings(net, 'IPAddressDeny'), ['127.0.0.0/8 ::1/128 169.254.0.0/16 fe80::/10']);
    assert.deepEqual(settings(net, 'PrivateNetwork'), []);
    assert.deepEqual(settings(net, 'RestrictNamespaces'), ['user mnt ipc uts pid']);
    assert.deepEqual(settings(net, 'SystemCallFilter'), [
      '@system-service seccomp',
      '~@clock @cpu-emulation @debug @module @mount @obsolete @privileged @raw-io @reboot @swap',
      'capset setuid setgid setgroups mount umount2 pivot_root',
    ]);
    assert.deepEqual(settings(net, 'CapabilityBoundingSet'), ['']);
    assert.deepEqual(settings(net, 'User'), ['qemu-web']);
    assert.deepEqual(settings(net, 'AppArmorProfile'), ['qemu-harden-web-net']);
    assert.deepEqual(settings(net, 'BindPaths'), ['/run/qemu-harden/web/net']);
    assert.deepEqual(settings(net, 'BindReadOnlyPaths'), ['/run/systemd/journal/dev-log']);
    assert.doesNotMatch(net, /\/srv\/web\.img|BindPaths=\/var/, 'neither its guest’s disk nor any guest’s state');
    const rules = AA.helperRules(g, passt);
    assert.match(rules, /capability sys_admin,/);
    assert.doesNotMatch(rules, /deny capability/);
    assert.doesNotMatch(rules, /qemu-harden\/other|\/srv\//, 'nothing of the other guest’s, nor of its own disks');
  });

  test('on systemd 257 passt gets no PID namespace of systemd’s: it forks, and makes its own', () => {
    const t = answers([{ name: 'web', network: { mode: 'user' } }], { host: { target: 'debian-13' } });
    assert.deepEqual(settings(helperService(t, t.guests[0]!, passt), 'PrivatePIDs'), []);
    assert.deepEqual(settings(guestService(t, t.guests[0]!), 'PrivatePIDs'), ['yes']);
  });

  test('slirp keeps its forwards as hostfwd=, and is the one user-mode network with IP in QEMU’s unit', () => {
    const s = answers(
      [
        {
          name: 'old',
          network: { mode: 'user', backend: 'slirp', forwards: [{ listen: '2001:db8::1', port: 8022, guestPort: 22 }] },
        },
      ],
      { acceptedRisks: [{ risk: 'slirp', guest: 'old', reason: 'this host has no passt package yet' }] },
    );
    assert.ok(qemuArgs(s, s.guests[0]!).includes('user,id=net0,hostfwd=tcp:[2001:db8::1]:8022-:22'));
    assert.deepEqual(
      plan(s)
        .map((f) => f.path)
        .filter((p) => p.includes('-net')),
      [],
    );
  });

  test('a forward never listens where passt’s unit denies, nor on a privileged port, nor twice', () => {
    const fw = (listen: string, port = 8022, protocol = 'tcp') => ({
      name: 'f',
      network: { mode: 'user', forwards: [{ listen, port, protocol }] },
    });
    assert.throws(
      () => answers([fw('127.0.0.1')]),
      /guests\.0\.network\.forwards\.0\.listen: 127\.0\.0\.1 is a loopback/,
    );
    assert.throws(() => answers([fw('192.0.2.1', 22)]), /guests\.0\.network\.forwards\.0\.port: must be 1024 or above/);
    assert.throws(
      () =>
        answers([
          fw('0.0.0.0'),
          { name: 'g', network: { mode: 'user', forwards: [{ listen: '192.0.2.1', port: 8022 }] } },
        ]),
      /guests\.1\.network\.forwards\.0\.port: 192\.0\.2\.1:8022 is already taken/,
    );
    answers([
      fw('0.0.0.0'),
      { name: 'g', network: { mode: 'user', forwards: [{ listen: '192.0.2.1', port: 8022, protocol: 'udp' }] } },
    ]);
  });
});

describe('helper units: shared folders from virtiofsd, where the release has one that runs unprivileged', () => {
  const doc = (target: string) =>
    answers(
      [
        {
          name: 'dev',
          shares: [
            { path: '/srv/shares/src', tag: 'src' },
            { path: '/srv/shares/out', tag: 'out', readOnly: false },
          ],
        },
        { name: 'other', shares: [{ path: '/srv/shares/other', tag: 'data' }] },
      ],
      {
        host: { target },
        acceptedRisks: [{ risk: 'share-writable', guest: 'dev', reason: 'the build writes its artifacts there' }],
      },
    );
  const a = doc('debian-13');
  const g = a.guests[0]!;
  const [ro, rw] = [virtiofsd(0), virtiofsd(1)];
  const qemu = guestService(a, g);
  const unit = (n: number) => helperService(a, g, virtiofsd(n));

  test('Debian 13: one virtiofsd unit per folder, on a socket systemd listens on; Debian 12: QEMU’s 9p, no helper', () => {
    const units = (x: ReturnType<typeof answers>) =>
      plan(x)
        .map((f) => f.path)
        .filter((p) => /-fs\d+\.(service|socket)$/.test(p));
    assert.deepEqual(units(a), [
      'root/etc/systemd/system/qemu-dev-fs0.service',
      'root/etc/systemd/system/qemu-dev-fs0.socket',
      'root/etc/systemd/system/qemu-dev-fs1.service',
      'root/etc/systemd/system/qemu-dev-fs1.socket',
      'root/etc/systemd/system/qemu-other-fs0.service',
      'root/etc/systemd/system/qemu-other-fs0.socket',
    ]);
    const old = doc('debian-12');
    assert.deepEqual(units(old), []);
    assert.ok(
      qemuArgs(old, old.guests[0]!).includes(
        'local,path=/srv/shares/src,mount_tag=src,security_model=none,readonly=on',
      ),
    );
    assert.ok(!qemuArgs(a, g).some((x) => x.startsWith('local,path=')), 'no 9p where virtiofsd serves the folders');
  });

  test('virtiofsd runs as the guest’s user on the fd systemd hands it, its folder read-only unless the risk is accepted', () => {
    assert.deepEqual(settings(unit(0), 'ExecStart'), [
      '/usr/libexec/virtiofsd --fd=3 --shared-dir=/srv/shares/src --sandbox=none --seccomp=kill --readonly --rlimit-nofile=0',
    ]);
    assert.doesNotMatch(unit(1), /--readonly/);
    assert.deepEqual(settings(unit(0), 'User'), ['qemu-dev']);
    assert.deepEqual(settings(unit(0), 'CapabilityBoundingSet'), ['']);
    assert.deepEqual(settings(unit(0), 'Requires'), ['qemu-dev-fs0.socket']);
    assert.deepEqual(settings(helperSocket(g, ro), 'ListenStream'), ['/run/qemu-harden/dev/fs0.sock']);
    assert.deepEqual(settings(unit(0), 'PrivateNetwork'), ['yes']);
    assert.deepEqual(settings(unit(0), 'RestrictNamespaces'), ['yes'], 'virtiofsd makes no namespace of its own');
    assert.deepEqual(settings(unit(0), 'ProcSubset'), [], 'it reads fs.nr_open');
    assert.deepEqual(settings(unit(0), 'ProtectKernelTunables'), ['yes']);
    // The fence puts back exactly its own folder: read-only, or writable; nothing of the other guest's.
    assert.deepEqual(settings(unit(0), 'BindReadOnlyPaths'), ['/srv/shares/src']);
    assert.deepEqual(settings(unit(1), 'BindPaths'), ['/srv/shares/out']);
    assert.ok(settings(unit(0), 'TemporaryFileSystem').includes('/srv/shares:ro'));
    assert.doesNotMatch(unit(0), /\/srv\/shares\/(out|other)\b/);
    const rules = AA.helperRules(g, ro);
    assert.match(rules, /"\/srv\/shares\/src\/\*\*" r,/);
    assert.doesNotMatch(rules, /\/srv\/shares\/(out|other)|\/srv\/dev\.img/);
    assert.match(AA.helperRules(g, rw), /"\/srv\/shares\/out\/\*\*" rwkl,/);
    // Nothing of a sandbox of its own: no system call given back, no mount or pivot in its profile, no capability.
    assert.deepEqual(settings(unit(0), 'SystemCallFilter').slice(2), []);
    assert.match(rules, /^ {2}deny capability,$/m);
    assert.doesNotMatch(rules, /^ {2}(mount|umount|pivot_root|capability \w+),/m);
  });

  test('the README says how the guest’s user reaches each folder and directory, as the host files arrange it', () => {
    const old = doc('debian-12');
    const files = plan(old);
    const readme = files.find((f) => f.path === 'README.md')!.content;
    const line = (path: string) => readme.split('\n').find((l) => l.startsWith(`- file \`${path}\``)) ?? '';
    const hostTmpfiles = tmpfiles(old);
    // Read-only: no ACL entry is given, so the README must not say one is.
    assert.match(line('/srv/shares/src/'), /read-only, left as it is; its files must be readable by the guest’s user/);
    assert.doesNotMatch(hostTmpfiles, /\/srv\/shares\/src/);
    // Writable: the directory is made the guest's user's with mode 0700, and the README says 0700.
    assert.match(line('/srv/shares/out/'), /read-write, made the guest’s user’s, mode 0700/);
    assert.match(hostTmpfiles, /^d "\/srv\/shares\/out" 0700 qemu-dev qemu-dev -$/m);
    const unit = guestService(old, old.guests[0]!);
    assert.match(line('/var/lib/qemu-harden/dev/'), /mode 0700\)/);
    assert.deepEqual(settings(unit, 'StateDirectoryMode'), ['0700']);
    assert.match(line('/run/qemu-harden/dev/'), /mode 0750\)/);
    assert.deepEqual(settings(unit, 'RuntimeDirectoryMode'), ['0750']);
  });

  test('QEMU: vhost-user-fs on each socket, the guest’s RAM a shared memfd, and the folders themselves out of its view', () => {
    const args = qemuArgs(a, g);
    assert.ok(args.includes('socket,id=fs0,path=/run/qemu-harden/dev/fs0.sock'));
    assert.ok(args.includes('vhost-user-fs-pci,chardev=fs0,tag=src'));
    assert.ok(args.includes('vhost-user-fs-pci,chardev=fs1,tag=out'));
    assert.ok(args.includes('memory-backend-memfd,id=ram,size=1024M,share=on'));
    assert.ok(args.includes('q35,dump-guest-core=off,mem-merge=off,memory-backend=ram'));
    assert.ok(settings(qemu, 'Requires').includes('qemu-dev-fs1.service'));
    assert.ok(settings(qemu, 'InaccessiblePaths').includes('-/srv/shares/src'));
    assert.ok(settings(qemu, 'InaccessiblePaths').includes('-/srv/shares/out'));
    assert.doesNotMatch(AA.guestRules(a, g), /\/srv\/shares/);
    const none = answers([{ name: 'plain' }], { host: { target: 'debian-13' } });
    assert.ok(!qemuArgs(none, none.guests[0]!).some((x) => x.includes('memfd')), 'private RAM without shared folders');
  });
});
