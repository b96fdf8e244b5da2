#!/usr/bin/env bash
# Speed figures (release build): in-process medians, then whole-CLI wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product provision-bench >/dev/null
swift build -c release --product provision >/dev/null
if [ "${BENCH_INPROCESS:-1}" = 1 ]; then .build/release/provision-bench; fi

# Whole commands, side by side, process start included (medians; BENCH_CLI_RUNS, default 30): the
# self-contained binary scripts/dist.sh builds (what the fleet pushes and the .deb installs), against
# `git add -A && git commit` of one changed file in a small repository, and against ansible-playbook
# making the same 8 edits (ansible-core from PyPI in a venv made here; BENCH_ANSIBLE=0 skips it).
scripts/dist.sh "${BENCH_DIST:-/tmp/provision-bench-dist}" >/dev/null
dist="${BENCH_DIST:-/tmp/provision-bench-dist}/provision"
runs=${BENCH_CLI_RUNS:-30}
# Where the roots and the git repository live: by default a fresh ext4 with its journal (Debian's
# mkfs defaults) on a loop file, as a host's root file system is, so that fsync and syncfs cost
# what they cost there and every run starts from the same file system; BENCH_FS=tmp uses /tmp (on
# this VM an ext4 without a journal, whose inode allocator slows down under create/delete churn).
loop_image= loop_mount=
cleanup() {
  if [ -n "$loop_mount" ]; then umount "$loop_mount" 2>/dev/null || true; rmdir "$loop_mount" 2>/dev/null || true; fi
  if [ -n "$loop_image" ]; then rm -f "$loop_image"; fi
}
trap cleanup EXIT
fs="/tmp ($(findmnt -n -o FSTYPE --target /tmp 2>/dev/null || echo unknown))"
if [ "${BENCH_FS:-loop}" = loop ] && [ "$(id -u)" = 0 ]; then
  loop_image=$(mktemp /tmp/provision-bench-fs-XXXXXX.img)
  loop_mount=$(mktemp -d /tmp/provision-bench-mnt-XXXXXX)
  truncate -s 1G "$loop_image"
  if mkfs.ext4 -q -F "$loop_image" && mount -o loop "$loop_image" "$loop_mount"; then
    fs="a fresh journaled ext4 on a loop file"
  else
    echo "bench: cannot mount a loop file system; measuring in /tmp" >&2
    rmdir "$loop_mount"; loop_mount=
  fi
fi
work=$(mktemp -d "${loop_mount:-/tmp}/provision-bench-cli-XXXXXX")
recipe=scripts/bench/eight-files.yaml
fresh() { # a copy of the Arch snapshot with the directories the 8 edits write into
  rm -rf "$work/root"; cp -a snapshots/arch "$work/root"
  mkdir -p "$work/root/etc/"{modprobe.d,modules-load.d,sysctl.d,security/limits.d}
  sync
}
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}'; }
# hyperfine (Debian's) times the whole commands: no shell around them, warm-up runs, and a
# --prepare command (untimed) that puts the root back before each timed run. Prints the median, ms.
command -v hyperfine >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
timed() { # PREPARE COMMAND...
  local prepare=$1; shift
  local options=(-N -w 3 -r "$runs" --export-json "$work/timing.json")
  [ -n "$prepare" ] && options+=(--prepare "$prepare")
  hyperfine "${options[@]}" "$*" >/dev/null 2>&1 || { echo "bench: $* failed under hyperfine" >&2; exit 1; }
  python3 -c 'import json, sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$work/timing.json"
}

printf 'print("hello")\n' >"$work/hello.swift"
swiftc -O -static-stdlib "$work/hello.swift" -o "$work/hello" 2>/dev/null
rm -rf "$work/repo"; mkdir -p "$work/repo"; git -C "$work/repo" init -q
for i in $(seq 0 7); do echo "$i" >"$work/repo/file-$i"; done
git -C "$work/repo" -c user.name=bench -c user.email=bench@localhost commit -q --allow-empty -m start
git -C "$work/repo" config user.name bench; git -C "$work/repo" config user.email bench@localhost; git -C "$work/repo" add -A; git -C "$work/repo" commit -q -m files
change_a_file="bash -c 'echo \$RANDOM\$RANDOM >$work/repo/file-\$((RANDOM % 8))'"
git_ms=$(timed "$change_a_file" sh -c "'cd $work/repo && git add -A && git commit -q -m change'")
# The same with git's own durability on (git syncs nothing by default): objects, index and refs.
synced="-c core.fsync=committed,index -c core.fsyncMethod=fsync"
git_synced_ms=$(timed "$change_a_file" sh -c "'cd $work/repo && git $synced add -A && git $synced commit -q -m change'")
version_ms=$(timed "" "$dist" --version)
hello_ms=$(timed "" "$work/hello")

