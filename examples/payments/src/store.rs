//! The `pay_payment` table through the kit's database helper: portable SQL (`$1`
//! placeholders) for PostgreSQL and SQLite, every statement named, timed and bounded by the
//! caller's deadline.
//!
//! Every payment gets a sequence (`seq`, [`Payment::sequence`]) as it is recorded: the
//! greatest one plus one, under a unique index, so sequences commit in increasing order on
//! every replica whatever their clocks (see `migrations/0003_pay_payment_sequence.sql`).
//! `WatchPayments` delivers and resumes in that order, and `ListPayments` pages in it.
//!
//! Every statement is a constant with the table name written in it ([`TABLE`]): no SQL text
//! is put together at run time.

use crate::pb::{Payment, PaymentStatus};
use tonic_blueprint::core::Deadline;
use tonic_blueprint::db::{Database, DbError, DbErrorKind, Query, Row};

/// What a new payment is made of.
#[derive(Clone, Debug)]
pub struct NewPayment {
    /// Whose payment.
    pub user_id: String,
    /// Amount in cents.
    pub amount_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Free text.
    pub description: String,
    /// The creating call's `x-request-id`, carried by the event.
    pub request_id: String,
    /// The caller's `idempotency-key`, if it sent one.
    pub idempotency_key: Option<String>,
}

impl NewPayment {
    /// What a retry must repeat to get the first payment back: a SHA-256 (hex) of the amount,
    /// the currency and the description, each length-prefixed so no two requests share an
    /// encoding. The user is part of the key already.
    pub fn request_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"payments.v1.CreatePayment:1\n");
        hash.update(self.amount_cents.to_be_bytes());
        for field in [&self.currency, &self.description] {
            // Lossless: a length never exceeds u64 on any target Rust supports.
            let len = u64::try_from(field.len()).unwrap_or(u64::MAX);
            hash.update(len.to_be_bytes());
            hash.update(field.as_bytes());
        }
        hash.finalize()
            .iter()
            .fold(String::with_capacity(64), |mut hex, byte| {
                use std::fmt::Write;
                let _ = write!(hex, "{byte:02x}");
                hex
            })
    }
}

/// Whether a new payment's `payments.payment.created` event is to be published: what
/// [`Store::create`] records in the outbox column `event_published`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Events are on: the payment waits in the outbox until its event is acknowledged
    /// ([`Store::mark_published`]); the relay publishes it if the first try fails.
    Due,
    /// Events are off (no NATS): the relay never announces the payment.
    NotDue,
}

impl Event {
    /// The `event_published` value: 0 while the event is due.
    fn published_flag(self) -> i64 {
        match self {
            Self::Due => 0,
            Self::NotDue => 1,
        }
    }
}

/// What [`Store::create`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Created {
    /// A new payment was stored.
    New(Payment),
    /// The user's idempotency key was used before for the same request: the first call's
    /// payment, nothing stored.
    Replayed(Payment),
    /// The user's idempotency key was used before for a different request: nothing stored.
    KeyReused,
    /// The row holding the key was gone each time it was read, [`CREATE_ATTEMPTS`] times
    /// (only concurrent deletes do that), or concurrent inserts took the next sequence
    /// [`SEQUENCE_ATTEMPTS`] times in a row: nothing stored, the caller may retry.
    Contended,
}

/// How many times [`Store::create`] tries when the row that held its idempotency key is gone
/// by the time it reads it (only a concurrent delete does that).
pub const CREATE_ATTEMPTS: usize = 3;

/// How many times [`Store::create`] tries when a concurrent insert took the sequence it
/// read (each try waits for that insert to commit, so one of them always goes through).
pub const SEQUENCE_ATTEMPTS: usize = 32;

/// A payment whose created event is not acknowledged yet.
#[derive(Clone, Debug)]
pub struct Unpublished {
    /// The payment.
    pub payment: Payment,
    /// The creating call's `x-request-id`.
    pub request_id: String,
}

/// The payments table, as `migrations/0001_create_pay_payment.sql` creates it: the
/// blueprint's `<service-short>_<entity>` name,
/// [`table_name("pay", "payment")`](tonic_blueprint::db::table_name) (a test holds them
/// equal). Every statement below has it written in.
pub const TABLE: &str = "pay_payment";

/// The columns a [`Payment`] is read from, for `concat!` (which takes only literals).
macro_rules! payment_columns {
    () => {
        "id, user_id, amount_cents, currency, description, status, created_at_ms, seq"
    };
}

