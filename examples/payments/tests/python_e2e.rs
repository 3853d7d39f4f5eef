//! End to end with a client that is not tonic: Python grpcio drives the real `payments` binary.
//!
//! The test builds (once, and again whenever `tests/python/requirements.txt` changes) a
//! virtualenv under `CARGO_TARGET_TMPDIR` with the pinned grpcio packages, starts the server
//! on a free port with an SQLite file, the in-process cache, no NATS and a rate limit of 5 per
//! minute, and runs `tests/python/payments_e2e.py` against it. The script generates its stubs
//! from `proto/` with grpcio-tools and checks health, validation details (BadRequest), rate
//! limiting (RetryInfo), the response cache and its invalidation, `x-request-id` echo,
//! NOT_FOUND and the WatchPayments stream. Finally the server must stop cleanly on SIGTERM.
//!
//! Needs `python3` (3.11) on PATH and PyPI reachable on the first run; it fails, never skips,
//! without them.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(20);

/// Kills (SIGKILL) and reaps the server if the test panics before stopping it.
struct ServerGuard(Option<Child>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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

/// Starts the server and returns it with the address from its first `listening on` line.
fn start_server(db_dir: &Path) -> (ServerGuard, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_payments"))
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "off")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", db_dir.join("payments.db").display()),
        )
        .env("RATE_LIMIT_PER_MINUTE", "5")
        .env("LOG_LEVEL", "warn")
        .env("REDIS_URL", "")
        .env("NATS_URL", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the payments binary");
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    let guard = ServerGuard(Some(child));

    // A thread reads stdout for the whole run, so the server never blocks on a full pipe.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut announced = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !announced && let Some(addr) = line.strip_prefix("listening on ") {
                announced = true;
                let _ = tx.send(addr.trim().to_owned());
            } else {
                eprintln!("server stdout: {line}");
            }
        }
    });
    match rx.recv_timeout(STARTUP) {
        Ok(addr) => (guard, addr),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the server closed its stdout (exited?) before printing `listening on`")
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the server printed no `listening on` line within {STARTUP:?}")
        }
    }
}

/// SIGTERM, then waits for a clean exit.
fn stop_server(mut guard: ServerGuard) {
    let mut child = guard.0.take().expect("the server is running");
    run(
        Command::new("kill").args(["-TERM", &child.id().to_string()]),
        "kill -TERM",
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the server") {
            break status;
        }
        if started.elapsed() > SHUTDOWN {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit within {SHUTDOWN:?} of SIGTERM");
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "the server exited with {status} after SIGTERM"
    );
}

#[test]
fn python_grpcio_client_end_to_end() {
    let python = venv_python();
    let db_dir = tempfile::tempdir().expect("create a temporary directory for the database");
    let (server, addr) = start_server(db_dir.path());

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
            .arg(&proto_root),
        "tests/python/payments_e2e.py",
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));

    stop_server(server);
}
