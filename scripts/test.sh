#!/usr/bin/env bash
# Installs what the tests need, then runs every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Debian 12 roots for the integration suite (real update-initramfs and dracut); built once, cached.
scripts/make-test-roots.sh
# The Debian 12 disk image the boot-cycle test boots in QEMU (GRUB installed by the guest); cached.
scripts/make-vm-image.sh
# ansible-core from PyPI in a venv (cached): the inventory tests compare with ansible-inventory and
# ansible, the module tests run ansible-playbook.
venv="${PROVISION_TEST_ROOTS:-/var/cache/provision-tests}/ansible-venv"
[ -x "$venv/bin/ansible-playbook" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q ansible-core; }
export PROVISION_ANSIBLE_BIN="$venv/bin"
# The self-contained release build (DistBinaryTests: ldd, and plan in a chroot without Swift).
scripts/dist.sh "${PROVISION_DIST_DIR:-/tmp/provision-dist}" >/dev/null
export PROVISION_DIST_BINARY="${PROVISION_DIST_DIR:-/tmp/provision-dist}/provision"
swift build --build-tests
swift build --product generate-manual
swift test --skip-build
