// The QEMU command line of one guest: nothing implicit (-nodefaults, -no-user-config), every disk with its
// format spelled out, monitor and serial on unix sockets only, and QEMU's own seccomp sandbox.
import { qemuOpts, qemuValue } from '../escape.js';
import * as G from '../guest.js';
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

  push('-name', qemuOpts(undefined, [['guest', g.name], ['debug-threads', true]]));
  push('-nodefaults', '-no-user-config');
  push('-machine', qemuValue(g.machine));
  push('-accel', a.useCase === 'virtualization' ? 'kvm' : 'tcg');
  push('-cpu', [qemuValue(G.cpuModel(a, g)), ...g.cpu.features].join(','));
  push('-smp', String(g.vcpus));
  push('-m', `${g.memoryMiB}M`);
  push('-sandbox', sandboxOption(g));
  push('-msg', 'timestamp=on');

  push('-chardev', qemuOpts('socket', [['id', 'qmp'], ['path', G.qmpSocket(g)], ['server', true], ['wait', false]]));
  push('-mon', 'chardev=qmp,mode=control');
  push('-chardev', qemuOpts('pipe', [['id', 'stop'], ['path', G.stopPipe(g)]]));
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
    push('-drive', qemuOpts(undefined, [['if', 'pflash'], ['format', 'raw'], ['unit', 0], ['readonly', true], ['file', g.firmware.code]]));
    push('-drive', qemuOpts(undefined, [['if', 'pflash'], ['format', 'raw'], ['unit', 1], ['file', G.uefiVars(g)]]));
  }
  if (g.boot) {
    push('-kernel', g.boot.kernel);
    if (g.boot.initrd) push('-initrd', g.boot.initrd);
    if (g.boot.deviceTree) push('-dtb', g.boot.deviceTree);
    if (g.boot.cmdline !== undefined) push('-append', g.boot.cmdline);
  }

  g.disks.forEach((d, i) => {
    const t = d.throttle;
    const opts: [string, string | number | boolean][] = [
      ['file', d.path],
      ['format', d.format],
      ['if', 'none'],
      ['id', `disk${i}`],
      ['readonly', d.readOnly],
    ];
    if (t.readBytesPerSecond) opts.push(['throttling.bps-read', t.readBytesPerSecond]);
    if (t.writeBytesPerSecond) opts.push(['throttling.bps-write', t.writeBytesPerSecond]);
    if (t.readIops) opts.push(['throttling.iops-read', t.readIops]);
    if (t.writeIops) opts.push(['throttling.iops-write', t.writeIops]);
    push('-drive', qemuOpts(undefined, opts));
    push('-device', qemuOpts('virtio-blk-pci', [['drive', `disk${i}`], ['bootindex', i + 1]]));
  });

  const nic = (netdev: string) =>
    push('-device', qemuOpts('virtio-net-pci', [['netdev', netdev], ['mac', G.macAddress(g)], ['romfile', '']]));
  if (g.network.mode === 'user') {
    push('-netdev', 'user,id=net0');
    nic('net0');
  } else if (g.network.mode === 'tap') {
    push(
      '-netdev',
      qemuOpts('tap', [['id', 'net0'], ['ifname', G.tapDevice(g)!], ['script', 'no'], ['downscript', 'no'], ['vhost', g.network.vhost]]),
    );
    nic('net0');
  }

  const x509 = (id: string, dir: string, endpoint: 'server' | 'client' = 'server') =>
    push('-object', qemuOpts('tls-creds-x509', [['id', id], ['dir', dir], ['endpoint', endpoint], ['verify-peer', true]]));
  switch (g.display.mode) {
    case 'none':
      push('-display', 'none');
      break;
    case 'vnc-unix':
      push('-display', 'none', '-device', 'VGA');
      push('-vnc', `unix:${qemuValue(G.vncSocket(g))}`);
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
      push('-device', qemuOpts('usb-host', [['bus', 'usb.0'], ['vendorid', `0x${u.vendorId}`], ['productid', `0x${u.productId}`]]));
  }
  if (g.migration?.enabled && g.migration.tls && g.migration.tlsDir) {
    x509('migration-tls', g.migration.tlsDir);
    x509('migration-tls-client', g.migration.tlsDir, 'client');
  }
  if (g.nbd?.enabled && g.nbd.tls && g.nbd.tlsDir) x509('nbd-tls', g.nbd.tlsDir);

  return args;
}
