// One booted VM shared by several proofs. Booting Debian's kernel into systemd under TCG costs more CPU than many a
// proof's own script, so the proofs that need the same kind of VM are parts of one test file, which boots the VM once
// per lane and runs its parts there one after another (docs/testing.md, "Shared VMs"). Each part starts from the system
// as it booted: before a part, the kernel log and the journal are emptied and its files are laid over /; it runs as a
// unit of its own, so whatever it leaves running is stopped with it; after it (unless the VM powers off next), every
// unit started since the boot is stopped, what qemu-harden installed is removed, the AppArmor profiles loaded since the
// boot are unloaded, and its files are taken away. Only the users and groups it created stay (an apply on a real host
// meets those too).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, tempDir } from './helpers.js';
import {
  bootProof,
  makeRootTree,
  PROOF_PRELUDE,
  proofKernel,
  type ConsoleLine,
  type Kernel,
  type VmResult,
} from './vmboot.js';

/** One proof run in a shared VM: its files and script, and the tests that read what it reported. */
export interface VmPart {
  /** Lower-case words and dashes: its unit (qh-part-NAME), its directory in the VM (/parts/NAME), its console markers. */
  name: string;
  /**
   * The CPU seconds QEMU spent on this part when it was last measured (the lane summary prints them): the parts are
   * spread over the lanes by it, the heaviest first.
   */
  cpuSeconds: number;
  /** The most it may take in the VM; its unit is stopped then, its tests fail, and the lane goes on to the next part. */
  timeoutSeconds: number;
  /** Programs it needs on the host, with their Debian packages. */
  tools?: [tool: string, pkg: string][];
  /** Kernel modules it needs: every part's are loaded at boot, before systemd starts. */
  modules?: string[];
  /**
   * It reads the kernel log as /dev/kmsg gives it, from the boot on (as qemu-harden audit does): `dmesg -C` empties
   * only what dmesg reads, and no record can be taken out of /dev/kmsg. Such a part runs first in its lane, before any
   * part whose denials would be there; a lane holds one of them at most.
   */
  kernelLogFromBoot?: boolean;
  /**
   * Lays out its files in `root`, an empty directory that stands for / (they are copied over / when the part starts,
   * after boot: a unit or a sysusers.d file among them is the part's to load), and returns its script: shell, run from
   * / with `r KEY VALUE` and `wait_until SECONDS COMMAND...` (test/vmboot.ts). `work` is a directory of its own on the
   * host. Runs before the VM boots.
   */
  prepare(root: string, work: string): string | Promise<string>;
  /** Shell run after the part's unit has stopped, for what the reset does not know of (mounts, swap, loop devices). */
  cleanup?: string;
  /** Registers the part's tests; `vm()` is what the part reported, once its lane has run. */
  tests(vm: () => VmResult): void;
}

/**
 * The parts over `lanes` lanes: first each part that reads the kernel log from the boot on, one to a lane; then the
 * others, the heaviest first, each to the lane with the least CPU so far (of two as light, the one with fewer parts),
 * so that the lanes end at about the same time. Each lane runs its parts in that order.
 */
export function spread(parts: readonly VmPart[], lanes: number): VmPart[][] {
  const out: VmPart[][] = Array.from({ length: Math.max(1, Math.min(lanes, parts.length)) }, () => []);
  const first = parts.filter((p) => p.kernelLogFromBoot);
  assert.ok(
    first.length <= out.length,
    `${first.map((p) => p.name).join(', ')} read the kernel log from the boot on, so each runs first in a lane of its ` +
      `own, but there are ${out.length} lanes: set QEMU_HARDEN_TEST_VM_LANES to ${first.length} or more`,
  );
  const load = (l: VmPart[]) => l.reduce((s, p) => s + p.cpuSeconds, 0);
  const lighter = (a: VmPart[], b: VmPart[]) => load(a) < load(b) || (load(a) === load(b) && a.length < b.length);
  const heaviest = (a: VmPart, b: VmPart) => b.cpuSeconds - a.cpuSeconds || a.name.localeCompare(b.name);
  for (const p of [...first].sort(heaviest)) out.find((l) => l.length === 0)!.push(p);
  for (const p of parts.filter((x) => !x.kernelLogFromBoot).sort(heaviest))
    out.reduce((least, l) => (lighter(l, least) ? l : least)).push(p);
  return out;
}

/**
 * The lane's script (run by qh-proof.service once systemd is up): the baseline of units and profiles, then each
 * part between the markers the host splits the console by, and the reset after it.
 */
