//! The tracing subscriber of a blueprint service: one call at start-up.
//!
//! - the filter from `RUST_LOG` when set, else the configured one (default `info`), with
//!   tracing-subscriber's `EnvFilter` syntax;
//! - `Pretty` (human-readable) or `Json` (one object a line, span fields included, for log
//!   pipelines) output;
//! - standard output, or files rotated by size (the blueprint's 100 MB), keeping a bounded
//!   number of files (30), the older ones gzip-compressed, through
//!   [file-rotate](https://docs.rs/file-rotate);
//! - always through tracing-appender's non-blocking writer: a slow disk or pipe never stalls
//!   an RPC. Keep the returned [`TelemetryGuard`] alive until exit so buffered lines are
//!   flushed.
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

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use std::path::PathBuf;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

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
    _writer: WorkerGuard,
}

/// Why [`init`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The filter does not parse.
    Filter(String),
    /// The log directory could not be created.
    Directory(std::io::Error),
    /// A global subscriber is already installed.
    AlreadyInstalled,
}

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Filter(e) => write!(f, "invalid log filter: {e}"),
            Self::Directory(e) => write!(f, "cannot create the log directory: {e}"),
            Self::AlreadyInstalled => {
                f.write_str("a global tracing subscriber is already installed")
            }
        }
    }
}

impl std::error::Error for TelemetryError {}

/// Installs the global subscriber described by `config`.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(&config.filter),
    }
    .map_err(|e| TelemetryError::Filter(e.to_string()))?;

    let (writer, guard) = match &config.file {
        Some(file) => {
            std::fs::create_dir_all(&file.dir).map_err(TelemetryError::Directory)?;
            let compression = if file.compress {
                Compression::OnRotate(1)
            } else {
                Compression::None
            };
            let rotating = FileRotate::new(
                file.dir.join(&file.file_name),
                AppendCount::new(file.max_files.max(1)),
                ContentLimit::BytesSurpassed(file.max_bytes.max(1)),
                compression,
                None,
            );
            tracing_appender::non_blocking(rotating)
        }
        None => tracing_appender::non_blocking(std::io::stdout()),
    };
    let to_terminal = config.file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_ansi(to_terminal).try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard { _writer: guard })
}
