#!/usr/bin/env bash
# Re-writes the golden files the recipe tests compare against (Tests/CLITests/Golden/FAMILY/…):
# applies recipes/vfio-passthrough.yaml to a copy of each snapshot and keeps every file it changed.
# Review the diff by eye before committing: these are what an expert would write by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product provision >/dev/null
declare -A vars=([arch]="" [fedora]="" [debian]="--var allow_shared_group=true" [ubuntu]="--var identical_ids=bind-by-address" [popos]="")
for family in arch fedora debian ubuntu popos; do
  work=$(mktemp -d)
  cp -a "snapshots/$family" "$work/root"
  # shellcheck disable=SC2086
  .build/debug/provision apply recipes/vfio-passthrough.yaml --root "$work/root" ${vars[$family]} --json >"$work/apply.json"
  rm -rf "Tests/CLITests/Golden/$family"
  python3 - "$work" "$family" <<'PY'
import json, os, shutil, sys
work, family = sys.argv[1:]
for entry in json.load(open(f"{work}/apply.json"))["files"]:
    target = f"Tests/CLITests/Golden/{family}{entry['path']}"
    if entry["change"] == "deleted":
        continue
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(f"{work}/root{entry['path']}", target)
    print(f"{family}: {entry['change']:8} {entry['path']}")
PY
  rm -rf "$work"
done
