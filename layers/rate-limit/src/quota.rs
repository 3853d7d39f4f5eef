//! What a quota allows, and how strictly.

use serde::de::{self, Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// How a quota counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No window of the quota's length ever admits more than `limit` calls (the blueprint's
    /// promise). Counted in [`STRICT_SUBWINDOWS`] sub-windows; a call is admitted while the
    /// calls of the last `STRICT_SUBWINDOWS + 1` sub-windows (a span a little longer than the
    /// window, so every true window is covered) stay below the limit. A caller may use the
    /// whole limit at once, then waits for old sub-windows to expire.
    Strict,
    /// GCRA (governor's algorithm): calls replenish evenly, one every `window / limit`, with
    /// up to `burst` at once. "100 per minute, burst 100" admits up to 199 calls in the first
    /// minute; it never stores more than one timestamp per key.
    Gcra {
        /// Calls admitted at once from a full bucket (at least 1).
        burst: u32,
    },
}

/// Sub-windows a strict window is counted in.
pub const STRICT_SUBWINDOWS: u32 = 10;

/// `limit` calls per `window`, counted as `mode` says. A limit of zero refuses every call.
///
/// Reads from configuration as `"100/min"`, `"10/s"`, `"5000/h"`, `"20/30s"`, optionally with
/// `" gcra"` or `" gcra burst 20"` (default strict), or `"0"` to refuse.
///
/// ```
/// use std::time::Duration;
/// use tonic_blueprint_rate_limit::{Mode, Quota};
///
/// let q: Quota = "100/min".parse().unwrap();
/// assert_eq!((q.limit, q.window, q.mode), (100, Duration::from_secs(60), Mode::Strict));
/// let q: Quota = "10/s gcra burst 5".parse().unwrap();
/// assert_eq!(q.mode, Mode::Gcra { burst: 5 });
/// assert_eq!("0".parse::<Quota>().unwrap().limit, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Calls allowed per window; zero refuses the method.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// How calls are counted.
    pub mode: Mode,
}

impl Default for Quota {
    /// The blueprint's default: 100 per minute, strict.
    fn default() -> Self {
        Self::per_minute(100)
    }
}

impl Quota {
    /// `limit` per minute, strict.
    pub const fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` per second, strict.
    pub const fn per_second(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` per `window`, strict.
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            mode: Mode::Strict,
        }
    }

    /// Refuses every call.
    pub const fn refuse_all() -> Self {
        Self::new(0, Duration::from_secs(60))
    }

    /// The same quota counted with GCRA and `burst`.
    pub const fn gcra(mut self, burst: u32) -> Self {
        self.mode = Mode::Gcra { burst };
        self
    }

    /// The IETF `RateLimit-Policy` parameters: `q=<limit>;w=<seconds>`.
    pub(crate) fn policy_params(&self) -> String {
        format!("q={};w={}", self.limit, self.window.as_secs().max(1))
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} per {}",
            self.limit,
            humantime::format_duration(self.window)
        )?;
        if let Mode::Gcra { burst } = self.mode {
            write!(f, " (GCRA, burst {burst})")?;
        }
        Ok(())
    }
}

/// A quota string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidQuota(String);

impl fmt::Display for InvalidQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid quota {:?}: expected like \"100/min\", \"10/s gcra burst 5\" or \"0\"",
            self.0
        )
    }
}

impl std::error::Error for InvalidQuota {}

impl std::str::FromStr for Quota {
    type Err = InvalidQuota;

    fn from_str(text: &str) -> Result<Self, InvalidQuota> {
        let err = || InvalidQuota(text.to_owned());
        let mut words = text.split_whitespace();
        let rate = words.next().ok_or_else(err)?;
        if rate == "0" {
            return Ok(Self::refuse_all());
        }
        let (limit, per) = rate.split_once('/').ok_or_else(err)?;
        let limit: u32 = limit.parse().map_err(|_| err())?;
        let window = match per {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => humantime::parse_duration(other).map_err(|_| err())?,
        };
        if window.is_zero() {
            return Err(err());
        }
        let mut quota = Self::new(limit, window);
        match (words.next(), words.next(), words.next(), words.next()) {
            (None, ..) | (Some("strict"), None, ..) => {}
            (Some("gcra"), None, ..) => quota = quota.gcra(limit.max(1)),
            (Some("gcra"), Some("burst"), Some(n), None) => {
                quota = quota.gcra(n.parse::<u32>().map_err(|_| err())?.max(1));
            }
            _ => return Err(err()),
        }
        Ok(quota)
    }
}

impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}
