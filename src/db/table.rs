//! The blueprint's table names: `<service-short>_<entity>`, singular, lower snake case.

use std::fmt;

/// The longest table name, in bytes: PostgreSQL's identifier limit (`NAMEDATALEN - 1`).
pub const MAX_TABLE_NAME_BYTES: usize = 63;

/// The table name `<service_short>_<entity>`, both parts `[a-z][a-z0-9_]*`, at most
/// [`MAX_TABLE_NAME_BYTES`] in all.
///
/// A validated name is safe to put in SQL text (`format!("SELECT .. FROM {table}")`), where
/// bind parameters cannot go. Whether `entity` is singular is the caller's business.
///
/// ```
/// use tonic_blueprint::db::table_name;
///
/// assert_eq!(table_name("pay", "payment").unwrap(), "pay_payment");
/// assert_eq!(table_name("shop", "cart_item").unwrap(), "shop_cart_item");
/// assert!(table_name("pay", "Payment").is_err());
/// assert!(table_name("", "payment").is_err());
/// assert!(table_name("pay", "payment; DROP TABLE x").is_err());
/// ```
pub fn table_name(service_short: &str, entity: &str) -> Result<String, InvalidName> {
    check_part(service_short, "service short name")?;
    check_part(entity, "entity")?;
    let name = format!("{service_short}_{entity}");
    if name.len() > MAX_TABLE_NAME_BYTES {
        return Err(InvalidName {
            name,
            reason: format!("table name is longer than {MAX_TABLE_NAME_BYTES} bytes"),
        });
    }
    Ok(name)
}

fn check_part(part: &str, what: &str) -> Result<(), InvalidName> {
    let problem = match part.as_bytes() {
        [] => "is empty",
        [first, ..] if !first.is_ascii_lowercase() => "must start with a lowercase ASCII letter",
        [_, rest @ ..]
            if !rest
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_') =>
        {
            "may hold only a-z, 0-9 and _"
        }
        _ => return Ok(()),
    };
    Err(InvalidName {
        name: part.to_owned(),
        reason: format!("{what} {problem}"),
    })
}

/// A table name [`table_name`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName {
    name: String,
    reason: String,
}

impl InvalidName {
    /// The refused part (or the whole name, when too long).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid table name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for InvalidName {}
