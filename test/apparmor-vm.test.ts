// The proofs that need a real kernel with AppArmor enforcing and cgroup v2: Debian's kernel booting real systemd
// under TCG (test/vmboot.ts), shared by the parts in test/vm/, each of which says what it proves. The VM boots once
// per lane; the parts run in it one after another, each from the system as booted (test/vmshare.ts,
// docs/testing.md, "Shared VMs"). A new proof of this kind is a part added to this list.
import { sharedVm } from './vmshare.js';
import { audit } from './vm/audit.js';
import { confinement } from './vm/confinement.js';
import { helpersApparmor } from './vm/helpers-apparmor.js';
import { hostStorage } from './vm/host-storage.js';
import { networkFences } from './vm/network-fences.js';
import { sandboxSpawn } from './vm/sandbox-spawn.js';
import { tpm } from './vm/tpm.js';

sharedVm('apparmor', [confinement, networkFences, audit, hostStorage, sandboxSpawn, tpm, helpersApparmor]);
