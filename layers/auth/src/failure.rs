//! Why a call was refused: the status it gets and the reason it is counted under.

use tonic::{Code, Status};
use tonic_blueprint_core::catalogue::{self, Lang, Text};
use tonic_blueprint_core::names;

/// Why the auth layer refused a call. The client learns only the coarse kind (missing,
/// invalid, expired, forbidden), never which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No credential where one is required: UNAUTHENTICATED.
    Missing,
    /// A credential that does not verify (malformed, wrong key, wrong issuer or audience,
    /// unknown algorithm, not yet valid, unknown API key): UNAUTHENTICATED.
    Invalid,
    /// A token past its `exp` (and the leeway): UNAUTHENTICATED.
    Expired,
    /// A verified caller without a scope the method requires: PERMISSION_DENIED.
    Forbidden,
}

impl Failure {
    /// The `reason` label of `grpc_server_auth_failures_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Forbidden => "forbidden",
        }
    }

    /// The status the client gets: the English message, and the caller's `lang` in a
    /// LocalizedMessage detail (see the core's `catalogue`).
    pub fn status(self, lang: Lang) -> Status {
        let (code, text) = match self {
            Self::Missing => (Code::Unauthenticated, Text::MissingCredentials),
            Self::Invalid => (Code::Unauthenticated, Text::InvalidCredentials),
            Self::Expired => (Code::Unauthenticated, Text::ExpiredCredentials),
            Self::Forbidden => (Code::PermissionDenied, Text::PermissionDenied),
        };
        catalogue::status(code, text, lang)
    }

    /// Counts the refusal in `grpc_server_auth_failures_total{reason}`.
    pub(crate) fn count(self) {
        metrics::counter!(names::AUTH_FAILURES, names::LABEL_REASON => self.reason()).increment(1);
    }
}
