#!/usr/bin/env bash
# Installs what the tests need, then runs every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Debian 12 roots for the integration suite (real update-initramfs and dracut); built once, cached.
scripts/make-test-roots.sh
# The Debian 12 disk image the boot-cycle test boots in QEMU (GRUB installed by the guest); cached.
scripts/make-vm-image.sh
swift build --build-tests
swift test --skip-build
