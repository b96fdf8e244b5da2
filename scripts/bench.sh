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

# The audit commands as whole commands on 100 and 10,000 runs (BENCH_AUDIT_CLI=0 skips it: filling
# the long history takes minutes), then export and verify of the long one.
if [ "${BENCH_AUDIT_CLI:-1}" = 1 ]; then
  short=$(mktemp -u /tmp/provision-bench-short-XXXXXX); long=$(mktemp -u /tmp/provision-bench-long-XXXXXX)
  BENCH_FILL_ONLY="$short" BENCH_HISTORY_RUNS=100 .build/release/provision-bench
  BENCH_FILL_ONLY="$long" .build/release/provision-bench
  for r in "$short" "$long"; do .build/release/provision blame /etc/default/grub --root "$r" >/dev/null; done
  for cmd in "history -n 20" "diff 50" "blame /etc/default/grub" "status"; do
    line="$cmd:"
    for r in "$short" "$long"; do
      values=()
      # shellcheck disable=SC2086
      for _ in $(seq 15); do values+=("$(time_ms .build/release/provision $cmd --root "$r")"); done
      line="$line $(printf '%s\n' "${values[@]}" | median) ms"
    done
    echo "CLI $line (100 runs, ${BENCH_HISTORY_RUNS:-10000} runs)"
  done
  archive=$(mktemp -u /tmp/provision-bench-XXXXXX.tar.zst)
  printf 'export of the long history: %s ms, ' "$(( $(time_ms .build/release/provision export "$archive" --root "$long") / 1000 ))"
  printf 'export --verify: %s ms, %s bytes\n' "$(( $(time_ms .build/release/provision export --verify "$archive") / 1000 ))" "$(stat -c %s "$archive")"
  rm -rf "$short" "$long" "$archive"
fi
