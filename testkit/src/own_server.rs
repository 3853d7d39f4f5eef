//! Servers a fault test starts, kills and restarts itself (never the shared ones).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `redis-server` of the test's own on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    /// Starts one on `port` (no persistence) and waits until it accepts connections.
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Hangs it (SIGSTOP): connections stay open and accept bytes, nothing answers, the way
    /// a saturated or partitioned Redis behaves. [`OwnRedis::resume`] undoes it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        self::signal(&self.child, signal);
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to a server of the test's own.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success(), "kill {signal} {}", child.id());
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A key prefix unique to this test run, so tests sharing a server never see each other.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("test:{test}:{}:{nanos}:", std::process::id())
}

/// A `nats-server` of the test's own on 127.0.0.1 with JetStream, its state in a directory
/// that outlives a restart; killed when dropped.
#[derive(Debug)]
pub struct OwnNats {
    port: u16,
    store_dir: std::path::PathBuf,
    child: Option<Child>,
}

impl OwnNats {
    /// Starts one on `port` with `-js -sd <store_dir>` and waits until it accepts
    /// connections.
    pub fn start(port: u16, store_dir: &std::path::Path) -> Self {
        let mut server = Self {
            port,
            store_dir: store_dir.to_owned(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        // Debian installs it in /usr/sbin, which is not on every PATH.
        let binary = if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (scripts/services.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits for it to be gone; what JetStream acknowledged is on
    /// disk and comes back with [`OwnNats::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Hangs it (SIGSTOP): connections stay open, nothing answers. [`OwnNats::resume`]
    /// undoes it.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            signal(child, "-STOP");
        }
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            signal(child, "-CONT");
        }
    }

    /// Starts it again on the same port and store directory (killing it first if needed).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}
