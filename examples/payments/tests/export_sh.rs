//! `export.sh` beside this crate documents every variable with the payments service's
//! defaults: the kit's, then the service's own. `BLESS=1 cargo test -p payments-example
//! --test export_sh` rewrites it.

#[test]
fn export_sh_matches_the_service_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/export.sh");
    let expected = payments_example::config::export_sh();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, &expected).expect("write export.sh");
    }
    let current = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        current, expected,
        "examples/payments/export.sh is stale: BLESS=1 cargo test -p payments-example --test export_sh"
    );
    assert!(current.contains("export SERVICE_NAME=\"payments\""));
    for name in [
        "GRPC_ADDR=\"127.0.0.1:50051\"",
        "METRICS_ADDR=\"127.0.0.1:9090\"",
        "DATABASE_URL=\"\"",
        "REDIS_URL=\"\"",
        "NATS_URL=\"\"",
        "RATE_LIMIT_PER_MINUTE=\"100\"",
        "CACHE_TTL_SECONDS=\"300\"",
        "REQUEST_TIMEOUT_SECONDS=\"30\"",
        "STREAM_TIMEOUT_SECONDS=\"0\"",
        "LOG_FORMAT=\"pretty\"",
        "LOG_DIR=\"\"",
        "AUTH_JWT_SECRET=\"dev-secret\"",
        "AUTH_JWKS_URL=\"\"",
        "MAX_WATCHERS=\"5000\"",
        "MAX_WATCHERS_PER_USER=\"16\"",
        "WATCH_HISTORY=\"4096\"",
    ] {
        assert!(current.contains(&format!("export {name}")), "{name}");
    }
}
