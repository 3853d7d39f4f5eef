//! Rules on request metadata, per method (for example `x-user-id` required, at most 64
//! characters).

use crate::violation::Violations;
use http::{HeaderMap, HeaderName};
use tonic_blueprint_core::catalogue::{Lang, Text};

/// A rule on one metadata key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataRule {
    key: HeaderName,
    required: bool,
    max_len: Option<usize>,
}

impl MetadataRule {
    /// `key` must be present (and printable text).
    ///
    /// # Panics
    /// When `key` is not a valid metadata key (a programming error, caught at start-up).
    pub fn required(key: &str) -> Self {
        Self::new(key, true)
    }

    /// `key` may be absent; when present it must be printable text.
    ///
    /// # Panics
    /// When `key` is not a valid metadata key.
    pub fn optional(key: &str) -> Self {
        Self::new(key, false)
    }

    fn new(key: &str, required: bool) -> Self {
        let key = HeaderName::from_bytes(key.to_ascii_lowercase().as_bytes())
            .unwrap_or_else(|_| panic!("{key:?} is not a valid metadata key"));
        Self {
            key,
            required,
            max_len: None,
        }
    }

    /// At most `chars` characters.
    pub fn max_len(mut self, chars: usize) -> Self {
        self.max_len = Some(chars);
        self
    }

    /// Its key.
    pub fn key(&self) -> &HeaderName {
        &self.key
    }

    pub(crate) fn check(&self, headers: &HeaderMap, violations: &mut Violations) {
        let field = format!("metadata.{}", self.key);
        let Some(value) = headers.get(&self.key) else {
            if self.required {
                violations.add(field, "metadata.required", Text::MetadataRequired);
            }
            return;
        };
        let Ok(text) = value.to_str() else {
            violations.add(field, "metadata.text", Text::MetadataNotText);
            return;
        };
        if self.required && text.trim().is_empty() {
            violations.add(field, "metadata.required", Text::MetadataRequired);
            return;
        }
        if let Some(max) = self.max_len
            && text.chars().count() > max
        {
            violations.add(field, "metadata.max_len", |lang: Lang| {
                format!("{} ({max})", Text::MetadataTooLong.text(lang))
            });
        }
    }
}