const LANE = (parts: readonly VmPart[]) => `#!/bin/sh
units() { systemctl list-units --all --plain --no-legend --state=active,activating,deactivating,reloading,failed --type=service,socket,timer,path,scope,mount,swap,automount | cut -d' ' -f1 | sort; }
aa=/sys/kernel/security/apparmor
profiles() { [ ! -r $aa/profiles ] || sed 's/ ([a-z]*)$//' $aa/profiles | sort; }
mkdir -p /run/qh-lane
units > /run/qh-lane/units.boot
profiles > /run/qh-lane/profiles.boot

# What dmesg and journalctl show starts empty: what a part reads there is its own (/dev/kmsg keeps every record
# since the boot; a part that reads it runs first in its lane).
fresh_logs() {
  dmesg -C
  journalctl -q --rotate --vacuum-size=1
}

reset() {
  units > /run/qh-lane/units.now
  comm -13 /run/qh-lane/units.boot /run/qh-lane/units.now | grep -vx 'qh-proof.service' | xargs -r systemctl stop --
  systemctl reset-failed
  m=/var/lib/qemu-harden/.installed/current/MANIFEST.sha256
  [ -f $m ] && sed -n 's/^[0-9a-f]\\{64\\}  root\\(\\/.*\\)$/\\1/p' $m | xargs -r -d '\\n' rm -f --
  rm -rf /var/lib/qemu-harden /var/log/qemu-harden /var/backups/qemu-harden /etc/qemu-harden
  # What enabling a removed unit left: its links in the .wants directories, now pointing at nothing.
  find /etc/systemd/system -xtype l -delete
  profiles > /run/qh-lane/profiles.now
  comm -13 /run/qh-lane/profiles.boot /run/qh-lane/profiles.now | while IFS= read -r p; do printf '%s' "$p" > $aa/.remove 2>/dev/null; done
  (cd "/parts/$1/root" && find . -mindepth 1 ! -type d) | sed 's|^\\.||' | xargs -r -d '\\n' rm -f --
  (cd "/parts/$1/root" && find . -mindepth 1 -depth -type d) | sed 's|^\\.||' | xargs -r -d '\\n' rmdir --ignore-fail-on-non-empty -- 2>/dev/null
  systemctl daemon-reload
  udevadm control --reload && udevadm trigger --action=change --subsystem-match=misc && udevadm settle
}

part() {
  echo "qh-part: begin $1"
  fresh_logs
  cp -a "/parts/$1/root/." /
  systemd-run --wait --quiet --unit="qh-part-$1" --property=RuntimeMaxSec="$2" --property=WorkingDirectory=/ \\
    --property=StandardOutput=tty --property=StandardError=tty --property=TTYPath=/dev/ttyS0 /bin/sh "/parts/$1/proof.sh"
  echo "qh-part: end $1 status=$?"
  [ -f "/parts/$1/cleanup.sh" ] && /bin/sh "/parts/$1/cleanup.sh"
  # The lane's last part needs no reset: the VM powers off after it.
  [ "$3" = last ] || reset "$1"
}

${parts.map((p, i) => `part ${p.name} ${p.timeoutSeconds}${i === parts.length - 1 ? ' last' : ''}`).join('\n')}
`;

/**
 * A console line from the lane's marker on: systemd 257 resets the terminal before a unit's first output on it, and
 * the escape sequences come first on the marker's line.
 */
const marker = (l: ConsoleLine) => l.text.slice(Math.max(0, l.text.indexOf('qh-part: ')));

/** What a lane's VM reported for one part: the console between its markers, and its own time. */
function partResult(lane: VmResult, name: string): VmResult {
  const begin = lane.lines.findIndex((l) => marker(l) === `qh-part: begin ${name}`);
  const end = lane.lines.findIndex((l) => marker(l).startsWith(`qh-part: end ${name} `));
  const lines: ConsoleLine[] = begin < 0 ? [] : end < 0 ? lane.lines.slice(begin) : lane.lines.slice(begin, end + 1);
  const text = lines.map((l) => l.text).join('\n');
  const results = new Map<string, string>();
  for (const l of lines) {
    const m = /RESULT ([A-Za-z0-9_.-]+)=(.*)$/.exec(l.text);
    if (m) results.set(m[1]!, m[2]!.trim());
  }
  const first = lines[0];
  const last = lines.at(-1);
  return {
    console: begin < 0 ? `the part never began; the lane's console ends:\n${lane.console.slice(-4000)}` : text,
    results,
    exitCode: lane.exitCode,
    timedOut: lane.timedOut || end < 0,
    lines,
    seconds: first && last ? last.seconds - first.seconds : 0,
    cpuSeconds: first && last ? last.cpuSeconds - first.cpuSeconds : 0,
  };
}

/** How a kind boots its VM: the root tree (the lane's script at /proof.sh), every part's modules, the deadline. */
export type Boot = (
  kernel: Kernel,
  root: string,
  work: string,
  modules: string[],
  timeoutMs: number,
) => Promise<VmResult>;

/** A kind of shared VM: the kernel and the system it runs (base: the root whose /usr it mounts), and how it boots. */
export interface VmKind {
  /** The kernel, and the root of the system whose /usr the VM mounts, once the tools the parts need are found. */
  system(tools: [tool: string, pkg: string][]): Promise<{ kernel: Kernel; base: string }>;
  boot: Boot;
}

