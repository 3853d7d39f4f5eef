//! Runs the `payments` binary as a child process on a free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(20);

/// The server process; SIGKILLed when dropped if still running.
pub(crate) struct PaymentsProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub(crate) uri: String,
}

impl PaymentsProcess {
    /// Starts the binary with `env` (on top of the test's own environment) and waits for
    /// its `listening on` line. Its other output goes to the test's stderr.
    pub(crate) fn start(env: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_payments"));
        command
            .env("GRPC_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "off")
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the payments binary");
        let stdout = child.stdout.take().expect("stdout");
        // A thread reads stdout for the whole run, so the server never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match line.strip_prefix("listening on ") {
                    Some(addr) => {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                    None => eprintln!("server stdout: {line}"),
                }
            }
        });
        let process = |uri| Self {
            child: Some(child),
            uri,
        };
        match rx.recv_timeout(STARTUP) {
            Ok(addr) => process(format!("http://{addr}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                drop(process(String::new()));
                panic!("the payments server exited before printing `listening on`")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                drop(process(String::new()));
                panic!("the payments server printed no `listening on` within {STARTUP:?}")
            }
        }
    }

    /// The server's process id.
    #[allow(dead_code)] // Not every test binary reads it.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The server's resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
    #[allow(dead_code)]
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in kB")
    }

    /// SIGTERM, then the exit status; fails the test if the server takes longer than
    /// [`SHUTDOWN`].
    pub(crate) fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(SHUTDOWN) {
            Ok(status) => status.expect("wait for the server"),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("the payments server did not exit within {SHUTDOWN:?} of SIGTERM")
            }
        }
    }
}

impl Drop for PaymentsProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
