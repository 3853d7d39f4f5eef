//! One setting per method: a default, overridden per service and per exact method.
//!
//! Every layer takes its per-method settings (timeouts, quotas, TTLs, opt-in) through
//! [`MethodPolicy`], so they all read the same way in code and in configuration files:
//!
//! ```
//! use std::time::Duration;
//! use tonic_blueprint_core::{MethodPolicy, RpcIdentity};
//!
//! # fn main() -> Result<(), tonic_blueprint_core::policy::InvalidKey> {
//! let policy = MethodPolicy::new(Duration::from_secs(30))
//!     .with("reports.v1.Reports/*".parse()?, Duration::from_secs(120))
//!     .with("reports.v1.Reports/Ping".parse()?, Duration::from_secs(1));
//!
//! let get = |path| *policy.get(&RpcIdentity::parse(path).unwrap());
//! assert_eq!(get("/reports.v1.Reports/Ping"), Duration::from_secs(1));
//! assert_eq!(get("/reports.v1.Reports/Build"), Duration::from_secs(120));
//! assert_eq!(get("/shop.v1.Cart/Add"), Duration::from_secs(30));
//! # Ok(()) }
//! ```
//!
//! With serde, a policy is a map whose keys are `default`, `pkg.Service/*` or
//! `pkg.Service/Method` (a missing `default` takes `T::default()`):
//!
//! ```
//! # use tonic_blueprint_core::{MethodPolicy, RpcIdentity};
//! let policy: MethodPolicy<u32> = serde_json::from_str(
//!     r#"{ "default": 100, "shop.v1.Cart/*": 10, "shop.v1.Cart/Checkout": 1 }"#,
//! ).unwrap();
//! assert_eq!(*policy.get(&RpcIdentity::parse("/shop.v1.Cart/Checkout").unwrap()), 1);
//! assert_eq!(*policy.get(&RpcIdentity::parse("/shop.v1.Cart/Add").unwrap()), 10);
//! assert_eq!(*policy.default_value(), 100);
//! ```

use crate::identity::PathMap;
use crate::identity::RpcIdentity;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A value per gRPC method: exact method, else its service, else the default.
///
/// Lookups hash the service and method names in place: no allocation per call.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodPolicy<T> {
    default: T,
    services: PathMap<ServiceEntry<T>>,
}

#[derive(Clone, Debug, PartialEq)]
struct ServiceEntry<T> {
    all: Option<T>,
    methods: PathMap<T>,
}

impl<T> Default for ServiceEntry<T> {
    fn default() -> Self {
        Self {
            all: None,
            methods: PathMap::default(),
        }
    }
}

impl<T: Default> Default for MethodPolicy<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> MethodPolicy<T> {
    /// A policy with one value for every method.
    pub fn new(default: T) -> Self {
        Self {
            default,
            services: PathMap::default(),
        }
    }

    /// Sets the value of a method, a service or the default ([`MethodKey`]).
    pub fn with(mut self, key: MethodKey, value: T) -> Self {
        self.insert(&key, value);
        self
    }

    /// Sets the value of a method, a service or the default.
    pub fn insert(&mut self, key: &MethodKey, value: T) {
        match &key.0 {
            KeyKind::Default => self.default = value,
            KeyKind::Service(service) => self.set_service(service, value),
            KeyKind::Method(service, method) => {
                self.services
                    .entry(service.clone())
                    .or_default()
                    .methods
                    .insert(method.clone(), value);
            }
        }
    }

    /// Sets the value for every method of `service`.
    pub fn set_service(&mut self, service: &str, value: T) {
        self.services.entry(service.into()).or_default().all = Some(value);
    }

    /// Sets a value from a configuration key: `default`, `pkg.Service/*`, `pkg.Service` or
    /// `pkg.Service/Method` (see [`MethodKey::parse`]).
    pub fn set(&mut self, key: &str, value: T) -> Result<(), InvalidKey> {
        self.insert(&MethodKey::parse(key)?, value);
        Ok(())
    }

    /// The value for a call.
    pub fn get(&self, id: &RpcIdentity) -> &T {
        self.get_by_name(id.service(), id.method())
    }

