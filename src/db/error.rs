//! [`DbError`] and its mapping to gRPC statuses.
//!
//! | failure | kind | gRPC status, message |
//! |---|---|---|
//! | unique violation (PostgreSQL `23505`, SQLite `2067`/`1555`) | [`AlreadyExists`](DbErrorKind::AlreadyExists) | ALREADY_EXISTS "already exists" |
//! | foreign key violation (`23503`, SQLite `787`) | [`FailedPrecondition`](DbErrorKind::FailedPrecondition) | FAILED_PRECONDITION "a related resource is missing or still in use" |
//! | not-null or check violation (`23502`, `23514`, SQLite `1299`, `275`) | [`InvalidArgument`](DbErrorKind::InvalidArgument) | INVALID_ARGUMENT "invalid argument" |
//! | no row for `fetch_one` ([`sqlx::Error::RowNotFound`]) | [`NotFound`](DbErrorKind::NotFound) | NOT_FOUND "not found" |
//! | serialization failure or deadlock (`40001`, `40P01`) | [`Aborted`](DbErrorKind::Aborted) | ABORTED "aborted by a concurrent change, retry" |
//! | no connection in time, I/O, TLS, closed pool, connect failure, server shutting down or refusing connections (`08*`, `53300`, `57P01`-`57P03`), SQLite busy or locked | [`Unavailable`](DbErrorKind::Unavailable) | UNAVAILABLE "service temporarily unavailable, try again later" |
//! | the RPC's deadline passed, statement timeout or cancel (`57014`) | [`DeadlineExceeded`](DbErrorKind::DeadlineExceeded) | DEADLINE_EXCEEDED "deadline exceeded" |
//! | anything else | [`Internal`](DbErrorKind::Internal) | INTERNAL "internal error" |
//!
//! The status message is always one of these fixed English texts (from the core's error
//! catalogue; [`DbError::to_status_in`] adds the caller's language in a LocalizedMessage
//! detail): SQL, table and constraint names, values and driver text stay in the server's log,
//! where the conversion writes them with the operation name.

use std::fmt;

use tonic_blueprint_core::catalogue::{self, Lang, Text};

use super::InvalidName;

/// What went wrong, as far as a caller needs to know: each kind has one gRPC code and one
/// fixed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// A unique or primary key constraint refused the row.
    AlreadyExists,
    /// A foreign key constraint refused the change.
    FailedPrecondition,
    /// A not-null or check constraint refused a value.
    InvalidArgument,
    /// The statement found no row where one was required.
    NotFound,
    /// A concurrent transaction won (serialization failure, deadlock): retrying may succeed.
    Aborted,
    /// The database could not be reached or had no connection free in time.
    Unavailable,
    /// The RPC's deadline passed, or the server cancelled the statement.
    DeadlineExceeded,
    /// Anything else: a bug, a schema mismatch, a failed migration.
    Internal,
}

impl DbErrorKind {
    /// The gRPC code.
    pub fn code(self) -> tonic::Code {
        match self {
            DbErrorKind::AlreadyExists => tonic::Code::AlreadyExists,
            DbErrorKind::FailedPrecondition => tonic::Code::FailedPrecondition,
            DbErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            DbErrorKind::NotFound => tonic::Code::NotFound,
            DbErrorKind::Aborted => tonic::Code::Aborted,
            DbErrorKind::Unavailable => tonic::Code::Unavailable,
            DbErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            DbErrorKind::Internal => tonic::Code::Internal,
        }
    }

    /// The fixed status message, in English: nothing about the statement or the server.
    pub fn message(self) -> &'static str {
        self.message_in(Lang::En)
    }

    /// The fixed message in `lang`, from the error catalogue: the status message is always
    /// English; this is the text of the LocalizedMessage a caller speaking `lang` gets.
    pub fn message_in(self, lang: Lang) -> &'static str {
        self.text().text(lang)
    }

    /// The catalogue entry of the message.
    pub fn text(self) -> Text {
        match self {
            DbErrorKind::AlreadyExists => Text::AlreadyExists,
            DbErrorKind::FailedPrecondition => Text::RelatedResource,
            DbErrorKind::InvalidArgument => Text::InvalidData,
            DbErrorKind::NotFound => Text::NotFound,
            DbErrorKind::Aborted => Text::ConcurrentChange,
            DbErrorKind::Unavailable => Text::Unavailable,
            DbErrorKind::DeadlineExceeded => Text::DeadlineExceeded,
            DbErrorKind::Internal => Text::Internal,
        }
    }
}

