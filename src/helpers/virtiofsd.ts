// A guest's shared folder served by virtiofsd, the Rust one a release ships as /usr/libexec/virtiofsd (Debian 13,
// Ubuntu 24.04): one unit per folder (virtiofsd serves one directory), as the guest's user, never root. virtiofsd
// builds a sandbox of its own: a user namespace, empty PID and network namespaces, and a mount namespace whose root
// is the shared folder (pivot_root), so the folder is the only host path it can see. Its user namespace maps the
// guest's user alone, so the kernel does the translation of owners: whatever owner the guest names, what it
// creates is the guest user's on the host, and it can give nothing another owner (virtiofsd's own --translate-uid
// would name the user's id, which sysusers gives on the host, not the bundle). QEMU reaches it over vhost-user,
// which needs the guest's RAM in shared memory (gen/qemu.ts).
import { qemuOpts } from '../escape.js';
import * as G from '../guest.js';
import type { Guest } from '../model.js';
import * as N from '../names.js';
import type { HelperKind } from './helper.js';

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
      '--sandbox=namespace',
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
      selfSandbox: {
        namespaces: ['user', 'mnt', 'pid', 'net'],
        syscalls: [
          'capset',
          'setuid',
          'setgid',
          'setgroups',
          'setresuid',
          'setresgid',
          'setfsuid',
          'mount',
          'umount2',
          'pivot_root',
        ],
        why: 'virtiofsd then builds a sandbox of its own: a user namespace in which it is root, empty PID and network namespaces, and a mount namespace whose root is the shared folder; it serves each request as the owner the guest names, within that namespace',
      },
    },
    apparmor: (g) => {
      const { path, readOnly } = share(g);
      return {
        paths: [
          { path, perms: readOnly ? 'r' : 'rw', why: `the shared folder "${share(g).tag}"`, glob: '/' },
          { path, perms: readOnly ? 'r' : 'rwkl', why: 'everything in it', glob: '/**' },
        ],
        rules: [
          { rule: 'owner @{PROC}/@{pid}/{uid_map,gid_map,setgroups} rw,', why: 'its own user namespace' },
          { rule: 'owner @{PROC}/@{pid}/{mountinfo,fd/} r,', why: 'what it reads of itself' },
          { rule: 'owner @{PROC}/@{pid}/fd/* r,', why: 'the files it serves, reopened by their descriptors' },
          { rule: '@{PROC}/sys/fs/nr_open r,', why: 'the most files it could open' },
          { rule: 'mount,', why: 'its own sandbox: the mount namespace whose root is the shared folder' },
          { rule: 'umount,', why: 'its own sandbox: the old root, detached' },
          { rule: 'pivot_root,', why: 'its own sandbox: the pivot into the shared folder' },
          {
            rule: 'unix (create, accept, connect, read, write, getattr, getopt, setopt, shutdown, send, receive),',
            why: 'the socket systemd hands over, and the guest memory QEMU passes through it',
          },
          { rule: 'signal (send, receive) peer=@{profile_name},', why: 'its own processes' },
        ],
        capabilities: {
          names: [
            'sys_admin',
            'setuid',
            'setgid',
            'setpcap',
            'chown',
            'dac_override',
            'dac_read_search',
            'fowner',
            'fsetid',
          ],
          why: 'only inside the user namespace virtiofsd makes for its own sandbox, where its user is root: to build the sandbox and to serve files as the owner the guest names',
        },
      };
    },
    live: {
      program: /^virtiofsd$/,
      ownSeccomp: (argv) => {
        const action = argv
          .flatMap((a, i) =>
            a === '--seccomp' ? [argv[i + 1] ?? ''] : a.startsWith('--seccomp=') ? [a.slice(10)] : [],
          )
          .at(-1);
        return action === 'none' || action === 'log' ? { on: false, evidence: `--seccomp ${action}` } : { on: true };
      },
      state: () => undefined,
    },
    readme: (g) =>
      `Shared folder "${share(g).tag}" (${share(g).path}, ${share(g).readOnly ? 'read-only' : 'writable'}) is served by its own virtiofsd ` +
      `(${G.helperUnitName(g, kind)}), started before QEMU and stopped with it: as ${G.userName(g)}, never root, with no capabilities ` +
      `outside its own user namespace, its own seccomp filter and AppArmor profile (${G.helperProfileName(g, kind)}), and the ` +
      `folder as the root of its mount namespace, the only host path it sees. What the guest writes there belongs to ` +
      `${G.userName(g)}, whatever owner the guest gives it. The guest's RAM is shared memory (memfd) that virtiofsd maps.`,
  };
}
