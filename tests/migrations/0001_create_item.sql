-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
CREATE TABLE test_item (
    id BIGINT PRIMARY KEY,
    name VARCHAR(100) NOT NULL UNIQUE,
    quantity BIGINT NOT NULL DEFAULT 0 CHECK (quantity >= 0)
);
