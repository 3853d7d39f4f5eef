//! The tracing subscriber of a blueprint service: one call at start-up.
//!
//! - the filter from `RUST_LOG` when set, else the configured one (default `info`), with
//!   tracing-subscriber's `EnvFilter` syntax (plain `target=level` directives run as a static
//!   filter that costs nothing per span);
//! - `Pretty` (human-readable) or `Json` (one object a line, span fields included, for log
//!   pipelines) output;
//! - standard output, or files rotated by size (the blueprint's 100 MB), keeping a bounded
//!   number of files (30), the older ones gzip-compressed on a thread of their own (file
//!   names as [file-rotate](https://docs.rs/file-rotate)'s `AppendCount`: `service.log.1`,
//!   `service.log.2.gz`, ...), so a rotation never holds up the lines behind it;
//! - always through a batching non-blocking writer: a slow disk or pipe never stalls an RPC,
//!   and lines reach the sink in batches (at most about a millisecond late) instead of one
//!   write and one thread wake-up per line. Keep the returned [`TelemetryGuard`] alive until
//!   exit so buffered lines are flushed.
//!
//! JSON lines keep tracing-subscriber's JSON shape (`timestamp`, `level`, the event's fields
//! flattened, `target`, and the current span's fields under `span`) but are written straight
//! to the line, without building a JSON map per event.
//! A nested span without trace ids of its own shows its ancestor's `trace_id` and `span_id`.
//!
//! ```no_run
//! use tonic_blueprint::telemetry::{self, LogFormat, TelemetryConfig};
//!
//! let _guard = telemetry::init(&TelemetryConfig {
//!     format: LogFormat::Json,
//!     ..TelemetryConfig::default()
//! })
//! .expect("logging set up");
//! tracing::info!("service started");
//! ```

use std::path::PathBuf;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

mod field_keys;
mod json;
#[cfg(feature = "otel")]
pub mod otel;
mod rotate;
mod span_buffers;
mod writer;

/// The largest write to a size-rotated file: files overshoot their limit by at most this.
const FILE_CHUNK: usize = 64 * 1024;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object a line, with the current span's fields.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pretty" | "text" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected pretty or json"
            )),
        }
    }
}

/// Log files rotated by size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOutput {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// The current file's name; rotated files get `.1`, `.2`, ... appended.
    pub file_name: String,
    /// Rotate once the current file passes this size (default 100 MB).
    pub max_bytes: usize,
    /// Rotated files kept (default 30); older ones are deleted.
    pub max_files: usize,
    /// Gzip rotated files, all but the newest (default true).
    pub compress: bool,
}

impl FileOutput {
    /// `dir/service.log` with the blueprint's defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            file_name: "service.log".to_owned(),
            max_bytes: 100 * 1024 * 1024,
            max_files: 30,
            compress: true,
        }
    }
}

/// What [`init`] sets up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The filter when `RUST_LOG` is not set (default `info`).
    pub filter: String,
    /// Line format.
    pub format: LogFormat,
    /// Files instead of standard output.
    pub file: Option<FileOutput>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            filter: "info".to_owned(),
            format: LogFormat::Pretty,
            file: None,
        }
    }
}

/// Flushes buffered log lines when dropped. Keep it until the process exits.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct TelemetryGuard {
    // Dropped first: the exporter's last words still reach the log.
    #[cfg(feature = "otel")]
    otel: Option<otel::OtelGuard>,
    writer: writer::Worker,
}

impl TelemetryGuard {
    /// Lines dropped so far because the sink fell more than 32 MiB behind. Each drop is
    /// also reported in the log once the writer catches up.
    pub fn dropped_lines(&self) -> u64 {
        self.writer.dropped_lines()
    }

    /// Keeps `otel` (the span exporter) alive as long as the logs: dropping this guard stops
    /// both, the exporter first.
    #[cfg(feature = "otel")]
    pub fn with_otel(mut self, otel: Option<otel::OtelGuard>) -> Self {
        self.otel = otel;
        self
    }

    /// The span exporter, when one runs.
    #[cfg(feature = "otel")]
    pub fn otel(&self) -> Option<&otel::OtelGuard> {
        self.otel.as_ref()
    }
}