/// A new payment with the next sequence; nothing when the user's idempotency key is taken.
const INSERT_PAYMENT: &str = concat!(
    "INSERT INTO pay_payment (",
    payment_columns!(),
    ", request_id, event_published, idempotency_key, request_hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pay_payment), \
     $8, $9, $10, $11) \
     ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING seq"
);

/// The payment that holds a user's idempotency key, with its request hash.
const SELECT_BY_IDEMPOTENCY_KEY: &str = concat!(
    "SELECT ",
    payment_columns!(),
    ", request_hash FROM pay_payment WHERE user_id = $1 AND idempotency_key = $2"
);

/// One payment by id.
const SELECT_PAYMENT: &str = concat!(
    "SELECT ",
    payment_columns!(),
    " FROM pay_payment WHERE id = $1"
);

/// A page of a user's payments below a sequence, newest first.
const LIST_PAYMENTS: &str = concat!(
    "SELECT ",
    payment_columns!(),
    " FROM pay_payment WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
);

/// The greatest sequence.
const LAST_SEQUENCE: &str = "SELECT COALESCE(MAX(seq), 0) AS seq FROM pay_payment";

/// Every user's payments after a sequence, in sequence order.
const PAYMENTS_AFTER: &str = concat!(
    "SELECT ",
    payment_columns!(),
    " FROM pay_payment WHERE seq > $1 ORDER BY seq ASC LIMIT $2"
);

/// A user's payments after a sequence, in sequence order.
const USER_PAYMENTS_AFTER: &str = concat!(
    "SELECT ",
    payment_columns!(),
    " FROM pay_payment WHERE user_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
);

/// The payments whose event is due, in sequence order.
const UNPUBLISHED: &str = concat!(
    "SELECT ",
    payment_columns!(),
    ", request_id FROM pay_payment WHERE event_published = 0 ORDER BY seq ASC LIMIT $1"
);

/// Marks a payment's event acknowledged.
const MARK_PUBLISHED: &str = "UPDATE pay_payment SET event_published = 1 WHERE id = $1";

/// The payments table.
#[derive(Clone, Debug)]
pub struct Store {
    db: Database,
    clock_skew_ms: i64,
}

impl Store {
    /// The store on `db` (migrated with [`crate::MIGRATIONS`]).
    pub fn new(db: Database) -> Self {
        Self {
            db,
            clock_skew_ms: 0,
        }
    }

    /// Shifts this store's clock (payment ids and `created_at`) by `ms` milliseconds: a
    /// replica whose clock is off, for tests. Sequences do not depend on it.
    pub fn with_clock_skew_ms(mut self, ms: i64) -> Self {
        self.clock_skew_ms = ms;
        self
    }

    /// Now on this store's clock.
    fn now(&self) -> std::time::SystemTime {
        let now = std::time::SystemTime::now();
        let skew = std::time::Duration::from_millis(self.clock_skew_ms.unsigned_abs());
        let shifted = if self.clock_skew_ms >= 0 {
            now.checked_add(skew)
        } else {
            now.checked_sub(skew)
        };
        shifted.unwrap_or(now)
    }

    /// A UUID v7 on this store's clock.
    fn new_id(&self, now: std::time::SystemTime) -> String {
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
        uuid::Uuid::new_v7(ts).hyphenated().to_string()
    }

