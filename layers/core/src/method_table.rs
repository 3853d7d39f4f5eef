//! One value per method, built once and looked up per call without allocating.
//!
//! Every layer that keeps something per method (metric handles, counters) needs the same
//! table: the methods it may label get their own value, every other path folds into one
//! `unknown` value, so a scanner sending random paths can never grow it. [`MethodTable`] is
//! that table:
//!
//! - **with a [`MethodRegistry`]**, only the methods of the registry get their own value:
//!   built up front ([`MethodTable::eager`], as go-grpc-prometheus' `InitializeMetrics`
//!   creates every known series at zero) or on a method's first call
//!   ([`MethodTable::lazy`]);
//! - **without one**, paths get their own value as they are first seen, up to a bound
//!   (`max_methods`);
//! - every other path (not in the registry, over the bound, or
//!   [`RpcIdentity::is_unknown`]) gets the one `unknown` value, built once with
//!   [`UNKNOWN`] as service and method and [`RpcKind::Unknown`].
//!
//! A lookup takes no lock for the methods built up front and a read lock for the others; the
//! write lock is taken only to learn a method.
//!
//! ```
//! use std::sync::Arc;
//! use tonic_blueprint_core::{MethodRegistry, MethodTable, RpcIdentity, RpcKind};
//!
//! let mut registry = MethodRegistry::default();
//! registry.insert("/shop.v1.Cart/Watch", RpcKind::ServerStreaming);
//! let table = MethodTable::eager(Some(&registry), 1000, |service, method, kind| {
//!     format!("{service}/{method} ({kind})")
//! });
//!
//! let watch = RpcIdentity::parse("/shop.v1.Cart/Watch").unwrap();
//! assert_eq!(*table.get(&watch), "shop.v1.Cart/Watch (server_stream)");
//! // A path the registry does not know shares the one `unknown` value.
//! let scan = RpcIdentity::parse("/wp.Admin/Login").unwrap();
//! assert_eq!(*table.get(&scan), "unknown/unknown (unknown)");
//! assert!(Arc::ptr_eq(&table.get(&scan), &table.get(&RpcIdentity::unknown())));
//! ```

use crate::identity::{PathMap, RpcIdentity, RpcKind, UNKNOWN};
use crate::registry::MethodRegistry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// What builds a method's value from its service, method and kind.
type Build<T> = Box<dyn Fn(&str, &str, RpcKind) -> T + Send + Sync>;

/// One value per method, keyed by [`RpcIdentity::path`]; see the [module docs](self).
pub struct MethodTable<T> {
    /// Built at construction: every method of the registry ([`eager`](Self::eager)).
    built: PathMap<Arc<T>>,
    /// Whether paths outside `built` may still get a value of their own.
    learns: bool,
    /// Learned on first use, up to `max_methods`.
    learned: RwLock<PathMap<Arc<T>>>,
    /// Set once `learned` holds `max_methods`: no write lock is taken afterwards.
    full: AtomicBool,
    max_methods: usize,
    /// With a registry, the only methods that are learned (and their kinds).
    registry: Option<Arc<MethodRegistry>>,
    unknown: OnceLock<Arc<T>>,
    build: Build<T>,
}

impl<T> MethodTable<T> {
    /// Values built on a method's first call: with `registry`, for its methods only;
    /// without, for the first `max_methods` paths seen. Every other path gets the `unknown`
    /// value, built when first needed.
    ///
    /// `build` receives the service, the method and the kind (from the registry, else
    /// [`RpcKind::Unknown`]).
    pub fn lazy<F>(registry: Option<Arc<MethodRegistry>>, max_methods: usize, build: F) -> Self
    where
        F: Fn(&str, &str, RpcKind) -> T + Send + Sync + 'static,
    {
        Self {
            built: PathMap::default(),
            learns: true,
            learned: RwLock::default(),
            full: AtomicBool::new(max_methods == 0),
            max_methods,
            registry,
            unknown: OnceLock::new(),
            build: Box::new(build),
        }
    }

