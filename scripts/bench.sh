#!/usr/bin/env bash
# Speed figures (release build): in-process medians, then whole-CLI wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product provision-bench >/dev/null
swift build -c release --product provision >/dev/null
.build/release/provision-bench

# Whole command, process start included: median of 30 runs each.
root=$(mktemp -d /tmp/provision-bench-cli-XXXXXX)
cp -a snapshots/arch/. "$root/"
recipe=recipes/vfio-passthrough.yaml
time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}'; }
apply=(); noop=(); plan=(); rollback=()
for _ in $(seq 30); do
  plan+=("$(time_ms .build/release/provision plan "$recipe" --root "$root")")
  apply+=("$(time_ms .build/release/provision apply "$recipe" --root "$root" --no-handlers)")
  noop+=("$(time_ms .build/release/provision apply "$recipe" --root "$root" --no-handlers)")
  rollback+=("$(time_ms .build/release/provision rollback --root "$root" --no-handlers)")
done
printf 'CLI wall time (process start included), medians: plan %s ms, apply %s ms, no-op %s ms, rollback %s ms\n' \
  "$(printf '%s\n' "${plan[@]}" | median)" "$(printf '%s\n' "${apply[@]}" | median)" \
  "$(printf '%s\n' "${noop[@]}" | median)" "$(printf '%s\n' "${rollback[@]}" | median)"
rm -rf "$root"
