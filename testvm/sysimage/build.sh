#!/bin/bash
# Host side of the Debian "source system" images for the end-to-end recovery tests
# (testvm/sysimage.rs runs it as root; the guest side is assemble.sh).
#
#   build.sh rootfs WORK          debootstrap + apt-get in a chroot + configuration -> WORK/root
#   build.sh disk WORK VARIANT    WORK/VARIANT.img (GPT, BIOS boot, ESP, root or /boot + LVM PV)
#                                 with the file systems placed at their offsets, WORK/VARIANT-root.img
#                                 (lvm: the root file system, copied into the LV by the guest)
#
# Everything that identifies a disk is fixed (disk and partition UUIDs, file system UUIDs), so
# the tests, fstab and grub.cfg agree and the images are the same on every machine except for
# package versions. Any change to this file or assemble.sh changes the cache key.
set -euo pipefail

SUITE=bookworm
HOSTNAME=rear-e2e
# The packages of the source system: kernel, init, both GRUB platforms (one disk boots under
# BIOS and UEFI), the tools a restore and a layout capture use, and what rear-mkimage needs to
# build an ISO on it (Makefile BUILD_PACKAGES).
PACKAGES="linux-image-amd64 systemd-sysv udev kmod initramfs-tools zstd
  grub-efi-amd64-bin grub-pc-bin grub2-common grub-common
  e2fsprogs dosfstools fdisk lvm2 tar attr acl procps
  isolinux syslinux-common mtools"

# Disk geometry in MiB: BIOS boot 1 MiB at 1 MiB, ESP, then root (plain) or /boot + LVM PV.
DISK_MIB=3072
ESP_START=2
ESP_MIB=64
BOOT_MIB=256
# The LV is a whole number of 4 MiB extents and leaves room for the PV's metadata.
LV_MIB=2600

DISK_UUID=5EA1E2E0-0000-4000-8000-000000000000
BIOS_PARTUUID=5EA1E2E0-0000-4000-8000-000000000001
ESP_PARTUUID=5EA1E2E0-0000-4000-8000-000000000002
PART3_PARTUUID=5EA1E2E0-0000-4000-8000-000000000003
PART4_PARTUUID=5EA1E2E0-0000-4000-8000-000000000004
ESP_VOLID=E2E0ABCD # shows as UUID E2E0-ABCD
PLAIN_ROOT_UUID=e2e00000-0000-4000-8000-00000000a001
LVM_ROOT_UUID=e2e00000-0000-4000-8000-00000000b001
LVM_BOOT_UUID=e2e00000-0000-4000-8000-00000000b002

log() { echo "build.sh: $*" >&2; }

# The Debian mirror of this machine's apt sources (deb822 or one-line format).
mirror() {
  if [ -n "${REAR_E2E_MIRROR:-}" ]; then echo "$REAR_E2E_MIRROR"; return; fi
  local m=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    m=$(awk 'tolower($1)=="uris:" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "error: no Debian mirror in /etc/apt/sources*; set REAR_E2E_MIRROR" >&2; exit 1; }
  echo "$m"
}

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }

umount_root() {
  local m
  for m in dev/pts dev sys proc; do
    mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"
  done
  return 0
}

