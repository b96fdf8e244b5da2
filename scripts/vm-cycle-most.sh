#!/usr/bin/env bash
# The boot cycle (Tests/IntegrationTests/BootCycleTests.swift) with Debian's default initramfs,
# MODULES=most, instead of the lean MODULES=dep image CI boots: slower (each update-initramfs in the
# guest takes minutes under software emulation), so not part of scripts/test.sh. The drivers of the
# card's functions are in that image, so whether each one is held back for vfio-pci (softdeps)
# decides the race. Logs stay in $PROVISION_TEST_VM/runs/last-most (default
# /var/cache/provision-tests/vm/runs/last-most).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/make-vm-image.sh
swift build --build-tests
started=$(date +%s)
status=0
PROVISION_VM_MODULES=most swift test --skip-build --filter BootCycleTests || status=$?
echo "vm-cycle-most: $(( $(date +%s) - started )) s, exit $status" >&2
exit $status
