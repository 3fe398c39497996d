// The bundle's README: what each file does, how to install it, what each guest can reach, and every risk the
// operator accepted, in words a reviewer can check against the files next to it.
import { isRunAs, README_VERIFY_COMMENT, type BundleFile } from '../bundle-layout.js';
import { CONFINEMENT } from '../confine/index.js';
import { listed } from '../words.js';
import { markdownCode as code, markdownText as text } from '../escape.js';
import * as G from '../guest.js';
import { helpersOf } from '../helpers/index.js';
import { categoryPairs, level } from '../mcs.js';
import { type HelperKind, LOGROTATE_TIMER } from '../names.js';
import * as L from './logrotate.js';
import type { Answers, Guest } from '../model.js';
import { guestReach } from '../reach.js';
import { isSystemFile } from '../places.js';
import { describeRelease, RELEASES } from '../releases.js';
import { RISKS, requiredRisks } from '../rules.js';
import { sandboxOption } from './qemu.js';

/** The confinement backends the answers choose for the host. */
const chosenMac = (a: Answers) => CONFINEMENT.filter((b) => b.chosen(a));

/**
 * How root runs a client of a guest's sockets: under SELinux at the guest's own level, since the socket QEMU
 * accepts takes its client's level and MCS keeps the guest's QEMU from a client at root's whole range.
 */
function clientOf(a: Answers, g: Guest): string {
  if (!chosenMac(a).some((b) => b.id === 'selinux')) return 'sudo';
  return `sudo runcon -l ${level(categoryPairs(a.guests).get(g.name)!)}`;
}

/** What confines guest g's helper of this kind: the backend that confines the guest, or nothing. */
function helperMac(a: Answers, g: Guest, kind: HelperKind): string {
  const b = CONFINEMENT.find((c) => c.confines(a, g));
  return b ? b.readme.helper(g, kind, a) : 'no mandatory access control (the guest goes without one, an accepted risk)';
}

/** The file the ping paragraph's command writes: a sysctl.d file of the operator's, which the bundle never installs. */
export const PING_SYSCTL_FILE = '/etc/sysctl.d/60-qemu-harden-ping.conf';

/**
 * What a guest on user-mode networking needs of the host to ping: passt, and slirp inside QEMU, send its echo
 * requests from an ICMP socket of the guest's user, which the kernel lets only a group in net.ipv4.ping_group_range
 * open. The range is host-wide and one span of group ids, so the bundle leaves it to the operator and says how.
 */
function pingLines(a: Answers): string[] {
  const users = a.guests.filter((g) => g.network.mode === 'user');
  if (!users.length) return [];
  const groups = users.map((g) => G.userName(g)).join(' ');
  return [
    `A guest’s ping on its user-mode network (${listed(users.map((g) => code(g.name)))}) leaves from an ICMP socket of the guest’s user (its passt’s, or with slirp its QEMU’s): the kernel lets only the groups in \`net.ipv4.ping_group_range\` open one. Debian leaves that range at \`1 0\` (no group), and the guest’s pings then go unanswered; its TCP and UDP do not need it. To let these guests ping, widen the range to span their groups, once their users exist (after \`apply\`). The range is one span of group ids: every group between theirs may then open ICMP echo sockets too, which systemd’s own default allows every group.`,
    '',
    '```sh',
    `sudo mkdir -p ${PING_SYSCTL_FILE.slice(0, PING_SYSCTL_FILE.lastIndexOf('/'))} && echo "net.ipv4.ping_group_range = $(getent group ${groups} | cut -d: -f3 | sort -n | sed -n '1p;$p' | paste -sd ' ')" | sudo tee ${PING_SYSCTL_FILE} && sudo systemctl restart systemd-sysctl.service`,
    '```',
    '',
  ];
}

/** How the guest's user gets at a file, in the words of the tmpfiles.d lines that arrange it. */
function access(path: string, mode: 'r' | 'rw'): string {
  if (mode === 'rw') return 'owned by the guest’s user, mode 0600';
  if (isSystemFile(path)) return 'a system file, left as it is: readable because it is world-readable';
  return 'owner and mode left as they are; an ACL entry lets the guest’s user read it';
}

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

