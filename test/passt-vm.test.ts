// The AppArmor proof of a guest's helpers (test/vm/helpers-apparmor.ts), booted on its own: Debian's kernel with
// AppArmor enforcing and cgroup v2 boots real systemd under TCG (test/vmboot.ts). The part is written in the shape of
// the shared AppArmor VM's parts, which it joins once that VM is on this branch.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { REPO, tempDir } from './helpers.js';
import { bootProof, makeRootTree, proofKernel, type VmResult } from './vmboot.js';
import { helpersApparmor as part } from './vm/helpers-apparmor.js';

let vm: VmResult | undefined;
const work = tempDir({ after }, 'qh-helpers-vm-');

before(async () => {
  const kernel = proofKernel(part.tools ?? []);
  const root = join(work, 'root');
  const script = part.prepare(root, work);
  makeRootTree(root, script);
  chmodSync(root, 0o755);
  vm = await bootProof(kernel, root, work, {
    repo: true,
    modules: part.modules ?? [],
    timeoutMs: (600 + part.timeoutSeconds) * 1000,
  });
  writeFileSync(join(REPO, '.cache', `${part.name}-vm-console.log`), vm.console);
});

part.tests(() => {
  if (!vm) throw new Error('the VM did not boot');
  return vm;
});
