#!/usr/bin/env bash
# Fuzzes the frame reader and the validation layer for a bounded time (default 60 s):
#   scripts/fuzz.sh [seconds]
# Installs cargo-fuzz when missing. libFuzzer needs flags the stable compiler accepts only
# with RUSTC_BOOTSTRAP=1 (this machine has no nightly toolchain); no sanitizer is used.
# A crash leaves its input under fuzz/artifacts/frames/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
mkdir -p fuzz/corpus/frames
export RUSTC_BOOTSTRAP=1
cargo fuzz run --sanitizer none --fuzz-dir fuzz frames fuzz/corpus/frames -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048
