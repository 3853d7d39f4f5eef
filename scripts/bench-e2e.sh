#!/usr/bin/env bash
# Server-bound end-to-end bench (BENCHMARKS.md, "Server-bound end to end"): each server pinned
# to one core with one worker, h2load pinned to the other, variants interleaved round by round,
# medians and ratios to bare tonic of the same round, gRPC status counts checked from /metrics.
#
#   scripts/bench-e2e.sh                       # 5 rounds of 8 s (+2 s warm-up) per variant
#   ROUNDS=3 DURATION=4 scripts/bench-e2e.sh   # a quick run
#   VARIANTS="bare preset preset-warn" scripts/bench-e2e.sh
#
# Knobs (environment): ROUNDS (5) DURATION (8) WARMUP (2) CONNS (4) STREAMS (16)
#   VARIANTS (all: see below) FEATURES (server,validation) AUTH (0; 1 = the preset with auth,
#   HS256 bearer token on every request, plus a without-auth row) GO (1; 0 = no Go rows)
#   SERVER_CPU (0) LOAD_CPU (1) PORT (50181) METRICS_PORT (50184) OUTDIR (/tmp/bench-e2e)
#   NO_BUILD (0; 1 = use the release binary already built) GO_PEER_DIR GO_PEER_BIN
#   ONLY (1; 0 = no only-<layer> rows) GLUE (1; 0 = no glue-trace row)
#
# Variants: bare (plain tonic), empty (the kit's server, empty stack), preset (info JSON logs
# to a file), preset-warn (LOG_LEVEL=warn), without-<layer> (the preset minus one layer),
# only-<layer> (bare tonic plus that one layer, `Server::builder().layer(..)`; ONLY=0 leaves
# these rows out), glue-trace (bare tonic with tower-http's TraceLayer and tracing-subscriber's
# JSON through tracing-appender: the per-call log line glued without the kit, the baseline of
# only-logging; GLUE=0 leaves it out),
# go-bare and go-chain (../shared/peers/go-blueprint, when its binary is there or can be built).
# A kit variant with `-tls` appended (empty-tls, preset-warn-tls, ...) serves over TLS 1.3
# (TLS_CERT_FILE/TLS_KEY_FILE: an ECDSA P-256 certificate made here with openssl) and h2load
# calls it over https (one handshake per connection); needs FEATURES with tls.
#
# Output: the table on stdout and in $OUTDIR/table.md, every run in $OUTDIR/runs.tsv, the
# summary as JSON in $OUTDIR/summary.json, raw h2load, server and /metrics output per run.
# Exits 1 when a run failed its checks (non-OK answers, h2load failures, ...): its figures
# are not of OK calls.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-8} WARMUP=${WARMUP:-2}
CONNS=${CONNS:-4} STREAMS=${STREAMS:-16}
FEATURES=${FEATURES:-server,validation} AUTH=${AUTH:-0} GO=${GO:-1}
SERVER_CPU=${SERVER_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-50181} METRICS_PORT=${METRICS_PORT:-50184}
OUT=${OUTDIR:-/tmp/bench-e2e}
METHOD=/blueprint.test.v1.TestService/Unary
GO_PEER_DIR=${GO_PEER_DIR:-$ROOT/../shared/peers/go-blueprint}
export GO_PEER_BIN=${GO_PEER_BIN:-${TMPDIR:-/tmp}/go-blueprint/go-peer}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_server"
NOTES=()

note() { NOTES+=("$*"); echo "# $*"; }

if [ "$(nproc)" -lt 2 ]; then
  echo "needs two CPUs (server on CPU $SERVER_CPU, h2load on CPU $LOAD_CPU)" >&2; exit 2
fi
for tool in taskset curl python3; do
  command -v "$tool" > /dev/null || { echo "needs $tool" >&2; exit 2; }
done
if ! command -v h2load > /dev/null; then
  echo "# installing h2load (Debian's nghttp2-client)"
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client > /dev/null
fi

# --- servers ------------------------------------------------------------------------------
if [ "${NO_BUILD:-0}" != 1 ]; then
  echo "# building the bench server (release, features $FEATURES)"
  cargo build --release --quiet --example bench_server --features "$FEATURES"
