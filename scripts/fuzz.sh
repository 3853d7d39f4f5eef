#!/usr/bin/env bash
# Fuzzes the frame reader and the validation layer (`frames`), then the auth layer's token
# path (`auth_token`, half as long), for a bounded time (default 60 s):
#   scripts/fuzz.sh [seconds]
# Installs cargo-fuzz when missing. libFuzzer needs flags the stable compiler accepts only
# with RUSTC_BOOTSTRAP=1 (this machine has no nightly toolchain); no sanitizer is used.
# A crash leaves its input under fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
mkdir -p fuzz/corpus/frames fuzz/corpus/auth_token
export RUSTC_BOOTSTRAP=1
cargo fuzz run --sanitizer none --fuzz-dir fuzz frames fuzz/corpus/frames -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048
cargo fuzz run --sanitizer none --fuzz-dir fuzz auth_token fuzz/corpus/auth_token -- \
    -max_total_time="$(( (seconds + 1) / 2 ))" -max_len=2048 -rss_limit_mb=2048
