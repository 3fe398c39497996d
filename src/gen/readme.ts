// The bundle's README: what each file does, how to install it, what each guest can reach, and every risk the
// operator accepted, in words a reviewer can check against the files next to it.
import * as G from '../guest.js';
import type { Answers, Guest } from '../model.js';
import type { BundleFile } from '../plan.js';
import { RISKS, requiredRisks } from '../rules.js';
import { sandboxOption } from './qemu.js';

/** The QMP commands of a live migration, exactly as test/isolation-container.test.ts runs them. */
function migrationSteps(g: Guest): string[] {
  const r = g.migration!;
  const uri = `tcp:${r.listen.includes(':') ? `[${r.listen}]` : r.listen}:${r.port}`;
  const qmp = (cmd: object) => `  ${JSON.stringify(cmd)}`;
  return [
    `- live migration, ${r.tls ? 'TLS both ways' : '**plain text**'}: this guest is a destination on ${r.listen}:${r.port}. On the destination host, start`,
    `  \`${G.incomingUnitName(g)}\` (not \`${G.unitName(g)}\`; it waits with \`-incoming defer\`) and send on \`${G.qmpSocket(g)}\`:`,
    '',
    '  ```',
    qmp({ execute: 'qmp_capabilities' }),
    ...(r.tls ? [qmp({ execute: 'migrate-set-parameters', arguments: { 'tls-creds': 'migration-tls' } })] : []),
    qmp({ execute: 'migrate-incoming', arguments: { uri } }),
    '  ```',
    '',
    `  Then on the source’s QMP socket (the destination’s server certificate must name ${r.listen}):`,
    '',
    '  ```',
    qmp({ execute: 'qmp_capabilities' }),
    ...(r.tls ? [qmp({ execute: 'migrate-set-parameters', arguments: { 'tls-creds': 'migration-tls-client' } })] : []),
    qmp({ execute: 'migrate', arguments: { uri } }),
    `${qmp({ execute: 'query-migrate' })}   (repeat until "status" is "completed")`,
    qmp({ execute: 'quit' }),
    '  ```',
    '',
    `  The guest then runs under \`${G.incomingUnitName(g)}\`, which is not restarted on failure.`,
  ];
}

