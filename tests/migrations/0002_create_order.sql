-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
CREATE TABLE test_order (
    id BIGINT PRIMARY KEY,
    item_id BIGINT NOT NULL REFERENCES test_item (id),
    note TEXT
);
