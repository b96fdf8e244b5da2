#!/usr/bin/env bash
# Fleet figures (not a test): `provision fleet apply` of the whole recipe on 1, 6 and 20 hosts (forks
# = hosts; each host a network namespace with its own sshd, its root a copy of snapshots/arch), and
# the same 20 hosts through ansible-playbook with the provision_apply module and with plain copy
# tasks, all with the self-contained release build (scripts/dist.sh). Every "host" shares this
# machine's cores, so CPU-bound work does not scale as on real hosts. Prints the table and leaves
# it in /tmp/provision-fleet-bench.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
venv="${PROVISION_TEST_ROOTS:-/var/cache/provision-tests}/ansible-venv"
[ -x "$venv/bin/ansible-playbook" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q ansible-core; }
swift build --build-tests >/dev/null
scripts/dist.sh /tmp/provision-bench-dist >/dev/null
PROVISION_FLEET_BENCH_BINARY=/tmp/provision-bench-dist/provision PROVISION_ANSIBLE_BIN="$venv/bin" PROVISION_FLEET_BENCH=1 swift test --skip-build --filter FleetBenchmark >/dev/null || true
cat /tmp/provision-fleet-bench.txt
