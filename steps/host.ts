import { DEFAULT_CONFINEMENT, type Confinement } from '../src/confinement.js';
import { implications } from '../src/implications.js';
import type { Answers } from '../src/model.js';
import { DEFAULT_TARGET, RELEASES } from '../src/releases.js';
import { optionsOf, type Step } from './fields.js';

const TARGETS = Object.fromEntries(Object.values(RELEASES).map((r) => [r.target, r.name])) as Record<
  Answers['host']['target'],
  string
>;

/** Each mandatory access control the answers can choose, as the Host step offers it. */
const CONFINEMENT: Record<Confinement, string> = {
  apparmor: 'AppArmor: a profile of its own for each guest',
  selinux: 'SELinux: the virt domain with a category pair of its own for each guest',
  none: 'none: no mandatory access control (an accepted risk)',
};

export const host: Step = {
  id: 'host',
  title: 'Host',
  perGuest: false,
  why: [
    'Everything the guest can reach through QEMU is decided on the host: who owns /dev/kvm and /dev/net/tun,',
    'whether AppArmor can confine QEMU, whether cgroups can hold it to its budget. This step only looks;',
    'nothing on the host changes until you run `qemu-harden apply`. The release, the binary and the two groups',
    'are those of the host the bundle is for, which need not be this one: each release’s QEMU, systemd and',
    'AppArmor accept different settings, and the bundle uses the tightest its target understands.',
    'Confinement: SELinux and AppArmor confine QEMU beyond the UNIX process and file permissions model, keeping',
    'it from host processes and files it does not need (QEMU’s security chapter, “Isolation mechanisms”). Choose',
    'the one the host enforces; without one, a file its user can read by mistake is open to a guest that takes',
    'over QEMU, so “none” is allowed only as an accepted risk, with a reason. AppArmor gives each guest a profile',
    'listing the paths it may open. SELinux runs every guest in the policy’s virt domain, as libvirt’s sVirt does,',
    'with a category pair of its own that only its own files carry: another guest’s QEMU holds another pair and',
    'cannot open them, whatever their file permissions. Under SELinux, TCG needs writable code in the virt domain',
    'for every guest on the host (an accepted risk).',
  ],
  notes: (ctx) => (ctx.host ? implications(ctx.host) : ['Probing this host in the background…']),
  owns: () => [{ path: 'host', label: 'Host' }],
  fields: () => [
    {
      label: 'Release',
      kind: 'select',
      path: ['host', 'target'],
      options: optionsOf(TARGETS),
      fallback: () => DEFAULT_TARGET,
      hint: 'the release the bundle is for: its QEMU, systemd and AppArmor decide what the files may say',
    },
    {
      label: 'Confinement',
      kind: 'select',
      path: ['host', 'confinement'],
      options: optionsOf(CONFINEMENT),
      fallback: () => DEFAULT_CONFINEMENT,
      hint: 'the mandatory access control that confines each guest’s QEMU on the host',
    },
    {
      label: 'QEMU binary',
      kind: 'text',
      path: ['host', 'qemuBinary'],
      fallback: () => '/usr/bin/qemu-system-x86_64',
      hint: 'where the bundle’s units run QEMU from',
    },
    {
      label: 'KVM group',
      kind: 'text',
      path: ['host', 'kvmGroup'],
      fallback: () => 'kvm',
      hint: 'owns /dev/kvm (udev); each guest’s user joins it',
    },
    {
      label: 'Network group',
      kind: 'text',
      path: ['host', 'netGroup'],
      fallback: () => 'qemu-net',
      hint: 'owns /dev/net/tun (udev); users of tap guests join it',
    },
  ],
  tip: 'Press F1 (or Ctrl+G) on any step, in any field, for why it matters.',
};
