// The bundle's README: what each file does, how to install it, what each guest can reach, and every risk the
// operator accepted, in words a reviewer can check against the files next to it.
import type { BundleFile } from '../bundle-layout.js';
import * as G from '../guest.js';
import type { Answers } from '../model.js';
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
    ...reachDiagram(a),
  );
  for (const g of a.guests) {
    p(`### ${g.name}`, '');
    p(`- runs as \`${G.userName(g)}\` (a system user of its own, no shell), in \`${G.SLICE}\`, unit \`${G.unitName(g)}\``);
    for (const f of G.filesOf(g)) p(`- file \`${f.path}\` (${f.access === 'rw' ? 'read-write' : 'read-only'}): ${f.why}`);
    for (const d of G.devicesOf(a, g)) p(`- device \`${d.path}\` (${d.access === 'rw' ? 'read-write' : 'read-only'}): ${d.why}`);
    for (const t of G.tlsDirsOf(g)) p(`- directory \`${t.path}\` (read-only): ${t.why}`);
    p(`- sockets: QMP \`${G.qmpSocket(g)}\`${g.serial.enabled ? `, serial \`${G.serialSocket(g)}\` (logged to \`${G.serialLog(g)}\`)` : ''}${g.display.mode === 'vnc-unix' ? `, VNC \`${G.vncSocket(g)}\`` : ''}`);
    if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
      p(`- listens on ${g.display.listen}:${g.display.port} (${g.display.mode === 'vnc-tls' ? 'VNC' : 'SPICE'}, TLS with client certificates)`);
    for (const kind of ['migration', 'nbd'] as const) {
      const r = g[kind];
      if (r?.enabled) p(`- ${kind === 'nbd' ? 'NBD export' : 'live migration'} on ${r.listen}:${r.port}, ${r.tls ? 'TLS' : '**plain text**'}; started through QMP (\`${kind === 'nbd' ? 'nbd-server-start' : 'migrate-incoming'}\`${r.tls ? ` with tls-creds=${kind}-tls` : ''})`);
    }
    const net =
      g.network.mode === 'none' ? 'no network device; QEMU runs in an empty network namespace'
      : g.network.mode === 'user' ? 'user-mode network (QEMU’s own NAT, reaching whatever the host reaches)'
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

/** A Mermaid label: every character that could end the label or start markup becomes an entity code. */
function label(text: string): string {
  return `"${[...text].map((c) => (/[A-Za-z0-9 /._:,=+@-]/.test(c) ? c : `#${c.codePointAt(0)};`)).join('')}"`;
}

/**
 * The least-privilege map as a Mermaid flowchart, from the same per-guest data as the list below it: guest →
 * its user → the files, devices, sockets and network it reaches. Rendered where bundles are reviewed (GitHub,
 * GitLab), so a pull request shows what each guest can reach and what changed.
 */
export function reachDiagram(a: Answers): string[] {
  const out = ['```mermaid', 'flowchart LR'];
  a.guests.forEach((g, i) => {
    const u = `u${i}`;
    out.push(`  g${i}[${label(`guest ${g.name}`)}] --> ${u}[${label(`user ${G.userName(g)}`)}]`);
    let n = 0;
    const edge = (how: string, text: string) => out.push(`  ${u} -->|${how}| r${i}_${n++}[${label(text)}]`);
    for (const f of G.filesOf(g)) edge(f.access, `file ${f.path}`);
    for (const d of G.devicesOf(a, g)) edge(d.access, `device ${d.path}`);
    for (const t of G.tlsDirsOf(g)) edge('r', `directory ${t.path}`);
    edge('listens', `socket ${G.qmpSocket(g)}`);
    if (g.serial.enabled) edge('listens', `socket ${G.serialSocket(g)}`);
    if (g.display.mode === 'vnc-unix') edge('listens', `socket ${G.vncSocket(g)}`);
    if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls') edge('listens', `TCP ${g.display.listen}:${g.display.port}`);
    for (const kind of ['migration', 'nbd'] as const) {
      const r = g[kind];
      if (r?.enabled) edge('listens', `TCP ${r.listen}:${r.port} ${kind}${r.tls ? ' TLS' : ' plain'}`);
    }
    edge('net', g.network.mode === 'none' ? 'no network' : g.network.mode === 'user' ? 'user-mode NAT' : `tap ${G.tapDevice(g)}`);
  });
  out.push('```', '');
  return out;
}
