#!/usr/bin/env bash
# Re-writes the golden files the CLI tests compare against:
#   Tests/CLITests/Golden/FAMILY/…   recipes/vfio-passthrough.yaml applied to a copy of each snapshot,
#                                    every file it changed (what an expert would write by hand)
#   Tests/CLITests/Golden/messages/  the stderr of every refusal (RefusalGoldenTests)
# Review the diff by eye before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests >/dev/null
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
PROVISION_UPDATE_GOLDEN=1 swift test --skip-build --filter RefusalGoldenTests >/dev/null
git status --short Tests/CLITests/Golden/messages
