//! Violations and the INVALID_ARGUMENT answer that lists them (google.rpc.BadRequest).

use tonic::{Code, Status};
use tonic_blueprint_core::MAX_DETAILS_BYTES;
use tonic_blueprint_core::catalogue::{Lang, Text};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// One violated rule: where, which rule, and what is wrong in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The dotted path of the field (`address.city`, `tags[1]`), or `metadata.<key>`.
    pub field: String,
    /// The rule's id (`string.min_len`), sent as BadRequest's `reason`.
    pub rule: String,
    /// What is wrong, in the caller's language.
    pub description: String,
}

/// The violations of one request; custom rules ([`crate::Validate`]) add to it.
#[derive(Clone, Debug, Default)]
pub struct Violations {
    pub(crate) list: Vec<Violation>,
    pub(crate) lang: Lang,
}

impl Violations {
    /// An empty list for a caller speaking `lang`.
    pub fn new(lang: Lang) -> Self {
        Self {
            list: Vec::new(),
            lang,
        }
    }

    /// Records that `field` breaks `rule` (an id such as `payment.currency_supported`),
    /// described by `description`.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        rule: impl Into<String>,
        description: impl Into<String>,
    ) {
        self.list.push(Violation {
            field: field.into(),
            rule: rule.into(),
            description: description.into(),
        });
    }

    /// The caller's language, for descriptions written by custom rules.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// Whether nothing was violated.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The violations so far.
    pub fn as_slice(&self) -> &[Violation] {
        &self.list
    }

    /// The answer: INVALID_ARGUMENT with every violation in a BadRequest, cut to fit the
    /// header budget (the last entry then says more were left out).
    pub fn into_status(self) -> Status {
        let lang = self.lang;
        // Encoded details must stay under the core's cap; leave room for the Status wrapper.
        let budget = MAX_DETAILS_BYTES - 512;
        let mut used = 0;
        let mut fields = Vec::with_capacity(self.list.len());
        let total = self.list.len();
        for violation in self.list {
            let cost =
                violation.field.len() + violation.rule.len() + 2 * violation.description.len() + 32;
            if used + cost > budget {
                break;
            }
            used += cost;
            fields.push(field_violation(violation, lang));
        }
        if fields.len() < total {
            fields.push(field_violation(
                Violation {
                    field: String::new(),
                    rule: "truncated".into(),
                    description: format!(
                        "{} ({})",
                        Text::MoreViolations.text(lang),
                        total - fields.len()
                    ),
                },
                lang,
            ));
        }
        let mut details = ErrorDetails::new();
        details.set_bad_request(fields);
        Status::with_error_details(
            Code::InvalidArgument,
            Text::InvalidRequest.text(lang),
            details,
        )
    }
}

fn field_violation(v: Violation, lang: Lang) -> FieldViolation {
    let mut field = FieldViolation::new(v.field, v.description.clone());
    field.reason = v.rule;
    if lang != Lang::En {
        field.localized_message = Some(tonic_types::LocalizedMessage {
            locale: lang.tag().into(),
            message: v.description,
        });
    }
    field
}

/// A refusal that is not about rules (a bad frame, bytes that do not decode): the status
/// with the catalogue's text in the caller's language.
pub(crate) fn plain(code: Code, text: Text, lang: Lang) -> Status {
    Status::new(code, text.text(lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_violations_is_cut_to_the_budget_and_says_so() {
        let mut violations = Violations::new(Lang::En);
        for i in 0..1000 {
            violations.add(
                format!("items[{i}].name"),
                "string.min_len",
                "value is too short",
            );
        }
        let status = violations.into_status();
        assert!(
            status.details().len() <= MAX_DETAILS_BYTES,
            "{}",
            status.details().len()
        );
        let bad = status.get_details_bad_request().expect("BadRequest");
        let last = bad.field_violations.last().expect("entries");
        assert_eq!(last.reason, "truncated");
        assert!(
            last.description.contains("more violations"),
            "{}",
            last.description
        );
        assert!(bad.field_violations.len() > 10);
    }
}
