// The bundle's README: what each file does, how to install it, what each guest can reach, and every risk the
// operator accepted, in words a reviewer can check against the files next to it.
import type { BundleFile } from '../bundle-layout.js';
import * as G from '../guest.js';
import type { Answers } from '../model.js';
import { guestReach } from '../reach.js';
import { RISKS, requiredRisks } from '../rules.js';
import { sandboxOption } from './qemu.js';

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
  p(...reachSection(a));
  p(...operatorSections(a));

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

/** Each guest's least-privilege map, from the same guestReach() the wizard's Review map shows. */
function reachSection(a: Answers): string[] {
  const out: string[] = [];
  const rw = (x: 'r' | 'rw') => (x === 'rw' ? 'read-write' : 'read-only');
  for (const g of a.guests) {
    const r = guestReach(a, g);
    out.push(`### ${g.name}`, '');
    out.push(`- runs as \`${r.user}\` (a system user of its own, no shell), in \`${G.SLICE}\`, unit \`${r.unit}\``);
    for (const f of r.files) out.push(`- file \`${f.path}\` (${rw(f.access)}): ${f.why}`);
    for (const d of r.devices) out.push(`- device \`${d.path}\` (${rw(d.access)}): ${d.why}`);
    for (const s of r.sockets) out.push(`- socket \`${s.path}\`: ${s.what}; may connect: ${s.who}`);
    for (const l of r.listeners) out.push(`- listens: ${l}`);
    for (const kind of ['migration', 'nbd'] as const) {
      const x = g[kind];
      if (x?.enabled) out.push(`- ${kind === 'nbd' ? 'the NBD export' : 'live migration'} is started through QMP (\`${kind === 'nbd' ? 'nbd-server-start' : 'migrate-incoming'}\`${x.tls ? ` with tls-creds=${kind}-tls` : ''})`);
    }
    out.push(`- network: ${r.network}`);
    out.push(`- seccomp: \`-sandbox ${sandboxOption(g)}\`; AppArmor: ${g.isolation.apparmor ? `profile \`${G.profileName(g)}\`` : '**none**'}`);
    out.push(`- limits: ${g.vcpus} vCPU (CPUQuota ${G.cpuQuotaPercent(g)}%), memory max ${G.memoryMaxMiB(g)} MiB for ${g.memoryMiB} MiB of guest RAM, ${g.limits.tasksMax} tasks`);
    out.push(`- cannot reach, even if the guest takes QEMU over: ${r.cannot.join('; ')}`);
    for (const x of r.apparmorOnly) out.push(`- only while AppArmor enforces: ${x}`);
    out.push('');
  }
  return out;
}

/** What an operator needs around the bundle: before installing, using the guests, after apply, checking. */
function operatorSections(a: Answers): string[] {
  const out: string[] = [];
  const images = a.guests.flatMap((g) => [...g.disks.map((d) => `\`${d.path}\` (${d.format}${d.readOnly ? ', read-only' : ''}, guest ${g.name})`), ...(g.boot ? [`\`${g.boot.kernel}\` (kernel, guest ${g.name})`] : [])]);
  const bridges = [...new Set(a.guests.flatMap((g) => (g.network.mode === 'tap' && g.network.bridge ? [g.network.bridge] : [])))];
  const taps = a.guests.some((g) => g.network.mode === 'tap');
  out.push('## Before you install', '');
  out.push('- The disk images and kernels must exist at these paths before a guest starts (the bundle does not create them; its tmpfiles.d rule then gives each to its guest’s user, writable ones mode 0600):');
  for (const i of images) out.push(`  - ${i}`);
  out.push(`- \`${a.host.qemuBinary}\` installed (Debian: \`qemu-system-x86\`), systemd 247 or newer, cgroup v2 for every limit to hold.`);
  if (a.guests.some((g) => g.firmware.type === 'uefi')) out.push('- UEFI guests need OVMF (Debian: `ovmf`).');
  if (bridges.length) out.push(`- The bridge${bridges.length > 1 ? 's' : ''} ${bridges.map((b) => `\`${b}\``).join(', ')} must exist (e.g. a systemd-networkd .netdev); the tap units only attach to ${bridges.length > 1 ? 'them' : 'it'}.`);
  if (a.guests.some((g) => g.isolation.apparmor))
    out.push('- AppArmor enabled in the kernel (`cat /sys/module/apparmor/parameters/enabled` says `Y`) and `apparmor_parser` installed: without it the profiles are written but nothing enforces them, and what the reach section marks “only while AppArmor enforces” does not hold.');
  out.push(
    `- The udev rule gives \`/dev/kvm\` to group \`${a.host.kvmGroup}\` mode 0660${taps ? `, and \`/dev/net/tun\` and \`/dev/vhost-net\` to group \`${a.host.netGroup}\` mode 0660` : ''}. Other users and programs that opened these devices before (a desktop user running QEMU, a VPN client on \`/dev/net/tun\`) lose access unless they are added to that group.`,
  );
  out.push('');
  out.push('## Using the guests', '');
  out.push('Each guest’s sockets are in its runtime directory (mode 0750) and QEMU creates them mode 0700 (the unit’s `UMask=0077`), owned by the guest’s user: only root may connect, so operators use `sudo`. QMP is full control of the guest (and of what its QEMU can reach); the serial console is the guest’s root console if it has one.', '');
  for (const g of a.guests) {
    const r = guestReach(a, g);
    out.push(`- ${g.name}: ${r.sockets.map((s) => `\`${s.path}\` (${s.what.replace(/ \(.*\)$/, '')})`).join(', ')}`);
  }
  out.push(
    '',
    '```sh',
    ...a.guests.slice(0, 1).flatMap((g) => [
      `sudo socat -,rawer,escape=0x1d UNIX-CONNECT:${G.serialSocket(g)}   # serial console; Ctrl+] leaves`,
      `sudo socat - UNIX-CONNECT:${G.qmpSocket(g)}                     # QMP: {"execute":"qmp_capabilities"} first`,
      ...(g.display.mode === 'vnc-unix' ? [`ssh -L 5901:${G.vncSocket(g)} root@this-host   # from your desk; then a VNC viewer on localhost:5901`] : []),
    ]),
    '```',
    '',
  );
  out.push('## After apply', '');
  out.push('`apply` installs files and reloads systemd, udev and AppArmor, but a guest that is already running keeps the unit, user and profile it started with. Restart each running guest to put it under the new bundle:', '', '```sh');
  for (const g of a.guests) out.push(`sudo systemctl restart ${G.unitName(g)}`);
  out.push('```', '');
  out.push('## Checking the host afterwards', '', '```sh');
  out.push(
    'qemu-harden verify .                      # the bundle is still what answers.json produces',
    ...a.guests.flatMap((g) => [
      `systemctl status ${G.unitName(g)}`,
      `systemd-analyze security ${G.unitName(g)}   # exposure of the unit as installed`,
      `ps -o user,label,cmd -C ${a.host.qemuBinary.split('/').pop()}  # each QEMU as its own user, under its profile (label)`,
    ]).filter((l, i, all) => all.indexOf(l) === i),
    'ls -l /dev/kvm /dev/net/tun               # groups and modes from the udev rule',
    ...(a.guests.some((g) => g.isolation.apparmor) ? ['aa-status | grep qemu-harden            # every profile loaded in enforce mode'] : []),
    'journalctl -u \'qemu-*\' -p warning        # start failures, seccomp or AppArmor denials',
  );
  out.push('```', '');
  return out;
}