rootfs() {
  WORK=$1
  command -v debootstrap >/dev/null ||
    { echo "error: debootstrap not found: install the Debian package debootstrap" >&2; exit 1; }
  ROOT=$WORK/root
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  local m
  m=$(mirror)
  log "debootstrap --variant=minbase $SUITE from $m"
  local t0=$SECONDS
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$m" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
  echo "PHASE debootstrap $((SECONDS - t0))"

  t0=$SECONDS
  trap umount_root EXIT
  mount -t proc proc "$ROOT/proc"
  mount -t sysfs sysfs "$ROOT/sys"
  mount --bind /dev "$ROOT/dev"
  mount --bind /dev/pts "$ROOT/dev/pts"
  # No daemons from package scripts in the chroot; no fsync per file (the image is built once).
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod 755 "$ROOT/usr/sbin/policy-rc.d"
  echo force-unsafe-io >"$ROOT/etc/dpkg/dpkg.cfg.d/unsafe-io"
  # The initramfs must not look for the build host's swap to resume from.
  mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
  echo RESUME=none >"$ROOT/etc/initramfs-tools/conf.d/resume"
  echo "$HOSTNAME" >"$ROOT/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$HOSTNAME" >"$ROOT/etc/hosts"
  # grub-efi-amd64-bin and grub-pc-bin (both platforms at once) ship no /etc/default/grub.
  mkdir -p "$ROOT/etc/default"
  cat >"$ROOT/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_TIMEOUT_STYLE=menu
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
# norandmaps: programs start several times faster under QEMU TCG.
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 norandmaps panic=5"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
EOF
  log "apt-get install $(echo $PACKAGES)"
  in_root apt-get update -qq >"$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; exit 1; }
  # shellcheck disable=SC2086
  in_root apt-get install -y -q --no-install-recommends $PACKAGES >>"$WORK/apt.log" 2>&1 ||
    { tail -n 30 "$WORK/apt.log" >&2; exit 1; }
  in_root apt-get clean
  rm -f "$ROOT/usr/sbin/policy-rc.d" "$ROOT/etc/dpkg/dpkg.cfg.d/unsafe-io"
  rm -rf "$ROOT"/var/lib/apt/lists/*
  echo "PHASE chroot-install $((SECONDS - t0))"

  t0=$SECONDS
  # root logs in on the serial console by itself (password "rear" for other consoles) and its
  # login shell prints the marker the tests wait for.
  echo 'root:rear' | in_root chpasswd
  mkdir -p "$ROOT/etc/systemd/system/serial-getty@ttyS0.service.d"
  cat >"$ROOT/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
EOF
  cat >>"$ROOT/root/.profile" <<'EOF'
# rear end-to-end tests: a plain prompt, and a marker once the login shell reads commands.
if [ "$(tty)" = /dev/ttyS0 ]; then
  PS1='# '
  stty cols 200 2>/dev/null
  echo "rear-e2e ready $(uname -r)"
fi
EOF
  # The serial console is the test's only console: no other gettys, no network wait.
  in_root systemctl mask getty@tty1.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
  marker
  echo "PHASE configure $((SECONDS - t0))"
  umount_root
  trap - EXIT
}

# /srv/marker: files whose content, links, holes and attributes a backup and restore must keep.
marker() {
  local d=$ROOT/srv/marker
  mkdir -p "$d"
  printf 'rear end-to-end marker: a regular file\n' >"$d/regular.txt"
  ln "$d/regular.txt" "$d/hardlink.txt"
  ln -s regular.txt "$d/symlink.txt"
  # 64 MiB apparent size, two 4 KiB blocks of data at the ends.
  : >"$d/sparse.bin"
  printf 'sparse head\n' | dd of="$d/sparse.bin" bs=4096 conv=notrunc,sync status=none
  printf 'sparse tail\n' | dd of="$d/sparse.bin" bs=4096 seek=16383 conv=notrunc,sync status=none
  printf 'a file with an extended attribute\n' >"$d/xattr.txt"
  in_root setfattr -n user.rear.marker -v e2e-xattr-value /srv/marker/xattr.txt
  mkdir -p "$d/sub/dir"
  printf '%s\n' 'nested file' >"$d/sub/dir/nested.txt"
  chmod 0640 "$d/sub/dir/nested.txt"
  (cd "$d" && sha256sum regular.txt hardlink.txt symlink.txt sparse.bin xattr.txt sub/dir/nested.txt \
    >SHA256SUMS)
  cp "$d/SHA256SUMS" "$WORK/marker.sha256"
}

# One ext4 file system of SIZE MiB with UUID and LABEL from directory SRC, made by the host's
# mke2fs with the guest's defaults (its mke2fs.conf): GRUB and e2fsck of the guest read it.
mkext4() {
  local out=$1 size=$2 uuid=$3 label=$4 src=$5
  rm -f "$out"
  MKE2FS_CONFIG=$ROOT/etc/mke2fs.conf mkfs.ext4 -q -F -t ext4 -U "$uuid" -L "$label" \
    -E root_owner=0:0 -d "$src" "$out" "${size}M" >&2
}

# Copies IMAGE into DISK at START MiB without writing its holes.
place() {
  dd if="$1" of="$2" bs=1M seek="$3" conv=notrunc,sparse status=none
}

disk() {
  WORK=$1
  ROOT=$WORK/root
  local variant=$2 img=$WORK/$2.img
  rm -f "$img" "$WORK/$variant"-*.img
  truncate -s "${DISK_MIB}M" "$img"
  local esp_end=$((ESP_START + ESP_MIB))
  # fstab by UUID; the kernel's root= comes from update-grub in the guest.
  case $variant in
    plain)
      sfdisk -q --no-reread --no-tell-kernel "$img" <<EOF
label: gpt
label-id: $DISK_UUID
unit: sectors
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=$BIOS_PARTUUID, name=bios
start=$((ESP_START * 2048)), size=$((ESP_MIB * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_PARTUUID, name=esp
start=$((esp_end * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$PART3_PARTUUID, name=root
EOF
      cat >"$ROOT/etc/fstab" <<EOF
UUID=$PLAIN_ROOT_UUID / ext4 errors=remount-ro 0 1
UUID=${ESP_VOLID:0:4}-${ESP_VOLID:4:4} /boot/efi vfat umask=0077 0 1
EOF
      mkdir -p "$ROOT/boot/efi"
      local root_mib=$((DISK_MIB - esp_end - 1))
      mkext4 "$WORK/$variant-root.img" "$root_mib" "$PLAIN_ROOT_UUID" root "$ROOT"
      place "$WORK/$variant-root.img" "$img" "$esp_end"
      rm -f "$WORK/$variant-root.img"
      ;;
    lvm)
      sfdisk -q --no-reread --no-tell-kernel "$img" <<EOF
label: gpt
label-id: $DISK_UUID
unit: sectors
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=$BIOS_PARTUUID, name=bios
start=$((ESP_START * 2048)), size=$((ESP_MIB * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_PARTUUID, name=esp
start=$((esp_end * 2048)), size=$((BOOT_MIB * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$PART3_PARTUUID, name=boot
start=$(((esp_end + BOOT_MIB) * 2048)), type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=$PART4_PARTUUID, name=lvm
EOF
      cat >"$ROOT/etc/fstab" <<EOF
UUID=$LVM_ROOT_UUID / ext4 errors=remount-ro 0 1
UUID=$LVM_BOOT_UUID /boot ext4 defaults 0 2
UUID=${ESP_VOLID:0:4}-${ESP_VOLID:4:4} /boot/efi vfat umask=0077 0 1
EOF
      # /boot is its own file system: the root image gets an empty /boot.
      local boot=$WORK/boot-tree
      rm -rf "$boot"
      mv "$ROOT/boot" "$boot"
      mkdir -p "$ROOT/boot"
      mkdir -p "$boot/efi"
      mkext4 "$WORK/$variant-root.img" "$LV_MIB" "$LVM_ROOT_UUID" root "$ROOT" || {
        rmdir "$ROOT/boot"; mv "$boot" "$ROOT/boot"; exit 1; }
      rmdir "$ROOT/boot"
      mv "$boot" "$ROOT/boot"
      mkext4 "$WORK/$variant-boot.img" "$BOOT_MIB" "$LVM_BOOT_UUID" boot "$ROOT/boot"
      place "$WORK/$variant-boot.img" "$img" "$esp_end"
      rm -f "$WORK/$variant-boot.img"
      ;;
    *) echo "error: unknown variant $variant (plain, lvm)" >&2; exit 2 ;;
  esac
  rm -f "$WORK/esp.img"
  mkfs.vfat -C -F 32 -n ESP -i "$ESP_VOLID" "$WORK/esp.img" $((ESP_MIB * 1024)) >/dev/null
  place "$WORK/esp.img" "$img" "$ESP_START"
  rm -f "$WORK/esp.img"
}

case "${1:-}" in
  rootfs) rootfs "$2" ;;
  disk) disk "$2" "$3" ;;
  *) echo "usage: $0 rootfs WORK | disk WORK plain|lvm" >&2; exit 2 ;;
esac