    /// Values built now, for every method of `registry` and for `unknown`; every other path
    /// gets the `unknown` value. Without a registry, only `unknown` is built now and the
    /// first `max_methods` paths seen get values of their own, as with [`lazy`](Self::lazy).
    pub fn eager<F>(registry: Option<&MethodRegistry>, max_methods: usize, build: F) -> Self
    where
        F: Fn(&str, &str, RpcKind) -> T + Send + Sync + 'static,
    {
        let mut table = Self::lazy(None, max_methods, build);
        if let Some(registry) = registry {
            table.built = registry
                .iter()
                .filter_map(|(path, info)| {
                    let id = RpcIdentity::parse(path)?;
                    let value = (table.build)(id.service(), id.method(), info.kind);
                    Some((Box::from(path), Arc::new(value)))
                })
                .collect();
            table.learns = false;
        }
        table.unknown();
        table
    }

    /// The value of the call's method (or the `unknown` value).
    pub fn get(&self, id: &RpcIdentity) -> Arc<T> {
        self.with(id, Arc::clone)
    }

    /// Calls `f` with the value of the call's method (or the `unknown` value), without
    /// touching the value's reference count.
    pub fn with<R>(&self, id: &RpcIdentity, f: impl FnOnce(&Arc<T>) -> R) -> R {
        if let Some(value) = self.built.get(id.path()) {
            return f(value);
        }
        if self.learns && !id.is_unknown() {
            if let Ok(map) = self.learned.read()
                && let Some(value) = map.get(id.path())
            {
                return f(value);
            }
            if let Some(value) = self.learn(id) {
                return f(&value);
            }
        }
        f(self.unknown())
    }

    /// The value every other path shares, built on first use.
    pub fn unknown(&self) -> &Arc<T> {
        self.unknown
            .get_or_init(|| Arc::new((self.build)(UNKNOWN, UNKNOWN, RpcKind::Unknown)))
    }

    /// How many methods have a value of their own.
    pub fn len(&self) -> usize {
        self.built.len() + self.learned.read().map_or(0, |map| map.len())
    }

    /// Whether no method has a value of its own (yet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A value for a method not seen yet, if it may have one.
    fn learn(&self, id: &RpcIdentity) -> Option<Arc<T>> {
        if self.full.load(Ordering::Relaxed) {
            return None;
        }
        let kind = match &self.registry {
            Some(registry) => registry.get(id)?.kind,
            None => RpcKind::Unknown,
        };
        let mut map = self.learned.write().ok()?;
        if let Some(value) = map.get(id.path()) {
            return Some(value.clone());
        }
        if map.len() >= self.max_methods {
            self.full.store(true, Ordering::Relaxed);
            return None;
        }
        let value = Arc::new((self.build)(id.service(), id.method(), kind));
        map.insert(id.path().into(), value.clone());
        Some(value)
    }
}

