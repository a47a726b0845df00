#!/usr/bin/env bash
# The test command: formatting, lints, then every unit and integration test (the latter run a
# real crustd, real docker-registry processes and crustctl). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Integration tests run the crustd, crustctl and crust-testenv binaries: build them first.
cargo build --workspace --bins
# crun on a hybrid cgroup node needs hugetlb off cgroup2 (see the script).
bash scripts/node-setup.sh
# --no-fail-fast: a red run reports every failing test binary, not just the first.
cargo test --workspace --no-fail-fast -- --test-threads="${CRUST_TEST_THREADS:-4}"
