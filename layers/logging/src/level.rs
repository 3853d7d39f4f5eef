//! Which level a finished call is logged at.

use tonic::Code;
use tracing::Level;

/// The default level of a finished call: `ok` for OK; warn for the codes a client causes
/// (including `DeadlineExceeded` and `Canceled`); error for the codes the server causes.
///
/// ```
/// use tonic_blueprint_logging::default_level;
/// use tracing::Level;
/// assert_eq!(default_level(tonic::Code::Ok, Level::INFO), Level::INFO);
/// assert_eq!(default_level(tonic::Code::NotFound, Level::INFO), Level::WARN);
/// assert_eq!(default_level(tonic::Code::Internal, Level::INFO), Level::ERROR);
/// ```
pub fn default_level(code: Code, ok: Level) -> Level {
    match code {
        Code::Ok => ok,
        Code::Unknown
        | Code::Unimplemented
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => Level::ERROR,
        Code::Cancelled
        | Code::InvalidArgument
        | Code::DeadlineExceeded
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unauthenticated => Level::WARN,
    }
}
