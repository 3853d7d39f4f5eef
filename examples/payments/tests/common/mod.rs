//! Runs the `payments` binary as a child process on a free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The server process; SIGKILLed when dropped if still running.
pub(crate) struct PaymentsProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) uri: String,
}

impl PaymentsProcess {
    /// Starts the binary with `env` (on top of the test's own environment) and waits for
    /// its `listening on` line.
    pub(crate) fn start(env: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_payments"));
        command
            .env("GRPC_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "off")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the payments binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        break addr.to_owned();
                    }
                }
                _ => {
                    let status = child.wait().expect("wait");
                    panic!("the payments server exited before serving: {status}");
                }
            }
        };
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            uri: format!("http://{addr}"),
        }
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for PaymentsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
