-- Idempotent CreatePayment: at most one payment per (user, `idempotency-key`). The hash of
-- the first request is kept to refuse the same key with a different request. Calls without
-- the key leave both columns NULL, and NULLs never collide in a unique index on PostgreSQL
-- or SQLite. Portable between the two: one column per ALTER TABLE, a plain unique index
-- (what `ON CONFLICT (user_id, idempotency_key)` infers on both).
ALTER TABLE pay_payment ADD COLUMN idempotency_key TEXT;
ALTER TABLE pay_payment ADD COLUMN request_hash TEXT;

CREATE UNIQUE INDEX IF NOT EXISTS pay_payment_idempotency ON pay_payment (user_id, idempotency_key);