    /// The database handle.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Records a new payment, at most one per user and idempotency key, with the next
    /// sequence; `event` says whether its created event is to be published (the outbox).
    ///
    /// With a key, the insert does nothing when the user's key is taken (the unique index
    /// `pay_payment_idempotency` decides, so concurrent calls with one key store one row),
    /// and the row that holds it is read back: [`Created::Replayed`] when its request hash
    /// matches, else [`Created::KeyReused`]. An insert whose sequence a concurrent insert
    /// took first (the unique index `pay_payment_seq`) tries again with the next one.
    pub async fn create(
        &self,
        new: NewPayment,
        event: Event,
        deadline: Option<&Deadline>,
    ) -> Result<Created, DbError> {
        let now = self.now();
        let since_epoch = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let created_at_ms = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
        let request_hash = new.idempotency_key.as_ref().map(|_| new.request_hash());
        let (mut key_attempts, mut sequence_attempts) = (0, 0);
        loop {
            let id = self.new_id(now);
            let query = Query::new(INSERT_PAYMENT)
                .bind(id.as_str())
                .bind(new.user_id.as_str())
                .bind(new.amount_cents)
                .bind(new.currency.as_str())
                .bind(new.description.as_str())
                .bind(status_name(PaymentStatus::Accepted))
                .bind(created_at_ms)
                .bind(new.request_id.as_str())
                .bind(event.published_flag())
                .bind(new.idempotency_key.as_deref())
                .bind(request_hash.as_deref());
            let inserted = match self
                .db
                .fetch_optional("insert_payment", deadline, query)
                .await
            {
                Ok(inserted) => inserted,
                // Only the sequence can collide here (a taken key does nothing): a concurrent
                // insert committed it first. The next try reads past it.
                Err(e) if e.kind() == DbErrorKind::AlreadyExists => {
                    sequence_attempts += 1;
                    if sequence_attempts >= SEQUENCE_ATTEMPTS {
                        return Ok(Created::Contended);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(row) = inserted {
                let seq: i64 = row.try_get("seq")?;
                return Ok(Created::New(stored(id, new, created_at_ms, seq)));
            }
            // Nothing inserted: only a taken key does that (NULL keys never conflict).
            let (Some(key), Some(hash)) = (&new.idempotency_key, &request_hash) else {
                return Ok(Created::Contended);
            };
            // The conflicting insert committed before ours did nothing (PostgreSQL waits for
            // it), so this read sees it.
            let query = Query::new(SELECT_BY_IDEMPOTENCY_KEY)
                .bind(new.user_id.as_str())
                .bind(key.as_str());
            if let Some(row) = self
                .db
                .fetch_optional("get_payment_by_idempotency_key", deadline, query)
                .await?
            {
                let first_hash: Option<String> = row.try_get("request_hash")?;
                return Ok(if first_hash.as_deref() == Some(hash.as_str()) {
                    Created::Replayed(payment(&row)?)
                } else {
                    Created::KeyReused
                });
            }
            key_attempts += 1;
            if key_attempts >= CREATE_ATTEMPTS {
                return Ok(Created::Contended);
            }
        }
    }

    /// One payment.
    pub async fn get(
        &self,
        id: &str,
        deadline: Option<&Deadline>,
    ) -> Result<Option<Payment>, DbError> {
        let query = Query::new(SELECT_PAYMENT).bind(id);
        self.db
            .fetch_optional("get_payment", deadline, query)
            .await?
            .map(|row| payment(&row))
            .transpose()
    }

    /// Up to `limit` of a user's payments recorded before the one with sequence `before`
    /// (`None`: from the newest), newest first: in the store's sequence, never by id (ids
    /// carry the creating replica's clock).
    pub async fn list(
        &self,
        user_id: &str,
        before: Option<u64>,
        limit: usize,
        deadline: Option<&Deadline>,
    ) -> Result<Vec<Payment>, DbError> {
        let query = Query::new(LIST_PAYMENTS)
            .bind(user_id)
            .bind(before.map_or(i64::MAX, bound))
            .bind(limit_value(limit));
        let rows = self.db.fetch_all("list_payments", deadline, query).await?;
        rows.iter().map(payment).collect()
    }

    /// The greatest sequence recorded (0 when there is no payment).
    pub async fn last_sequence(&self, deadline: Option<&Deadline>) -> Result<u64, DbError> {
        let query = Query::new(LAST_SEQUENCE);
        let row = self
            .db
            .fetch_one("last_payment_sequence", deadline, query)
            .await?;
        Ok(sequence(row.try_get("seq")?))
    }

    /// Up to `limit` payments of every user with a sequence greater than `after`, in
    /// sequence order: the one read a replica's watchers share.
    pub async fn after(
        &self,
        after: u64,
        limit: usize,
        deadline: Option<&Deadline>,
    ) -> Result<Vec<Payment>, DbError> {
        let query = Query::new(PAYMENTS_AFTER)
            .bind(bound(after))
            .bind(limit_value(limit));
        let rows = self
            .db
            .fetch_all("payments_after_sequence", deadline, query)
            .await?;
        rows.iter().map(payment).collect()
    }

    /// Up to `limit` of a user's payments with a sequence greater than `after`, in sequence
    /// order: what a watcher that resumes from further back than the shared history missed.
    pub async fn user_after(
        &self,
        user_id: &str,
        after: u64,
        limit: usize,
        deadline: Option<&Deadline>,
    ) -> Result<Vec<Payment>, DbError> {
        let query = Query::new(USER_PAYMENTS_AFTER)
            .bind(user_id)
            .bind(bound(after))
            .bind(limit_value(limit));
        let rows = self
            .db
            .fetch_all("user_payments_after_sequence", deadline, query)
            .await?;
        rows.iter().map(payment).collect()
    }

    /// Up to `limit` payments whose event is still due, oldest first (in sequence order).
    pub async fn unpublished(&self, limit: usize) -> Result<Vec<Unpublished>, DbError> {
        let query = Query::new(UNPUBLISHED).bind(limit_value(limit));
        let rows = self
            .db
            .fetch_all("unpublished_payments", None, query)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Unpublished {
                    payment: payment(row)?,
                    request_id: row.try_get("request_id")?,
                })
            })
            .collect()
    }