/** Shell lines with their comments lined up. */
function commented(lines: [command: string, comment: string][]): string[] {
  const w = Math.max(...lines.map(([c]) => c.length)) + 3;
  return lines.map(([c, note]) => `${c.padEnd(w)}${note}`);
}

/**
 * The bundle's README. `runAs` is how the qemu-harden commands in it are written: the form that ran on the
 * machine writing the bundle, which the README names beside the installed form (`verify` reads it back from the
 * first install command to regenerate the README as it was written).
 */
export function bundleReadme(a: Answers, files: BundleFile[], runAs?: string): string {
  const out: string[] = [];
  const p = (...xs: string[]) => out.push(...xs);
  // No confinement backend at all is said first, and loudly.
  const mac = chosenMac(a);

  p('# QEMU deployment bundle (qemu-harden)', '');
  if (mac.length === 0)
    p(
      '> **No mandatory access control.** `host.confinement` is `none` (an accepted risk, below): this bundle holds',
      `> no ${listed(
        CONFINEMENT.map((b) => `${b.name} ${b.noun}`),
        'or',
      )}, so nothing but each guest’s own user, its unit sandbox and file permissions keeps a QEMU`,
      '> that a guest takes over from the host’s files and other guests’ images. A file that is readable by a',
      '> guest’s user by mistake is readable by that guest.',
      '',
    );
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
    `Guests: ${a.guests.map((g) => code(g.name)).join(', ')}. Use case: ${a.useCase === 'virtualization' ? 'virtualization (KVM)' : 'emulation (TCG)'}. Made for ${text(describeRelease(RELEASES[a.host.target]))}.`,
    '',
    'Everything a guest gives QEMU is untrusted: the guest itself, its display and network protocols, the disk',
    'images and kernels it is started with, and any device passed through to it. This bundle assumes a guest may',
    'take over its QEMU process, and makes sure that process then holds nothing the guest did not already have:',
    `${listed(['its own user', 'its own files', 'its own devices', 'a seccomp filter', ...mac.map((b) => b.readme.gives), 'a resource budget'])}.`,
    '',
    '## Files',
    '',
    '| file | what it is for |',
    '| --- | --- |',
  );
  for (const f of files) p(`| ${code(f.path)} | ${text(f.why)} |`);
  p('', 'Files under `root/` install at the same path under `/`.', '');

  const me = runAs && isRunAs(runAs) ? runAs : 'qemu-harden';
  p(
    '## Install',
    '',
    me === 'qemu-harden'
      ? 'Run these from this directory:'
      : `Run these from this directory. They are written the way qemu-harden ran on the machine that wrote this bundle (${code(me)}); once qemu-harden is installed (\`npm install -g qemu-harden\` puts it on PATH) each begins with \`qemu-harden\` instead: \`qemu-harden verify .\`, \`qemu-harden apply . --dry-run\`, \`sudo qemu-harden apply .\`.`,
    '',
    '```sh',
    ...commented([
      [`${me} verify .`, README_VERIFY_COMMENT],
      [`${me} apply . --dry-run`, '# what would change on this host'],
      [
        `sudo ${me} apply .`,
        `# install, create users and directories, reload ${['udev', ...mac.map((b) => b.name), 'systemd'].join(', ')}`,
      ],
    ]),
    ...a.guests.map((g) => `sudo systemctl enable --now ${G.unitName(g)}`),
    ...(a.guests.some((g) => g.serial.enabled) ? [`sudo systemctl enable --now ${LOGROTATE_TIMER}`] : []),
    '```',
    '',
    'By hand, the same steps: copy `root/` onto `/`, then `systemd-sysusers`, `systemd-tmpfiles --create`,',
    '`udevadm control --reload && udevadm trigger --subsystem-match=misc --subsystem-match=vfio --subsystem-match=usb`,',
    `${[...mac.map((b) => b.readme.byHand), '`systemctl daemon-reload`'].join(', ')}.`,
    '',
    '## What each guest can reach',
    '',
    ...reachDiagram(a),
  );
  p(...reachSection(a));
  p(...operatorSections(a, me));

  p(
    '## How the isolation is built',
    '',
    '- **Unprivileged user per guest.** QEMU never runs as root. Each guest has a user of its own, so one guest’s',
    '  QEMU cannot open another guest’s files even if everything else failed.',
    '- **Devices through groups, not root.** udev gives `/dev/kvm` and the network devices to groups; a unit adds',
    '  only the groups its guest needs and lists its devices in `DeviceAllow=` (all other devices are closed).',
    '  Tap devices are created beforehand and owned by the guest’s user, so QEMU never needs `CAP_NET_ADMIN`.',
    ...(mac.length
      ? mac.map((b) => b.readme.isolation)
      : [
          '- **No mandatory access control** (`host.confinement: none`, an accepted risk): nothing confines which host',
          '  files a guest’s QEMU may open beyond its user’s own permissions.',
        ]),
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
    '- **No memory merged between guests.** `mem-merge=off` keeps guest RAM out of kernel samepage merging (KSM):',
    '  a page merged with another guest’s is a timing side channel between the two.',
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
    p(
      `### ${text(RISKS[r.risk].title)}${r.guest ? ` — guest ${text(r.guest)}` : ''}`,
      '',
      `- risk: ${code(r.risk)}`,
      `- what it costs: ${text(RISKS[r.risk].why)}`,
      `- why it was accepted: ${text(acc?.reason ?? '')}`,
      '',
    );
  }
  return out.join('\n');
}

