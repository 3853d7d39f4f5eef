-- Payments: the blueprint's `<service-short>_<entity>` name. Portable between PostgreSQL
-- and SQLite: integers are BIGINT, times are milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS pay_payment (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- The caller's x-request-id, carried by the created event.
    request_id TEXT NOT NULL,
    -- 0 until `payments.payment.created` was acknowledged: the outbox the relay retries.
    event_published BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS pay_payment_user_id ON pay_payment (user_id, id);
CREATE INDEX IF NOT EXISTS pay_payment_unpublished ON pay_payment (event_published, id);