    /// The value for `service` and `method`.
    pub fn get_by_name(&self, service: &str, method: &str) -> &T {
        if self.services.is_empty() {
            return &self.default;
        }
        match self.services.get(service) {
            Some(entry) => entry
                .methods
                .get(method)
                .or(entry.all.as_ref())
                .unwrap_or(&self.default),
            None => &self.default,
        }
    }

    /// The value of methods without an override.
    pub fn default_value(&self) -> &T {
        &self.default
    }

    /// Replaces the default value.
    pub fn set_default(&mut self, value: T) {
        self.default = value;
    }

    /// Applies `f` to every value with the key it was set under, so a layer can give each
    /// entry state of its own (a rate limiter per entry, named after it).
    pub fn map_with_key<U>(self, mut f: impl FnMut(PolicyKey<'_>, T) -> U) -> MethodPolicy<U> {
        MethodPolicy {
            default: f(PolicyKey::Default, self.default),
            services: self
                .services
                .into_iter()
                .map(|(name, entry)| {
                    let entry = ServiceEntry {
                        all: entry.all.map(|v| f(PolicyKey::Service(&name), v)),
                        methods: entry
                            .methods
                            .into_iter()
                            .map(|(m, v)| {
                                let value = f(PolicyKey::Method(&name, &m), v);
                                (m, value)
                            })
                            .collect(),
                    };
                    (name, entry)
                })
                .collect(),
        }
    }

    /// Applies `f` to every value (for example to turn a configuration type into the one a
    /// layer uses).
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> MethodPolicy<U> {
        MethodPolicy {
            default: f(self.default),
            services: self
                .services
                .into_iter()
                .map(|(name, entry)| {
                    let entry = ServiceEntry {
                        all: entry.all.map(&mut f),
                        methods: entry.methods.into_iter().map(|(m, v)| (m, f(v))).collect(),
                    };
                    (name, entry)
                })
                .collect(),
        }
    }
}

/// Where a policy value applies: every method (`default`), every method of a service
/// (`pkg.Service/*`), or one method (`pkg.Service/Method`). Parsing is the only place a key
/// can be wrong, and it says which key:
///
/// ```
/// use tonic_blueprint_core::MethodKey;
///
/// let key: MethodKey = "shop.v1.Cart/Checkout".parse().unwrap();
/// assert_eq!(key.to_string(), "shop.v1.Cart/Checkout");
/// assert_eq!(MethodKey::parse("shop.v1.Cart").unwrap().to_string(), "shop.v1.Cart/*");
/// let error = MethodKey::parse("shop.v1.Cart/Check/out").unwrap_err();
/// assert!(error.to_string().contains("shop.v1.Cart/Check/out"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MethodKey(KeyKind);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyKind {
    Default,
    Service(Box<str>),
    Method(Box<str>, Box<str>),
}

impl MethodKey {
    /// `default` (or `*`), `pkg.Service/*`, `pkg.Service` or `pkg.Service/Method` (a leading
    /// `/` is allowed).
    pub fn parse(key: &str) -> Result<Self, InvalidKey> {
        if key == "default" || key == "*" {
            return Ok(Self(KeyKind::Default));
        }
        let bare = key.strip_prefix('/').unwrap_or(key);
        let kind = match bare.split_once('/') {
            None if valid_name(bare) => KeyKind::Service(bare.into()),
            Some((service, "*")) if valid_name(service) => KeyKind::Service(service.into()),
            Some((service, method))
                if valid_name(service) && valid_name(method) && !method.contains('.') =>
            {
                KeyKind::Method(service.into(), method.into())
            }
            _ => return Err(InvalidKey(key.to_owned())),
        };
        Ok(Self(kind))
    }

    /// The default entry: every method without a value of its own.
    pub fn default_entry() -> Self {
        Self(KeyKind::Default)
    }

    /// Every method of `service` (`pkg.Service`).
    pub fn service(service: &str) -> Result<Self, InvalidKey> {
        if valid_name(service) {
            Ok(Self(KeyKind::Service(service.into())))
        } else {
            Err(InvalidKey(service.to_owned()))
        }
    }
}