/** Each guest's least-privilege map, from the same guestReach() the wizard's Review map shows. */
function reachSection(a: Answers): string[] {
  const out: string[] = [];
  const mac = chosenMac(a);
  const rw = (x: 'r' | 'rw') => (x === 'rw' ? 'read-write' : 'read-only');
  for (const g of a.guests) {
    const r = guestReach(a, g);
    out.push(`### ${text(g.name)}`, '');
    out.push(
      `- runs as ${code(r.user)} (a system user of its own, no shell), in ${code(G.SLICE)}, unit ${code(r.unit)}`,
    );
    for (const f of r.files)
      out.push(`- file ${code(f.path)} (${rw(f.access)}, ${f.how ?? access(f.path, f.access)}): ${text(f.why)}`);
    for (const d of r.devices) out.push(`- device ${code(d.path)} (${rw(d.access)}): ${text(d.why)}`);
    for (const s of r.sockets) out.push(`- socket ${code(s.path)}: ${text(s.what)}; may connect: ${text(s.who)}`);
    for (const l of r.listeners) out.push(`- listens: ${text(l)}`);
    if (g.nbd?.enabled)
      out.push(
        `- the NBD export is started through QMP (\`nbd-server-start\`${g.nbd.tls ? ' with tls-creds=nbd-tls' : ''})`,
      );
    if (g.migration?.enabled) out.push(...migrationSteps(g));
    if (G.tlsDirsOf(g).length > 0)
      out.push(
        `- TLS keys: QEMU reads them as ${code(G.userName(g))}; make each \`*-key.pem\` owned by that user, mode 0400 (qemu-harden never changes files it did not create). Other guests do not see this directory.`,
      );
    out.push(`- network: ${text(r.network)}`);
    out.push(
      `- seccomp: ${code(`-sandbox ${sandboxOption(g)}`)}; ${
        mac.length
          ? mac
              .map((b) => `${b.name}: ${b.confines(a, g) ? `${b.noun} ${code(b.guestLabel(g, a))}` : '**none**'}`)
              .join('; ')
          : 'mandatory access control: **none**'
      }`,
    );
    out.push(
      `- limits: ${g.vcpus} vCPU (CPUQuota ${G.cpuQuotaPercent(g)}%), memory max ${G.memoryMaxMiB(g)} MiB for ${g.memoryMiB} MiB of guest RAM, ${g.limits.tasksMax} tasks`,
    );
    out.push(`- cannot reach, even if the guest takes QEMU over: ${r.cannot.map(text).join('; ')}`);
    for (const e of r.enforcedOnly) for (const x of e.what) out.push(`- only while ${e.by} enforces: ${text(x)}`);
    if (r.unconfined) out.push(`- **${text(r.unconfined)}**`);
    out.push('');
  }
  return out;
}