fi
[ -x "$BIN" ] || { echo "no $BIN (build it, or unset NO_BUILD)" >&2; exit 2; }

go_rows=0
if [ "$GO" = 1 ]; then
  if [ ! -x "$GO_PEER_BIN" ]; then
    if [ -x "$GO_PEER_DIR/build.sh" ]; then
      echo "# building the Go peer ($GO_PEER_DIR/build.sh: Debian's Go packages)"
      if ! "$GO_PEER_DIR/build.sh" > "${TMPDIR:-/tmp}/go-peer-build.log" 2>&1; then
        note "Go rows skipped: the Go peer did not build (see ${TMPDIR:-/tmp}/go-peer-build.log)"
      fi
    else
      note "Go rows skipped: no Go peer at $GO_PEER_DIR"
    fi
  fi
  [ -x "$GO_PEER_BIN" ] && go_rows=1
else
  note "Go rows skipped (GO=0)"
fi

if [ -z "${VARIANTS:-}" ]; then
  layers="logging metrics in_flight panic_recovery timeout"
  [ "$AUTH" = 1 ] && layers="$layers auth"
  layers="$layers rate_limit"
  [[ ",$FEATURES," == *",validation,"* ]] && layers="$layers validation"
  layers="$layers cache"
  VARIANTS="bare empty preset preset-warn"
  for layer in $layers; do VARIANTS="$VARIANTS without-$layer"; done
  if [ "${ONLY:-1}" = 1 ]; then
    for layer in $layers; do VARIANTS="$VARIANTS only-$layer"; done
  fi
  [ "${GLUE:-1}" = 1 ] && VARIANTS="$VARIANTS glue-trace"
  [ "$go_rows" = 1 ] && VARIANTS="$VARIANTS go-bare go-chain"
fi
read -r -a VARIANT_LIST <<< "$VARIANTS"
[[ " $VARIANTS " == *" bare "* ]] || { echo "VARIANTS must include bare (the baseline)" >&2; exit 2; }

AUTH_SECRET=bench-e2e-secret-0123456789-abcdefghij
EXTRA_HEADERS=(-H 'x-user-id: bench')
if [ "$AUTH" = 1 ]; then
  token=$(python3 - "$AUTH_SECRET" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench", "exp": int(time.time()) + 86400}).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
EOF
)
  EXTRA_HEADERS+=(-H "authorization: Bearer $token")
fi

