-- WatchPayments' order: a sequence the store assigns as it records payments, never a
-- replica's clock (UUID v7 ids carry the creating replica's clock). A payment takes the
-- greatest sequence plus one in its insert; the unique index makes a concurrent insert that
-- read the same greatest value fail (it retries), so sequences commit in increasing order:
-- a reader that has seen sequence N never later finds a new payment below N. Existing
-- payments are numbered in id order. Portable between PostgreSQL and SQLite (UPDATE ...
-- FROM needs SQLite 3.33; sqlx bundles a later one).
ALTER TABLE pay_payment ADD COLUMN seq BIGINT;

UPDATE pay_payment SET seq = numbered.n
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM pay_payment) AS numbered
WHERE numbered.id = pay_payment.id;

CREATE UNIQUE INDEX IF NOT EXISTS pay_payment_seq ON pay_payment (seq);
-- A watcher that resumes reads its user's payments after a sequence.
CREATE INDEX IF NOT EXISTS pay_payment_user_seq ON pay_payment (user_id, seq);