    /// Records that the payment's event was acknowledged.
    pub async fn mark_published(&self, id: &str) -> Result<(), DbError> {
        let query = Query::new(MARK_PUBLISHED).bind(id);
        self.db
            .execute("mark_payment_published", None, query)
            .await?;
        Ok(())
    }
}

/// The payment just stored from `new`.
fn stored(id: String, new: NewPayment, created_at_ms: i64, seq: i64) -> Payment {
    Payment {
        id,
        user_id: new.user_id,
        amount_cents: new.amount_cents,
        currency: new.currency,
        description: new.description,
        status: PaymentStatus::Accepted as i32,
        created_at: Some(timestamp(created_at_ms)),
        sequence: sequence(seq),
    }
}

/// A stored sequence (positive) as the API's.
fn sequence(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// An API sequence as a bind value (the API refuses values beyond `i64::MAX`).
fn bound(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A row count as a `LIMIT` value: saturating, as a larger limit means no limit anyway.
fn limit_value(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn payment(row: &Row) -> Result<Payment, DbError> {
    let status: String = row.try_get("status")?;
    Ok(Payment {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        amount_cents: row.try_get("amount_cents")?,
        currency: row.try_get("currency")?,
        description: row.try_get("description")?,
        status: PaymentStatus::from_str_name(&status).unwrap_or(PaymentStatus::Unspecified) as i32,
        created_at: Some(timestamp(row.try_get("created_at_ms")?)),
        // The migration numbers every earlier row and every insert takes a sequence: NULL
        // is never read (it would show as 0).
        sequence: sequence(row.try_get::<Option<i64>>("seq")?.unwrap_or(0)),
    })
}

fn status_name(status: PaymentStatus) -> &'static str {
    status.as_str_name()
}

/// Milliseconds since the epoch as a protobuf timestamp.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement of the store.
    const STATEMENTS: [&str; 9] = [
        INSERT_PAYMENT,
        SELECT_BY_IDEMPOTENCY_KEY,
        SELECT_PAYMENT,
        LIST_PAYMENTS,
        LAST_SEQUENCE,
        PAYMENTS_AFTER,
        USER_PAYMENTS_AFTER,
        UNPUBLISHED,
        MARK_PUBLISHED,
    ];

    #[test]
    fn every_statement_names_the_table_the_migrations_create() {
        let named = tonic_blueprint::db::table_name("pay", "payment").expect("a valid name");
        assert_eq!(named, TABLE, "the blueprint's name for the table");
        let migration = include_str!("../migrations/0001_create_pay_payment.sql");
        assert!(
            migration.contains(&format!("CREATE TABLE IF NOT EXISTS {TABLE} (")),
            "the migration creates {TABLE}"
        );
        for statement in STATEMENTS {
            let tables: Vec<&str> = statement
                .split_whitespace()
                .zip(statement.split_whitespace().skip(1))
                .filter(|(keyword, _)| matches!(*keyword, "FROM" | "INTO" | "UPDATE"))
                .map(|(_, table)| table.trim_end_matches([')', ',']))
                .collect();
            assert!(!tables.is_empty(), "no table in {statement}");
            assert!(
                tables.iter().all(|t| *t == TABLE),
                "{tables:?} in {statement}"
            );
        }
    }

    #[test]
    fn the_outbox_flag_is_zero_while_the_event_is_due() {
        assert_eq!(Event::Due.published_flag(), 0);
        assert_eq!(Event::NotDue.published_flag(), 1);
    }
}