root=$work/root
run_apply=("$dist" apply "$recipe" --root "$root" --no-handlers)
# A fresh copy of the snapshot before each run: the apply creates the history.
fresh >/dev/null
# (hyperfine's --prepare runs in its own process: it gets `fresh` exported.)
export work; export -f fresh
fresh_ms=$(timed "bash -c fresh" "${run_apply[@]}")
# The apply on a root whose history exists (as git commit works in an existing repository): each
# run preceded by a rollback of the one before.
fresh >/dev/null
"${run_apply[@]}" >/dev/null
apply_ms=$(timed "$dist rollback --root $root --no-handlers" "${run_apply[@]}")
nosync_ms=$(PROVISION_BENCH_UNSAFE_NO_SYNC=1 timed "$dist rollback --root $root --no-handlers" "${run_apply[@]}")
noop_ms=$(timed "" "${run_apply[@]}")
"$dist" rollback --root "$root" --no-handlers >/dev/null
plan_ms=$(timed "" "$dist" plan "$recipe" --root "$root")
fresh >/dev/null
plan_fresh_ms=$(timed "" "$dist" plan "$recipe" --root "$root")
ansible_ms="-"
if [ "${BENCH_ANSIBLE:-1}" = 1 ]; then
  [ -x /tmp/provision-bench-venv/bin/ansible-playbook ] || { python3 -m venv /tmp/provision-bench-venv && /tmp/provision-bench-venv/bin/pip -q install ansible-core; } >/dev/null
  export ANSIBLE_HOME=$work/ansible-home ANSIBLE_LOCAL_TEMP=$work/ansible-tmp
  ansible_ms=$(runs=5 timed "bash -c fresh" \
    /tmp/provision-bench-venv/bin/ansible-playbook -i localhost, -c local -e "root=$root" \
    -e ansible_python_interpreter=/tmp/provision-bench-venv/bin/python scripts/bench/eight-files.playbook.yml)
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo
echo "whole commands (hyperfine, medians of $runs; $(nproc) cores, $(date -u +%F), on $fs); the binary: $dist ($(stat -c %s "$dist") bytes)"
printf '%-46s %10s %10s %s\n' "command" "ms" "ratio" "goal"
printf '%-46s %10s\n' "git add -A && git commit (1 changed file)" "$git_ms"
printf '%-46s %10s %10s %s\n' "  the same with core.fsync=committed,index" "$git_synced_ms" "$(ratio "$git_synced_ms" "$git_ms")" "(git syncs nothing by default)"
printf '%-46s %10s %10s %s\n' "provision apply (8 files, history commit)" "$apply_ms" "$(ratio "$apply_ms" "$git_ms")" "<= 2x git commit; $(ratio "$apply_ms" "$git_synced_ms") of the synced git"
printf '%-46s %10s %10s %s\n' "  on a fresh root (creates the history)" "$fresh_ms" "$(ratio "$fresh_ms" "$git_ms")" ""
printf '%-46s %10s %10s %s\n' "  the same without any fsync (unsafe)" "$nosync_ms" "$(ratio "$nosync_ms" "$git_ms")" "the cost of durability: $(awk -v a="$apply_ms" -v b="$nosync_ms" 'BEGIN { printf "%.2f ms", a - b }')"
printf '%-46s %10s %10s %s\n' "provision apply, nothing to do (records the run)" "$noop_ms" "$(ratio "$noop_ms" "$git_ms")" "<= 1x git commit"
printf '%-46s %10s %10s %s\n' "provision plan (8 files, root with history)" "$plan_ms" "$(ratio "$plan_ms" "$git_ms")" "<= 1x git commit"
printf '%-46s %10s %10s %s\n' "  on a fresh root (no history yet)" "$plan_fresh_ms" "$(ratio "$plan_fresh_ms" "$git_ms")" ""
printf '%-46s %10s %10s %s\n' "provision --version" "$version_ms" "$(ratio "$version_ms" "$hello_ms")" "<= 1.5x a static Swift hello ($hello_ms ms)"
printf '%-46s %10s %10s\n' "ansible-playbook, the same 8 edits (median of 5)" "$ansible_ms" "$( [ "$ansible_ms" = - ] && echo - || ratio "$ansible_ms" "$git_ms")"

