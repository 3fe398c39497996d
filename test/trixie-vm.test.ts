// The proofs that need Debian 13's own programs under a kernel that enforces a Debian 13 bundle's AppArmor policy:
// the trixie root (test/debian-root.ts), its /usr over 9p, booting its systemd under TCG on the kernel of Debian's
// next release, forky. That kernel, not Debian 13's own 6.12, because it offers upstream AppArmor's fine-grained
// mediation of unix sockets (features/network_v9/af_unix, from Linux 6.17 on), the only kernel here that could hold a
// guest's QEMU from another guest's sockets; the proof shows that Debian 13's parser does not ask it to. Debian 12's
// kernel, which the AppArmor VM boots (test/apparmor-vm.test.ts), has no such mediation and runs no Debian 13 program.
// One VM, its parts in test/vm/ (test/vmshare.ts, docs/testing.md, "Shared VMs").
import { join } from 'node:path';
import { debianRoot, TRIXIE_PACKAGES } from './debian-root.js';
import { REPO } from './helpers.js';
import { helpersTrixie } from './vm/helpers-trixie.js';
import { proofKernel, runVm } from './vmboot.js';
import { sharedVm, type VmKind } from './vmshare.js';

/** The Debian release whose kernel the VM boots. */
export const KERNEL_SUITE = 'forky';

let base = '';
const TRIXIE: VmKind = {
  async system(tools) {
    base = await debianRoot('trixie', TRIXIE_PACKAGES);
    return { kernel: proofKernel(tools, KERNEL_SUITE), base };
  },
  // virtio_pci is built into this kernel; 9p is a module. Its /usr is the trixie root's.
  boot: (kernel, root, work, modules, timeoutMs) =>
    runVm({
      kernel,
      rootTree: root,
      modules: ['9pnet_virtio', '9p', ...modules],
      shares: { usr: [join(base, 'usr'), '/usr'], repo: [REPO, '/qh'] },
      workDir: work,
      timeoutMs,
      memoryMiB: 1024,
      liveConsole: join(REPO, '.cache', 'trixie-vm-live-console.log'),
    }),
};

sharedVm('trixie', [helpersTrixie], TRIXIE);
