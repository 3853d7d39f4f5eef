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

/// The TLS files of a server a test starts: its certificate and key, and the CA it verifies
/// client certificates with (required when `verify_clients`).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The server's certificate (PEM).
    pub cert: std::path::PathBuf,
    /// Its key (PEM).
    pub key: std::path::PathBuf,
    /// The CA of client certificates (PEM).
    pub ca: std::path::PathBuf,
    /// Whether clients must present a certificate of `ca`.
    pub verify_clients: bool,
}

/// A `redis-server` of the test's own on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct OwnRedis {
    port: u16,
    tls: bool,
    child: Child,
}

impl OwnRedis {
    /// Starts one on `port` (no persistence) and waits until it accepts connections.
    pub fn start(port: u16) -> Self {
        Self::spawn(port, None)
    }

    /// Starts one that speaks only TLS on `port` (Debian's redis-server is built with TLS).
    pub fn start_tls(port: u16, tls: &ServerTls) -> Self {
        Self::spawn(port, Some(tls))
    }

    fn spawn(port: u16, tls: Option<&ServerTls>) -> Self {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match tls {
            None => {
                command.args(["--port", &port.to_string()]);
            }
            Some(tls) => {
                command
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&tls.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca)
                    .args([
                        "--tls-auth-clients",
                        if tls.verify_clients { "yes" } else { "no" },
                    ]);
            }
        }
        let child = command
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
        Self {
            port,
            tls: tls.is_some(),
            child,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
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
    tls: Option<ServerTls>,
    child: Option<Child>,
}

impl OwnNats {
    /// Starts one on `port` with `-js -sd <store_dir>` and waits until it accepts
    /// connections.
    pub fn start(port: u16, store_dir: &std::path::Path) -> Self {
        let mut server = Self {
            port,
            store_dir: store_dir.to_owned(),
            tls: None,
            child: None,
        };
        server.spawn();
        server
    }

    /// Starts one that requires TLS (it announces `tls_required`), verifying client
    /// certificates with `tls.ca` when `tls.verify_clients`.
    pub fn start_tls(port: u16, store_dir: &std::path::Path, tls: &ServerTls) -> Self {
        let mut server = Self {
            port,
            store_dir: store_dir.to_owned(),
            tls: Some(tls.clone()),
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
        let mut command = Command::new(binary);
        command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir);
        if let Some(tls) = &self.tls {
            command
                .arg("--tls")
                .arg("--tlscert")
                .arg(&tls.cert)
                .arg("--tlskey")
                .arg(&tls.key);
            if tls.verify_clients {
                command.arg("--tlsverify").arg("--tlscacert").arg(&tls.ca);
            }
        }
        let child = command
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

    /// `nats://127.0.0.1:<port>` (a TLS server announces `tls_required`: clients upgrade).
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

/// A PostgreSQL cluster of the test's own: `initdb` in a temporary directory, served on
/// 127.0.0.1:`port` (trust authentication, user `postgres`), optionally with `ssl=on`;
/// stopped (immediate mode) and removed when dropped. Never the shared cluster on 5432.
///
/// Run as root (CI), the cluster belongs to the `postgres` user, as PostgreSQL refuses to
/// run as root.
#[derive(Debug)]
pub struct OwnPostgres {
    port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl OwnPostgres {
    /// Initialises and starts a cluster on `port`, with TLS from `tls` when given (client
    /// certificates are then verified against `tls.ca` when presented), and waits until it
    /// accepts connections.
    pub fn start(port: u16, tls: Option<&ServerTls>) -> Self {
        let bin = postgres_bin();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "tonic-blueprint-pg-{}-{port}-{nanos}",
            std::process::id()
        ));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        let server = Self { port, dir, bin };
        server.as_owner(&["chown", "-R", "postgres:postgres"], &[&server.dir], true);
        server.run_pg(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\n",
            server.dir.display()
        );
        if let Some(tls) = tls {
            for (from, to) in [
                (&tls.cert, "server.crt"),
                (&tls.key, "server.key"),
                (&tls.ca, "ca.crt"),
            ] {
                std::fs::copy(from, data.join(to)).expect("copy a TLS file into the cluster");
            }
            server.as_owner(
                &["chown", "postgres:postgres"],
                &[&data.join("server.key")],
                true,
            );
            server.as_owner(&["chmod", "600"], &[&data.join("server.key")], false);
            conf.push_str(
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n",
            );
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("configure the cluster");
        server.run_pg(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                &data.display().to_string(),
                "-l",
                &server.dir.join("log").display().to_string(),
            ],
        );
        server
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` followed by `query` (`?sslmode=...`).
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres{query}",
            self.port
        )
    }

    /// Creates database `name` (for services that want their own).
    pub fn create_database(&self, name: &str) {
        let psql = self.bin.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            std::path::PathBuf::from("psql")
        };
        let status = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-c", &format!("CREATE DATABASE \"{name}\""), "postgres"])
            .stdout(Stdio::null())
            .status()
            .expect("psql");
        assert!(status.success(), "CREATE DATABASE {name}");
    }

    fn running_as_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    /// Runs a PostgreSQL program, as the `postgres` user when the test runs as root.
    fn run_pg(&self, program: &str, args: &[&str]) {
        let binary = self.bin.join(program);
        let mut command = if Self::running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} ({}): {e}", binary.display()));
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}\n{}\n{log}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A root-only command (`chown`) when running as root; `always` runs it regardless.
    fn as_owner(&self, command: &[&str], paths: &[&std::path::Path], root_only: bool) {
        if root_only && !Self::running_as_root() {
            return;
        }
        let status = Command::new(command[0])
            .args(&command[1..])
            .args(paths)
            .status()
            .expect(command[0]);
        assert!(status.success(), "{command:?} {paths:?}");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let binary = self.bin.join("pg_ctl");
        let mut command = if Self::running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let _ = command
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest PostgreSQL's programs (Debian: /usr/lib/postgresql/<version>/bin).
fn postgres_bin() -> std::path::PathBuf {
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL's initdb under /usr/lib/postgresql/*/bin (scripts/services.sh installs it)",
    )
}
