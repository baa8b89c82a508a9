#!/usr/bin/env bash
# Compares, on the same backup in one run, `rear-restore restore` against the plain pipeline
# `zstd -dc backup.tar.zst | tar -x` (same tar options, same kind of target: an empty
# directory on the same file system) and prints throughput and the ratio. Run through
# `make bench` (static release binaries). Target (issue 1): at least 90% of the pipeline.
#
# SRC (default /usr/share) is backed up once with `rear-mkimage backup --root SRC`; RUNS restores
# of each kind alternate so cache and disk state favour neither.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${REAR_BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
RUNS=${RUNS:-3}
SRC=${SRC:-/usr/share}
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rear-bench-restore.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

command -v zstd >/dev/null || { echo "zstd missing: apt-get install zstd" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "run as root: restores keep owners and device nodes" >&2; exit 1; }

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo '{"version":1,"mounts":[{"device":"/dev/bench","target":"/"}]}' > "$WORK/layout.json"
t0=$(now)
"$BIN/rear-mkimage" backup --layout "$WORK/layout.json" --root "$SRC" \
  --backup-url "file://$WORK/backup" >"$WORK/backup.log" 2>&1 || { cat "$WORK/backup.log" >&2; exit 1; }
t1=$(now)
raw=$(sed -n 's/^  "raw": \([0-9]*\).*/\1/p' "$WORK/backup/backup.json")
size=$(stat -c %s "$WORK/backup/backup.tar.zst")
printf 'backup of %s: %d MB of tar stream -> %d MB zstd in %.1f s (%.0f MB/s)\n' \
  "$SRC" $((raw / 1000000)) $((size / 1000000)) "$(echo "$t1 - $t0" | bc -l)" \
  "$(echo "$raw / ($t1 - $t0) / 1000000" | bc -l)"

# The same extraction options rear-restore gives tar.
TAR_X=(--extract --file=- --numeric-owner --same-owner --preserve-permissions --overwrite-dir
  --format=pax --xattrs --xattrs-include='*' --acls --selinux --sparse)

# Wall time and CPU time (user + sys, tar included) per run: on a shared machine the wall
# time swings with other load, the CPU time shows the work each way really does.
run_rear() {
  "$BIN/rear-restore" restore --backup-url "file://$WORK/backup" --target "$WORK/target" \
    --config /nonexistent >/dev/null 2>"$WORK/restore.log" || { cat "$WORK/restore.log" >&2; exit 1; }
}
run_pipe() {
  zstd -dc "$WORK/backup/backup.tar.zst" | tar "${TAR_X[@]}" --directory="$WORK/target"
}
declare -A wall cpu
for i in $(seq "$RUNS"); do
  for kind in rear pipe; do
    rm -rf "$WORK/target"; mkdir "$WORK/target"; sync
    TIMEFORMAT='%R %U %S'
    t=$( { time "run_$kind" ; } 2>&1 )
    read -r real user sys <<<"$t"
    wall[$kind]+="$real "
    cpu[$kind]+="$(echo "$user + $sys" | bc -l) "
  done
done
minimum() { printf '%s\n' "$@" | sort -g | head -n 1; }
for kind in rear pipe; do
  # shellcheck disable=SC2086
  med=$(median ${wall[$kind]}); min=$(minimum ${wall[$kind]}); c=$(median ${cpu[$kind]})
  printf '%-22s median %6.2f s (%4.0f MB/s), best %6.2f s (%4.0f MB/s), CPU %5.2f s  (runs: %s)\n' \
    "$([ "$kind" = rear ] && echo 'rear-restore restore' || echo 'zstd -dc | tar -x')" \
    "$med" "$(echo "$raw / $med / 1000000" | bc -l)" "$min" "$(echo "$raw / $min / 1000000" | bc -l)" \
    "$c" "${wall[$kind]}"
  eval "${kind}_med=$med ${kind}_min=$min"
done
printf 'rear-restore throughput = %.0f%% of the pipeline by median, %.0f%% by best run (target: >= 90%%)\n' \
  "$(echo "100 * $pipe_med / $rear_med" | bc -l)" "$(echo "100 * $pipe_min / $rear_min" | bc -l)"
