//! The shared counter family, registered once per method.
//!
//! Recording `metrics::counter!(name, labels...)` on every call builds the labels and looks
//! the counter up each time. [`MethodCounters`] registers a layer's counters once per method
//! and then only increments handles. Paths the descriptors do not know (or, without
//! descriptors, paths beyond the first [`MAX_METHODS`]) fold into one `unknown` label, so a
//! scanner sending random paths cannot grow the series count.

use crate::identity::PathMap;
use crate::identity::{RpcIdentity, UNKNOWN};
use crate::names::{LABEL_METHOD, LABEL_SERVICE};
use crate::registry::MethodRegistry;
use metrics::Counter;
use std::sync::{OnceLock, RwLock};

/// Methods labelled without descriptors before the rest fold into `unknown`.
pub const MAX_METHODS: usize = 1000;

/// A fixed list of counters (`names`), one set per method, registered with the global
/// recorder on first use.
#[derive(Debug)]
pub struct MethodCounters {
    names: &'static [&'static str],
    registry: Option<MethodRegistry>,
    by_path: RwLock<PathMap<Vec<Counter>>>,
    unknown: OnceLock<Vec<Counter>>,
}

impl MethodCounters {
    /// Counters named `names`; with `registry`, only the methods it knows get their own labels.
    pub fn new(names: &'static [&'static str], registry: Option<MethodRegistry>) -> Self {
        Self {
            names,
            registry,
            by_path: RwLock::default(),
            unknown: OnceLock::new(),
        }
    }

    /// Adds one to counter `names[index]` of the call's method.
    pub fn increment(&self, id: &RpcIdentity, index: usize) {
        if let Ok(map) = self.by_path.read()
            && let Some(counters) = map.get(id.path())
        {
            if let Some(counter) = counters.get(index) {
                counter.increment(1);
            }
            return;
        }
        let known = !id.is_unknown() && self.registry.as_ref().is_none_or(|r| r.contains(id));
        if known
            && let Ok(mut map) = self.by_path.write()
            && map.len() < MAX_METHODS
        {
            let counters = map
                .entry(id.path().into())
                .or_insert_with(|| self.register(id.service(), id.method()));
            if let Some(counter) = counters.get(index) {
                counter.increment(1);
            }
            return;
        }
        let unknown = self.unknown.get_or_init(|| self.register(UNKNOWN, UNKNOWN));
        if let Some(counter) = unknown.get(index) {
            counter.increment(1);
        }
    }

    fn register(&self, service: &str, method: &str) -> Vec<Counter> {
        self.names
            .iter()
            .map(|name| {
                metrics::counter!(
                    *name,
                    LABEL_SERVICE => service.to_owned(),
                    LABEL_METHOD => method.to_owned(),
                )
            })
            .collect()
    }
}