/** What an operator needs around the bundle: before installing, using the guests, after apply, checking. */
function operatorSections(a: Answers, me: string): string[] {
  const out: string[] = [];
  const mac = chosenMac(a);
  const images = a.guests.flatMap((g) => [
    ...g.disks.map((d) => `${code(d.path)} (${d.format}${d.readOnly ? ', read-only' : ''}, guest ${g.name})`),
    ...(g.boot ? [`${code(g.boot.kernel)} (kernel, guest ${g.name})`] : []),
  ]);
  const bridges = [
    ...new Set(a.guests.flatMap((g) => (g.network.mode === 'tap' && g.network.bridge ? [g.network.bridge] : []))),
  ];
  const taps = a.guests.some((g) => g.network.mode === 'tap');
  out.push('## Before you install', '');
  out.push(
    '- The disk images and kernels must exist at these paths before a guest starts. The bundle does not create them: its tmpfiles.d rule gives each writable disk to its guest’s user (mode 0600) and leaves read-only files with their owner and mode (the reach section says how each guest reads them):',
  );
  for (const i of images) out.push(`  - ${i}`);
  const release = RELEASES[a.host.target];
  out.push(
    `- The host runs ${text(release.name)}, the release this bundle is made for (\`host.target\` in \`answers.json\`): ${[`its units use only settings systemd ${release.systemd} reads`, ...mac.map((b) => b.readme.release(release))].join(', ')}, and its QEMU ${release.qemu.major}.${release.qemu.minor} knows every option. \`qemu-harden verify .\` says so when the host runs another release; generate the bundle again there, or with \`--target\`.`,
    `- \`${a.host.qemuBinary}\` installed (Debian: \`qemu-system-x86\`), cgroup v2 for every limit to hold.`,
  );
  const spice = a.guests.filter((g) => g.display.mode === 'spice-unix' || g.display.mode === 'spice-tls');
  if (spice.length && release.spiceModules)
    out.push(
      `- SPICE (${spice.map((g) => code(g.name)).join(', ')}) needs QEMU’s SPICE modules, package \`${release.spiceModules}\` on this release: only a Recommends of \`qemu-system-x86\`, so an install without recommends lacks it and the guest fails to start.`,
    );
  if (a.guests.some((g) => g.firmware.type === 'uefi')) out.push('- UEFI guests need OVMF (Debian: `ovmf`).');
  if (a.guests.some((g) => g.tpm === 'tpm2'))
    out.push(
      '- Guests with a TPM need swtpm and swtpm_setup (Debian: `swtpm` and `swtpm-tools`). A TPM whose state is carried over from another host must be in its directory (below) before the guest’s first start; otherwise the guest gets a new, empty TPM.',
    );
  if (bridges.length)
    out.push(
      `- The ${bridges.length === 1 ? 'bridge' : 'bridges'} ${bridges.map((b) => `\`${b}\``).join(', ')} must exist (e.g. a systemd-networkd .netdev); the tap units only attach to ${bridges.length > 1 ? 'them' : 'it'}.`,
    );
  const confining = CONFINEMENT.filter((b) => a.guests.some((g) => b.confines(a, g)));
  for (const b of confining) out.push(b.readme.requires);
  out.push(
    `- The udev rule gives \`/dev/kvm\` to group \`${a.host.kvmGroup}\` mode 0660${taps ? `, and \`/dev/net/tun\` and \`/dev/vhost-net\` to group \`${a.host.netGroup}\` mode 0660` : ''}. Other users and programs that opened these devices before (a desktop user running QEMU, a VPN client on \`/dev/net/tun\`) lose access unless they are added to that group.`,
  );
  if (release.kvmUaccess && a.useCase === 'virtualization')
    out.push(
      `- ${text(release.name)}’s own udev rules tag \`/dev/kvm\` \`uaccess\`: the user logged in at the machine’s seat gets an ACL entry on it, past the group rule (\`getfacl /dev/kvm\`; \`qemu-harden audit\` reports it).`,
    );
  out.push('');
  out.push('## Using the guests', '');
  out.push(
    'Each guest’s sockets are in its runtime directory (mode 0750) and QEMU creates them mode 0700 (the unit’s `UMask=0077`), owned by the guest’s user: only root may connect, so operators use `sudo`. QMP is full control of the guest (and of what its QEMU can reach); the serial console is the guest’s root console if it has one.',
    ...(chosenMac(a).some((b) => b.id === 'selinux')
      ? [
          '',
          'Under SELinux a client must also run at the guest’s own level (`runcon -l`, with the guest’s category pair, as below): the socket QEMU accepts takes its client’s level, and the guest’s QEMU may not answer one at root’s whole range, so a client started from a root shell as it is gets no answer.',
        ]
      : []),
    '',
  );
  for (const g of a.guests) {
    const r = guestReach(a, g);
    out.push(`- ${g.name}: ${r.sockets.map((s) => `\`${s.path}\` (${s.what.replace(/ \(.*\)$/, '')})`).join(', ')}`);
  }
  out.push(
    '',
    '```sh',
    ...a.guests
      .slice(0, 1)
      .flatMap((g) => [
        `${clientOf(a, g)} socat -,rawer,escape=0x1d UNIX-CONNECT:${G.serialSocket(g)}   # serial console; Ctrl+] leaves`,
        `${clientOf(a, g)} socat - UNIX-CONNECT:${G.qmpSocket(g)}                     # QMP: {"execute":"qmp_capabilities"} first`,
        ...(g.display.mode === 'vnc-unix'
          ? [`ssh -L 5901:${G.vncSocket(g)} root@this-host   # from your desk; then a VNC viewer on localhost:5901`]
          : []),
      ]),
    '```',
    '',
    ...pingLines(a),
  );
  const helped = a.guests.filter((g) => helpersOf(a, g).length > 0);
  if (helped.length) {
    out.push('## Helper units', '');
    for (const g of helped)
      for (const h of helpersOf(a, g)) out.push(`- ${g.name}: ${text(h.readme(g, helperMac(a, g, h.kind)))}`);
    out.push('');
  }
  out.push('## After apply', '');
  out.push(
    '`apply --start` then brings every guest of the bundle to running its installed unit and profile: a stopped guest is enabled and started (one stopped on purpose too), a guest running an older unit or profile is restarted (its profile is loaded first). Without `--start`, a guest that is already running keeps the unit, user and profile it started with; `apply` names each guest that does not run its installed unit and profile yet, and this does the rest (run again, it changes nothing):',
    '',
    '```sh',
    `sudo ${me} start`,
    '```',
    '',
    'By hand, restart each guest that runs an older unit or profile:',
    '',
    '```sh',
  );
  for (const g of a.guests) out.push(`sudo systemctl restart ${G.unitName(g)}`);
  out.push('```', '');
  out.push('## Checking the host afterwards', '', '```sh');
  out.push(
    ...commented([
      [`${me} verify .`, '# the bundle is still what answers.json produces'],
      [`${me} status`, '# each guest as it runs: user, capabilities, seccomp, profile, limits, drift'],
    ]),
    ...a.guests
      .flatMap((g) => [
        `systemctl status ${G.unitName(g)}`,
        `systemd-analyze security ${G.unitName(g)}   # exposure of the unit as installed`,
        `ps -o user,label,cmd -C ${a.host.qemuBinary.split('/').pop()}  # each QEMU as its own user, under its profile (label)`,
      ])
      .filter((l, i, all) => all.indexOf(l) === i),
    'ls -l /dev/kvm /dev/net/tun               # groups and modes from the udev rule',
    ...confining.flatMap((b) => b.readme.checking),
    `journalctl -u 'qemu-*' -p warning        # start failures, ${['seccomp', ...mac.map((b) => b.name)].join(' or ')} denials`,
  );
  out.push('```', '');
  return out;
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
    if (g.display.mode === 'spice-unix') edge('listens', `socket ${G.spiceSocket(g)}`);
    if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
      edge('listens', `TCP ${g.display.listen}:${g.display.port}`);
    for (const kind of ['migration', 'nbd'] as const) {
      const r = g[kind];
      if (r?.enabled) edge('listens', `TCP ${r.listen}:${r.port} ${kind}${r.tls ? ' TLS' : ' plain'}`);
    }
    edge(
      'net',
      g.network.mode === 'none'
        ? 'no network'
        : g.network.mode === 'user'
          ? g.network.backend === 'passt'
            ? `passt socket ${G.netSocket(g)}`
            : 'user-mode NAT in QEMU (slirp)'
          : `tap ${G.tapDevice(g)}`,
    );
  });
  out.push('```', '');
  return out;
}
