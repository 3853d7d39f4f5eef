#!/usr/bin/env bash
# Server-side instructions per call, counted by valgrind's callgrind (BENCHMARKS.md,
# "Instructions per call"): deterministic for the same binary and load, whatever else the
# machine is doing, so it compares changes that the rate bench (scripts/bench-e2e.sh) cannot
# tell apart from noise.
#
#   scripts/bench-instructions.sh                          # the default variants
#   VARIANTS="bare preset preset-warn" scripts/bench-instructions.sh
#   PROFILE=1 VARIANTS="bare preset" scripts/bench-instructions.sh   # keep the profiles
#
# Each variant's server (examples/bench_server.rs, the variants of bench-e2e.sh) runs under
# callgrind with one tokio worker; h2load sends WARM calls, the counters are zeroed, h2load
# sends CALLS more (-c 4 -m 16, the 64-byte unary echo of bench-e2e.sh), the counters are
# dumped, and the server stops. Instructions per call = the dump's total over CALLS: every
# thread of the server (hyper, tonic, the layers, the handler, the log writer), nothing of
# h2load's. Ratios are bare's count over the variant's (a rate ratio if time were
# instructions). Knobs: VARIANTS CALLS (5000) WARM (2000) FEATURES (server,validation)
# NO_BUILD (0) OUTDIR (/tmp/bench-instructions) PORT (50291) PROFILE (0; 1 keeps each
# callgrind profile in OUTDIR for callgrind_annotate).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
CALLS=${CALLS:-5000} WARM=${WARM:-2000} FEATURES=${FEATURES:-server,validation}
OUT=${OUTDIR:-/tmp/bench-instructions} PORT=${PORT:-50291}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_server"
METHOD=/blueprint.test.v1.TestService/Unary
VARIANTS=${VARIANTS:-"bare empty preset preset-warn without-logging only-logging only-logging-warn only-metrics only-in_flight only-panic_recovery only-timeout only-rate_limit only-validation only-cache"}

for tool in valgrind h2load; do
  if ! command -v "$tool" > /dev/null; then
    pkg=$tool; [ "$tool" = h2load ] && pkg=nghttp2-client
    echo "# installing $pkg"
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" > /dev/null
  fi
done
if [ "${NO_BUILD:-0}" != 1 ]; then
  echo "# building the bench server (release, features $FEATURES)"
  cargo build --release --quiet --example bench_server --features "$FEATURES"
fi
[ -x "$BIN" ] || { echo "no $BIN (build it, or unset NO_BUILD)" >&2; exit 2; }

rm -rf "$OUT"; mkdir -p "$OUT"
FRAME="$OUT/frame.bin"
{ printf '\x00\x00\x00\x00\x42\x0a\x40'; for _ in $(seq 64); do printf '\xab'; done; } > "$FRAME"
H=(-H 'content-type: application/grpc' -H 'te: trailers')
load() { h2load -n "$1" -c 4 -m 16 -d "$FRAME" "${H[@]}" "http://127.0.0.1:$PORT$METHOD"; }

echo "# $(date -Is) commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (work tree modified)'), $CALLS calls after $WARM"
printf '| variant | instructions per call | ratio to bare |\n|---|---|---|\n' > "$OUT/table.md"
bare=
for variant in $VARIANTS; do
  dir="$OUT/$variant"; mkdir -p "$dir/logs"
  level=info; bench_variant=$variant
  case $variant in *-warn) level=warn; bench_variant=${variant%-warn} ;; esac
  env -u RUST_LOG TOKIO_WORKER_THREADS=1 BENCH_VARIANT="$bench_variant" SERVICE_NAME=bench \
    GRPC_ADDR="127.0.0.1:$PORT" METRICS_ADDR="127.0.0.1:$((PORT + 3))" \
    LOG_FORMAT=json LOG_LEVEL="$level" LOG_DIR="$dir/logs" RATE_LIMIT_PER_MINUTE=4000000000 \
    SHUTDOWN_DRAIN_DELAY_SECONDS=0 SHUTDOWN_GRACE_SECONDS=2 \
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" "$BIN" > "$dir/server.out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    grep -q '^listening on' "$dir/server.out" 2> /dev/null && break
    kill -0 "$pid" 2> /dev/null || { cat "$dir/server.out" >&2; exit 1; }
    sleep 0.2
  done
  load "$WARM" > "$dir/warm.txt"
  callgrind_control -z "$pid" > /dev/null 2>&1
  load "$CALLS" > "$dir/load.txt"
  callgrind_control -d "$pid" > /dev/null 2>&1
  kill "$pid"; wait "$pid" || true
  grep -q "$CALLS succeeded, 0 failed, 0 errored" "$dir/load.txt" \
    || { echo "$variant: not every call succeeded:" >&2; grep requests: "$dir/load.txt" >&2; exit 1; }
  profile=$(ls "$dir"/callgrind.out.* | head -1)
  total=$(callgrind_annotate "$profile" 2> /dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  per_call=$((total / CALLS))
  [ "$variant" = bare ] && bare=$per_call
  ratio=-; [ -n "$bare" ] && ratio=$(awk -v b="$bare" -v v="$per_call" 'BEGIN {printf "%.3f", b / v}')
  printf '| %s | %s | %s |\n' "$variant" "$per_call" "$ratio" | tee -a "$OUT/table.md"
  [ "${PROFILE:-0}" = 1 ] || rm -f "$dir"/callgrind.out*
  rm -rf "$dir/logs"
done
echo "# table in $OUT/table.md"
