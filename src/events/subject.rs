//! Event subjects: `<service>.<entity>.<event>`, checked token by token.

use std::fmt;
use std::str::FromStr;

/// The longest token (`[a-z0-9_-]`, between two dots).
pub const MAX_TOKEN_LEN: usize = 64;
/// The most tokens a subject has (`service.entity.event` plus up to 13 more).
pub const MAX_TOKENS: usize = 16;
/// The longest subject, dots included.
pub const MAX_SUBJECT_LEN: usize = 255;

/// A validated event subject, `<service>.<entity>.<event>` such as
/// `payments.payment.created`, optionally with more tokens after the event.
///
/// Every token is 1 to [`MAX_TOKEN_LEN`] characters of `[a-z0-9_-]`: no dots, spaces,
/// wildcards (`*`, `>`) or uppercase letters, so a subject always names exactly one event
/// kind and never matches more than one.
///
/// ```
/// use tonic_blueprint::events::Subject;
/// let subject = Subject::new("payments", "payment", "created").unwrap();
/// assert_eq!(subject.as_str(), "payments.payment.created");
/// assert_eq!(subject, "payments.payment.created".parse().unwrap());
/// let err = Subject::new("payments", "payment", "Created").unwrap_err();
/// assert_eq!(err.token(), Some("Created"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(String);

impl Subject {
    /// `<service>.<entity>.<event>`, each token checked.
    pub fn new(service: &str, entity: &str, event: &str) -> Result<Self, SubjectError> {
        check_token(service, 0)?;
        check_token(entity, 1)?;
        check_token(event, 2)?;
        Self::checked_len(format!("{service}.{entity}.{event}"))
    }

    /// Parses a dotted subject of 3 to [`MAX_TOKENS`] tokens.
    pub fn parse(subject: &str) -> Result<Self, SubjectError> {
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(SubjectError::TooLong { len: subject.len() });
        }
        let count = subject.split('.').count();
        for (position, token) in subject.split('.').enumerate() {
            check_token(token, position)?;
        }
        if !(3..=MAX_TOKENS).contains(&count) {
            return Err(SubjectError::TokenCount { count });
        }
        Ok(Self(subject.to_owned()))
    }

    /// This subject with one more token, such as `payments.payment.created.v2`.
    pub fn child(&self, token: &str) -> Result<Self, SubjectError> {
        let count = self.tokens().count() + 1;
        check_token(token, count - 1)?;
        if count > MAX_TOKENS {
            return Err(SubjectError::TokenCount { count });
        }
        Self::checked_len(format!("{}.{token}", self.0))
    }

    /// The subject as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its tokens, service first.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// The first token.
    pub fn service(&self) -> &str {
        self.tokens().next().unwrap_or_default()
    }

    /// The dead-letter subject of this one: `<subject>.dlq`.
    ///
    /// Not a [`Subject`] itself (it may be one token longer than [`MAX_TOKENS`] allows).
    pub fn dead_letter(&self) -> String {
        format!("{}.{DEAD_LETTER_SUFFIX}", self.0)
    }

    fn checked_len(subject: String) -> Result<Self, SubjectError> {
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(SubjectError::TooLong { len: subject.len() });
        }
        Ok(Self(subject))
    }
}

/// The token appended to a subject to name its dead-letter subject.
pub const DEAD_LETTER_SUFFIX: &str = "dlq";

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({})", self.0)
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a subject was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// One token is not 1 to [`MAX_TOKEN_LEN`] characters of `[a-z0-9_-]`.
    InvalidToken {
        /// The token as given.
        token: String,
        /// Its 0-based position (0 = service, 1 = entity, 2 = event).
        position: usize,
        /// What is wrong with it.
        problem: TokenProblem,
    },
    /// Fewer than 3 or more than [`MAX_TOKENS`] tokens.
    TokenCount {
        /// How many there were.
        count: usize,
    },
    /// Longer than [`MAX_SUBJECT_LEN`].
    TooLong {
        /// Its length.
        len: usize,
    },
}

impl SubjectError {
    /// The offending token, when one token is at fault.
    pub fn token(&self) -> Option<&str> {
        match self {
            Self::InvalidToken { token, .. } => Some(token),
            _ => None,
        }
    }
}

