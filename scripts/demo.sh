#!/usr/bin/env bash
# The main job on an embedded default: a copy of the Arch host snapshot (never this machine's /etc).
# devices, plan with diffs, apply, apply again (0 changed), verify, history, rollback, and proof
# that the copy is byte-identical to the snapshot again. Extra arguments go to plan and apply (--var …).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product provision >/dev/null
provision=.build/release/provision
snapshot=${SNAPSHOT:-snapshots/arch}
recipe=${RECIPE:-recipes/vfio-passthrough.yaml}
root=$(mktemp -d /tmp/provision-demo-XXXXXX)
cp -a "$snapshot/." "$root/"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step provision devices --root "$root"
$provision devices --root "$root"
step provision plan "$recipe" --root "$root"
$provision plan "$recipe" --root "$root" "$@"
step provision apply "$recipe" --root "$root"
$provision apply "$recipe" --root "$root" "$@"
step provision apply "$recipe" --root "$root"   "# again: nothing to do"
$provision apply "$recipe" --root "$root" "$@" | tail -n 1
step provision verify --root "$root"   "# the snapshot was never rebooted: what a booted host still lacks"
$provision verify --root "$root" || echo "(exit $?: checks failed, as they must before the reboot)"
step provision history --root "$root"
$provision history --root "$root"
step git --git-dir "$root/var/lib/provision/history.git" log --stat -1 HEAD~1
git --git-dir "$root/var/lib/provision/history.git" log --stat -1 HEAD~1
step provision rollback --root "$root"
$provision rollback --root "$root" | tail -n 3
step "diff -r (modes and owners too) $snapshot $root, ignoring provision's own history"
if diff -r --no-dereference -x provision "$snapshot" "$root" && \
   [ "$(cd "$snapshot" && find . -path ./var/lib/provision -prune -o -printf '%p %m %U:%G\n' | sort)" = \
     "$(cd "$root" && find . -path ./var/lib/provision -prune -o -printf '%p %m %U:%G\n' | sort)" ]; then
  echo "identical: the root is byte for byte the snapshot again"
else
  echo "DIFFERENT" >&2; exit 1
fi
rm -rf "$root"
