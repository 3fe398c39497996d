// A guest that proves things from inside: Debian's kernel (the one the VM proofs boot, downloaded with apt-get
// download and never installed) with an initramfs of busybox, the modules it needs and a script the test writes.
// The script reports on the serial console, one `RESULT key=value` line each, and powers the guest off; the test
// reads the lines from the guest's serial log. busybox's own wget is not used: linked statically against glibc it
// crashes looking up a name, so a fetch is `nc` speaking HTTP/1.0, under `timeout`: busybox's nc does not always
// end when the server closes the connection.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureKernel, moduleClosure } from './vmboot.js';

/** What every guest script starts with: `r KEY VALUE` reports a result; `fetch HOST PORT PATH` is an HTTP GET. */
const PRELUDE = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
r() { echo "RESULT $1=$2"; }
fetch() { printf 'GET /%s HTTP/1.0\\r\\n\\r\\n' "$3" | timeout 30 nc -w 5 "$1" "$2" 2>&1 | tail -1; }
`;

/** udhcpc's script: the address and default route it was offered, nothing else. */
const UDHCPC = `#!/bin/sh
case "$1" in bound|renew) ip addr add "$ip/$mask" dev "$interface"; [ -n "$router" ] && ip route add default via "$router" ;; esac
`;

/**
 * Writes the guest's kernel and initramfs into `dir` (vmlinuz, initrd.gz) and returns their paths. `modules` are
 * loaded first, with what they depend on; then `script` runs as init, and the guest powers off after it, or stays
 * up doing nothing (`then: 'idle'`) for a proof that looks at its running units afterwards.
 */
export function writeLinuxGuest(
  dir: string,
  modules: string[],
  script: string,
  opts: { then?: 'poweroff' | 'idle' } = {},
): { kernel: string; initrd: string } {
  const k = ensureKernel();
  const stage = join(dir, 'initramfs');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'modules'), { recursive: true });
  mkdirSync(join(stage, 'bin'));
  copyFileSync('/bin/busybox', join(stage, 'bin/busybox'));
  chmodSync(join(stage, 'bin/busybox'), 0o755);
  const paths = moduleClosure(k, modules);
  const mods = paths.map((p) => p.split('/').at(-1)!);
  paths.forEach((p, i) => copyFileSync(p, join(stage, 'modules', mods[i]!)));
  writeFileSync(
    join(stage, 'init'),
    `${PRELUDE}${mods.map((m) => `insmod /modules/${m}`).join('\n')}\n${script}\nr done yes\n${opts.then === 'idle' ? 'while :; do sleep 3600; done' : 'poweroff -f'}\n`,
    { mode: 0o755 },
  );
  writeFileSync(join(stage, 'udhcpc.sh'), UDHCPC, { mode: 0o755 });
  const initrd = join(dir, 'initrd.gz');
  execFileSync('sh', ['-c', 'cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 > "$2"', 'sh', stage, initrd]);
  rmSync(stage, { recursive: true, force: true });
  const kernel = join(dir, 'vmlinuz');
  copyFileSync(k.vmlinuz, kernel);
  return { kernel, initrd };
}

/** The results a guest reported in its serial log, by key (the last report of a key wins). */
export function guestResults(serialLog: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of serialLog.split(/\r?\n/)) {
    const m = /RESULT ([A-Za-z0-9_.-]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}
