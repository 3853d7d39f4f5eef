//! Configuration: defaults, the environment over a file, every problem named at once, and
//! `export.sh` in step with the variables.
#![cfg(feature = "config")]

use std::net::SocketAddr;
use tonic_blueprint::config::{BlueprintConfig, Loader, VARIABLES};

#[test]
fn defaults_are_the_documented_ones() {
    let config = BlueprintConfig::default();
    assert_eq!(
        config.server.grpc_addr,
        "127.0.0.1:50051".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.metrics.socket_addr(),
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert_eq!(config.rate_limit.per_minute, 100);
    assert_eq!(config.cache.ttl_seconds, 300);
    assert_eq!(config.timeout.request_seconds, 30);
    assert_eq!(config.redis.get(), None);
    assert_eq!(config.logging.format, "pretty");
}

#[test]
fn a_missing_variable_names_itself_and_every_bad_one_is_listed_at_once() {
    let error = Loader::from_pairs([
        ("GRPC_ADDR", "localhost"),
        ("CACHE_TTL_SECONDS", "5m"),
        ("LOG_FORMAT", "xml"),
        ("DATABASE_URL", "mysql://root:hunter2@db/app"),
    ])
    .require("NATS_URL")
    .load()
    .expect_err("invalid");
    let text = error.to_string();
    assert_eq!(error.problems.len(), 5, "{text}");
    for name in [
        "NATS_URL is required",
        "GRPC_ADDR",
        "CACHE_TTL_SECONDS",
        "LOG_FORMAT",
        "DATABASE_URL",
    ] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
    assert!(
        !text.contains("hunter2"),
        "a URL's password was repeated: {text}"
    );
}

#[test]
fn the_environment_overrides_the_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("service.toml");
    std::fs::write(
        &file,
        "[server]\ngrpc_addr = \"0.0.0.0:7000\"\n[rate_limit]\nper_minute = 10\n",
    )
    .expect("write");
    let config = Loader::from_pairs([
        ("CONFIG_FILE", file.to_str().expect("utf-8")),
        ("RATE_LIMIT_PER_MINUTE", "20"),
        ("METRICS_ADDR", "off"),
    ])
    .load()
    .expect("valid");
    assert_eq!(config.server.grpc_addr.port(), 7000, "from the file");
    assert_eq!(config.rate_limit.per_minute, 20, "the variable wins");
    assert_eq!(config.metrics.socket_addr(), None, "off");
    assert_eq!(config.cache.ttl_seconds, 300, "default");
}

#[test]
fn export_sh_documents_every_variable_and_matches_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/export.sh");
    let on_disk = std::fs::read_to_string(path).expect("export.sh at the repository root");
    assert_eq!(
        on_disk,
        Loader::export_sh(),
        "export.sh is stale: regenerate it with `cargo run --example export_sh > export.sh`"
    );
    for var in VARIABLES {
        assert!(on_disk.contains(&format!("export {}=\"{}\"", var.name, var.default)));
    }
}

#[test]
fn a_service_default_replaces_the_table_default_but_not_the_file_or_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("service.toml");
    std::fs::write(&file, "[rate_limit]\nper_minute = 10\n").expect("write");
    let config = Loader::from_pairs([
        ("CONFIG_FILE", file.to_str().expect("utf-8")),
        ("CACHE_TTL_SECONDS", "7"),
    ])
    .default_value("SERVICE_NAME", "payments")
    .default_value("RATE_LIMIT_PER_MINUTE", "50")
    .default_value("CACHE_TTL_SECONDS", "60")
    .load()
    .expect("valid");
    assert_eq!(config.service.name, "payments", "the service's default");
    assert_eq!(config.rate_limit.per_minute, 10, "the file wins over it");
    assert_eq!(config.cache.ttl_seconds, 7, "the environment wins over it");

    let problems = Loader::from_pairs([("GRPC_ADDR", "127.0.0.1:1")])
        .default_value("RATE_LIMIT_PER_MINUTE", "many")
        .default_value("NO_SUCH_VARIABLE", "x")
        .load()
        .expect_err("bad defaults")
        .problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("RATE_LIMIT_PER_MINUTE"))
    );
    assert!(problems.iter().any(|p| p.contains("NO_SUCH_VARIABLE")));
}