/// A failure of the database helper.
///
/// `Display` is for the server's log: it holds the driver's text (never a password). Clients
/// get a [`tonic::Status`] through `From<DbError>`, which carries only the fixed message of
/// the [`kind`](DbError::kind).
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError {
    /// The configuration is unusable (bad URL scheme, impossible pool sizes).
    InvalidConfig {
        /// What is wrong; never the password.
        reason: String,
    },
    /// Every connect attempt failed.
    Connect {
        /// The database tried: `PostgreSQL at host:port/database` or `SQLite file path`.
        target: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        source: sqlx::Error,
    },
    /// Migrations could not be read or applied.
    Migrate {
        /// The migrations folder.
        dir: String,
        /// sqlx's error.
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    Query {
        /// The caller's name for the statement.
        operation: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// The RPC's deadline passed before the statement finished (or before it started).
    DeadlineExceeded {
        /// The caller's name for the statement.
        operation: String,
    },
    /// A column could not be read as the requested type.
    Decode {
        /// The column name.
        column: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A table name was refused by [`table_name`](super::table_name).
    InvalidName(InvalidName),
}

impl DbError {
    /// A failed statement, for sqlx errors from code that runs sqlx directly.
    pub fn query(operation: impl Into<String>, source: sqlx::Error) -> Self {
        DbError::Query {
            operation: operation.into(),
            source,
        }
    }

    /// The caller's name for the statement, when the error comes from one.
    pub fn operation(&self) -> Option<&str> {
        match self {
            DbError::Query { operation, .. } | DbError::DeadlineExceeded { operation } => {
                Some(operation)
            }
            _ => None,
        }
    }

    /// What went wrong, for the caller.
    pub fn kind(&self) -> DbErrorKind {
        match self {
            DbError::Query { source, .. } => classify(source),
            DbError::Connect { .. } => DbErrorKind::Unavailable,
            DbError::DeadlineExceeded { .. } => DbErrorKind::DeadlineExceeded,
            DbError::InvalidConfig { .. }
            | DbError::Migrate { .. }
            | DbError::Decode { .. }
            | DbError::InvalidName(_) => DbErrorKind::Internal,
        }
    }

    /// The gRPC code of the [`kind`](Self::kind).
    pub fn code(&self) -> tonic::Code {
        self.kind().code()
    }

    /// The SQLSTATE (PostgreSQL) or extended result code (SQLite) the database returned.
    pub fn database_code(&self) -> Option<String> {
        match self {
            DbError::Query {
                source: sqlx::Error::Database(e),
                ..
            } => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// The status a client gets, logging the real error (error level for INTERNAL and
    /// UNAVAILABLE, debug for outcomes a request causes, such as ALREADY_EXISTS).
    pub fn to_status(&self) -> tonic::Status {
        self.to_status_in(Lang::En)
    }

    /// [`to_status`](DbError::to_status) for a caller speaking `lang`: the same English
    /// message, and the text in `lang` in a LocalizedMessage detail.
    pub fn to_status_in(&self, lang: Lang) -> tonic::Status {
        let kind = self.kind();
        let operation = self.operation().unwrap_or("");
        match kind {
            DbErrorKind::Internal | DbErrorKind::Unavailable => tracing::error!(
                db.operation = operation,
                grpc.code = ?kind.code(),
                error = %self,
                "database error"
            ),
            DbErrorKind::DeadlineExceeded | DbErrorKind::Aborted => tracing::warn!(
                db.operation = operation,
                grpc.code = ?kind.code(),
                error = %self,
                "database error"
            ),
            _ => tracing::debug!(
                db.operation = operation,
                grpc.code = ?kind.code(),
                error = %self,
                "database error"
            ),
        }
        catalogue::status(kind.code(), kind.text(), lang)
    }
}

/// Whether a connect failed in TLS: no TLS offered, or a certificate that does not verify.
fn is_tls_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Tls(_) => true,
        #[cfg(feature = "tls")]
        sqlx::Error::Io(e) => e
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// The kind of a sqlx error.
fn classify(error: &sqlx::Error) -> DbErrorKind {
    match error {
        sqlx::Error::RowNotFound => DbErrorKind::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => DbErrorKind::Unavailable,
        sqlx::Error::Database(e) => {
            use sqlx::error::ErrorKind;
            match e.kind() {
                ErrorKind::UniqueViolation => DbErrorKind::AlreadyExists,
                ErrorKind::ForeignKeyViolation => DbErrorKind::FailedPrecondition,
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    DbErrorKind::InvalidArgument
                }
                _ => e
                    .code()
                    .map_or(DbErrorKind::Internal, |c| classify_code(&c)),
            }
        }
        _ => DbErrorKind::Internal,
    }
}

/// The kind of a PostgreSQL SQLSTATE or SQLite extended result code that sqlx's own
/// classification leaves as "other".
fn classify_code(code: &str) -> DbErrorKind {
    match code {
        // PostgreSQL.
        "23505" => DbErrorKind::AlreadyExists,
        "23503" => DbErrorKind::FailedPrecondition,
        "23502" | "23514" => DbErrorKind::InvalidArgument,
        "57014" => DbErrorKind::DeadlineExceeded,
        "40001" | "40P01" => DbErrorKind::Aborted,
        "53300" | "57P01" | "57P02" | "57P03" => DbErrorKind::Unavailable,
        c if c.len() == 5 && c.starts_with("08") => DbErrorKind::Unavailable,
        // SQLite extended result codes: the primary code is the low byte.
        c => match c.parse::<i32>() {
            Ok(2067 | 1555) => DbErrorKind::AlreadyExists,
            Ok(787) => DbErrorKind::FailedPrecondition,
            Ok(1299 | 275) => DbErrorKind::InvalidArgument,
            // SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
            Ok(n) if matches!(n & 0xff, 5 | 6) => DbErrorKind::Unavailable,
            // SQLITE_INTERRUPT.
            Ok(9) => DbErrorKind::DeadlineExceeded,
            _ => DbErrorKind::Internal,
        },
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::InvalidConfig { reason } => {
                write!(f, "invalid database configuration: {reason}")
            }
            DbError::Connect {
                target,
                attempts,
                source,
            } => {
                let plural = if *attempts == 1 { "" } else { "s" };
                write!(
                    f,
                    "could not connect to {target} after {attempts} attempt{plural}: {source}"
                )?;
                if is_tls_failure(source) {
                    // Never plaintext instead: say what the URL asked for.
                    f.write_str(
                        " (the database URL's sslmode (DATABASE_URL) asks for TLS: the server must offer it, with a certificate that verifies against sslrootcert)",
                    )?;
                }
                Ok(())
            }
            DbError::Migrate { dir, source } => {
                write!(f, "migrations from {dir} failed: {source}")
            }
            DbError::Query { operation, source } => {
                write!(f, "statement `{operation}` failed: {source}")
            }
            DbError::DeadlineExceeded { operation } => {
                write!(f, "statement `{operation}` ran past the RPC's deadline")
            }
            DbError::Decode { column, source } => {
                write!(f, "column `{column}` could not be read: {source}")
            }
            DbError::InvalidName(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Connect { source, .. }
            | DbError::Query { source, .. }
            | DbError::Decode { source, .. } => Some(source),
            DbError::Migrate { source, .. } => Some(source),
            DbError::InvalidName(e) => Some(e),
            DbError::InvalidConfig { .. } | DbError::DeadlineExceeded { .. } => None,
        }
    }
}

impl From<InvalidName> for DbError {
    fn from(e: InvalidName) -> Self {
        DbError::InvalidName(e)
    }
}

impl From<DbError> for tonic::Status {
    fn from(e: DbError) -> Self {
        e.to_status()
    }
}

impl From<InvalidName> for tonic::Status {
    fn from(e: InvalidName) -> Self {
        DbError::from(e).to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            ("23505", DbErrorKind::AlreadyExists),
            ("2067", DbErrorKind::AlreadyExists),
            ("1555", DbErrorKind::AlreadyExists),
            ("23503", DbErrorKind::FailedPrecondition),
            ("787", DbErrorKind::FailedPrecondition),
            ("23502", DbErrorKind::InvalidArgument),
            ("1299", DbErrorKind::InvalidArgument),
            ("57014", DbErrorKind::DeadlineExceeded),
            ("40P01", DbErrorKind::Aborted),
            ("08006", DbErrorKind::Unavailable),
            ("5", DbErrorKind::Unavailable),
            ("517", DbErrorKind::Unavailable),
            ("42P01", DbErrorKind::Internal),
            ("1", DbErrorKind::Internal),
        ];
        for (code, kind) in cases {
            assert_eq!(classify_code(code), kind, "{code}");
        }
    }

    #[test]
    fn non_database_errors_are_classified() {
        assert_eq!(classify(&sqlx::Error::RowNotFound), DbErrorKind::NotFound);
        assert_eq!(
            classify(&sqlx::Error::PoolTimedOut),
            DbErrorKind::Unavailable
        );
        assert_eq!(
            classify(&sqlx::Error::Protocol("x".into())),
            DbErrorKind::Internal
        );
    }

    #[test]
    fn status_message_is_fixed() {
        let e = DbError::query(
            "insert_item",
            sqlx::Error::ColumnNotFound("secret_column".into()),
        );
        let spanish = e.to_status_in(Lang::Es);
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert!(status.details().is_empty());
        // Another language: the same English message, the text in a LocalizedMessage.
        assert_eq!(spanish.code(), tonic::Code::Internal);
        assert_eq!(spanish.message(), "internal error");
        let localized = catalogue::tonic_types::StatusExt::get_details_localized_message(&spanish)
            .expect("LocalizedMessage");
        assert_eq!(
            (localized.locale.as_str(), localized.message.as_str()),
            ("es", "error interno")
        );
    }
}