impl std::str::FromStr for MethodKey {
    type Err = InvalidKey;

    fn from_str(key: &str) -> Result<Self, InvalidKey> {
        Self::parse(key)
    }
}

impl fmt::Display for MethodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeyKind::Default => f.write_str("default"),
            KeyKind::Service(s) => write!(f, "{s}/*"),
            KeyKind::Method(s, m) => write!(f, "{s}/{m}"),
        }
    }
}

/// Which entry of a policy a value was set under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKey<'a> {
    /// The default.
    Default,
    /// `pkg.Service/*`.
    Service(&'a str),
    /// `pkg.Service/Method`.
    Method(&'a str, &'a str),
}

impl std::fmt::Display for PolicyKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Service(s) => write!(f, "{s}/*"),
            Self::Method(s, m) => write!(f, "{s}/{m}"),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// A policy key that is not `default`, `pkg.Service/*` or `pkg.Service/Method`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKey(pub String);

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid method policy key {:?}: expected \"default\", \"pkg.Service/*\" or \"pkg.Service/Method\"",
            self.0
        )
    }
}

impl std::error::Error for InvalidKey {}

impl<'de, T> Deserialize<'de> for MethodPolicy<T>
where
    T: Deserialize<'de> + Default,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PolicyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for PolicyVisitor<T> {
            type Value = MethodPolicy<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from \"default\", \"pkg.Service/*\" or \"pkg.Service/Method\" to a value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut policy = MethodPolicy::new(T::default());
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<T>()?;
                    policy.set(&key, value).map_err(A::Error::custom)?;
                }
                Ok(policy)
            }
        }

        deserializer.deserialize_map(PolicyVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(path: &str) -> RpcIdentity {
        RpcIdentity::parse(path).unwrap()
    }

    fn key(key: &str) -> MethodKey {
        MethodKey::parse(key).unwrap()
    }

    #[test]
    fn exact_method_beats_service_beats_default() {
        let policy = MethodPolicy::new(1)
            .with(key("a.S/*"), 2)
            .with(key("a.S/M"), 3)
            .with(key("b.T/M"), 4);
        assert_eq!(*policy.get(&id("/a.S/M")), 3);
        assert_eq!(*policy.get(&id("/a.S/Other")), 2);
        assert_eq!(*policy.get(&id("/b.T/M")), 4);
        assert_eq!(*policy.get(&id("/b.T/Other")), 1);
        assert_eq!(*policy.get(&RpcIdentity::unknown()), 1);
    }

    #[test]
    fn keys_are_validated() {
        let mut policy = MethodPolicy::new(0);
        for bad in ["", "a.S/", "a.S/M/x", "a S/M", "/", "a.S/M.x"] {
            assert!(policy.set(bad, 1).is_err(), "{bad:?}");
        }
        for good in ["default", "*", "a.S", "a.S/*", "a.S/M", "/a.S/M"] {
            assert!(policy.set(good, 1).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn deserializes_from_a_map_and_reports_bad_keys() {
        let policy: MethodPolicy<u32> =
            serde_json::from_str(r#"{"a.S/*": 5, "a.S/M": 6}"#).unwrap();
        assert_eq!(*policy.default_value(), 0);
        assert_eq!(*policy.get(&id("/a.S/M")), 6);
        assert_eq!(*policy.get(&id("/a.S/N")), 5);

        let err = serde_json::from_str::<MethodPolicy<u32>>(r#"{"a.S/M/x": 1}"#).unwrap_err();
        assert!(err.to_string().contains("a.S/M/x"), "{err}");
    }

    #[test]
    fn map_keeps_every_override() {
        let policy = MethodPolicy::new(1)
            .with(key("a.S/*"), 2)
            .with(key("a.S/M"), 3);
        let doubled = policy.map(|v| v * 10);
        assert_eq!(*doubled.get(&id("/a.S/M")), 30);
        assert_eq!(*doubled.get(&id("/a.S/N")), 20);
        assert_eq!(*doubled.default_value(), 10);
    }
}
