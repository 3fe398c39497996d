// A guest's shared folder served by virtiofsd, the Rust one a release ships as /usr/libexec/virtiofsd (Debian 13,
// Ubuntu 24.04): one unit per folder (virtiofsd serves one directory), as the guest's user, never root. QEMU reaches
// it over vhost-user, which needs the guest's RAM in shared memory (gen/qemu.ts).
//
// virtiofsd runs with --sandbox=none, inside the unit's fence, not in a sandbox of its own. Its namespace sandbox (a
// user namespace, new PID and network namespaces, the folder as the root it pivots into) mounts a fresh /proc in
// that user namespace, and the kernel allows that only where the /proc it already sees is fully visible: the unit's
// /proc has read-only and hidden parts laid over it by systemd (ProtectKernelTunables=, ProtectKernelLogs=), which
// the kernel holds locked, so virtiofsd stops with "MountProc(… Operation not permitted)" ("VFS: Mount too
// revealing"). Keeping that sandbox would mean giving up those settings, letting the unit make user, mount, PID and
// network namespaces, giving back mount, pivot_root and the set*id calls, and an AppArmor profile that allows mount
// and pivot_root and sees, after the pivot, the folder's files as /hello.txt: a profile that must then allow /**
// could no longer name the folder. libvirt's unprivileged virtiofsd (qemu:///session) maps the guest's other ids
// through /etc/subuid, which needs the setuid newuidmap this unit forbids.
// With --sandbox=none virtiofsd makes no namespace and holds no capability anywhere (upstream allows a non-root virtiofsd
// exactly so, with chown and other owner changes failing, which is what the bundle wants): everything the guest
// creates is the guest user's. What keeps it to the folder is the unit (the whole file system read-only, every
// other guest's files and folders hidden, only this folder bound back) and its AppArmor profile, which names the
// folder by its real path and admits nothing else of the host's files but its own program and libraries: a lookup
// the guest aims outside the folder (a ".." past its root) finds no other guest's files, and meets the profile.
import { qemuOpts } from '../escape.js';
import * as G from '../guest.js';
import type { Guest } from '../model.js';
import * as N from '../names.js';
import { longOption, type HelperKind } from './helper.js';

export const VIRTIOFSD = '/usr/libexec/virtiofsd';

/** The helper record that serves share `n` of a guest (kind fsN). */
export function virtiofsd(n: number): HelperKind {
  const kind = N.shareKind(n);
  const share = (g: Guest) => g.shares[n]!;
  return {
    kind,
    title: `shared folder ${n} (virtiofsd)`,
    documentation: 'man:virtiofsd(1)',
    binary: VIRTIOFSD,
    readiness: 'socket',
    args: (g) => [
      // The socket systemd listens on, handed over as file descriptor 3.
      '--fd=3',
      `--shared-dir=${share(g).path}`,
      // No sandbox of its own: the unit's fence and profile are its sandbox (above).
      '--sandbox=none',
      '--seccomp=kill',
      ...(share(g).readOnly ? ['--readonly'] : []),
      // The unit's own limit on open files stands: raising it needs a capability virtiofsd does not have.
      '--rlimit-nofile=0',
    ],
    socket: (g) => `${G.runtimeDir(g)}/${kind}.sock`,
    stateDirs: () => [],
    ownPaths: (g) => [{ path: share(g).path, writable: !share(g).readOnly }],
    setup: () => [],
    qemuArgs: (g) => [
      '-chardev',
      qemuOpts('socket', [
        ['id', kind],
        ['path', `${G.runtimeDir(g)}/${kind}.sock`],
      ]),
      '-device',
      qemuOpts('vhost-user-fs-pci', [
        ['chardev', kind],
        ['tag', share(g).tag],
      ]),
    ],
    sandbox: {
      ownSeccomp: true,
      memoryMaxMiB: 256,
      tasksMax: 64,
      coreHolds: 'the guest’s RAM, which it maps to serve the guest, and the shared folder’s data',
      exposureTarget: 1.5,
      network: 'none',
      readsProcSys: 'virtiofsd reads the most files a process may open (fs.nr_open) and fails without it',
    },
    apparmor: (g) => {
      const { path, readOnly } = share(g);
      return {
        paths: [
          { path, perms: readOnly ? 'r' : 'rw', why: `the shared folder "${share(g).tag}"`, glob: '/' },
          { path, perms: readOnly ? 'r' : 'rwkl', why: 'everything in it', glob: '/**' },
        ],
        rules: [
          { rule: 'owner @{PROC}/@{pid}/{mountinfo,fd/} r,', why: 'what it reads of itself' },
          { rule: 'owner @{PROC}/@{pid}/fd/* r,', why: 'the files it serves, reopened by their descriptors' },
          { rule: '@{PROC}/sys/fs/nr_open r,', why: 'the most files it could open' },
          {
            rule: 'unix (create, accept, connect, read, write, getattr, getopt, setopt, shutdown, send, receive),',
            why: 'the socket systemd hands over, and the guest memory QEMU passes through it',
          },
          { rule: 'signal (send, receive) peer=@{profile_name},', why: 'its own processes' },
        ],
      };
    },
    live: {
      program: /^virtiofsd$/,
      ownSeccomp: (argv) => {
        const action = longOption(argv, 'seccomp');
        return action === 'none' || action === 'log' ? { on: false, evidence: `--seccomp ${action}` } : { on: true };
      },
      state: () => undefined,
      serves: (argv) => {
        const dir = longOption(argv, 'shared-dir');
        return dir ? [{ path: dir, readOnly: argv.includes('--readonly') }] : [];
      },
    },
    readme: (g, mac) =>
      `Shared folder "${share(g).tag}" (${share(g).path}, ${share(g).readOnly ? 'read-only' : 'writable'}) is served by its own virtiofsd ` +
      `(${G.helperUnitName(g, kind)}), started before QEMU and stopped with it: as ${G.userName(g)}, never root, with no capabilities, ` +
      `its own seccomp filter and ${mac}; its unit hides every other guest's files and folders. What the guest writes there belongs to ` +
      `${G.userName(g)}, whatever owner the guest gives it. The guest's RAM is shared memory (memfd) that virtiofsd maps.`,
  };
}
