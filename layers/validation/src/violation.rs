//! Violations and the INVALID_ARGUMENT answer that lists them (google.rpc.BadRequest).

use tonic::{Code, Status};
use tonic_blueprint_core::MAX_DETAILS_BYTES;
use tonic_blueprint_core::catalogue::{self, Lang, Localize, Text};
use tonic_types::{ErrorDetails, FieldViolation};

/// One violated rule: where, which rule, and what is wrong in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The dotted path of the field (`address.city`, `tags[1]`), or `metadata.<key>`.
    pub field: String,
    /// The rule's id (`string.min_len`), sent as BadRequest's `reason`.
    pub rule: String,
    /// What is wrong, in English (BadRequest's `description`, for developers).
    pub description: String,
    /// What is wrong in the caller's language, when it is not English and the description
    /// has a translation (BadRequest's `localized_message`).
    pub localized: Option<String>,
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
    /// described by `description`: an English string, or a text with translations (a
    /// catalogue `Message`, or `|lang| ...` composing one), whose version in the caller's
    /// language becomes the field's LocalizedMessage.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        rule: impl Into<String>,
        description: impl Localize,
    ) {
        let english = description.localize(Lang::En);
        let localized = (self.lang != Lang::En)
            .then(|| description.localize(self.lang))
            .filter(|text| *text != english)
            .map(|text| text.into_owned());
        self.list.push(Violation {
            field: field.into(),
            rule: rule.into(),
            description: english.into_owned(),
            localized,
        });
    }

    /// The caller's language.
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
    /// header budget (the last entry then says more were left out). Messages and
    /// descriptions are English; a caller speaking another language gets each field's
    /// `localized_message` and the status's LocalizedMessage in it.
    pub fn into_status(self) -> Status {
        let lang = self.lang;
        // Encoded details must stay under the core's cap; leave room for the Status wrapper,
        // the LocalizedMessage and the "more violations" entry.
        let budget = MAX_DETAILS_BYTES - 512;
        let mut used = 0;
        let mut fields = Vec::with_capacity(self.list.len());
        let total = self.list.len();
        for violation in self.list {
            let localized = violation
                .localized
                .as_ref()
                .map_or(0, |text| text.len() + 8);
            let cost = violation.field.len()
                + violation.rule.len()
                + violation.description.len()
                + localized
                + 32;
            if used + cost > budget {
                break;
            }
            used += cost;
            fields.push(field_violation(violation, lang));
        }
        if fields.len() < total {
            let left = total - fields.len();
            let mut more = Violations::new(lang);
            more.add(String::new(), "truncated", |lang: Lang| {
                format!("{} ({left})", Text::MoreViolations.text(lang))
            });
            fields.extend(more.list.into_iter().map(|v| field_violation(v, lang)));
        }
        let mut details = ErrorDetails::new();
        details.set_bad_request(fields);
        catalogue::status_with_details(Code::InvalidArgument, Text::InvalidRequest, lang, details)
    }
}

fn field_violation(v: Violation, lang: Lang) -> FieldViolation {
    let mut field = FieldViolation::new(v.field, v.description);
    field.reason = v.rule;
    field.localized_message = v
        .localized
        .map(|message| tonic_types::LocalizedMessage::new(lang.tag(), message));
    field
}

/// A refusal that is not about rules (a bad frame, bytes that do not decode): the English
/// status, with the catalogue's text in the caller's language in a LocalizedMessage.
pub(crate) fn plain(code: Code, text: Text, lang: Lang) -> Status {
    catalogue::status(code, text, lang)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn a_flood_of_violations_is_cut_to_the_budget_and_says_so() {
        for lang in Lang::ALL {
            let mut violations = Violations::new(lang);
            for i in 0..1000 {
                violations.add(
                    format!("items[{i}].name"),
                    "string.min_len",
                    |lang| match lang {
                        Lang::En => "value is too short",
                        Lang::Es => "el valor es demasiado corto",
                    },
                );
            }
            let status = violations.into_status();
            assert!(
                status.details().len() <= MAX_DETAILS_BYTES,
                "{lang:?}: {}",
                status.details().len()
            );
            assert_eq!(status.message(), "request is invalid");
            let details = status.get_error_details();
            let bad = details.bad_request().expect("BadRequest");
            let last = bad.field_violations.last().expect("entries");
            assert_eq!(last.reason, "truncated");
            assert!(
                last.description.contains("more violations"),
                "{}",
                last.description
            );
            assert!(bad.field_violations.len() > 10);
            let localized = |v: &FieldViolation| v.localized_message.clone().map(|m| m.message);
            match lang {
                Lang::En => {
                    assert!(details.localized_message().is_none());
                    assert!(bad.field_violations.iter().all(|v| localized(v).is_none()));
                }
                Lang::Es => {
                    assert_eq!(
                        details.localized_message().expect("localized").message,
                        "la petición no es válida"
                    );
                    assert_eq!(
                        localized(&bad.field_violations[0]).as_deref(),
                        Some("el valor es demasiado corto")
                    );
                    let more = localized(last).expect("localized");
                    assert!(more.starts_with("hay más infracciones"), "{more}");
                }
            }
        }
    }

    #[test]
    fn a_plain_english_description_gets_no_localized_message() {
        let mut violations = Violations::new(Lang::Es);
        violations.add(
            "currency",
            "currency.supported",
            "currency is not supported",
        );
        let v = &violations.as_slice()[0];
        assert_eq!(v.description, "currency is not supported");
        assert_eq!(v.localized, None);
    }
}
