#!/usr/bin/env bash
# The whole test suite: the local services it needs, then format, lints, docs, every test,
# the README's example command, and a compile of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh

# A clean build of the whole workspace with full debug info and incremental caches fills
# tens of GB of disk; neither helps a one-off run. Backtraces keep their line numbers.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "the umbrella crate builds with its default features alone"
cargo check --locked --quiet -p tonic-blueprint

step "a downstream crate builds and runs a layer with the default features and the server, with no protoc"
# Outside the workspace, so .cargo/config.toml's PROTOC does not apply: what `cargo add
# tonic-blueprint` gets. The workspace's lock pins the same versions; its target directory
# reuses what is built already.
downstream="$(mktemp -d)"
mkdir -p "$downstream/src"
cat > "$downstream/Cargo.toml" <<TOML
[package]
name = "downstream-check"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
tonic-blueprint = { path = "$(pwd)", features = ["server"] }
http = "1"
tokio = { version = "1", features = ["rt", "macros", "time"] }
tower = { version = "0.5", features = ["util"] }
TOML
cat > "$downstream/src/main.rs" <<'RUST'
//! A layer of tonic-blueprint around a slow handler, called as any tower service.
use std::time::Duration;
use tonic_blueprint::timeout::TimeoutLayer;
use tower::{Layer, ServiceExt, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let slow = service_fn(|_request: http::Request<()>| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let service = TimeoutLayer::new(Duration::from_millis(20)).layer(slow);
    let request = http::Request::builder().uri("/shop.v1.Cart/Add").body(()).expect("request");
    let response = service.oneshot(request).await.expect("a response");
    assert_eq!(response.headers()["grpc-status"], "4");
    println!("downstream: the timeout layer answered DEADLINE_EXCEEDED");
}
RUST
cp Cargo.lock "$downstream/"
root="$(pwd)"
(cd "$downstream" && env -u PROTOC CARGO_TARGET_DIR="$root/target" cargo run --offline --quiet)
# Artifacts reused from the workspace would hide a build script that needs protoc: nothing in
# the downstream graph may build protos at build time.
if (cd "$downstream" && cargo tree --offline -e build,normal -i prost-build 2>/dev/null | grep -q prost-build); then
  echo "a default downstream build runs prost-build (needs protoc):"
  (cd "$downstream" && cargo tree --offline -e build,normal -i prost-build)
  exit 1
fi
rm -rf "$downstream"

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "the README's example runs: the payments service on its embedded defaults, and its client"
cargo build --locked --quiet -p payments-example
demo="$(mktemp -d)"
root="$(pwd)"
# In a fresh folder, so its embedded SQLite database (data/payments.db) starts empty.
(cd "$demo" && GRPC_ADDR=127.0.0.1:0 METRICS_ADDR=off exec "$root/target/debug/payments" >"$demo/out" 2>"$demo/err") &
server=$!
for _ in $(seq 1 300); do
  grep -q '^listening on ' "$demo/out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$demo/err"; exit 1; }
  sleep 0.1
done
addr="$(sed -n 's/^listening on //p' "$demo/out")"
[ -n "$addr" ] || { echo "the payments service did not start"; cat "$demo/err"; exit 1; }
target/debug/payments-client "http://$addr" --user readme-user
kill -TERM "$server"
wait "$server"
rm -rf "$demo"

step "the resilient-echo example runs"
EXIT_AFTER_DEMO=1 GRPC_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 cargo run --locked --quiet --example resilient-echo

step "benchmarks compile"
cargo bench --workspace --all-features --no-run --locked --quiet

step "cargo test"
cargo test --workspace --all-features --locked --no-fail-fast

step "fuzz the frame reader, the validation layer and the token parser (${FUZZ_SECONDS:-20} s + half of it)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
