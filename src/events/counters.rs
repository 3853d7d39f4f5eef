//! The counters of the events helper (`metrics` crate), each with a `subject` label.

/// Messages published (acknowledged, for JetStream), by subject.
pub const PUBLISHED: &str = "nats_messages_published_total";
/// Messages delivered to a consumer, redeliveries included, by the consumer's subject.
pub const DELIVERED: &str = "nats_messages_delivered_total";
/// Handler attempts that failed (or messages that could not be decoded), by subject.
pub const FAILED: &str = "nats_messages_failed_total";
/// Handler attempts stopped by the consumer's `handler_timeout_ms` (also counted in
/// [`FAILED`]), by subject.
pub const TIMED_OUT: &str = "nats_messages_timed_out_total";
/// Messages sent to the dead-letter subject, by the subject they were consumed from.
pub const DEAD_LETTERED: &str = "nats_messages_dead_lettered_total";
/// The label of every counter.
pub const LABEL_SUBJECT: &str = "subject";

pub(crate) fn count(name: &'static str, subject: &str) {
    metrics::counter!(name, LABEL_SUBJECT => subject.to_owned()).increment(1);
}
