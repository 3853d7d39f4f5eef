//! End to end with a client that is not tonic: Python grpcio drives the real `payments` binary.
//!
//! The test builds (once, and again whenever `tests/python/requirements.txt` changes) a
//! virtualenv under `CARGO_TARGET_TMPDIR` with the pinned grpcio and PyJWT packages, starts the
//! server on a free port with an SQLite file, the in-process cache, no NATS, a rate limit of 5
//! per minute and a test `AUTH_JWT_SECRET`, and runs `tests/python/payments_e2e.py` against it
//! with that secret. The script mints its bearer tokens with PyJWT, generates its stubs from
//! `proto/` with grpcio-tools and checks health, UNAUTHENTICATED without a valid token, that a
//! user sees only their own payments, idempotent creates, validation details (BadRequest),
//! rate limiting per user (RetryInfo), the response cache and its invalidation,
//! `x-request-id` echo, NOT_FOUND and the WatchPayments stream. Finally the server must stop
//! cleanly on SIGTERM.
//!
//! The server speaks only TLS with client certificates required (`TLS_CERT_FILE`,
//! `TLS_KEY_FILE`, `TLS_CLIENT_CA_FILE`, certificates made by the test with rcgen), and the
//! script calls it over TLS with a client certificate; it first checks that a channel without
//! one is refused. Callers are still named by their tokens (`AUTH_MTLS_IDENTITY=off`).
//!
//! Needs `python3` (3.11) on PATH and PyPI reachable on the first run; it fails, never skips,
//! without them.

mod common;

use common::PaymentsProcess;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The secret the server verifies and the script signs with.
const JWT_SECRET: &str = "python-e2e-secret-of-at-least-32-bytes";

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({command:?}): {e}"));
    assert!(
        output.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// The virtualenv's python, after (re)creating the virtualenv when the requirements or the
/// system python changed since it was made.
fn venv_python() -> PathBuf {
    let requirements = python_dir().join("requirements.txt");
    let python_version = Command::new("python3").arg("--version").output();
    let python_version = match python_version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        other => panic!("python3 is required for this test and was not found on PATH: {other:?}"),
    };
    let key = format!(
        "{python_version}{}",
        fs::read_to_string(&requirements).expect("read tests/python/requirements.txt")
    );
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-e2e-venv");
    let stamp = venv.join("requirements.stamp");
    let python = venv.join("bin/python");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) && python.exists() {
        return python;
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).expect("remove the stale virtualenv");
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r tests/python/requirements.txt",
    );
    fs::write(&stamp, key).expect("write the virtualenv stamp");
    python
}

#[test]
fn python_grpcio_client_end_to_end() {
    let python = venv_python();
    let db_dir = tempfile::tempdir().expect("create a temporary directory for the database");
    let pki = tonic_blueprint_testkit::TestPki::new("payments-e2e");
    let server_cert = pki.server("payments", &[]);
    let client_cert = pki.client("python-e2e", None);
    let server = PaymentsProcess::start(&[
        ("TLS_CERT_FILE", server_cert.cert.display().to_string()),
        ("TLS_KEY_FILE", server_cert.key.display().to_string()),
        ("TLS_CLIENT_CA_FILE", pki.ca_file().display().to_string()),
        ("AUTH_MTLS_IDENTITY", "off".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", db_dir.path().join("payments.db").display()),
        ),
        ("RATE_LIMIT_PER_MINUTE", "5".to_owned()),
        ("REDIS_URL", String::new()),
        ("NATS_URL", String::new()),
        ("AUTH_JWT_SECRET", JWT_SECRET.to_owned()),
    ]);
    let addr = server.uri.trim_start_matches("http://").to_owned();

    let proto_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../proto")
        .canonicalize()
        .expect("the workspace's proto directory");
    let output = run(
        Command::new(&python)
            .arg("-u")
            .arg(python_dir().join("payments_e2e.py"))
            .arg("--addr")
            .arg(&addr)
            .arg("--proto-root")
            .arg(&proto_root)
            .arg("--jwt-secret")
            .arg(JWT_SECRET)
            .arg("--ca")
            .arg(pki.ca_file())
            .arg("--cert")
            .arg(&client_cert.cert)
            .arg("--key")
            .arg(&client_cert.key),
        "tests/python/payments_e2e.py",
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));

    let status = server.stop();
    assert!(
        status.success(),
        "the server exited with {status} after SIGTERM"
    );
}
