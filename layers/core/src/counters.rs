//! The shared counter family, registered once per method.
//!
//! Recording `metrics::counter!(name, labels...)` on every call builds the labels and looks
//! the counter up each time. [`MethodCounters`] registers a layer's counters once per method
//! (a [`MethodTable`] of handles) and then only increments handles. Paths the descriptors do
//! not know (or, without descriptors, paths beyond the first [`MAX_METHODS`]) fold into one
//! `unknown` label, so a scanner sending random paths cannot grow the series count.

use crate::identity::RpcIdentity;
use crate::method_table::MethodTable;
use crate::names::{LABEL_METHOD, LABEL_SERVICE};
use crate::registry::MethodRegistry;
use metrics::Counter;
use std::sync::Arc;

/// Methods labelled without descriptors before the rest fold into `unknown`.
pub const MAX_METHODS: usize = 1000;

/// A fixed list of counters (`names`), one set per method, registered with the global
/// recorder on first use.
#[derive(Debug)]
pub struct MethodCounters {
    table: MethodTable<Box<[Counter]>>,
}

impl MethodCounters {
    /// Counters named `names`; with `registry`, only the methods it knows get their own labels.
    pub fn new(names: &'static [&'static str], registry: Option<MethodRegistry>) -> Self {
        let table = MethodTable::lazy(registry.map(Arc::new), MAX_METHODS, |service, method, _| {
            names
                .iter()
                .map(|name| {
                    metrics::counter!(
                        *name,
                        LABEL_SERVICE => service.to_owned(),
                        LABEL_METHOD => method.to_owned(),
                    )
                })
                .collect()
        });
        Self { table }
    }

    /// Adds one to counter `names[index]` of the call's method.
    pub fn increment(&self, id: &RpcIdentity, index: usize) {
        self.table.with(id, |counters| {
            if let Some(counter) = counters.get(index) {
                counter.increment(1);
            }
        });
    }
}
