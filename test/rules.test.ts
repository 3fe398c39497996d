// The cross-field rules as a table, and the classes of answers no bundle may hold, judged by the answers alone
// (the machine that generates a bundle is often not its host): device nodes that are not storage, credentials that
// are not the guest's own, two guests with one network identity however it is written, MACs no card may have.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { validate } from '../src/answers.js';
import { InputError } from '../src/errors.js';
import { macAddress } from '../src/identity.js';
import { answersObject, type Answers } from '../src/model.js';
import { fitsPattern, RULES } from '../src/rules.js';
import { cli, REPO } from './helpers.js';

type Doc = Record<string, unknown>;

const doc = (guests: Doc[], extra: Doc = {}) => ({
  schemaVersion: 1,
  useCase: 'virtualization',
  guests: guests.map((g) => ({ disks: [{ path: `/srv/${String(g.name)}.img`, format: 'raw' }], ...g })),
  ...extra,
});

function errorsOf(d: unknown): string[] {
  try {
    validate(d);
  } catch (e) {
    assert.ok(e instanceof InputError, `an input error, not ${String(e)}`);
    return e.message.split('\n');
  }
  return [];
}

function refused(d: unknown, path: string, fragment: RegExp, why = ''): void {
  const errors = errorsOf(d);
  assert.ok(
    errors.some((e) => e.startsWith(`${path}: `) && fragment.test(e)),
    `${why} expected an error at ${path} matching ${fragment}, got:\n${errors.join('\n')}`,
  );
}

function accepted(d: unknown, why = ''): Answers {
  const errors = errorsOf(d);
  assert.deepEqual(errors, [], why);
  return validate(d);
}