# Flat with history: the same whole commands on a root with 2 runs and one with BENCH_HISTORY_RUNS
# (default 10,000) runs of the recipe (apply/rollback pairs), both packed by `history gc` first.
# BENCH_HISTORY_CLI=0 skips it (filling the long history takes a few minutes).
if [ "${BENCH_HISTORY_CLI:-1}" = 1 ]; then
  long_runs=${BENCH_HISTORY_RUNS:-10000}
  for n in 2 "$long_runs"; do
    rm -rf "$work/h$n"
    BENCH_FILL_ONLY="$work/h$n" BENCH_HISTORY_RUNS=$n .build/release/provision-bench
    mkdir -p "$work/h$n/etc/"{modprobe.d,modules-load.d,sysctl.d,security/limits.d}
    "$dist" history gc --root "$work/h$n" >/dev/null
  done
  echo
  echo "flat with history (whole commands, hyperfine medians of $runs, both histories packed):"
  printf '%-46s %10s %10s %s\n' "command" "2 runs" "$long_runs runs" "ratio"
  flat() { # ROOT -> "plan apply noop" medians
    local r=$1 plan apply noop
    plan=$(timed "" "$dist" plan "$recipe" --root "$r")
    "$dist" apply "$recipe" --root "$r" --no-handlers >/dev/null
    apply=$(timed "$dist rollback --root $r --no-handlers" "$dist" apply "$recipe" --root "$r" --no-handlers)
    noop=$(timed "" "$dist" apply "$recipe" --root "$r" --no-handlers)
    echo "$plan $apply $noop"
  }
  read -r short_plan short_apply short_noop < <(flat "$work/h2")
  read -r long_plan long_apply long_noop < <(flat "$work/h$long_runs")
  printf '%-46s %10s %10s %s\n' "provision plan" "$short_plan" "$long_plan" "$(ratio "$long_plan" "$short_plan")"
  printf '%-46s %10s %10s %s\n' "provision apply" "$short_apply" "$long_apply" "$(ratio "$long_apply" "$short_apply")"
  printf '%-46s %10s %10s %s\n' "provision apply, nothing to do" "$short_noop" "$long_noop" "$(ratio "$long_noop" "$short_noop")"
fi

# Linear in file size: plan of one edit in a 1 MB and a 10 MB file (time and peak memory).
for size in 1 10; do
  fresh >/dev/null
  head -c $((size * 1024 * 1024)) /dev/zero | tr '\0' 'x' | fold -w 99 >"$work/root/etc/big.conf"
  printf 'name: big\nsteps:\n  - {id: big, uses: file.line, with: {path: /etc/big.conf, line: "option = 1"}}\n' >"$work/big.yaml"
  /usr/bin/time -f "%e %M" -o "$work/time" "$dist" plan "$work/big.yaml" --root "$work/root" >/dev/null
  read -r seconds kib <"$work/time"
  echo "plan of one line added to a ${size} MB file: ${seconds} s, peak RSS $((kib / 1024)) MiB"
done
# 500 steps over 500 files.
fresh >/dev/null
{ echo "name: many"; echo "steps:"; for i in $(seq 500); do echo "  - {id: s$i, uses: file.content, with: {path: /etc/many/f$i.conf, content: \"value $i\\n\"}}"; done; } >"$work/many.yaml"
echo "plan of 500 steps over 500 files: $(( $(ms "$dist" plan "$work/many.yaml" --root "$work/root") / 1000 )) ms"
rm -rf "$work"

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
      for _ in $(seq 15); do values+=("$(ms .build/release/provision $cmd --root "$r")"); done
      line="$line $(printf '%s\n' "${values[@]}" | median) ms"
    done
    echo "CLI $line (100 runs, ${BENCH_HISTORY_RUNS:-10000} runs)"
  done
  archive=$(mktemp -u /tmp/provision-bench-XXXXXX.tar.zst)
  printf 'export of the long history: %s ms, ' "$(( $(ms .build/release/provision export "$archive" --root "$long") / 1000 ))"
  printf 'export --verify: %s ms, %s bytes\n' "$(( $(ms .build/release/provision export --verify "$archive") / 1000 ))" "$(stat -c %s "$archive")"
  rm -rf "$short" "$long" "$archive"
fi
