#!/bin/sh
# Guest side of the Debian source-system images (see build.sh): runs in this project's rescue
# system, booted with the disk build.sh made as /dev/vda, this script as /dev/vdb and, for the
# LVM variant, the root file system image as /dev/vdc.
#
#   sh /dev/vdb plain|lvm
#
# It makes what the host cannot (LVM: loop devices have no partition nodes here), mounts the
# tree, and installs GRUB for both platforms and grub.cfg from inside it, as the distribution's
# installer does. The rescue system runs no udev: LVM makes its own device nodes and the
# /dev/disk/by-uuid links GRUB's scripts look for are made by hand.
set -eu
variant=$1
T=/mnt/e2e
export DM_DISABLE_UDEV=1
step() { echo "assemble: $*"; }
# The rescue system loads drivers for devices, not for file systems.
for m in ext4 vfat nls_cp437 nls_utf8 dm_mod; do
  modprobe $m 2>/dev/null || true
done

case $variant in
  plain)
    root=/dev/vda3
    ;;
  lvm)
    step "LVM on /dev/vda4"
    lvm pvcreate -y -ff --uuid e2e0pv-0000-0000-0000-0000-0000-000001 --norestorefile /dev/vda4
    lvm vgcreate -y e2evg /dev/vda4
    size=$(blockdev --getsize64 /dev/vdc)
    lvm lvcreate -y -W n -Z n -n root -L "${size}b" e2evg
    lvm vgmknodes e2evg
    root=/dev/mapper/e2evg-root
    step "root file system into $root"
    # The real dd (busybox's may shadow it in the shell): conv=sparse leaves holes unwritten.
    /usr/bin/dd if=/dev/vdc of=$root bs=4M conv=sparse status=none
    ;;
  *)
    echo "assemble: unknown variant $variant" >&2
    exit 2
    ;;
esac

step "mount"
mkdir -p $T
mount $root $T
[ "$variant" = lvm ] && mount /dev/vda3 $T/boot
# iocharset: the rescue system carries nls_utf8, not the default nls_ascii.
mount -o iocharset=utf8 /dev/vda2 $T/boot/efi
mount --bind /dev $T/dev
mount -t proc proc $T/proc
mount -t sysfs sysfs $T/sys
mkdir -p /dev/disk/by-uuid
for dev in /dev/vda2 /dev/vda3 $root; do
  uuid=$(blkid -s UUID -o value $dev)
  ln -sf "$dev" "/dev/disk/by-uuid/$uuid"
done

in_root() { chroot $T /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C "$@"; }
step "grub-install i386-pc"
in_root grub-install --target=i386-pc /dev/vda
step "grub-install x86_64-efi"
in_root grub-install --target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram
step "update-grub"
in_root update-grub
grep -m1 -o 'linux.*vmlinuz.*' $T/boot/grub/grub.cfg

step "unmount"
umount $T/sys $T/proc $T/dev $T/boot/efi
[ "$variant" = lvm ] && umount $T/boot
umount $T
[ "$variant" = lvm ] && lvm vgchange -an e2evg
sync
echo "assemble: done $variant"
