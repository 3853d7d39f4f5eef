//! The error of every events operation.

use super::subject::SubjectError;
use std::fmt;

/// Why an events operation failed. Texts name the server, subject, stream or consumer, and
/// never credentials.
#[derive(Debug)]
#[non_exhaustive]
pub enum EventsError {
    /// No connection after every attempt.
    Connect {
        /// The server list, credentials removed.
        server: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        reason: String,
    },
    /// A setting is invalid (a name, a subject filter, a credentials file).
    Config(String),
    /// A subject was refused.
    Subject(SubjectError),
    /// The event could not be encoded as JSON.
    Encode {
        /// The subject it was for.
        subject: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A publish failed (or, for JetStream, was not acknowledged after every attempt).
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A JetStream operation was asked for but `jetstream` is off in the configuration.
    JetStreamDisabled,
    /// A stream could not be created, updated or found.
    Stream {
        /// The stream name.
        stream: String,
        /// Why.
        reason: String,
    },
    /// A subscription or consumer could not be set up.
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The connection could not be drained.
    Drain(String),
}

impl fmt::Display for EventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect {
                server,
                attempts,
                reason,
            } => write!(
                f,
                "could not connect to NATS at {server} after {attempts} attempt(s): {reason}"
            ),
            Self::Config(reason) => write!(f, "invalid NATS events configuration: {reason}"),
            Self::Subject(e) => e.fmt(f),
            Self::Encode { subject, source } => {
                write!(
                    f,
                    "could not encode the event for {subject} as JSON: {source}"
                )
            }
            Self::Publish { subject, reason } => {
                write!(f, "could not publish on {subject}: {reason}")
            }
            Self::JetStreamDisabled => {
                f.write_str("JetStream is disabled in the NATS configuration (`jetstream = false`)")
            }
            Self::Stream { stream, reason } => write!(f, "JetStream stream {stream}: {reason}"),
            Self::Subscribe { subject, reason } => {
                write!(f, "could not consume {subject}: {reason}")
            }
            Self::Drain(reason) => write!(f, "could not drain the NATS connection: {reason}"),
        }
    }
}

impl std::error::Error for EventsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Subject(e) => Some(e),
            Self::Encode { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<SubjectError> for EventsError {
    fn from(e: SubjectError) -> Self {
        Self::Subject(e)
    }
}
