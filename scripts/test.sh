#!/usr/bin/env bash
# The whole test suite: the local services it needs, then format, lints, docs, every test,
# the README's example command, and a compile of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "the README's example runs"
EXIT_AFTER_DEMO=1 GRPC_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 cargo run --locked --quiet --example resilient-echo

step "benchmarks compile"
cargo bench --workspace --all-features --no-run --locked --quiet

step "cargo test"
cargo test --workspace --all-features --locked --no-fail-fast

step "fuzz the frame reader and the validation layer (${FUZZ_SECONDS:-20} s)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
