//! A method's server-side timeout, as configuration holds it.

use serde::de::{self, Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// The blueprint's default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A method's server-side timeout: a duration, or none (for long-lived streams, bounded only
/// by the client's `grpc-timeout`). The default is [`DEFAULT_TIMEOUT`].
///
/// ```
/// use std::time::Duration;
/// use tonic_blueprint_timeout::MethodTimeout;
///
/// let t: MethodTimeout = serde_json::from_str(r#""250ms""#).unwrap();
/// assert_eq!(t.duration(), Some(Duration::from_millis(250)));
/// let t: MethodTimeout = serde_json::from_str("1.5").unwrap();
/// assert_eq!(t.duration(), Some(Duration::from_millis(1500)));
/// let t: MethodTimeout = serde_json::from_str(r#""none""#).unwrap();
/// assert_eq!(t.duration(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodTimeout(Option<Duration>);

impl MethodTimeout {
    /// A timeout of `duration`.
    pub const fn after(duration: Duration) -> Self {
        Self(Some(duration))
    }

    /// No server-side timeout.
    pub const NONE: Self = Self(None);

    /// The duration, or `None` for no server-side timeout.
    pub fn duration(self) -> Option<Duration> {
        self.0
    }
}

impl Default for MethodTimeout {
    fn default() -> Self {
        Self(Some(DEFAULT_TIMEOUT))
    }
}

impl From<Duration> for MethodTimeout {
    fn from(d: Duration) -> Self {
        Self(Some(d))
    }
}

impl From<Option<Duration>> for MethodTimeout {
    fn from(d: Option<Duration>) -> Self {
        Self(d)
    }
}

impl<'de> Deserialize<'de> for MethodTimeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = MethodTimeout;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"30s\" or \"250ms\", a number of seconds, or \"none\"",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MethodTimeout, E> {
                match v.trim() {
                    "none" | "off" | "never" => Ok(MethodTimeout::NONE),
                    text => humantime::parse_duration(text)
                        .map(MethodTimeout::after)
                        .map_err(|e| E::custom(format!("invalid timeout {v:?}: {e}"))),
                }
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MethodTimeout, E> {
                Duration::try_from_secs_f64(v)
                    .map(MethodTimeout::after)
                    .map_err(|_| E::custom(format!("invalid timeout {v} seconds")))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MethodTimeout, E> {
                Ok(MethodTimeout::after(Duration::from_secs(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MethodTimeout, E> {
                u64::try_from(v)
                    .map(|s| MethodTimeout::after(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("invalid timeout {v} seconds")))
            }

            fn visit_unit<E: de::Error>(self) -> Result<MethodTimeout, E> {
                Ok(MethodTimeout::NONE)
            }
        }
        deserializer.deserialize_any(V)
    }
}