impl<T> std::fmt::Debug for MethodTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodTable")
            .field("methods", &self.len())
            .field("max_methods", &self.max_methods)
            .field("registry", &self.registry.as_ref().map(|r| r.len()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A table of `(service, method, kind)` that records every build.
    struct Recorded {
        table: MethodTable<(String, String, RpcKind)>,
        builds: Arc<Mutex<Vec<String>>>,
    }

    fn recorded(
        make: impl FnOnce(
            Box<dyn Fn(&str, &str, RpcKind) -> (String, String, RpcKind) + Send + Sync>,
        ) -> MethodTable<(String, String, RpcKind)>,
    ) -> Recorded {
        let builds = Arc::new(Mutex::new(Vec::new()));
        let log = builds.clone();
        let table = make(Box::new(move |service, method, kind| {
            log.lock().unwrap().push(format!("{service}/{method}"));
            (service.to_owned(), method.to_owned(), kind)
        }));
        Recorded { table, builds }
    }

    impl Recorded {
        fn builds(&self) -> Vec<String> {
            self.builds.lock().unwrap().clone()
        }
    }

    fn id(path: &str) -> RpcIdentity {
        RpcIdentity::parse(path).unwrap()
    }

    fn registry() -> MethodRegistry {
        let mut registry = MethodRegistry::default();
        registry.insert("/shop.v1.Cart/Add", RpcKind::Unary);
        registry.insert("/shop.v1.Cart/Watch", RpcKind::ServerStreaming);
        registry
    }

    fn unknown() -> (String, String, RpcKind) {
        (UNKNOWN.to_owned(), UNKNOWN.to_owned(), RpcKind::Unknown)
    }

    #[test]
    fn with_a_registry_only_its_methods_get_their_own_value() {
        for eager in [false, true] {
            let r = recorded(|build| {
                if eager {
                    MethodTable::eager(Some(&registry()), 1000, build)
                } else {
                    MethodTable::lazy(Some(Arc::new(registry())), 1000, build)
                }
            });
            let watch = r.table.get(&id("/shop.v1.Cart/Watch"));
            assert_eq!(
                *watch,
                (
                    "shop.v1.Cart".into(),
                    "Watch".into(),
                    RpcKind::ServerStreaming
                )
            );
            assert!(Arc::ptr_eq(
                &watch,
                &r.table.get(&id("/shop.v1.Cart/Watch"))
            ));
            for path in ["/shop.v1.Cart/Nope", "/other.S/Add"] {
                let value = r.table.get(&id(path));
                assert_eq!(*value, unknown(), "{path}");
                assert!(Arc::ptr_eq(&value, r.table.unknown()));
            }
            assert!(Arc::ptr_eq(
                &r.table.get(&RpcIdentity::unknown()),
                r.table.unknown()
            ));
            assert_eq!(r.table.len(), if eager { 2 } else { 1 }, "eager: {eager}");
        }
    }

    #[test]
    fn eager_builds_every_known_method_and_unknown_at_construction() {
        let r = recorded(|build| MethodTable::eager(Some(&registry()), 1000, build));
        let mut built = r.builds();
        built.sort();
        assert_eq!(
            built,
            ["shop.v1.Cart/Add", "shop.v1.Cart/Watch", "unknown/unknown"]
        );
        r.table.get(&id("/shop.v1.Cart/Add"));
        r.table.get(&id("/shop.v1.Cart/Nope"));
        assert_eq!(r.builds().len(), 3, "nothing more is built per call");
    }

    #[test]
    fn lazy_builds_on_first_use_once() {
        let r = recorded(|build| MethodTable::lazy(Some(Arc::new(registry())), 1000, build));
        assert!(r.builds().is_empty());
        assert!(r.table.is_empty());
        for _ in 0..3 {
            r.table.with(&id("/shop.v1.Cart/Add"), |value| {
                assert_eq!(value.2, RpcKind::Unary);
            });
            r.table.get(&id("/scanner.X/Y"));
        }
        assert_eq!(r.builds(), ["shop.v1.Cart/Add", "unknown/unknown"]);
    }

    #[test]
    fn without_a_registry_paths_are_learned_up_to_the_bound_then_fold() {
        let r = recorded(|build| MethodTable::lazy(None, 2, build));
        let a = r.table.get(&id("/a.S/M"));
        assert_eq!(*a, ("a.S".into(), "M".into(), RpcKind::Unknown));
        r.table.get(&id("/b.S/M"));
        // The bound is reached: a third path folds into unknown.
        assert_eq!(*r.table.get(&id("/c.S/M")), unknown());
        assert!(Arc::ptr_eq(&r.table.get(&id("/d.S/M")), r.table.unknown()));
        // The methods learned before keep their own values.
        assert!(Arc::ptr_eq(&a, &r.table.get(&id("/a.S/M"))));
        assert_eq!(r.table.len(), 2);
        assert_eq!(r.builds(), ["a.S/M", "b.S/M", "unknown/unknown"]);
    }

    #[test]
    fn eager_without_a_registry_learns_and_builds_unknown_now() {
        let r = recorded(|build| MethodTable::eager(None, 1, build));
        assert_eq!(r.builds(), ["unknown/unknown"]);
        r.table.get(&id("/a.S/M"));
        assert_eq!(*r.table.get(&id("/b.S/M")), unknown());
        assert_eq!(r.builds(), ["unknown/unknown", "a.S/M"]);
    }

    #[test]
    fn the_unknown_identity_is_never_learned() {
        let r = recorded(|build| MethodTable::lazy(None, 10, build));
        assert_eq!(*r.table.get(&RpcIdentity::unknown()), unknown());
        assert!(r.table.is_empty());
        let zero = recorded(|build| MethodTable::lazy(None, 0, build));
        assert_eq!(*zero.table.get(&id("/a.S/M")), unknown());
        assert!(zero.table.is_empty());
    }
}