/** The AppArmor kind: Debian's kernel with AppArmor and cgroup v2, a tmpfs root, /usr and the repository over 9p. */
const APPARMOR: VmKind = {
  system: async (tools) => ({ kernel: proofKernel(tools), base: '/' }),
  boot: (kernel, root, work, modules, timeoutMs) => bootProof(kernel, root, work, { repo: true, modules, timeoutMs }),
};

/**
 * Registers the shared VM of one kind: a hook that prepares every part and boots the lanes side by side, a test per
 * lane that it booted, ran each of its parts to the end marker and powered off (with the time each took), and each
 * part's own tests. There are QEMU_HARDEN_TEST_VM_LANES lanes, 2 unless it says otherwise: on 2 cores the suite's
 * other files run beside them.
 */
export function sharedVm(kind: string, parts: readonly VmPart[], vmKind: VmKind = APPARMOR): void {
  const names = parts.map((p) => p.name);
  assert.ok(
    names.every((n) => /^[a-z][a-z0-9-]*$/.test(n)) && new Set(names).size === names.length,
    `part names are distinct words: ${names.join(' ')}`,
  );
  const lanes = spread(parts, Number(process.env.QEMU_HARDEN_TEST_VM_LANES) || 2);
  const work = tempDir({ after }, `qh-${kind}-vm-`);
  const ran: (VmResult | undefined)[] = lanes.map(() => undefined);
  let kernel: Kernel;

  before(async () => {
    const system = await vmKind.system(parts.flatMap((p) => p.tools ?? []));
    kernel = system.kernel;
    const modules = [...new Set(parts.flatMap((p) => p.modules ?? []))];
    const roots = await Promise.all(
      lanes.map(async (lane, i) => {
        const laneDir = join(work, `lane${i + 1}`);
        const root = join(laneDir, 'root');
        makeRootTree(root, LANE(lane), system.base);
        chmodSync(root, 0o755);
        for (const p of lane) {
          const dir = join(root, 'parts', p.name);
          mkdirSync(join(dir, 'root'), { recursive: true, mode: 0o755 });
          const partWork = join(laneDir, p.name);
          mkdirSync(partWork);
          writeFileSync(join(dir, 'proof.sh'), PROOF_PRELUDE + (await p.prepare(join(dir, 'root'), partWork)));
          chmodSync(join(dir, 'root'), 0o755);
          if (p.cleanup) writeFileSync(join(dir, 'cleanup.sh'), p.cleanup);
        }
        return root;
      }),
    );
    await Promise.all(
      lanes.map(async (lane, i) => {
        const vm = await vmKind.boot(
          kernel,
          roots[i]!,
          join(work, `lane${i + 1}`),
          modules,
          (600 + lane.reduce((s, p) => s + p.timeoutSeconds + 120, 0)) * 1000,
        );
        ran[i] = vm;
        writeFileSync(
          join(REPO, '.cache', `${kind}-vm-lane${i + 1}-console.log`),
          vm.lines.map((l) => `[${l.seconds.toFixed(1)} s ${l.cpuSeconds.toFixed(1)} cpu] ${l.text}`).join('\n'),
        );
      }),
    );
  });

  lanes.forEach((lane, i) => {
    test(`${kind} VM, lane ${i + 1}: it booted, ran ${lane.map((p) => p.name).join(', ')} each to its end, and powered off`, (t) => {
      const vm = ran[i];
      assert.ok(vm, 'the lane booted');
      const begun = vm.lines.findIndex((l) => marker(l).startsWith('qh-part: begin '));
      t.diagnostic(
        `boot: ${begun < 0 ? '?' : `${vm.lines[begun]!.seconds.toFixed(0)} s, ${vm.lines[begun]!.cpuSeconds.toFixed(0)} CPU s`}; ` +
          `whole VM: ${vm.seconds.toFixed(0)} s, ${vm.cpuSeconds.toFixed(0)} CPU s`,
      );
      for (const p of lane) {
        const r = partResult(vm, p.name);
        t.diagnostic(`${p.name}: ${r.seconds.toFixed(0)} s, ${r.cpuSeconds.toFixed(0)} CPU s (weight ${p.cpuSeconds})`);
      }
      assert.equal(vm.timedOut, false, `the lane's VM ran out of time:\n${vm.console.slice(-4000)}`);
      for (const p of lane)
        assert.ok(
          vm.lines.some((l) => marker(l).startsWith(`qh-part: end ${p.name} `)),
          `${p.name} ran to its end marker:\n${vm.console.slice(-4000)}`,
        );
      assert.equal(vm.exitCode, 0, 'QEMU exited on the power-off');
    });
    for (const p of lane)
      p.tests(() => {
        const vm = ran[i];
        assert.ok(vm, `the ${kind} VM of lane ${i + 1} did not run`);
        return partResult(vm, p.name);
      });
  });
}
