// The QEMU command line of one guest: nothing implicit (-nodefaults, -no-user-config), every disk with its
// format spelled out, monitor and serial on unix sockets only, and QEMU's own seccomp sandbox.
import { qemuJson, qemuOpts, qemuValue } from '../escape.js';
import * as G from '../guest.js';
import { helpersOf } from '../helpers/index.js';
import type { Answers, Guest } from '../model.js';

export function sandboxOption(g: Guest): string {
  const sb = g.isolation.sandbox;
  if (!sb.enabled) return 'off';
  return qemuOpts('on', [
    ['obsolete', sb.obsolete],
    ['elevateprivileges', sb.elevatePrivileges],
    ['spawn', sb.spawn],
    ['resourcecontrol', sb.resourceControl],
  ]);
}

function hostPort(listen: string, port: number): string {
  return listen.includes(':') ? `[${listen}]:${port}` : `${listen}:${port}`;
}

/**
 * Stands for the unit's credentials directory in an argument; the unit writer turns it into systemd's `%d`.
 * It holds a control character, so no value from the answers can ever contain it.
 */
export const CREDENTIALS_DIR = '\u0001credentials\u0001';

/** The argument vector, without the binary. */
export function qemuArgs(a: Answers, g: Guest): string[] {
  const args: string[] = [];
  const push = (...xs: string[]) => args.push(...xs);

  push(
    '-name',
    qemuOpts(undefined, [
      ['guest', g.name],
      ['debug-threads', true],
    ]),
  );
  push('-nodefaults', '-no-user-config');
  // A core dump of QEMU leaves out the guest's RAM (the unit also sets LimitCORE=0). Guest RAM is never offered to
  // KSM: a page merged with another guest's is a timing side channel between the two. Secure Boot needs SMM. ACPI
  // and the HPET are off only where the answers say so, in the machine properties that replaced -no-acpi and -no-hpet.
  const secureBoot = g.firmware.type === 'uefi' && g.firmware.secureBoot;
  // virtiofsd reads and writes the guest's buffers itself: the guest's RAM is a memfd QEMU shares with it.
  const sharedRam = G.shareTransport(a) === 'virtiofs' && g.shares.length > 0;
  push(
    '-machine',
    qemuOpts(qemuValue(g.machine), [
      ...(secureBoot ? [['smm', true] as [string, boolean]] : []),
      ...(g.acpi === false ? [['acpi', false] as [string, boolean]] : []),
      ...(g.hpet === false ? [['hpet', false] as [string, boolean]] : []),
      ['dump-guest-core', false],
      ['mem-merge', false],
      ...(sharedRam ? [['memory-backend', 'ram'] as [string, string]] : []),
    ]),
  );
  push('-accel', a.useCase === 'virtualization' ? 'kvm' : 'tcg');
  push('-cpu', [qemuValue(G.cpuModel(a, g)), ...g.cpu.features].join(','));
  push('-smp', String(g.vcpus));
  push('-m', `${g.memoryMiB}M`);
  if (sharedRam)
    push(
      '-object',
      qemuOpts('memory-backend-memfd', [
        ['id', 'ram'],
        ['size', `${g.memoryMiB}M`],
        ['share', true],
      ]),
    );
  push('-sandbox', sandboxOption(g));
  push('-msg', 'timestamp=on');

  push(
    '-chardev',
    qemuOpts('socket', [
      ['id', 'qmp'],
      ['path', G.qmpSocket(g)],
      ['server', true],
      ['wait', false],
    ]),
  );
  push('-mon', 'chardev=qmp,mode=control');
  push(
    '-chardev',
    qemuOpts('pipe', [
      ['id', 'stop'],
      ['path', G.stopPipe(g)],
    ]),
  );
  push('-mon', 'chardev=stop,mode=control');
  if (g.serial.enabled) {
    push(
      '-chardev',
      qemuOpts('socket', [
        ['id', 'serial0'],
        ['path', G.serialSocket(g)],
        ['server', true],
        ['wait', false],
        ['logfile', G.serialLog(g)],
        ['logappend', true],
      ]),
    );
    push('-serial', 'chardev:serial0');
  }

  if (g.firmware.type === 'uefi') {
    // Secure Boot: only code running in SMM may write the flash, so the guest OS cannot replace the keys.
    if (secureBoot) push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    push(
      '-drive',
      qemuOpts(undefined, [
        ['if', 'pflash'],
        ['format', 'raw'],
        ['unit', 0],
        ['readonly', true],
        ['file', g.firmware.code],
      ]),
    );
    push(
      '-drive',
      qemuOpts(undefined, [
        ['if', 'pflash'],
        ['format', 'raw'],
        ['unit', 1],
        ['file', G.uefiVars(g)],
      ]),
    );
  }
  // Each helper unit's socket (src/helpers/): a TPM from the guest's own swtpm, the user-mode network from passt.
  for (const h of helpersOf(a, g)) push(...h.qemuArgs(g));
  if (g.boot) {
    push('-kernel', g.boot.kernel);
    if (g.boot.initrd) push('-initrd', g.boot.initrd);
    if (g.boot.deviceTree) push('-dtb', g.boot.deviceTree);
    if (g.boot.cmdline !== undefined) push('-append', g.boot.cmdline);
  }

  // Disks are opened as explicit block nodes: a protocol node for the file or device, a format node on top with
  // backing=null, so a backing file named inside an untrusted qcow2 image is never opened or connected to.
  // Throttling is a throttle node over the format node, with its own throttle group per disk.
  g.disks.forEach((d, i) => {
    const t = d.throttle;
    const id = `disk${i}`;
    const ro = d.readOnly;
    push(
      '-blockdev',
      qemuJson({
        driver: d.blockDevice ? 'host_device' : 'file',
        'node-name': `${id}-file`,
        filename: d.path,
        'read-only': ro,
      }),
    );
    push(
      '-blockdev',
      qemuJson({
        driver: d.format,
        'node-name': `${id}-format`,
        file: `${id}-file`,
        'read-only': ro,
        ...(d.format === 'qcow2' ? { backing: null } : {}),
      }),
    );
    let top = `${id}-format`;
    const limits: Record<string, number> = {};
    if (t.readBytesPerSecond) limits['bps-read'] = t.readBytesPerSecond;
    if (t.writeBytesPerSecond) limits['bps-write'] = t.writeBytesPerSecond;
    if (t.readIops) limits['iops-read'] = t.readIops;
    if (t.writeIops) limits['iops-write'] = t.writeIops;
    if (Object.keys(limits).length > 0) {
      push('-object', qemuJson({ 'qom-type': 'throttle-group', id: `${id}-throttle`, limits }));
      push(
        '-blockdev',
        qemuJson({
          driver: 'throttle',
          'node-name': id,
          'throttle-group': `${id}-throttle`,
          file: top,
          'read-only': ro,
        }),
      );
      top = id;
    }
    push(
      '-device',
      qemuOpts('virtio-blk-pci', [
        ['drive', top],
        ['bootindex', i + 1],
      ]),
    );
  });

  // Shared folders through QEMU's own 9p server, where the target has no virtiofsd that runs unprivileged. A
  // read-only share needs no mapping of owners (security_model=none); what the guest writes to a writable one
  // becomes files of the guest's user, mode 0600 and 0700, its owners and modes kept in extended attributes.
  for (const sh of g.shares)
    if (G.shareTransport(a) === '9p')
      push(
        '-virtfs',
        qemuOpts('local', [
          ['path', sh.path],
          ['mount_tag', sh.tag],
          ['security_model', sh.readOnly ? 'none' : 'mapped-xattr'],
          ...(sh.readOnly ? [['readonly', true] as [string, boolean]] : []),
        ]),
      );

  const nic = (netdev: string) =>
    push(
      '-device',
      qemuOpts('virtio-net-pci', [
        ['netdev', netdev],
        ['mac', G.macAddress(g)],
        ['romfile', ''],
      ]),
    );
  if (g.network.mode === 'user') {
    // passt's -netdev comes from its helper record, with the other helpers' arguments; slirp is QEMU's own.
    if (g.network.backend === 'slirp')
      push(
        '-netdev',
        qemuOpts('user', [
          ['id', 'net0'],
          ...g.network.forwards.map(
            (f) =>
              [
                'hostfwd',
                `${f.protocol}:${f.listen.includes(':') ? `[${f.listen}]` : f.listen}:${f.port}-:${f.guestPort ?? f.port}`,
              ] as [string, string],
          ),
        ]),
      );
    nic('net0');
  } else if (g.network.mode === 'tap') {
    push(
      '-netdev',
      qemuOpts('tap', [
        ['id', 'net0'],
        ['ifname', G.tapDevice(g)!],
        ['script', 'no'],
        ['downscript', 'no'],
        ['vhost', g.network.vhost],
      ]),
    );
    nic('net0');
  }

  const x509 = (id: string, dir: string, endpoint: 'server' | 'client' = 'server') =>
    push(
      '-object',
      qemuOpts('tls-creds-x509', [
        ['id', id],
        ['dir', dir],
        ['endpoint', endpoint],
        ['verify-peer', true],
      ]),
    );
  switch (g.display.mode) {
    case 'none':
      push('-display', 'none');
      break;
    case 'vnc-unix':
      push('-display', 'none', '-device', 'VGA');
      push('-vnc', `unix:${qemuValue(G.vncSocket(g))}`);
      break;
    case 'spice-unix':
      push('-display', 'none', '-device', 'qxl-vga');
      push(
        '-spice',
        qemuOpts(undefined, [
          ['unix', true],
          ['addr', G.spiceSocket(g)],
          ['disable-ticketing', true],
        ]),
      );
      break;
    case 'vnc-tls':
      x509('vnc-tls', g.display.tlsDir);
      push('-display', 'none', '-device', 'VGA');
      push('-vnc', qemuOpts(qemuValue(hostPort(g.display.listen, g.display.port - 5900)), [['tls-creds', 'vnc-tls']]));
      break;
    case 'spice-tls':
      if (g.display.passwordFile)
        push('-object', `secret,id=spice-password,format=raw,file=${CREDENTIALS_DIR}/${G.SPICE_PASSWORD_CREDENTIAL}`);
      push('-display', 'none', '-device', 'qxl-vga');
      push(
        '-spice',
        qemuOpts(undefined, [
          ['addr', g.display.listen],
          ['tls-port', g.display.port],
          ['x509-dir', g.display.tlsDir],
          ['tls-channel', 'default'],
          g.display.passwordFile ? ['password-secret', 'spice-password'] : ['disable-ticketing', true],
        ]),
      );
      break;
  }

  g.passthrough.pci.forEach((p) => push('-device', qemuOpts('vfio-pci', [['host', p.address]])));
  if (g.passthrough.usb.length > 0) {
    push('-device', 'qemu-xhci,id=usb');
    for (const u of g.passthrough.usb)
      push(
        '-device',
        qemuOpts('usb-host', [
          ['bus', 'usb.0'],
          ...(u.port
            ? ([
                ['hostbus', Number(u.port.split('-')[0])],
                ['hostport', u.port.slice(u.port.indexOf('-') + 1)],
              ] as [string, number | string][])
            : []),
          ['vendorid', `0x${u.vendorId}`],
          ['productid', `0x${u.productId}`],
        ]),
      );
  }
  if (g.migration?.enabled && g.migration.tls && g.migration.tlsDir) {
    x509('migration-tls', g.migration.tlsDir);
    x509('migration-tls-client', g.migration.tlsDir, 'client');
  }
  if (g.nbd?.enabled && g.nbd.tls && g.nbd.tlsDir) x509('nbd-tls', g.nbd.tlsDir);

  return args;
}
