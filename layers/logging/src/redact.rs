//! Request metadata for the logs, with sensitive values replaced.

use http::{HeaderMap, HeaderName};
use std::collections::HashSet;
use std::fmt;

/// Displays metadata as `name=value` pairs; sensitive values print as `[REDACTED]`, binary
/// (`-bin`) values as their length.
pub(crate) struct Redacted<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) sensitive: &'a HashSet<HeaderName>,
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, value) in self.headers {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name}=")?;
            if self.sensitive.contains(name) {
                f.write_str("[REDACTED]")?;
            } else if name.as_str().ends_with("-bin") {
                write!(f, "[{} bytes]", value.len())?;
            } else {
                match value.to_str() {
                    Ok(text) => write!(f, "{text:?}")?,
                    Err(_) => f.write_str("[not text]")?,
                }
            }
        }
        Ok(())
    }
}
