#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real: QEMU to boot guests, systemd and systemd-nspawn for
# units, AppArmor's parser, busybox and cpio for the test VM's initramfs, udev for the test VM's udevd, virsh
# (with libvirt's built-in test driver, no daemon) for `import libvirt --running`, cmark to render the bundle
# README, logrotate for the serial-log rotation a bundle installs.
# openssl makes the throwaway CA and certificates of the TLS proofs. e2fsprogs, btrfs-progs and lvm2 make the file
# systems and volumes on loop devices that prove the host's own storage is never a guest's disk.
# openssh-client brings ssh-keygen, which makes and checks the signatures of bundles (and their throwaway keys).
# swtpm and swtpm-tools for the guests' TPMs; sbsigntool signs the EFI program of the Secure Boot proof.
# Ansible (ansible-core with the community collections) and ansible-lint for the exported role.
# debootstrap and Debian's archive keyring build the Debian 13 root the trixie proofs boot (test/debian-root.ts); xz-utils
# decompresses the modules of the newer Debian kernel the trixie VM boots (Debian 13 on ship them as .ko.xz).
# acl: getfacl, which audit runs to read device ACLs, and setfacl, with which its tests give nodes and disks ACLs that
# grant or deny an ordinary user.
# SELinux without an SELinux kernel: Debian's reference policy and its store (selinux-policy-default), semodule,
# setfiles and restorecon (policycoreutils), matchpathcon (selinux-utils) and sesearch (setools), for verify's
# build of the modules into a copy of the store and for the labelled root of the enforcing proof VM, which mke2fs
# (e2fsprogs) packs into an image.
# man-db: man, which finds the man pages the units' Documentation= names.
set -euo pipefail

packages=(
  qemu-system-x86 qemu-utils ovmf seabios ipxe-qemu swtpm swtpm-tools sbsigntool passt
  systemd systemd-container udev
  apparmor
  busybox-static cpio cmark logrotate
  iproute2 strace tmux coreutils python3 openssl openssh-client
  e2fsprogs btrfs-progs lvm2
  libvirt-clients
  ansible ansible-lint
  debootstrap debian-archive-keyring xz-utils
  acl man-db
  selinux-policy-default policycoreutils selinux-utils setools
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

# Installing systemd and udev re-applies their permissions to the host's own device nodes. The tests never
# change those nodes, so neither may their set-up: remember owner and mode, and put them back afterwards.
saved=()
for node in /dev/kvm /dev/net/tun /dev/vhost-net; do
  [ -e "$node" ] && saved+=("$node:$(stat -c '%u:%g:%a' "$node")")
done

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for entry in "${saved[@]}"; do
  IFS=: read -r node uid gid mode <<<"$entry"
  chown "$uid:$gid" "$node"
  chmod "$mode" "$node"
done