/// What is wrong with a subject token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenProblem {
    /// It is empty (for example `a..b`).
    Empty,
    /// It contains a dot (tokens are given one by one).
    Dot,
    /// It contains whitespace.
    Whitespace,
    /// It contains a wildcard, `*` or `>`.
    Wildcard(char),
    /// It contains an uppercase letter.
    Uppercase(char),
    /// It contains another character outside `[a-z0-9_-]`.
    Character(char),
    /// It is longer than [`MAX_TOKEN_LEN`].
    TooLong(usize),
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::Dot => f.write_str("it contains '.'"),
            Self::Whitespace => f.write_str("it contains whitespace"),
            Self::Wildcard(c) => write!(f, "it contains the wildcard {c:?}"),
            Self::Uppercase(c) => write!(f, "it contains the uppercase letter {c:?}"),
            Self::Character(c) => write!(f, "it contains {c:?}"),
            Self::TooLong(len) => {
                write!(f, "it is {len} characters long (at most {MAX_TOKEN_LEN})")
            }
        }
    }
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidToken {
                token,
                position,
                problem,
            } => write!(
                f,
                "invalid subject token {token:?} ({}): {problem}; tokens are 1 to \
                 {MAX_TOKEN_LEN} characters of [a-z0-9_-]",
                role(*position)
            ),
            Self::TokenCount { count } => write!(
                f,
                "a subject has 3 to {MAX_TOKENS} tokens (<service>.<entity>.<event>), not {count}"
            ),
            Self::TooLong { len } => write!(
                f,
                "the subject is {len} characters long (at most {MAX_SUBJECT_LEN})"
            ),
        }
    }
}

impl std::error::Error for SubjectError {}

fn role(position: usize) -> String {
    match position {
        0 => "service".to_owned(),
        1 => "entity".to_owned(),
        2 => "event".to_owned(),
        n => format!("token {}", n + 1),
    }
}

fn check_token(token: &str, position: usize) -> Result<(), SubjectError> {
    let fail = |problem| {
        Err(SubjectError::InvalidToken {
            token: token.to_owned(),
            position,
            problem,
        })
    };
    if token.is_empty() {
        return fail(TokenProblem::Empty);
    }
    for c in token.chars() {
        let problem = match c {
            'a'..='z' | '0'..='9' | '_' | '-' => continue,
            '.' => TokenProblem::Dot,
            '*' | '>' => TokenProblem::Wildcard(c),
            c if c.is_whitespace() => TokenProblem::Whitespace,
            c if c.is_uppercase() => TokenProblem::Uppercase(c),
            c => TokenProblem::Character(c),
        };
        return fail(problem);
    }
    if token.len() > MAX_TOKEN_LEN {
        return fail(TokenProblem::TooLong(token.len()));
    }
    Ok(())
}

/// Checks a name used in NATS and JetStream APIs (queue group, stream, durable consumer):
/// 1 to 64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TOKEN_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name {name:?}: 1 to {MAX_TOKEN_LEN} characters of [A-Za-z0-9_-]"
        ))
    }
}

/// Checks a subject filter (stream subjects): dot-separated non-empty tokens without
/// whitespace, `*` only as a whole token, `>` only as the whole last token.
pub(crate) fn check_filter(filter: &str) -> Result<(), String> {
    let tokens: Vec<&str> = filter.split('.').collect();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        let valid = match *token {
            "" => false,
            "*" => true,
            ">" => i == last,
            t => !t
                .chars()
                .any(|c| c.is_whitespace() || c == '*' || c == '>' || c.is_control()),
        };
        if !valid {
            return Err(format!(
                "invalid subject filter {filter:?} (token {token:?})"
            ));
        }
    }
    Ok(())
}

/// Checks a literal subject given as text (an explicit dead-letter subject): like a filter,
/// without wildcards.
pub(crate) fn check_literal(subject: &str) -> Result<(), String> {
    check_filter(subject)?;
    if subject.split('.').any(|t| t == "*" || t == ">") {
        return Err(format!("subject {subject:?} contains a wildcard"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(Subject::new("a-b", "c_d", "e1").is_ok());
        assert_eq!(Subject::new("", "x", "y").unwrap_err().token(), Some(""));
        assert!(matches!(
            Subject::parse("a.b").unwrap_err(),
            SubjectError::TokenCount { count: 2 }
        ));
        assert!(check_filter("a.*.>").is_ok());
        assert!(check_filter("a.>.b").is_err());
        assert!(check_literal("a.b").is_ok());
        assert!(check_literal("a.*").is_err());
        assert!(check_name("stream", "ORDERS_1").is_ok());
        assert!(check_name("stream", "a.b").is_err());
    }
}
