// The host's own storage under a real Debian kernel (test/vmboot.ts), for what this machine's kernel may lack:
// partitions, swap, and LVM (device-mapper) built on a device. Inside the VM, loop devices over images in its own
// tmpfs get an ext4 partition mounted and a swap partition, a physical volume whose volume group has one logical
// volume mounted and one idle, and a swap device; `generate` is asked about each, and `apply` installs a bundle
// whose disk is the mounted logical volume (refused, nothing installed) and one whose disk is the idle volume. A part
// of the shared AppArmor VM (test/apparmor-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BIN, generateBundle, REPO } from '../helpers.js';
import { assertProofDone, reported, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const QH = BIN.replace(REPO, '/qh');

/** An MBR with two primary partitions: 8 MiB Linux at 1 MiB, then 4 MiB Linux swap. */
function mbr(): Buffer {
  const b = Buffer.alloc(512);
  const entry = (at: number, type: number, start: number, sectors: number) => {
    b[at + 4] = type;
    b.writeUInt32LE(start, at + 8);
    b.writeUInt32LE(sectors, at + 12);
  };
  entry(446, 0x83, 2048, 16384);
  entry(462, 0x82, 18432, 8192);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

const answers = (disk: string) => ({
  schemaVersion: 1,
  useCase: 'emulation',
  acceptedRisks: [{ risk: 'emulation', reason: 'the proof VM has no KVM; its guest never starts' }],
  guests: [{ name: 'g', memoryMiB: 64, disks: [{ path: disk, format: 'raw', blockDevice: true }] }],
});

/** The devices the proof asks about, in the order of the disks of its one answers document. */
const ASKED = ['whole', 'pv', 'lvroot', 'lvidle', 'swap', 'free'] as const;

const PROOF = `cd /
mkdir -p /mnt/p1 /mnt/lv /run/qh
lv() { lvm "$@" --config 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 }'; }
truncate -s 24M /run/qh/parted.img && dd if=/images/mbr.bin of=/run/qh/parted.img conv=notrunc status=none
for i in pv swap free; do truncate -s 32M /run/qh/$i.img; done
P=$(losetup --find --show --partscan /run/qh/parted.img)
wait_until 20 test -b \${P}p2
mkfs.ext4 -q \${P}p1 && mount \${P}p1 /mnt/p1
r part_mounted $?
mkswap \${P}p2 > /dev/null && swapon \${P}p2
r part_swap $?
V=$(losetup --find --show /run/qh/pv.img)
lv pvcreate -q $V && lv vgcreate -q qhvg $V && lv lvcreate -q -L 8M -n root qhvg && lv lvcreate -q -L 8M -n idle qhvg
r lvm $?
wait_until 20 test -b /dev/qhvg/idle
mkfs.ext4 -q /dev/qhvg/root && mount /dev/qhvg/root /mnt/lv
r lv_mounted $?
S=$(losetup --find --show /run/qh/swap.img)
mkswap $S > /dev/null && swapon $S
r swap $?
F=$(losetup --find --show /run/qh/free.img)
r devices "$P $V $S $F"
# One guest per device, in the order of ASKED: one run of generate judges them all.
disk() { printf '{"name":"%s","memoryMiB":64,"disks":[{"path":"%s","format":"raw","blockDevice":true}]}' "$1" "$2"; }
printf '{"schemaVersion":1,"useCase":"virtualization","guests":[%s,%s,%s,%s,%s,%s]}' "$(disk whole $P)" "$(disk pv $V)" "$(disk lvroot /dev/qhvg/root)" "$(disk lvidle /dev/qhvg/idle)" "$(disk swap $S)" "$(disk free $F)" > /run/qh/asked.json
node ${QH} generate --answers /run/qh/asked.json --dry-run > /run/qh/asked.out 2>&1
r asked_exit $?
r asked_text "$(tr '\\n' '|' < /run/qh/asked.out)"
node ${QH} apply /bundle --yes > /run/qh/apply-held.out 2>&1
r apply_held_exit $?
r apply_held_text "$(tr '\\n' ' ' < /run/qh/apply-held.out)"
r apply_held_installed "$(test -e /etc/systemd/system/qemu-g.service && echo yes || echo no)"
node ${QH} apply /bundle-idle --yes > /run/qh/apply-idle.out 2>&1
r apply_idle_exit $?
r apply_idle_installed "$(test -e /etc/systemd/system/qemu-g.service && echo yes || echo no)"
r done yes
`;

export const hostStorage: VmPart = {
  name: 'host-storage',
  cpuSeconds: 22,
  timeoutSeconds: 900,
  tools: [
    ['lvm', 'lvm2'],
    ['mkfs.ext4', 'e2fsprogs'],
    ['losetup', 'mount'],
  ],
  modules: ['loop', 'dm_mod', 'ext4', 'crc32c_generic'],
  // What the reset does not know of: the swap, the mounts, the volume group and the loop devices under them.
  cleanup: `swapoff -a
umount /mnt/lv /mnt/p1
lvm vgchange -q -an qhvg --config 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 }'
losetup -D
`,
  async prepare(root, work) {
    mkdirSync(join(work, 'held'));
    mkdirSync(join(work, 'idle'));
    const held = await generateBundle(join(work, 'held'), answers('/dev/qhvg/root'));
    const idle = await generateBundle(join(work, 'idle'), answers('/dev/qhvg/idle'));
    cpSync(held, join(root, 'bundle'), { recursive: true });
    cpSync(idle, join(root, 'bundle-idle'), { recursive: true });
    mkdirSync(join(root, 'images'));
    writeFileSync(join(root, 'images/mbr.bin'), mbr());
    return PROOF;
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('the host’s own storage under a real kernel: partitions, swap and LVM', () => {
    const result = (key: string) => reported(part(), key);
    const devices = () => {
      const [p, v, s, f] = result('devices').split(' ');
      return { p: p!, v: v!, s: s!, f: f! };
    };
    /** What generate said about the guest asked about this device, or undefined when it said nothing. */
    const said = (what: (typeof ASKED)[number]) =>
      result('asked_text')
        .split('|')
        .filter((l) => l.startsWith(`qemu-harden: guests.${ASKED.indexOf(what)}.`))
        .join('\n') || undefined;

    test('the VM built every device, and generate refused the answers naming each held one', () => {
      assertProofDone(part());
      for (const k of ['part_mounted', 'part_swap', 'lvm', 'lv_mounted', 'swap']) assert.equal(result(k), '0', k);
      assert.equal(result('asked_exit'), '2', result('asked_text'));
    });

    test('a disk whose partitions are mounted or swap is refused naming each partition', () => {
      const p = devices().p.replace('/dev/', '');
      assert.match(said('whole') ?? '', new RegExp(`${p}p1 on it is mounted on /mnt/p1 \\(ext4\\)`));
      assert.match(said('whole') ?? '', new RegExp(`${p}p2 on it is the host's swap`));
      assert.match(
        said('swap') ?? '',
        new RegExp(`${devices().s} holds the host's own storage.*it is the host's swap`),
      );
    });

    test('a physical volume is refused naming the mounted logical volume and the idle one built on it', () => {
      assert.match(said('pv') ?? '', /dm-\d+ \(qhvg-root\) on it is mounted on \/mnt\/lv \(ext4\)/);
      assert.match(said('pv') ?? '', /dm-\d+ \(qhvg-idle\) is built on it by the host's kernel/);
      assert.match(said('lvroot') ?? '', /\/dev\/qhvg\/root holds the host's own storage.*it is mounted on \/mnt\/lv/);
    });

    test('an idle logical volume and a free device are disks like any other', () => {
      assert.equal(said('lvidle'), undefined);
      assert.equal(said('free'), undefined);
    });

    test('apply on the target refuses the mounted volume before installing anything, and installs the idle one', () => {
      assert.equal(result('apply_held_exit'), '1', result('apply_held_text'));
      assert.match(
        result('apply_held_text'),
        /apply refused: a disk path on \/ is not what the answers say; nothing was changed: +guests\.0\.disks\.0\.path: \/dev\/qhvg\/root holds the host's own storage.*mounted on \/mnt\/lv \(ext4\)/,
      );
      assert.equal(result('apply_held_installed'), 'no');
      assert.equal(result('apply_idle_exit'), '0');
      assert.equal(result('apply_idle_installed'), 'yes');
    });
  });
}
