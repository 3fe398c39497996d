// The bundle's README: what each file does, how to install it, what each guest can reach, and every risk the
// operator accepted, in words a reviewer can check against the files next to it.
import { markdownCode as code, markdownText as text } from '../escape.js';
import * as G from '../guest.js';
import { LOGROTATE_TIMER } from '../names.js';
import * as L from './logrotate.js';
import type { Answers } from '../model.js';
import type { BundleFile } from '../plan.js';
import { isSystemFile, RISKS, requiredRisks } from '../rules.js';
import { sandboxOption } from './qemu.js';

/** How the guest's user gets at a file, in the words of the tmpfiles.d lines that arrange it. */
function access(path: string, mode: 'r' | 'rw'): string {
  if (mode === 'rw') return 'owned by the guest’s user, mode 0600';
  if (isSystemFile(path)) return 'a system file, left as it is: readable because it is world-readable';
  return 'owner and mode left as they are; an ACL entry lets the guest’s user read it';
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
    `Guests: ${a.guests.map((g) => code(g.name)).join(', ')}. Use case: ${a.useCase === 'virtualization' ? 'virtualization (KVM)' : 'emulation (TCG)'}.`,
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
  for (const f of files) p(`| ${code(f.path)} | ${text(f.why)} |`);
  p('', 'Files under `root/` install at the same path under `/`.', '');

  p(
    '## Install',
    '',
    '```sh',
    'qemu-harden verify .            # manifest and every file read by the tool that will read it',
    'qemu-harden apply . --dry-run   # what would change on this host',
    'sudo qemu-harden apply .        # install, create users and directories, reload udev, AppArmor, systemd',
    ...a.guests.map((g) => `sudo systemctl enable --now ${G.unitName(g)}`),
    ...(a.guests.some((g) => g.serial.enabled) ? [`sudo systemctl enable --now ${LOGROTATE_TIMER}`] : []),
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
    p(`### ${text(g.name)}`, '');
    p(`- runs as ${code(G.userName(g))} (a system user of its own, no shell), in ${code(G.SLICE)}, unit ${code(G.unitName(g))}`);
    for (const f of G.filesOf(g)) p(`- file ${code(f.path)} (${f.access === 'rw' ? 'read-write' : 'read-only'}, ${access(f.path, f.access)}): ${text(f.why)}`);
    for (const d of G.devicesOf(a, g)) p(`- device ${code(d.path)} (${d.access === 'rw' ? 'read-write' : 'read-only'}): ${text(d.why)}`);
    for (const t of G.tlsDirsOf(g)) p(`- directory ${code(t.path)} (read-only): ${text(t.why)}`);
    p(`- sockets: QMP ${code(G.qmpSocket(g))}${g.serial.enabled ? `, serial ${code(G.serialSocket(g))} (logged to ${code(G.serialLog(g))})` : ''}${g.display.mode === 'vnc-unix' ? `, VNC ${code(G.vncSocket(g))}` : ''}`);
    if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
      p(`- listens on ${g.display.listen}:${g.display.port} (${g.display.mode === 'vnc-tls' ? 'VNC' : 'SPICE'}, TLS with client certificates)`);
    for (const kind of ['migration', 'nbd'] as const) {
      const r = g[kind];
      if (r?.enabled) p(`- ${kind === 'nbd' ? 'NBD export' : 'live migration'} on ${r.listen}:${r.port}, ${r.tls ? 'TLS' : '**plain text**'}; started through QMP (\`${kind === 'nbd' ? 'nbd-server-start' : 'migrate-incoming'}\`${r.tls ? ` with tls-creds=${kind}-tls` : ''})`);
    }
    const net =
      g.network.mode === 'none' ? 'no network device; QEMU runs in an empty network namespace'
      : g.network.mode === 'user' ? 'user-mode network (QEMU’s own NAT, reaching whatever the host reaches)'
      : `tap ${code(G.tapDevice(g)!)}${g.network.bridge ? ` on bridge ${code(g.network.bridge)}` : ''}, created beforehand by ${code(G.tapUnitName(g))}${g.network.vhost ? ', vhost-net' : ''}`;
    p(`- network: ${net}`);
    p(`- seccomp: ${code(`-sandbox ${sandboxOption(g)}`)}; AppArmor: ${g.isolation.apparmor ? `profile ${code(G.profileName(g))}` : '**none**'}`);
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
    '- **Files are never taken from the host.** qemu-harden changes the owner and mode of no file it did not make,',
    '  with one exception: a writable disk image belongs to the one guest that writes it (no other guest may',
    '  read or write it), so `tmpfiles.d` makes it that guest’s user’s, mode 0600. A read-only file keeps its owner',
    '  and mode: a file in the system’s own places (firmware under `/usr/share`, kernels and initrds under `/boot`)',
    '  is read because it is world-readable, any other gets a POSIX ACL entry (`a+` in `tmpfiles.d`) that lets the',
    '  guest’s user read it (`ls -l` then shows a `+`, and the ACL mask in the group column). `generate` refuses',
    '  any guest file in places that hold host secrets or system state (`/etc`, `/root`, `/home`, `/proc`, `/sys`,',
    '  `/run`, `/dev` unless it is a block device, `/usr` and `/boot` except firmware, images, kernels and initrds,',
    '  `/var/log`, `/var/lib/dpkg` and the like) and inside the directories each guest owns.',
    '- **Disk images are data, never instructions.** Each disk is opened as explicit `-blockdev` nodes with its',
    '  format spelled out and `backing: null`: a backing file named inside a qcow2 image (a path, or a network',
    '  URL such as `nbd://`) is never opened. A block device disk is given to its guest’s user by a udev rule.',
    '- **No guest memory in core dumps.** `dump-guest-core=off` leaves guest RAM out of a QEMU core dump, and',
    '  `LimitCORE=0` stops QEMU from dumping core at all.',
    ...(a.guests.some((g) => g.serial.enabled)
      ? [
          `- **A bounded serial log.** Every byte of a serial log is the guest’s, and QEMU’s log has no limit of its own.`,
          `  \`${LOGROTATE_TIMER}\` runs logrotate every ${L.IN_WORDS.interval} (\`${L.CONFIG_PATH}\`): a log past ${L.IN_WORDS.size} is copied`,
          `  to \`serial.log.1\` and truncated in place, as the guest’s own user, keeping ${L.ROTATE} old copies. A guest’s logs then`,
          `  hold at most ${L.ROTATE + 1} × ${L.IN_WORDS.size} plus what it writes within one ${L.IN_WORDS.interval} (a guest writing as fast as it can`,
          '  reached about 0.4 MB/s under TCG on the test machine). It needs logrotate (Debian package `logrotate`).',
        ]
      : []),
    '- **UEFI variables.** A UEFI guest’s unit copies the variables template into its own state directory on',
    '  first start, as the guest’s user (`ExecStartPre=`), and never overwrites it.',
    '',
    ...(a.guests.some((g) => g.network.mode === 'tap')
      ? [
          '## /dev/net/tun',
          '',
          `The udev rule makes \`/dev/net/tun\` and \`/dev/vhost-net\` mode 0660, group ${code(a.host.netGroup)}, when the`,
          'module behind them loads; until then the node keeps the kernel’s default, 0666. Once it is 0660, users',
          'outside that group can no longer open it: rootless podman and pasta/slirp4netns of other users need',
          '`/dev/net/tun` and stop working for them. Add those users to the group, or drop the `tun` line from',
          '`65-qemu-harden.rules` and rely on each tap being owned by one guest’s user (the kernel still refuses to',
          'attach another user to it).',
          '',
        ]
      : []),
    '## Accepted risks',
    '',
  );
  const required = requiredRisks(a);
  if (required.length === 0) p('None: every choice is the secure default.', '');
  for (const r of required) {
    const acc = a.acceptedRisks.find((x) => x.risk === r.risk && x.guest === r.guest);
    p(`### ${text(RISKS[r.risk].title)}${r.guest ? ` — guest ${text(r.guest)}` : ''}`, '', `- risk: ${code(r.risk)}`, `- what it costs: ${text(RISKS[r.risk].why)}`, `- why it was accepted: ${text(acc?.reason ?? '')}`, '');
  }
  return out.join('\n');
}
