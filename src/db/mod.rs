//! The database helper (sqlx): pool, migrations, statement logging, error mapping.