describe('the rules table', () => {
  // Answers that run into every rule: shared and system paths, device nodes, listeners on equivalent addresses,
  // one MAC in two spellings, PCI groups, USB ids, memory limits, derived names, risks accepted or not.
  const pathish = fc.constantFrom(
    '/srv/a.img',
    '/srv/a.img',
    '/srv/tls',
    '/srv/tls/b',
    '/etc/shadow',
    '/etc/ssl/private',
    '/home/u/x',
    '/var/lib/qemu-harden/a',
    '/usr/share/qemu/x.iso',
  );
  const devish = fc.constantFrom(
    '/dev/sdb',
    '/dev/ttyS0',
    '/dev/watchdog',
    '/dev/input/event0',
    '/dev/vg/lv',
    '/srv/x',
  );
  const addr = fc.constantFrom(
    '0.0.0.0',
    '::',
    '127.0.0.1',
    '::ffff:127.0.0.1',
    '192.0.2.1',
    '2001:DB8::1',
    '2001:db8::1',
  );
  const guest = fc.record({
    name: fc.constantFrom('a', 'b', 'a-incoming', 'net', 'kvm'),
    machine: fc.constantFrom('q35', 'pc', 'microvm'),
    disks: fc.array(
      fc.record({
        path: fc.oneof(pathish, devish),
        format: fc.constantFrom('raw', 'qcow2'),
        readOnly: fc.boolean(),
        blockDevice: fc.boolean(),
      }),
      { maxLength: 3 },
    ),
    shares: fc.array(
      fc.record({ path: pathish, tag: fc.constantFrom('data', 'data', 'out'), readOnly: fc.boolean() }),
      { maxLength: 2 },
    ),
    network: fc.oneof(
      fc.constant({ mode: 'none' }),
      fc.record({
        mode: fc.constant('user'),
        backend: fc.constantFrom('passt', 'slirp'),
        mac: fc.constantFrom('52:54:00:00:00:01', '52:54:00:00:00:01'.toUpperCase()),
        forwards: fc.array(
          fc.record({ protocol: fc.constantFrom('tcp', 'udp'), listen: addr, port: fc.constantFrom(5900, 2222) }),
          { maxLength: 2 },
        ),
      }),
      fc.record({
        mode: fc.constant('tap'),
        tapDevice: fc.constantFrom('qh-a', 'eth0', 'br0', 'tap1'),
        bridge: fc.constantFrom('br0', 'qh-a'),
      }),
    ),
    display: fc.oneof(
      fc.constant({ mode: 'none' }),
      fc.record({ mode: fc.constant('vnc-tls'), listen: addr, port: fc.constantFrom(5900, 5901), tlsDir: pathish }),
      fc.record({
        mode: fc.constant('spice-tls'),
        listen: addr,
        port: fc.constantFrom(5900, 5930),
        tlsDir: pathish,
        passwordFile: fc.constantFrom('/srv/tls/pw', '/etc/shadow', '/srv/tls/b/pw'),
      }),
    ),
    migration: fc.option(
      fc.record({
        enabled: fc.constant(true),
        tls: fc.boolean(),
        listen: addr,
        port: fc.constant(5900),
        tlsDir: fc.option(pathish, { nil: undefined }),
      }),
      { nil: undefined },
    ),
    passthrough: fc.record({
      pci: fc.array(
        fc.record({ address: fc.constantFrom('0000:01:00.0', '0000:01:00.1'), iommuGroup: fc.constantFrom(1, 2) }),
        { maxLength: 2 },
      ),
      usb: fc.array(fc.record({ vendorId: fc.constant('046d'), productId: fc.constant('c52b') }), { maxLength: 1 }),
    }),
    tpm: fc.constantFrom('none', 'tpm2'),
    isolation: fc.record({ selinuxCategories: fc.constantFrom([3, 7], [5, 9]) }),
    limits: fc.record({
      memoryMaxMiB: fc.constantFrom(16, 4096),
      ioBandwidth: fc.array(fc.record({ device: devish }), { maxLength: 1 }),
    }),
  });
  const hostileDoc = fc
    .record({
      useCase: fc.constantFrom('virtualization', 'emulation'),
      host: fc.record({
        confinement: fc.constantFrom('apparmor', 'selinux', 'none'),
        target: fc.constantFrom('debian-12', 'debian-13'),
      }),
      guests: fc.array(guest, { minLength: 1, maxLength: 3 }),
      acceptedRisks: fc.array(
        fc.record({
          risk: fc.constantFrom('emulation', 'pci-passthrough', 'slirp', 'share-writable', 'nope'),
          reason: fc.constant('a reason of some length'),
        }),
        { maxLength: 2 },
      ),
    })
    .map((d) => ({ schemaVersion: 1, ...d }));

  test('over 3,000 hostile documents every rule reports only against the fields its row names', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(hostileDoc, (d) => {
        const parsed = answersObject.safeParse(d);
        if (!parsed.success) return;
        for (const rule of RULES)
          rule.check(parsed.data, (path) => {
            const p = path.join('.');
            assert.ok(
              rule.at.some((pattern) => fitsPattern(pattern, p)),
              `"${rule.keeps}" reported ${p}, which is none of ${rule.at.join(', ')}`,
            );
            seen.add(rule.keeps);
          });
      }),
      { numRuns: 3000, seed: 20 },
    );
    assert.ok(seen.size >= RULES.length - 3, `most rules were reached: ${seen.size} of ${RULES.length}`);
  });
});