/// Why [`init`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The filter does not parse.
    Filter(String),
    /// The log directory could not be created, or its rotated files not taken over.
    Directory(std::io::Error),
    /// A global subscriber is already installed.
    AlreadyInstalled,
    /// The writer thread could not be started.
    Writer(std::io::Error),
    /// The OpenTelemetry exporter could not be started.
    Otel(String),
}

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Filter(e) => write!(f, "invalid log filter: {e}"),
            Self::Directory(e) => write!(f, "cannot set up the log directory: {e}"),
            Self::AlreadyInstalled => {
                f.write_str("a global tracing subscriber is already installed")
            }
            Self::Writer(e) => write!(f, "cannot start the log writer thread: {e}"),
            Self::Otel(e) => write!(f, "OpenTelemetry: {e}"),
        }
    }
}

impl std::error::Error for TelemetryError {}

/// Installs the global subscriber described by `config`.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    match &config.file {
        Some(file) => {
            std::fs::create_dir_all(&file.dir).map_err(TelemetryError::Directory)?;
            let max_bytes = file.max_bytes.max(1);
            let rotating = rotate::RotatingFile::new(
                file.dir.join(&file.file_name),
                max_bytes,
                file.max_files,
                file.compress,
            )
            .map_err(TelemetryError::Directory)?;
            install(
                config,
                Box::new(rotating),
                FILE_CHUNK.min(max_bytes / 16).max(1),
                false,
            )
        }
        None => {
            let to_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            install(config, Box::new(std::io::stdout()), FILE_CHUNK, to_terminal)
        }
    }
}

/// Installs the global subscriber described by `config`, writing to `sink` instead of
/// standard output or files (`config.file` is ignored): a pipe, a socket, a test buffer.
pub fn init_with_writer(
    config: &TelemetryConfig,
    sink: impl std::io::Write + Send + 'static,
) -> Result<TelemetryGuard, TelemetryError> {
    install(config, Box::new(sink), FILE_CHUNK, false)
}

/// The filter for `spec` (`EnvFilter` syntax). Plain `target=level` directives become a
/// static [`Targets`] filter; only directives on spans or fields need an `EnvFilter`, which
/// takes a shared lock on every span entry and exit to see whether the span matters (in the
/// preset bench, with both cores busy, that lock cost more than formatting the line).
fn filter(spec: &str) -> Result<(Option<Targets>, Option<EnvFilter>), TelemetryError> {
    if let Ok(targets) = spec.parse::<Targets>() {
        return Ok((Some(targets), None));
    }
    EnvFilter::try_new(spec)
        .map(|env| (None, Some(env)))
        .map_err(|e| TelemetryError::Filter(e.to_string()))
}

fn install(
    config: &TelemetryConfig,
    sink: Box<dyn std::io::Write + Send>,
    chunk: usize,
    ansi: bool,
) -> Result<TelemetryGuard, TelemetryError> {
    let spec = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => env,
        _ => config.filter.clone(),
    };
    let (targets, env_filter) = filter(&spec)?;
    let notice = match config.format {
        LogFormat::Json => writer::Notice::Json,
        LogFormat::Pretty => writer::Notice::Text,
    };
    let (make_writer, worker) =
        writer::spawn(sink, chunk, notice).map_err(TelemetryError::Writer)?;
    let subscriber = tracing_subscriber::registry()
        .with(targets)
        .with(env_filter);
    let installed = match config.format {
        LogFormat::Json => subscriber
            .with(json::JsonLayer::new(make_writer))
            .try_init()
            .is_ok(),
        LogFormat::Pretty => subscriber
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(make_writer)
                    .with_ansi(ansi),
            )
            .try_init()
            .is_ok(),
    };
    if !installed {
        return Err(TelemetryError::AlreadyInstalled);
    }
    Ok(TelemetryGuard {
        #[cfg(feature = "otel")]
        otel: None,
        writer: worker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn plain_directives_get_the_static_filter_and_span_directives_the_env_filter() {
        let (targets, env) = filter("info,h2=warn,payments=debug").expect("plain");
        let targets = targets.expect("a static filter");
        assert!(env.is_none());
        assert!(targets.would_enable("tonic_blueprint", &Level::INFO));
        assert!(!targets.would_enable("tonic_blueprint", &Level::DEBUG));
        assert!(!targets.would_enable("h2::proto", &Level::INFO));
        assert!(targets.would_enable("payments::store", &Level::DEBUG));

        let (targets, env) = filter("info,[grpc.request{request_id=abc}]=debug").expect("spans");
        assert!(targets.is_none());
        assert!(env.is_some());

        assert!(matches!(
            filter("info,h2=loud"),
            Err(TelemetryError::Filter(_))
        ));
    }
}
