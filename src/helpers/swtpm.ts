// The guest's TPM 2.0: swtpm, the TPM emulator libvirt and Proxmox run beside QEMU, here in a unit of its own
// as the guest's user. The TPM holds the guest's own secrets (BitLocker's keys, measured-boot sealing), so its
// state is as sensitive as the guest's disk: it lives in the guest's state directory, readable by swtpm alone.
import { qemuOpts } from '../escape.js';
import * as G from '../guest.js';
import { longOption, type HelperKind } from './helper.js';

const SWTPM = '/usr/bin/swtpm';
const SWTPM_SETUP = '/usr/bin/swtpm_setup';

/** One parameter of an option's value: swtpm splits them on commas, with no escape. */
const param = (value: string | undefined, key: string) =>
  value
    ?.split(',')
    .find((p) => p.startsWith(`${key}=`))
    ?.slice(key.length + 1);

export const swtpm: HelperKind = {
  kind: 'tpm',
  title: 'TPM 2.0 emulator (swtpm)',
  documentation: 'man:swtpm(8) man:swtpm_setup(8)',
  binary: SWTPM,
  readiness: 'socket',
  args: (g) => [
    'socket',
    '--tpm2',
    // swtpm's options have no escape for a comma; the path is made of the guest's name, which has none.
    '--tpmstate',
    `dir=${G.tpmStateDir(g)},mode=0600`,
    // QEMU reaches the TPM through this control channel only: it hands swtpm the data channel over it.
    '--ctrl',
    'type=unixio,fd=3',
    '--seccomp',
    'action=kill',
  ],
  socket: (g) => G.tpmSocket(g),
  stateDirs: (g) => [G.tpmStateDir(g)],
  setup: (g) => [
    {
      why: 'A new TPM on first start: swtpm_setup writes its state (endorsement keys, a SHA-256 PCR bank) into the empty state directory, and leaves existing state alone.',
      argv: [
        SWTPM_SETUP,
        '--tpm2',
        '--tpmstate',
        G.tpmStateDir(g),
        '--createek',
        '--pcr-banks',
        'sha256',
        '--not-overwrite',
        // Everything it needs is on this line: the host's /etc/swtpm_setup.conf (which may be missing) is not read.
        '--config',
        '/dev/null',
      ],
    },
  ],
  qemuArgs: (g) => [
    '-chardev',
    qemuOpts('socket', [
      ['id', 'tpm'],
      ['path', G.tpmSocket(g)],
    ]),
    '-tpmdev',
    'emulator,id=tpm0,chardev=tpm',
    '-device',
    'tpm-crb,tpmdev=tpm0',
  ],
  sandbox: {
    ownSeccomp: true,
    memoryMaxMiB: 128,
    tasksMax: 16,
    coreHolds: 'the guest’s TPM secrets',
    exposureTarget: 0.5,
    network: 'none',
  },
  apparmor: () => ({
    paths: [
      { path: SWTPM_SETUP, perms: 'mr', why: 'swtpm_setup, which ExecStartPre= runs under this profile' },
      { path: SWTPM, perms: 'ix', why: 'swtpm_setup starts swtpm to write the first state, under this same profile' },
      ...['/etc/nsswitch.conf', '/etc/passwd', '/etc/group'].map((path) => ({
        path,
        perms: 'r',
        why: 'swtpm_setup names the user it runs as',
      })),
    ],
    rules: [
      { rule: 'owner /tmp/.swtpm_setup.* rw,', why: 'swtpm_setup’s pid file, in the unit’s private /tmp' },
      { rule: 'include <abstractions/openssl>', why: 'libtpms reads OpenSSL’s configuration' },
      {
        rule: 'unix (create, accept, connect, read, write, getattr, getopt, setopt, shutdown, send, receive),',
        why: 'the control socket systemd hands over, and the data channel QEMU passes through it',
      },
      { rule: 'signal (send, receive) peer=@{profile_name},', why: 'swtpm_setup stops the swtpm it started' },
    ],
  }),
  live: {
    program: /^swtpm$/,
    // swtpm installs its own filter unless told otherwise: action=kill is its default, none removes the filter
    // and log lets every call through, only logging it.
    ownSeccomp: (argv) => {
      const action = param(longOption(argv, 'seccomp'), 'action');
      return action === 'none' || action === 'log'
        ? { on: false, evidence: `--seccomp action=${action}` }
        : { on: true };
    },
    // Its state: --tpmstate dir=PATH or backend-uri=dir://PATH (a directory, whose TPM 2.0 state is tpm2-00.permall
    // and a TPM 1.2's tpm-00.permall), or backend-uri=file://PATH (one file). Without --tpmstate swtpm takes the
    // directory from its environment (TPM_PATH), which its command line does not show.
    state: (argv) => {
      const tpmstate = longOption(argv, 'tpmstate');
      const uri = param(tpmstate, 'backend-uri');
      const file = uri?.startsWith('file://') ? uri.slice('file://'.length) : undefined;
      if (file) return { path: file, file };
      const dir = param(tpmstate, 'dir') ?? (uri?.startsWith('dir://') ? uri.slice('dir://'.length) : undefined);
      if (!dir) return null;
      return { path: dir, file: `${dir.replace(/\/+$/, '')}/${argv.includes('--tpm2') ? 'tpm2' : 'tpm'}-00.permall` };
    },
  },
  readme: (g, mac) =>
    `A TPM 2.0 from its own swtpm (${G.helperUnitName(g, 'tpm')}), started before QEMU and stopped with it. ` +
    `swtpm runs as ${G.userName(g)} in a sandbox like QEMU's, with its own seccomp filter and ${mac}. ` +
    `Its state — the guest's own secrets, such as BitLocker's keys — is in ` +
    `${G.tpmStateDir(g)}, which QEMU itself cannot read: back it up with the disk, and keep it as private.`,
};
