//! HELP and TYPE for the metrics the umbrella's helpers record (database, events, the cache's
//! NATS invalidations), next to those of the layers ([`exporter::DESCRIPTIONS`]).
//!
//! The metrics layer cannot name them (it depends on no helper), so they are described from
//! here once a recorder is installed: the server bootstrap does it when it starts `/metrics`;
//! a service that installs its own recorder calls [`describe_kit_metrics`] after it.
//!
//! ```
//! use tonic_blueprint::kit_metrics::{describe_kit_metrics, descriptions};
//! use tonic_blueprint::metrics::exporter;
//!
//! let recorder = exporter::recorder();
//! exporter::describe_table(&recorder, &descriptions());
//! // Or, once it is the global recorder: describe_kit_metrics();
//! # let _ = describe_kit_metrics;
//! ```

use crate::metrics::exporter::{self, MetricType};

/// One described metric: its name, type and help text.
pub type Description = (&'static str, MetricType, &'static str);

/// The metrics of the helpers compiled in (features `db`, `events`, `nats`, `otel`).
pub fn descriptions() -> Vec<Description> {
    #[allow(unused_mut)] // Empty without the helper features.
    let mut table: Vec<Description> = Vec::new();
    #[cfg(feature = "db")]
    {
        use crate::db;
        table.extend([
            (
                db::QUERIES_TOTAL,
                MetricType::Counter,
                "Database statements run through the helper, by operation.",
            ),
            (
                db::QUERY_ERRORS_TOTAL,
                MetricType::Counter,
                "Database statements that failed or timed out, by operation.",
            ),
            (
                db::QUERY_DURATION_SECONDS,
                MetricType::Histogram,
                "Database statement time (seconds) from acquiring a connection to the last row, by operation.",
            ),
            (
                db::POOL_CONNECTIONS_IN_USE,
                MetricType::Gauge,
                "Database pool connections checked out.",
            ),
            (
                db::POOL_CONNECTIONS_IDLE,
                MetricType::Gauge,
                "Database pool connections open and idle.",
            ),
            (
                db::POOL_CONNECTIONS_MAX,
                MetricType::Gauge,
                "The database pool's configured maximum size.",
            ),
        ]);
    }
    #[cfg(feature = "events")]
    {
        use crate::events::counters;
        table.extend([
            (
                counters::PUBLISHED,
                MetricType::Counter,
                "NATS events published (acknowledged by the stream for JetStream), by subject.",
            ),
            (
                counters::DELIVERED,
                MetricType::Counter,
                "NATS events delivered to a consumer, redeliveries included, by subject.",
            ),
            (
                counters::FAILED,
                MetricType::Counter,
                "NATS event handler attempts that failed, timed out or could not decode the event, by subject.",
            ),
            (
                counters::TIMED_OUT,
                MetricType::Counter,
                "NATS event handler attempts stopped by the handler timeout, by subject.",
            ),
            (
                counters::DEAD_LETTERED,
                MetricType::Counter,
                "NATS events sent to the dead-letter subject, by the subject they were consumed from.",
            ),
        ]);
    }
    #[cfg(feature = "nats")]
    table.push((
        crate::cache::INVALIDATIONS_RECEIVED,
        MetricType::Counter,
        "Response cache invalidation messages applied from other replicas.",
    ));
    #[cfg(feature = "otel")]
    table.push((
        crate::telemetry::otel::SPANS_DROPPED,
        MetricType::Counter,
        "Spans dropped because the OpenTelemetry export queue was full.",
    ));
    table
}

/// Describes [`descriptions`] to the installed global recorder (nothing when none is).
pub fn describe_kit_metrics() {
    exporter::describe_installed(&descriptions());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every metric-like string literal (`"grpc_server_..."`, `"nats_..."`) in the sources
    /// of the umbrella and the layers.
    #[cfg(all(feature = "db", feature = "events", feature = "nats"))]
    fn recorded_names() -> BTreeSet<String> {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(root).join("src")];
        if let Ok(layers) = std::fs::read_dir(format!("{root}/layers")) {
            dirs.extend(layers.flatten().map(|l| l.path().join("src")));
        }
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut names = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a source file");
            for quoted in text.split('"').skip(1).step_by(2) {
                let metric_like = (quoted.starts_with("grpc_server_")
                    || quoted.starts_with("nats_"))
                    && quoted
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if metric_like {
                    names.insert(quoted.to_owned());
                }
            }
        }
        names
    }

    /// A metric some source records but nobody describes would have no HELP line (and fail
    /// `promtool check metrics`).
    #[cfg(all(feature = "db", feature = "events", feature = "nats"))]
    #[test]
    fn every_metric_the_kit_records_is_described() {
        let described: BTreeSet<&str> = exporter::DESCRIPTIONS
            .iter()
            .chain(descriptions().iter())
            .map(|(name, _, _)| *name)
            .collect();
        let recorded = recorded_names();
        assert!(recorded.contains("grpc_server_db_queries_total"));
        let missing: Vec<_> = recorded
            .iter()
            .filter(|n| !described.contains(n.as_str()))
            .collect();
        assert!(missing.is_empty(), "no description for {missing:?}");
    }

    #[test]
    fn names_are_described_once_with_some_help() {
        let all: Vec<Description> = exporter::DESCRIPTIONS
            .iter()
            .copied()
            .chain(descriptions())
            .collect();
        let unique: BTreeSet<&str> = all.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(unique.len(), all.len(), "a metric described twice");
        for (name, kind, help) in all {
            assert!(help.ends_with('.'), "{name}");
            match kind {
                MetricType::Counter => assert!(name.ends_with("_total"), "{name}"),
                MetricType::Histogram => assert!(name.ends_with("_seconds"), "{name}"),
                MetricType::Gauge => assert!(!name.ends_with("_total"), "{name}"),
            }
        }
    }
}
