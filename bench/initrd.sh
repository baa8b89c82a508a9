#!/usr/bin/env bash
# Times `rear-mkimage --output initrd` against Debian's `mkinitramfs` on this machine, in one
# run, and prints wall times, sizes and the ratios. Run through `make bench` (which builds the
# static binaries and installs initramfs-tools); the QEMU boot test in testvm/ proves the
# image boots. Target (issue 2): at least 10x faster than mkinitramfs.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${REAR_BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
RUNS=${RUNS:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rear-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

KVER=${KVER:-$(ls /boot/vmlinuz-* | sed 's|/boot/vmlinuz-||' | sort -V | tail -n 1)}
[ -d "/lib/modules/$KVER" ] || { echo "no /lib/modules/$KVER: install a kernel package" >&2; exit 1; }
command -v mkinitramfs >/dev/null || { echo "mkinitramfs missing: apt-get install initramfs-tools" >&2; exit 1; }

now() { date +%s.%N; }
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rear_times=()
for i in $(seq "$RUNS"); do
  rm -rf "$WORK/rear"
  t0=$(now)
  "$BIN/rear-mkimage" --output initrd --kernel "$KVER" --out "$WORK/rear" >/dev/null 2>"$WORK/rear.log"
  t1=$(now)
  rear_times+=("$(echo "$t1 - $t0" | bc -l)")
done
rear_size=$(stat -c %s "$WORK/rear/initrd-$KVER.img")

mk_times=()
for i in $(seq "$RUNS"); do
  rm -f "$WORK/mkinitramfs.img"
  t0=$(now)
  mkinitramfs -o "$WORK/mkinitramfs.img" "$KVER" 2>/dev/null
  t1=$(now)
  mk_times+=("$(echo "$t1 - $t0" | bc -l)")
done
mk_size=$(stat -c %s "$WORK/mkinitramfs.img")

rt=$(median "${rear_times[@]}")
mt=$(median "${mk_times[@]}")
printf 'kernel %s, %d runs each, median wall time (2 cores: %s)\n' "$KVER" "$RUNS" "$(nproc)"
printf '  rear-mkimage --output initrd  %6.2f s  %6.1f MB   (%s)\n' "$rt" "$(echo "$rear_size/1000000" | bc -l)" "$(tail -n 1 "$WORK/rear.log" | sed 's/^rear-mkimage: //')"
printf '  mkinitramfs -o FILE %s  %6.2f s  %6.1f MB\n' "$KVER" "$mt" "$(echo "$mk_size/1000000" | bc -l)"
printf '  speed-up %.1fx (target >= 10x), size ratio rear/mkinitramfs %.2f\n' "$(echo "$mt / $rt" | bc -l)" "$(echo "$rear_size / $mk_size" | bc -l)"