export function bundleReadme(a: Answers, files: BundleFile[]): string {
  const out: string[] = [];
  const p = (...xs: string[]) => out.push(...xs);

  p('# QEMU deployment bundle (qemu-harden)', '');
  if (a.useCase === 'emulation') {
    p(
      '> **Emulation (TCG): QEMU gives no isolation guarantee here.** QEMU treats only the virtualization (KVM)',
      '> use case as security-relevant. Every fence in this bundle still applies, but a guest that breaks out of',
      '> TCG or a device model is a case QEMU does not promise to defend against. Do not run untrusted guests',
      '> this way.',
      '',
    );
  }
  p(
    `Guests: ${a.guests.map((g) => `\`${g.name}\``).join(', ')}. Use case: ${a.useCase === 'virtualization' ? 'virtualization (KVM)' : 'emulation (TCG)'}.`,
    '',
    'Everything a guest gives QEMU is untrusted: the guest itself, its display and network protocols, the disk',
    'images and kernels it is started with, and any device passed through to it. This bundle assumes a guest may',
    'take over its QEMU process, and makes sure that process then holds nothing the guest did not already have:',
    'its own user, its own files, its own devices, a seccomp filter, an AppArmor profile and a resource budget.',
    '',
    '## Files',
    '',
    '| file | what it is for |',
    '| --- | --- |',
  );
  for (const f of files) p(`| \`${f.path}\` | ${f.why} |`);
  p('', 'Files under `root/` install at the same path under `/`.', '');

  p(
    '## Install',
    '',
    '```sh',
    'qemu-harden verify .            # manifest and every file read by the tool that will read it',
    'qemu-harden apply . --dry-run   # what would change on this host',
    'sudo qemu-harden apply .        # install, create users and directories, reload udev, AppArmor, systemd',
    ...a.guests.map((g) => `sudo systemctl enable --now ${G.unitName(g)}`),
    '```',
    '',
    'By hand, the same steps: copy `root/` onto `/`, then `systemd-sysusers`, `systemd-tmpfiles --create`,',
    '`udevadm control --reload && udevadm trigger --subsystem-match=misc --subsystem-match=vfio --subsystem-match=usb`,',
    '`apparmor_parser -r` each profile (when AppArmor is enabled), `systemctl daemon-reload`.',
    '',
    '## What each guest can reach',
    '',
  );
  for (const g of a.guests) {
    p(`### ${g.name}`, '');
    p(`- runs as \`${G.userName(g)}\` (a system user of its own, no shell), in \`${G.SLICE}\`, unit \`${G.unitName(g)}\``);
    for (const f of G.filesOf(g)) p(`- file \`${f.path}\` (${f.access === 'rw' ? 'read-write' : 'read-only'}): ${f.why}`);
    for (const d of G.devicesOf(a, g)) p(`- device \`${d.path}\` (${d.access === 'rw' ? 'read-write' : 'read-only'}): ${d.why}`);
    for (const t of G.tlsDirsOf(g)) p(`- directory \`${t.path}\` (read-only): ${t.why}`);
    p(`- sockets: QMP \`${G.qmpSocket(g)}\`${g.serial.enabled ? `, serial \`${G.serialSocket(g)}\` (logged to \`${G.serialLog(g)}\`)` : ''}${g.display.mode === 'vnc-unix' ? `, VNC \`${G.vncSocket(g)}\`` : ''}`);
    if (g.display.mode === 'vnc-tls')
      p(`- listens on ${g.display.listen}:${g.display.port} (VNC, TLS; a client certificate signed by \`${g.display.tlsDir}/ca-cert.pem\` is required)`);
    if (g.display.mode === 'spice-tls')
      p(
        g.display.passwordFile
          ? `- listens on ${g.display.listen}:${g.display.port} (SPICE, TLS for encryption only: spice-server checks no client certificate; a client needs the password in \`${g.display.passwordFile}\`, which systemd hands to QEMU with \`LoadCredential=\` — keep it root's, mode 0600, without a trailing newline)`
          : `- listens on ${g.display.listen}:${g.display.port} (SPICE, TLS for encryption only, **no password**: anyone who reaches the port gets the console)`,
      );
    if (g.nbd?.enabled)
      p(`- NBD export on ${g.nbd.listen}:${g.nbd.port}, ${g.nbd.tls ? 'TLS' : '**plain text**'}; started through QMP (\`nbd-server-start\`${g.nbd.tls ? ' with tls-creds=nbd-tls' : ''})`);
    if (g.migration?.enabled) p(...migrationSteps(g));
    if (G.tlsDirsOf(g).length > 0)
      p(`- TLS keys: QEMU reads them as \`${G.userName(g)}\`; make each \`*-key.pem\` owned by that user, mode 0400 (qemu-harden never changes files it did not create). Other guests do not see this directory.`);
    const net =
      g.network.mode === 'none'
        ? G.usesInet(g)
          ? 'no network device; QEMU uses the host’s network namespace only for its TLS listeners'
          : 'no network device; QEMU runs in an empty network namespace'
      : g.network.mode === 'user' ? 'user-mode network (QEMU’s own NAT, reaching what the host reaches except its loopback and link-local addresses, which the unit denies with `IPAddressDeny=`; the host’s other addresses stay reachable)'
      : `tap \`${G.tapDevice(g)}\`${g.network.bridge ? ` on bridge \`${g.network.bridge}\`` : ''}, created beforehand by \`${G.tapUnitName(g)}\`${g.network.vhost ? ', vhost-net' : ''}`;
    p(`- network: ${net}`);
    p(`- seccomp: \`-sandbox ${sandboxOption(g)}\`; AppArmor: ${g.isolation.apparmor ? `profile \`${G.profileName(g)}\`` : '**none**'}`);
    p(`- limits: ${g.vcpus} vCPU (CPUQuota ${G.cpuQuotaPercent(g)}%), memory max ${G.memoryMaxMiB(g)} MiB for ${g.memoryMiB} MiB of guest RAM, ${g.limits.tasksMax} tasks`);
    p('');
  }

  p(
    '## How the isolation is built',
    '',
    '- **Unprivileged user per guest.** QEMU never runs as root. Each guest has a user of its own, so one guest’s',
    '  QEMU cannot open another guest’s files even if everything else failed.',
    '- **Devices through groups, not root.** udev gives `/dev/kvm` and the network devices to groups; a unit adds',
    '  only the groups its guest needs and lists its devices in `DeviceAllow=` (all other devices are closed).',
    '  Tap devices are created beforehand and owned by the guest’s user, so QEMU never needs `CAP_NET_ADMIN`.',
    '- **AppArmor.** Each guest’s profile lists its own disks, firmware, sockets and devices, and nothing else.',
    '- **cgroups.** CPU, memory, IO and task limits on each unit keep a guest inside its budget.',
    '- **Namespaces.** Each unit sees a read-only file system, private `/tmp`, no home directories, no other',
    '  processes, and (without a network device) no network. The directories holding guests’ files are empty in',
    '  each guest’s view except for its own files, so another guest’s disk is simply not there.',
    '- **No host sockets.** `/run`, `/var/run` and `/dev/shm` are empty in each unit’s view except for the guest’s own',
    '  directory, `/tmp` is private and so is System V IPC: the D-Bus system bus and other daemons’ sockets are not',
    '  there to connect to. Abstract unix sockets stay reachable for guests that share the host’s network namespace',
    '  (tap or user-mode networking).',
    '- **Stopping.** `systemctl stop` presses the guest’s ACPI power button (QMP `system_powerdown`, sent by `/bin/sh`',
    '  through a FIFO monitor) and waits; after `TimeoutStopSec` (90 s) QEMU gets `SIGTERM` and quits at once.',
    '- **seccomp, twice.** systemd’s `SystemCallFilter=` removes whole families of system calls; QEMU’s own',
    '  `-sandbox` narrows further once QEMU has started.',
    '',
    '## Accepted risks',
    '',
  );
  const required = requiredRisks(a);
  if (required.length === 0) p('None: every choice is the secure default.', '');
  for (const r of required) {
    const acc = a.acceptedRisks.find((x) => x.risk === r.risk && x.guest === r.guest);
    p(`### ${RISKS[r.risk].title}${r.guest ? ` — guest ${r.guest}` : ''}`, '', `- risk: \`${r.risk}\``, `- what it costs: ${RISKS[r.risk].why}`, `- why it was accepted: ${acc?.reason ?? ''}`, '');
  }
  return out.join('\n');
}