describe('a host device node that is not storage is never a disk, whatever the machine that generates the bundle has', () => {
  const disk = (path: string) => doc([{ name: 'a', disks: [{ path, format: 'raw', blockDevice: true }] }]);
  const NOT_STORAGE: [string, RegExp][] = [
    ['/dev/null', /character device \(data the kernel makes up\)/],
    ['/dev/zero', /character device/],
    ['/dev/urandom', /character device/],
    ['/dev/mem', /host’s own memory/],
    ['/dev/kmem', /host’s own memory/],
    ['/dev/port', /host’s own memory or I\/O ports/],
    ['/dev/kmsg', /kernel’s log/],
    ['/dev/watchdog', /watchdog: opening it arms a reboot/],
    ['/dev/watchdog0', /watchdog/],
    ['/dev/tty', /terminal/],
    ['/dev/tty1', /terminal/],
    ['/dev/ttyS0', /terminal/],
    ['/dev/ttyUSB3', /terminal/],
    ['/dev/console', /terminal/],
    ['/dev/ptmx', /terminal/],
    ['/dev/pts/3', /terminals/],
    ['/dev/input/event0', /input devices/],
    ['/dev/input/by-id/usb-kbd-event-kbd', /input devices/],
    ['/dev/uinput', /input device/],
    ['/dev/hidraw0', /input device/],
    ['/dev/snd/pcmC0D0p', /sound devices/],
    ['/dev/snd/controlC0', /sound devices/],
    ['/dev/dsp', /sound device/],
    ['/dev/fb0', /display or video/],
    ['/dev/dri/card0', /graphics devices/],
    ['/dev/video0', /display or video/],
    ['/dev/kvm', /kernel interface/],
    ['/dev/vhost-net', /kernel interface/],
    ['/dev/fuse', /kernel interface/],
    ['/dev/loop-control', /kernel interface/],
    ['/dev/mapper/control', /device-mapper's control interface/],
    ['/dev/net/tun', /network interfaces/],
    ['/dev/vfio/vfio', /VFIO/],
    ['/dev/bus/usb/001/002', /USB devices/],
    ['/dev/sg0', /command interface/],
    ['/dev/nvme0', /command interface/],
    ['/dev/ng0n1', /command interface/],
    ['/dev/mtd0', /raw flash/],
    ['/dev/mtdblock0', /raw flash|firmware/],
    ['/dev/mmcblk0rpmb', /command interface|firmware/],
    ['/dev/tpm0', /TPM/],
    ['/dev/tpmrm0', /TPM/],
    ['/dev/rtc0', /clock/],
    ['/dev/hpet', /clock/],
    ['/dev/cpu/0/msr', /per-CPU registers/],
    ['/dev/char/4:64', /character devices/],
    ['/dev/serial/by-id/usb-FTDI-if00-port0', /serial ports/],
    ['/dev/shm/disk', /shared memory/],
    ['/dev/hugepages/x', /huge pages/],
    ['/dev/fd/3', /file descriptors/],
    ['/dev/stdin', /kernel interface/],
    ['/dev/i2c-1', /hardware interface/],
    ['/dev/gpiochip0', /hardware interface/],
    ['/dev/ipmi0', /hardware interface/],
    ['/dev/sgx_enclave', /hardware interface/],
    ['/dev/disk', /not named like block storage/],
    ['/dev/foo', /not named like block storage/],
    ['/dev', /\/dev itself|device path/],
  ];

  test('every class of character device and pseudo file system, by name, whether or not this machine has it', () => {
    for (const [path, why] of NOT_STORAGE) refused(disk(path), 'guests.0.disks.0.path', why, path);
  });

  test('the same names are refused as I/O-limit devices', () => {
    for (const [path] of NOT_STORAGE.filter(([p]) => p !== '/dev'))
      refused(
        doc([{ name: 'a', limits: { ioBandwidth: [{ device: path, readBytesPerSecond: 1000 }] } }]),
        'guests.0.limits.ioBandwidth.0.device',
        /never a disk|not named like block storage|\/dev itself/,
        path,
      );
  });

  test('block storage as the kernel, udev and LVM name it is a disk', () => {
    for (const path of [
      '/dev/sdb',
      '/dev/sdaa1',
      '/dev/vdc',
      '/dev/xvda2',
      '/dev/hda',
      '/dev/nvme0n1',
      '/dev/nvme1n2p3',
      '/dev/mmcblk0',
      '/dev/mmcblk0p2',
      '/dev/mmcblk0boot0',
      '/dev/loop7',
      '/dev/loop0p1',
      '/dev/dm-3',
      '/dev/md0',
      '/dev/md127p1',
      '/dev/md/data',
      '/dev/nbd0',
      '/dev/rbd0',
      '/dev/zd16',
      '/dev/drbd1',
      '/dev/bcache0',
      '/dev/pmem0',
      '/dev/sr0',
      '/dev/zram1',
      '/dev/disk/by-id/ata-EXAMPLE_SERIAL-1',
      '/dev/disk/by-path/pci-0000:00:1f.2-ata-1',
      '/dev/disk/by-uuid/0c2a-1f3e',
      '/dev/mapper/vg0-data',
      '/dev/pve/vm-100-disk-0',
      '/dev/zvol/rpool/data/vm-100-disk-0',
      '/dev/block/8:16',
      '/dev/cciss/c0d0',
    ])
      accepted(disk(path), path);
  });

  test('property: any /dev name built from a non-storage class with any suffix is refused', () => {
    const cls = fc.constantFrom(
      'tty',
      'ttyS',
      'ttyUSB',
      'watchdog',
      'tpm',
      'rtc',
      'hidraw',
      'fb',
      'video',
      'sg',
      'mtd',
    );
    fc.assert(
      fc.property(cls, fc.nat({ max: 99 }), (c, n) => {
        refused(disk(`/dev/${c}${n}`), 'guests.0.disks.0.path', /never a disk/, `/dev/${c}${n}`);
      }),
      { numRuns: 300 },
    );
    const dir = fc.constantFrom(
      'input',
      'snd',
      'dri',
      'bus',
      'usb',
      'char',
      'serial',
      'v4l',
      'shm',
      'pts',
      'net',
      'vfio',
      'cpu',
    );
    fc.assert(
      fc.property(dir, fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,12}$/), (d, leaf) => {
        refused(disk(`/dev/${d}/${leaf}`), 'guests.0.disks.0.path', /never a disk/, `/dev/${d}/${leaf}`);
      }),
      { numRuns: 300 },
    );
  });

  test('generate refuses one this machine does not have, exit 2 naming the field', async () => {
    for (const path of ['/dev/ttyS9', '/dev/watchdog7', '/dev/input/event31']) {
      const r = await cli([
        'generate',
        '--preset',
        'kvm-headless',
        '--set',
        `guests.0.disks.0={"path":"${path}","format":"raw","blockDevice":true}`,
        '--dry-run',
      ]);
      assert.equal(r.code, 2, `${path}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`guests\\.0\\.disks\\.0\\.path: .*${path}.*never a disk`));
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });
});

describe('a directory a guest reads as a whole, and its password, are that guest’s own', () => {
  const vnc = (tlsDir: string, port = 5901) => ({ mode: 'vnc-tls', listen: '192.0.2.1', port, tlsDir });
  const spice = (tlsDir: string, passwordFile: string, port = 5930) => ({
    mode: 'spice-tls',
    listen: '192.0.2.1',
    port,
    tlsDir,
    passwordFile,
  });
  type Place = [field: string, set: (g: Doc, p: string) => void];
  const FIELDS: Place[] = [
    ['guests.0.display.tlsDir', (g, p) => (g.display = vnc(p))],
    ['guests.0.display.tlsDir', (g, p) => (g.display = spice(p, '/etc/pki/qemu/a/spice-password'))],
    ['guests.0.migration.tlsDir', (g, p) => (g.migration = { enabled: true, port: 49152, tlsDir: p })],
    ['guests.0.nbd.tlsDir', (g, p) => (g.nbd = { enabled: true, port: 10809, tlsDir: p })],
  ];
  const SYSTEM_DIRS = [
    '/etc',
    '/etc/ssl',
    '/etc/ssl/private',
    '/etc/ssl/certs',
    '/etc/pki',
    '/etc/pki/tls',
    '/etc/pki/tls/private',
    '/etc/pki/CA',
    '/etc/pki/libvirt',
    '/etc/pki/libvirt/private',
    '/etc/ssh',
    '/etc/letsencrypt/live/example.org',
    '/etc/credstore',
    '/etc/libvirt',
    '/etc/pve/priv',
    '/etc/kubernetes/pki',
    '/etc/systemd/system',
    '/etc/apparmor.d',
    '/etc/udev/rules.d',
    '/etc/qemu-harden',
    '/etc/libvirt-tls',
    '/var',
    '/var/lib',
    '/var/lib/qemu-harden',
    '/var/lib/qemu-harden/a',
    '/var/lib/qemu-harden/b',
    '/run/qemu-harden/b',
    '/var/log/qemu-harden',
    '/var/lib/dpkg',
    '/var/lib/libvirt/qemu',
    '/usr/share/qemu',
    '/usr',
    '/boot',
    '/proc/self',
    '/sys/kernel',
    '/dev/shm',
    '/run',
    '/srv',
    '/opt',
    '/mnt',
    '/data',
  ];

  test('never a system directory, a store of other programs’ keys, the bundle’s own places or a shared directory, in every field', () => {
    for (const [field, set] of FIELDS)
      for (const p of SYSTEM_DIRS) {
        const g: Doc = { name: 'a' };
        set(g, p);
        refused(doc([g]), field, /./, `${field} = ${p}`);
      }
  });

  test('property: anything below a key store or a system place is refused', () => {
    const base = fc.constantFrom(
      '/etc/ssl',
      '/etc/ssh',
      '/etc/pki/tls',
      '/etc/letsencrypt',
      '/etc/systemd',
      '/var/log',
      '/usr/lib',
      '/run/secrets',
      '/var/lib/qemu-harden',
    );
    fc.assert(
      fc.property(
        base,
        fc.stringMatching(/^[a-z][a-z0-9_.-]{0,10}$/),
        fc.constantFrom(...FIELDS),
        (b, leaf, [field, set]) => {
          const g: Doc = { name: 'a' };
          set(g, `${b}/${leaf}`);
          refused(doc([g]), field, /./, `${field} = ${b}/${leaf}`);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('never a parent of another guest’s files: disks, boot files, TLS directories, password files', () => {
    const others: [string, Doc][] = [
      ['disk', { name: 'b', disks: [{ path: '/srv/tls/b.img', format: 'raw' }] }],
      ['kernel', { name: 'b', disks: [], boot: { kernel: '/srv/tls/b/vmlinuz' } }],
      ['TLS directory', { name: 'b', display: vnc('/srv/tls/b', 5902) }],
      ['SPICE password file', { name: 'b', display: spice('/srv/b-tls', '/srv/tls/b-password', 5931) }],
    ];
    for (const [field, set] of FIELDS)
      for (const [what, other] of others) {
        const g: Doc = { name: 'a' };
        set(g, '/srv/tls');
        refused(doc([g, other]), field, new RegExp(`holds guest "b"'s ${what}`), `${field} over b's ${what}`);
      }
  });

  test('a password file is never a system file or another guest’s', () => {
    for (const pw of [
      '/etc/shadow',
      '/etc/ssh/ssh_host_ed25519_key',
      '/etc/ssl/private/host.key',
      '/root/pw',
      '/var/lib/qemu-harden/a/pw',
    ])
      refused(doc([{ name: 'a', display: spice('/etc/pki/qemu/a', pw) }]), 'guests.0.display.passwordFile', /./, pw);
    refused(
      doc([
        { name: 'a', display: spice('/etc/pki/qemu/a', '/etc/pki/qemu/pw') },
        { name: 'b', display: spice('/etc/pki/qemu/b', '/etc/pki/qemu/pw', 5931) },
      ]),
      'guests.1.display.passwordFile',
      /is also guest "a"'s SPICE password file/,
    );
    refused(
      doc([
        { name: 'a', display: spice('/etc/pki/qemu/a', '/etc/pki/qemu/a/pw') },
        { name: 'b', display: spice('/etc/pki/qemu/b', '/etc/pki/qemu/a/pw', 5931) },
      ]),
      'guests.0.display.tlsDir',
      /holds guest "b"'s SPICE password file/,
    );
  });

  test('its own directory is accepted, with its own password in it; one two guests share is the accepted risk "tls-shared"', () => {
    accepted(
      doc([
        {
          name: 'a',
          display: spice('/etc/pki/qemu/a', '/etc/pki/qemu/a/spice-password'),
          migration: { enabled: true, port: 49152, tlsDir: '/etc/pki/qemu/a' },
        },
        { name: 'b', display: vnc('/srv/qemu/b/tls', 5902) },
        { name: 'c', display: vnc('/etc/pki/libvirt-vnc', 5903) },
      ]),
    );
    const shared = doc([
      { name: 'a', display: vnc('/etc/pki/qemu', 5901) },
      { name: 'b', display: vnc('/etc/pki/qemu', 5902) },
    ]);
    refused(shared, 'guests.0', /takes the risk "tls-shared"/);
    accepted({
      ...shared,
      acceptedRisks: ['a', 'b'].map((guest) => ({
        risk: 'tls-shared',
        guest,
        reason: 'one CA-issued certificate for both consoles',
      })),
    });
  });
});

describe('two guests never share a network identity, however it is written', () => {
  const listener = (name: string, listen: string, port = 5901, network: Doc = { mode: 'none' }) => ({
    name,
    network,
    display: { mode: 'vnc-tls', listen, port, tlsDir: `/etc/pki/qemu/${name}` },
  });

  test('ports on the same or a covering address, in any spelling', () => {
    const clashes: [string, string][] = [
      ['0.0.0.0', '0.0.0.0'],
      ['0.0.0.0', '::'],
      ['::', '0.0.0.0'],
      ['0.0.0.0', '192.0.2.1'],
      ['192.0.2.1', '0.0.0.0'],
      ['::', '192.0.2.1'],
      ['::', '2001:db8::1'],
      ['192.0.2.1', '::ffff:192.0.2.1'],
      ['::ffff:c000:201', '192.0.2.1'],
      ['2001:DB8::1', '2001:db8::1'],
      ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
      ['::1', '0:0:0:0:0:0:0:1'],
      ['0:0:0:0:0:0:0:0', '10.0.0.1'],
      ['::ffff:0.0.0.0', '10.0.0.1'],
    ];
    for (const [x, y] of clashes)
      refused(
        doc([listener('a', x), listener('b', y)]),
        'guests.1.display.port',
        /is already taken by guests\.0 \(a\)/,
        `${x} then ${y}`,
      );
    for (const [x, y] of [
      ['192.0.2.1', '192.0.2.2'],
      ['127.0.0.1', '::1'],
      ['2001:db8::1', '192.0.2.1'],
    ] as const)
      accepted(doc([listener('a', x), listener('b', y)]), `${x} and ${y} are different addresses`);
    accepted(doc([listener('a', '0.0.0.0', 5901), listener('b', '0.0.0.0', 5902)]), 'different ports');
  });

  test('one guest’s display and migration on one port clash too', () => {
    refused(
      doc([
        {
          ...listener('a', '::'),
          migration: { enabled: true, listen: '192.0.2.1', port: 5901, tlsDir: '/etc/pki/qemu/a' },
        },
      ]),
      'guests.0.migration.port',
      /is already taken by guests\.0 \(a\)/,
    );
  });

  test('a user-networked guest never listens on loopback or link-local, however written', () => {
    for (const a of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      'FE80::1',
      '169.254.1.1',
    ])
      refused(
        doc([listener('a', a, 5901, { mode: 'user', backend: 'slirp' })], {
          acceptedRisks: [{ risk: 'slirp', guest: 'a', reason: 'no passt on this host yet' }],
        }),
        'guests.0.display.listen',
        /loopback or link-local/,
        a,
      );
  });

  test('a shared folder is a directory of the guest’s own, read-only unless a reason is given', () => {
    const share = (name: string, path: string, extra: Doc = {}) => ({
      name,
      disks: [{ path: `/srv/vm/${name}.img`, format: 'raw' }],
      shares: [{ path, tag: 'data', ...extra }],
    });
    for (const [path, why] of [
      ['/srv', /top-level directory/],
      ['/var/lib', /a parent of \/var\/lib\/qemu-harden/],
      ['/var/opt', /shared by everything below it/],
      ['/var/lib/libvirt', /holds \/var\/lib\/libvirt\/qemu/],
      ['/etc/app', /under \/etc/],
      ['/usr/share/doc', /under \/usr/],
      ['/home/u/shared', /under \/home, which every guest unit hides/],
      ['/tmp/x', /under \/tmp/],
      ['/var/lib/qemu-harden/a', /qemu-harden creates/],
      ['/var/lib/qemu-harden', /qemu-harden creates/],
      ['/run/x', /under \/run/],
    ] as const)
      refused(doc([share('a', path)]), 'guests.0.shares.0.path', why, path);
    refused(
      doc([share('a', '/srv/vm')]),
      'guests.0.shares.0.path',
      /holds this guest’s own disk \/srv\/vm\/a\.img/,
      'its own disk would be reached around its read-only flag and format',
    );
    accepted(doc([share('a', '/srv/data'), share('b', '/srv/data')]), 'two guests may read one folder');
    accepted(doc([share('a', '/srv/data'), share('b', '/srv/data/x')]), 'or one inside another, both read-only');
    refused(
      doc([share('a', '/srv/data', { readOnly: false }), share('b', '/srv/data/sub')], {
        acceptedRisks: [{ risk: 'share-writable', guest: 'a', reason: 'a drop box the build fills' }],
      }),
      'guests.1.shares.0.path',
      /is inside guest "a"'s shared folder \/srv\/data, and one of them writes it/,
    );
    refused(
      doc([share('a', '/srv/data'), { name: 'b', disks: [{ path: '/srv/data/b.img', format: 'raw' }] }]),
      'guests.0.shares.0.path',
      /holds guest "b"'s disk \/srv\/data\/b\.img/,
    );
    refused(
      doc([
        {
          name: 'a',
          shares: [
            { path: '/srv/s/one', tag: 'x' },
            { path: '/srv/s/one/two', tag: 'x' },
          ],
        },
      ]),
      'guests.0.shares.1.tag',
      /already the tag of shares\.0/,
    );
    refused(
      doc([
        {
          name: 'a',
          shares: [
            { path: '/srv/s/one', tag: 'x' },
            { path: '/srv/s/one/two', tag: 'y' },
          ],
        },
      ]),
      'guests.0.shares.1.path',
      /is inside shares\.0/,
    );
    refused(doc([share('a', '/srv/s/a', { readOnly: false })]), 'guests.0.shares.0.readOnly', /share-writable/);
    accepted(
      doc([share('a', '/srv/s/a', { readOnly: false })], {
        acceptedRisks: [{ risk: 'share-writable', guest: 'a', reason: 'the build drops its artifacts here' }],
      }),
    );
    refused(doc([share('a', '/srv/s/a', { tag: 'no spaces' })]), 'guests.0.shares.0.tag', /letters, digits/);
  });

  test('one MAC on two guests, in either case, on any bridge, given or derived from the name', () => {
    const tap = (name: string, mac?: string, bridge = 'br0') => ({
      name,
      network: { mode: 'tap', bridge, ...(mac ? { mac } : {}) },
    });
    refused(
      doc([tap('a', 'bc:24:11:00:00:01'), tap('b', 'BC:24:11:00:00:01')]),
      'guests.1.network.mac',
      /already the MAC of guest "a"/,
    );
    refused(
      doc([tap('a', '52:54:00:00:00:01', 'br0'), tap('b', '52:54:00:00:00:01', 'br1')]),
      'guests.1.network.mac',
      /already the MAC/,
    );
    refused(
      doc([tap('a', '52:54:00:00:00:01'), { name: 'b', network: { mode: 'user', mac: '52:54:00:00:00:01' } }]),
      'guests.1.network.mac',
      /already the MAC/,
    );
    const derived = validate(doc([tap('a')])).guests[0]!;
    refused(
      doc([tap('a'), tap('b', macAddress(derived).toUpperCase())]),
      'guests.1.network.mac',
      /already the MAC of guest "a"/,
    );
    // Two names whose derived MACs collide (24 bits of a hash): found by search, refused on the second.
    const seen = new Map<string, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const name = `g${i}`;
      const mac = macAddress(validate(doc([{ name, network: { mode: 'user' } }])).guests[0]!);
      if (seen.has(mac)) pair = [seen.get(mac)!, name];
      else seen.set(mac, name);
    }
    refused(
      doc([
        { name: pair[0], network: { mode: 'user' } },
        { name: pair[1], network: { mode: 'user' } },
      ]),
      'guests.1.network.mac',
      /derived from the name.*give this guest its own network\.mac/,
    );
    accepted(
      doc([tap('a', '52:54:00:00:00:01'), { name: 'b', network: { mode: 'none' } }, tap('c', '52:54:00:00:00:02')]),
    );
  });

  test('a tap is never named like one of a host’s own interfaces, and never another guest’s tap or a bridge', () => {
    for (const name of [
      'lo',
      'eth0',
      'eno1',
      'ens3',
      'enp0s31f6',
      'wlan0',
      'wlp2s0',
      'br0',
      'virbr0',
      'vmbr0',
      'docker0',
      'bond0',
      'veth1a2b',
      'vnet3',
      'wg0',
      'tun0',
    ])
      refused(
        doc([{ name: 'a', network: { mode: 'tap', tapDevice: name } }]),
        'guests.0.network.tapDevice',
        /named like one of a host's own interfaces/,
        name,
      );
    for (const name of ['tap-web', 'qh-x', 'encoder', 'vm1-net'])
      accepted(doc([{ name: 'a', network: { mode: 'tap', tapDevice: name } }]), name);
    refused(
      doc([
        { name: 'a', network: { mode: 'tap', tapDevice: 'tap1' } },
        { name: 'b', network: { mode: 'tap', tapDevice: 'tap1' } },
      ]),
      'guests.1.network.tapDevice',
      /already the tap device/,
    );
  });
});

describe('a guest keeps its MAC: any unicast address, in lower case', () => {
  const withMac = (mac: string) => doc([{ name: 'a', network: { mode: 'tap', bridge: 'br0', mac } }]);
  test('unicast addresses of any vendor are kept, their case normalised', () => {
    for (const [mac, kept] of [
      ['BC:24:11:AA:BB:CC', 'bc:24:11:aa:bb:cc'],
      ['52:54:00:12:34:56', '52:54:00:12:34:56'],
      ['00:16:3E:00:00:01', '00:16:3e:00:00:01'],
      ['02:00:00:00:00:01', '02:00:00:00:00:01'],
      ['f8:75:a4:01:02:03', 'f8:75:a4:01:02:03'],
    ]) {
      const a = accepted(withMac(mac!), mac);
      assert.equal(a.guests[0]!.network.mode === 'tap' && a.guests[0]!.network.mac, kept);
    }
  });
  test('multicast, broadcast and all-zero addresses, and non-addresses, are refused', () => {
    for (const [mac, why] of [
      ['01:00:5e:00:00:01', /multicast/],
      ['33:33:00:00:00:01', /multicast/],
      ['FF:FF:FF:FF:FF:FF', /broadcast/],
      ['00:00:00:00:00:00', /all zeros/],
      ['52:54:00:12:34', /six pairs/],
      ['52-54-00-12-34-56', /six pairs/],
      ['52:54:00:12:34:5g', /six pairs/],
    ] as const)
      refused(withMac(mac), 'guests.0.network.mac', why, mac);
  });
});

describe('the rules are documented', () => {
  test('docs/policy.md names every row of the table', () => {
    const doc = readFileSync(join(REPO, 'docs', 'policy.md'), 'utf8');
    for (const rule of RULES) assert.ok(doc.includes(rule.keeps), `docs/policy.md lists "${rule.keeps}"`);
  });
});