mkdir -p "$OUT"
rm -f "$OUT"/runs.tsv "$OUT"/*.txt "$OUT"/*.out
# One gRPC frame for every server: flag 0, u32 length 66, then field 1 (bytes) of 64 x 0xAB:
# a TestRequest{payload} to tonic, a BytesValue to the Go peer (the same bytes).
FRAME="$OUT/frame.bin"
{ printf '\x00\x00\x00\x00\x42\x0a\x40'; for _ in $(seq 64); do printf '\xab'; done; } > "$FRAME"
[ "$(stat -c %s "$FRAME")" = 71 ] || { echo "bad frame size" >&2; exit 1; }
if [[ " $VARIANTS " == *"-tls "* ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$OUT/tls.key" -out "$OUT/tls.crt" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2> /dev/null
fi

SRV_PID=
stop_server() {
  [ -n "$SRV_PID" ] || return 0
  kill -TERM "$SRV_PID" 2> /dev/null || true
  for _ in $(seq 100); do kill -0 "$SRV_PID" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$SRV_PID" 2> /dev/null || true
  wait "$SRV_PID" 2> /dev/null || true
  SRV_PID=
}
trap stop_server EXIT

start_server() { # variant logdir serverout
  local variant=$1 logdir=$2 out=$3
  case "$variant" in
    go-bare | go-chain)
      local mode=bare; [ "$variant" = go-chain ] && mode=stack
      taskset -c "$SERVER_CPU" env GOMAXPROCS=1 "$GO_PEER_BIN" --mode "$mode" \
        --addr "127.0.0.1:$PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" \
        --log-file "$logdir/go-peer.log" > "$out" 2>&1 &
      ;;
    *)
      local bench_variant=${variant%-tls} level=info tls=()
      [[ $variant == *-tls ]] && tls=(TLS_CERT_FILE="$OUT/tls.crt" TLS_KEY_FILE="$OUT/tls.key")
      [ "$bench_variant" = preset-warn ] && bench_variant=preset level=warn
      local auth=()
      [ "$AUTH" = 1 ] && auth=(AUTH_JWT_SECRET="$AUTH_SECRET")
      taskset -c "$SERVER_CPU" env -u RUST_LOG TOKIO_WORKER_THREADS=1 \
        BENCH_VARIANT="$bench_variant" SERVICE_NAME=bench \
        GRPC_ADDR="127.0.0.1:$PORT" METRICS_ADDR="127.0.0.1:$METRICS_PORT" \
        LOG_FORMAT=json LOG_LEVEL="$level" LOG_DIR="$logdir" \
        RATE_LIMIT_PER_MINUTE=4000000000 \
        SHUTDOWN_DRAIN_DELAY_SECONDS=0 SHUTDOWN_GRACE_SECONDS=2 "${auth[@]}" "${tls[@]}" \
        "$BIN" > "$out" 2>&1 &
      ;;
  esac
  SRV_PID=$!
  for _ in $(seq 100); do
    grep -q '^listening on' "$out" 2> /dev/null && return 0
    kill -0 "$SRV_PID" 2> /dev/null || break
    sleep 0.1
  done
  echo "the $variant server did not start:" >&2; cat "$out" >&2; exit 1
}

# "busy total" clock ticks of CPU $1 so far, from /proc/stat.
cpu_ticks_of() {
  awk -v cpu="cpu$1" '$1 == cpu { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# CPU ticks (user + system) of the server process, all its threads; "-" once it is gone.
server_ticks() { awk '{print $14 + $15}' "/proc/$SRV_PID/stat" 2> /dev/null || echo -; }
# CPU ticks of this shell's waited-for children (h2load, once it has run).
children_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }

# Sum of the samples of metric $2 in file $1 whose labels match the regex $3 (default: all).
metric_sum() {
  awk -v name="$2" -v pat="${3:-}" '
    /^#/ { next }
    { split($1, key, "{") }
    key[1] == name && (pat == "" || $1 ~ pat) { s += $NF; found = 1 }
    END { if (found) printf "%d", s; else printf "-" }' "$1"
}

REJECTIONS="grpc_server_panics_recovered_total grpc_server_deadline_exceeded_total \
grpc_server_rate_limited_total grpc_server_rate_limit_backend_errors_total \
grpc_server_validation_failures_total grpc_server_auth_failures_total grpc_server_shed_total"

printf 'round\tvariant\trps\tsucceeded\tfailed\thandler_completed\thandled_ok\thandled_canceled\thandled_not_ok\trejections\tcpu_us_per_call\tserver_busy_pct\th2load_busy_pct\tothers_server_cpu_pct\tothers_load_cpu_pct\tlog_lines\tlog_bytes\tcheck\n' > "$OUT/runs.tsv"

echo "# $(date -Is) $(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2> /dev/null || echo ' (work tree modified)')"
echo "# busiest processes: $(ps -eo pcpu,comm --sort=-pcpu | sed -n '2,4p' | awk '{printf "%s %s%%; ", $2, $1}')"
echo "# $ROUNDS rounds x ${#VARIANT_LIST[@]} variants, h2load -t 1 -c $CONNS -m $STREAMS -D $DURATION --warm-up-time=$WARMUP; server on CPU $SERVER_CPU, h2load on CPU $LOAD_CPU"

failed_runs=0
n=${#VARIANT_LIST[@]}
for round in $(seq "$ROUNDS"); do
  # Interleaved: every variant once per round, the starting variant rotating per round.
  for k in $(seq 0 $((n - 1))); do
    variant=${VARIANT_LIST[$(((k + round - 1) % n))]}
    tag="$variant-$round"
    logdir="$OUT/logs-$tag"
    rm -rf "$logdir"; mkdir -p "$logdir"
    start_server "$variant" "$logdir" "$OUT/server-$tag.out"
    # Where the two cores' time went while h2load ran (clock ticks): the server's threads,
    # h2load (a child of this shell once it is waited for), and everything else.
    srv0=$(server_ticks); h2l0=$(children_ticks)
    read -r s_busy0 s_total0 <<< "$(cpu_ticks_of "$SERVER_CPU")"
    read -r l_busy0 l_total0 <<< "$(cpu_ticks_of "$LOAD_CPU")"
    taskset -c "$LOAD_CPU" h2load -t 1 -c "$CONNS" -m "$STREAMS" -D "$DURATION" \
      --warm-up-time="$WARMUP" -d "$FRAME" -H 'content-type: application/grpc' \
      -H 'te: trailers' "${EXTRA_HEADERS[@]}" "$([[ $variant == *-tls ]] && echo https || echo http)://127.0.0.1:$PORT$METHOD" \
      > "$OUT/h2load-$tag.txt" 2>&1 || true
    srv1=$(server_ticks); h2l1=$(children_ticks)
    read -r s_busy1 s_total1 <<< "$(cpu_ticks_of "$SERVER_CPU")"
    read -r l_busy1 l_total1 <<< "$(cpu_ticks_of "$LOAD_CPU")"
    # The server's CPU time from its start (all its threads, log writer included).
    cpu_ticks=$srv1
    pct() { awk -v a="$1" -v t="$2" 'BEGIN {v = t > 0 ? 100 * a / t : 0; printf "%.0f", v < 0 ? 0 : v}'; }
    server_pct=-; others_server=-
    if [ "$srv0" != - ] && [ "$srv1" != - ]; then
      server_pct=$(pct $((srv1 - srv0)) $((s_total1 - s_total0)))
      others_server=$(pct $((s_busy1 - s_busy0 - srv1 + srv0)) $((s_total1 - s_total0)))
    fi
    h2load_pct=$(pct $((h2l1 - h2l0)) $((l_total1 - l_total0)))
    others_load=$(pct $((l_busy1 - l_busy0 - h2l1 + h2l0)) $((l_total1 - l_total0)))
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" > "$OUT/metrics-$tag.txt" || : > "$OUT/metrics-$tag.txt"
    stop_server

    h2=$OUT/h2load-$tag.txt
    rps=$(awk '/^finished in/ {print $4}' "$h2"); rps=${rps:-0}
    succeeded=$(awk '/^requests:/ {print $8}' "$h2"); succeeded=${succeeded:-0}
    failed=$(awk '/^requests:/ {print $10 + $12 + $14}' "$h2"); failed=${failed:-1}
    two=$(awk '/^status codes:/ {print $3}' "$h2"); two=${two:-0}
    completed=$(sed -n 's/^handler started=[0-9]* completed=\([0-9]*\).*/\1/p' "$OUT/server-$tag.out"); completed=${completed:--}
    m=$OUT/metrics-$tag.txt
    ok=$(metric_sum "$m" grpc_server_handled_total 'grpc_code="OK"')
    all=$(metric_sum "$m" grpc_server_handled_total)
    canceled=$(metric_sum "$m" grpc_server_handled_total 'grpc_code="Canceled"')
    not_ok=-; [ "$all" != - ] && not_ok=$((all - ok - canceled))
    rejections=0
    for name in $REJECTIONS; do
      v=$(metric_sum "$m" "$name"); [ "$v" != - ] && rejections=$((rejections + v))
    done
    # Server CPU per call: over every call it served (warm-up included) and its start-up; a
    # figure that other processes on the machine disturb far less than the rate.
    calls=$completed; [[ $variant == go-* ]] && [ "$ok" != - ] && calls=$((ok + canceled))
    cpu_us=-
    if [ "$cpu_ticks" != - ] && [ "$calls" != - ] && [ "$calls" -gt 0 ]; then
      cpu_us=$(awk -v t="$cpu_ticks" -v hz="$(getconf CLK_TCK)" -v n="$calls" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
    fi
    # One pass over the (partly gzipped) log: its lines, the lines the writer reports it
    # dropped (it drops lines when its sink falls 32 MiB behind, and says so in the log), and
    # the calls' lines. A run whose log lost lines does not count: its rate would be bought
    # with lost lines.
    read -r log_lines dropped_lines call_lines < <(find "$logdir" -type f -exec zcat -f {} + 2> /dev/null \
      | awk '/"finished call"|"end of stream"/ { calls++ }
             match($0, /"message":"[0-9]+ log lines dropped/) { dropped += substr($0, RSTART + 11, RLENGTH - 28) }
             END { print NR + 0, dropped + 0, calls + 0 }')
    # The rows that log every call at info: the preset, logging alone, the preset without
    # any other layer, and tower-http's line per call (its "end of stream" event; its writer
    # drops lines silently when 128,000 wait, which this check catches).
    logged_calls=-
    case "${variant%-tls}" in
      without-logging) ;;
      preset | only-logging | without-* | glue-trace) logged_calls=$call_lines ;;
    esac
    log_bytes=$(du -sb "$logdir" | cut -f1)
    rm -rf "$logdir"

    problems=()
    [ "$succeeded" -gt 0 ] || problems+=("no successful call")
    [ "$failed" = 0 ] || problems+=("h2load: $failed failed/errored/timed out")
    [ "$two" = "$succeeded" ] || problems+=("h2load: $two 2xx of $succeeded")
    if [ "$not_ok" != - ]; then
      [ "$not_ok" = 0 ] || problems+=("/metrics: $not_ok non-OK answers (Canceled aside)")
      # h2load resets the calls still in flight when its time is up: the server sees them
      # cancelled by the client, at most one per stream.
      [ "$canceled" -le $((CONNS * STREAMS)) ] || problems+=("/metrics: $canceled Canceled")
      [ "$ok" -ge "$succeeded" ] || problems+=("/metrics: $ok OK < $succeeded h2load successes")
    fi
    [ "$rejections" = 0 ] || problems+=("/metrics: $rejections rejections counted")
    [ "$dropped_lines" = 0 ] || problems+=("log: $dropped_lines lines dropped")
    if [ "$logged_calls" != - ] && [ "$completed" != - ]; then
      [ "$logged_calls" -ge "$completed" ] || problems+=("log: $logged_calls call lines < $completed calls")
    fi
    if [ "$completed" != - ]; then
      [ "$completed" -ge "$succeeded" ] || problems+=("handler completed $completed < $succeeded successes")
    elif [[ $variant != go-* ]]; then
      problems+=("no handler count from the server")
    fi
    if [ ${#problems[@]} = 0 ]; then
      check=ok
      [ "$not_ok" = - ] && [ "$completed" = - ] && check="unchecked (no /metrics)"
    else
      check="FAIL: $(IFS=';'; echo "${problems[*]}")"
      failed_runs=$((failed_runs + 1))
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" \
      "$variant" "$rps" "$succeeded" "$failed" "$completed" "$ok" "$canceled" "$not_ok" "$rejections" \
      "$cpu_us" "$server_pct" "$h2load_pct" "$others_server" "$others_load" "$log_lines" \
      "$log_bytes" "$check" >> "$OUT/runs.tsv"
    printf 'round %d %-24s %10s req/s %6s us/call  busy %%: server %s h2load %s others %s/%s  handler=%s OK=%s Canceled=%s other=%s log lines=%s  %s\n' \
      "$round" "$variant" "$rps" "$cpu_us" "$server_pct" "$h2load_pct" "$others_server" "$others_load" \
      "$completed" "$ok" "$canceled" "$not_ok" "$log_lines" "$check"
  done
done

notes=$(printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}")
python3 - "$OUT" "$ROUNDS" "$DURATION" "$WARMUP" "$CONNS" "$STREAMS" "$FEATURES" "$AUTH" \
  "$(git rev-parse HEAD)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$notes" <<'EOF'
import csv, json, statistics as st, sys, datetime
out, rounds, duration, warmup, conns, streams, features, auth, commit, load, notes = sys.argv[1:]
runs = list(csv.DictReader(open(f"{out}/runs.tsv"), delimiter="\t"))
order = list(dict.fromkeys(r["variant"] for r in runs))
by = {(r["variant"], int(r["round"])): r for r in runs}
nrounds = int(rounds)
bare = {k: float(by[("bare", k)]["rps"]) for k in range(1, nrounds + 1) if ("bare", k) in by}
summary = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit,
           "loadavg_at_end": load, "rounds": nrounds, "duration_s": int(duration),
           "warmup_s": int(warmup), "connections": int(conns), "streams_per_connection": int(streams),
           "features": features, "auth": auth == "1", "notes": [n for n in notes.split("\n") if n],
           "variants": {}}
lines = ["| variant | rps per round | median rps | ratio to bare per round | median of ratios | ratio of medians | server CPU µs/call | server core busy % | h2load core busy % | others % (server core / load core) | checks |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
bare_median = st.median(bare.values()) if bare else 0
for v in order:
    rs = [k for k in range(1, nrounds + 1) if (v, k) in by]
    rps = [float(by[(v, k)]["rps"]) for k in rs]
    ratios = [float(by[(v, k)]["rps"]) / bare[k] for k in rs if bare.get(k)]
    checks = [by[(v, k)]["check"] for k in rs]
    bad = [c for c in checks if c.startswith("FAIL")]
    med = st.median(rps) if rps else 0
    cpu = [float(by[(v, k)]["cpu_us_per_call"]) for k in rs if by[(v, k)]["cpu_us_per_call"] != "-"]
    cpu_med = f"{st.median(cpu):.1f}" if cpu else ""
    def col(name):
        return [float(by[(v, k)][name]) for k in rs if by[(v, k)][name] != "-"]
    def med_of(xs):
        return f"{st.median(xs):.0f}" if xs else ""
    server_busy, h2load_busy = col("server_busy_pct"), col("h2load_busy_pct")
    others, others_load = col("others_server_cpu_pct"), col("others_load_cpu_pct")
    usage = f"{med_of(server_busy)} | {med_of(h2load_busy)} | {med_of(others)} / {med_of(others_load)}"
    summary["variants"][v] = {
        "rps": rps, "median_rps": med, "ratios_to_bare": ratios,
        "median_ratio": st.median(ratios) if ratios else None,
        "ratio_of_medians": med / bare_median if bare_median else None,
        "server_cpu_us_per_call": cpu,
        "median_server_cpu_us_per_call": st.median(cpu) if cpu else None,
        "server_core_busy_pct": server_busy, "h2load_core_busy_pct": h2load_busy,
        "others_on_server_cpu_pct": others, "others_on_load_cpu_pct": others_load,
        "log_lines": [int(by[(v, k)]["log_lines"]) for k in rs],
        "checks": checks, "ok": not bad}
    check = "ok" if all(c == "ok" for c in checks) else ("**FAIL**: " + bad[0][6:] if bad else checks[0])
    lines.append(f"| {v} | {', '.join(f'{x:,.0f}' for x in rps)} | {med:,.0f} | "
                 f"{', '.join(f'{x:.3f}' for x in ratios)} | "
                 f"{st.median(ratios):.3f} | {med / bare_median:.3f} | {cpu_med} | {usage} | {check} |" if ratios else
                 f"| {v} | {', '.join(f'{x:,.0f}' for x in rps)} | {med:,.0f} | | | | {cpu_med} | {usage} | {check} |")
table = "\n".join(lines)
print()
print(table)
allv = summary["variants"].values()
busy = [x for v in allv for x in v["others_on_server_cpu_pct"] + v["others_on_load_cpu_pct"]]
if busy and st.median(busy) > 5:
    summary["notes"].append(
        f"other processes took a median {st.median(busy):.0f}% of the two cores during the runs: the rates "
        "are not server-bound figures (compare CPU per call, or run again on a quiet machine)")
idle = [v["server_core_busy_pct"][i] for v in allv for i in range(len(v["server_core_busy_pct"]))
        if i < len(v["others_on_server_cpu_pct"]) and v["others_on_server_cpu_pct"][i] <= 5
        and v["server_core_busy_pct"][i] < 90]
if idle:
    summary["notes"].append(
        f"in {len(idle)} run(s) the server's core was quiet but the server kept it only "
        f"{min(idle):.0f}-{max(idle):.0f}% busy: those runs were not server-bound")
h2 = [x for v in allv for x in v["h2load_core_busy_pct"]]
if h2 and max(h2) > 90:
    summary["notes"].append(
        f"h2load kept its core {max(h2):.0f}% busy in some run: the client may have been the bottleneck there")
for n in summary["notes"]:
    print(f"\nNote: {n}")
open(f"{out}/table.md", "w").write(table + "\n")
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(f"\nruns: {out}/runs.tsv  table: {out}/table.md  summary: {out}/summary.json")
EOF

if [ "$failed_runs" -gt 0 ]; then
  echo "$failed_runs run(s) FAILED their checks: their figures are not of OK calls" >&2
  exit 1
fi
