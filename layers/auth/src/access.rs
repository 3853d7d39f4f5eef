//! Who may call a method: the per-method access rule.

use std::sync::Arc;

/// The access rule of a method, set per method through the method policy
/// ([`AuthLayer::access`](crate::AuthLayer::access)).
///
/// ```
/// use tonic_blueprint_auth::Access;
///
/// let write = Access::scopes(["payments:write"]);
/// assert!(!write.allows_anonymous());
/// assert!(Access::Anonymous.allows_anonymous());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Access {
    /// No authentication at all: credentials are neither read nor checked (health checks,
    /// reflection).
    Public,
    /// A caller with a valid credential gets an identity; a call without one goes through
    /// anonymously. A credential that does not verify is still refused.
    Anonymous,
    /// A verified caller holding every one of these scopes (none: any verified caller).
    Required(Arc<[Box<str>]>),
    /// The default: any verified caller.
    #[default]
    Authenticated,
}

impl Access {
    /// A verified caller holding every scope in `scopes`.
    pub fn scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        Self::Required(scopes.into_iter().map(Into::into).collect())
    }

    /// Whether a call without a credential goes through.
    pub fn allows_anonymous(&self) -> bool {
        matches!(self, Self::Public | Self::Anonymous)
    }

    /// The scopes the method requires.
    pub(crate) fn required_scopes(&self) -> &[Box<str>] {
        match self {
            Self::Required(scopes) => scopes,
            _ => &[],
        }
    }
}
