#!/usr/bin/env bash
# Times `rear-mkimage --output iso` against the tool it replaces, Relax-and-Recover
# (`rear mkrescue` from Debian's rear package, OUTPUT=ISO, configured from
# ../shared/bench/rear-reference.conf.template), in one run on this machine, and prints wall
# time, ISO size and initrd size of both and the ratios. Run through `make bench`.
# Targets (issue 4): at least 20x faster, ISO at most a quarter of the size.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${REAR_BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
TEMPLATE=${REAR_REFERENCE_TEMPLATE:-../shared/bench/rear-reference.conf.template}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rear-iso-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
[ -f "$TEMPLATE" ] || { echo "missing $TEMPLATE (the shared/ folder beside the checkout)" >&2; exit 1; }
command -v rear >/dev/null || { echo "rear missing: apt-get install rear" >&2; exit 1; }

KVER=${KVER:-$(ls /boot/vmlinuz-* | sed 's|/boot/vmlinuz-||' | sort -V | tail -n 1)}
now() { date +%s.%N; }

mkdir -p "$WORK/conf" "$WORK/tmp" "$WORK/out" "$WORK/iso"
sed -e "s|@DIR@|$WORK|g" -e "s|@KVER@|$KVER|g" "$TEMPLATE" > "$WORK/conf/local.conf"
t0=$(now)
TMPDIR="$WORK/tmp" rear -c "$WORK/conf" mkrescue > "$WORK/rear.log" 2>&1 || { tail -20 "$WORK/rear.log" >&2; exit 1; }
t1=$(now)
ref_time=$(echo "$t1 - $t0" | bc -l)
ref_iso=$(ls "$WORK"/iso/*.iso | head -n 1)
ref_iso_size=$(stat -c %s "$ref_iso")
ref_initrd_size=$(xorriso -indev "$ref_iso" -find / -name 'initrd*' -exec lsdl 2>/dev/null | awk '{print $5}' | sort -n | tail -n 1)

t0=$(now)
"$BIN/rear-mkimage" --output iso,initrd --kernel "$KVER" --out "$WORK/rear" > /dev/null 2> "$WORK/mkimage.log"
t1=$(now)
our_time=$(echo "$t1 - $t0" | bc -l)
our_iso=$(ls "$WORK"/rear/*.iso | head -n 1)
our_iso_size=$(stat -c %s "$our_iso")
our_initrd_size=$(stat -c %s "$WORK/rear/initrd-$KVER.img")

mb() { echo "$1/1000000" | bc -l; }
printf 'kernel %s, one run each, 2 cores: %s\n' "$KVER" "$(nproc)"
printf '  rear mkrescue (ReaR %s)   %7.2f s  ISO %6.1f MB  initrd %6.1f MB\n' "$(rear -V | awk '{print $2}')" "$ref_time" "$(mb "$ref_iso_size")" "$(mb "${ref_initrd_size:-0}")"
printf '  rear-mkimage --output iso  %7.2f s  ISO %6.1f MB  initrd %6.1f MB\n' "$our_time" "$(mb "$our_iso_size")" "$(mb "$our_initrd_size")"
printf '  speed-up %.1fx (target >= 20x), ISO size ratio %.3f (target <= 0.25)\n' "$(echo "$ref_time / $our_time" | bc -l)" "$(echo "$our_iso_size / $ref_iso_size" | bc -l)"
