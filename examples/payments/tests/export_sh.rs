//! `export.sh` beside this crate documents every variable with the payments service's
//! defaults. `BLESS=1 cargo test -p payments-example --test export_sh` rewrites it.

use tonic_blueprint::config::Loader;

#[test]
fn export_sh_matches_the_service_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/export.sh");
    let expected =
        payments_example::with_defaults(Loader::from_pairs(Vec::<(String, String)>::new()))
            .service_export_sh();
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
        "LOG_FORMAT=\"pretty\"",
        "LOG_DIR=\"\"",
        "AUTH_JWT_SECRET=\"dev-secret\"",
        "AUTH_JWKS_URL=\"\"",
    ] {
        assert!(current.contains(&format!("export {name}")), "{name}");
    }
}
