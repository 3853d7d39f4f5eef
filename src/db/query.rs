//! A portable statement ([`Query`], [`Value`]) and result row ([`Row`]) for both backends.

use std::fmt;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Decode, Postgres, Row as _, Sqlite, Type};

use super::DbError;

/// A statement and its bind values, run on PostgreSQL or SQLite alike.
///
/// Placeholders are `$1`, `$2`, ... on both backends (SQLite reads `$N` as the N-th value).
/// Values are bound, never formatted into the SQL text.
///
/// ```
/// use tonic_blueprint::db::Query;
///
/// let query = Query::new("INSERT INTO shop_item (id, name, note) VALUES ($1, $2, $3)")
///     .bind(7_i64)
///     .bind("apple")
///     .bind(None::<String>);
/// assert_eq!(query.values().len(), 3);
/// ```
#[derive(Clone, PartialEq)]
pub struct Query {
    sql: String,
    values: Vec<Value>,
}

impl Query {
    /// A statement with no values bound yet.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The values bound so far.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub(crate) fn into_parts(self) -> (String, Vec<Value>) {
        (self.sql, self.values)
    }
}

/// The SQL text only: bound values may hold personal data.
impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("sql", &self.sql)
            .field("values", &self.values.len())
            .finish()
    }
}

/// A bind value. Each variant carries an `Option` so a NULL keeps its SQL type (PostgreSQL
/// checks parameter types).
///
/// Built with `From`: `7_i64`, `"text"`, `String`, `bool`, `f64`, `Vec<u8>`, `&[u8]`, and
/// `Option` of each.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `BOOLEAN`.
    Bool(Option<bool>),
    /// `INTEGER` (PostgreSQL `INT4`).
    I32(Option<i32>),
    /// `BIGINT` (PostgreSQL `INT8`).
    I64(Option<i64>),
    /// `DOUBLE PRECISION` / `REAL`.
    F64(Option<f64>),
    /// `TEXT` / `VARCHAR`.
    Text(Option<String>),
    /// `BYTEA` / `BLOB`.
    Bytes(Option<Vec<u8>>),
}

macro_rules! value_from {
    ($($ty:ty => $variant:ident $(via $conv:expr)?),* $(,)?) => {$(
        impl From<$ty> for Value {
            fn from(v: $ty) -> Self {
                Value::$variant(Some(value_from!(@conv v $(, $conv)?)))
            }
        }
        impl From<Option<$ty>> for Value {
            fn from(v: Option<$ty>) -> Self {
                Value::$variant(v.map(|v| value_from!(@conv v $(, $conv)?)))
            }
        }
    )*};
    (@conv $v:ident) => { $v };
    (@conv $v:ident, $conv:expr) => { ($conv)($v) };
}

value_from! {
    bool => Bool,
    i32 => I32,
    i64 => I64,
    f64 => F64,
    String => Text,
    &str => Text via str::to_owned,
    Vec<u8> => Bytes,
    &[u8] => Bytes via <[u8]>::to_vec,
}

/// `$query` with `$value` bound: the same match for either backend's query type.
macro_rules! bind_value {
    ($value:expr, $query:expr) => {
        match $value {
            Value::Bool(v) => $query.bind(v),
            Value::I32(v) => $query.bind(v),
            Value::I64(v) => $query.bind(v),
            Value::F64(v) => $query.bind(v),
            Value::Text(v) => $query.bind(v),
            Value::Bytes(v) => $query.bind(v),
        }
    };
}

impl Value {
    pub(crate) fn bind_postgres<'q>(
        self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        bind_value!(self, query)
    }

    pub(crate) fn bind_sqlite<'q>(
        self,
        query: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
        bind_value!(self, query)
    }
}

/// A Rust type both backends decode a column into: `bool`, `i32`, `i64`, `f64`, `String`,
/// `Vec<u8>`, and `Option` of each (for NULLs).
pub trait Decodable:
    for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

impl<T> Decodable for T where
    T: for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

/// A result row from either backend.
pub struct Row {
    inner: RowInner,
}

enum RowInner {
    Postgres(PgRow),
    Sqlite(SqliteRow),
}

impl Row {
    pub(crate) fn postgres(row: PgRow) -> Self {
        Self {
            inner: RowInner::Postgres(row),
        }
    }

    pub(crate) fn sqlite(row: SqliteRow) -> Self {
        Self {
            inner: RowInner::Sqlite(row),
        }
    }

    /// The value of `column`. A missing column or a type mismatch is a
    /// [`DbError::Decode`] (INTERNAL for the client).
    ///
    /// PostgreSQL checks types strictly: read `BIGINT` as `i64`, `INTEGER` as `i32`.
    pub fn try_get<T: Decodable>(&self, column: &str) -> Result<T, DbError> {
        let result = match &self.inner {
            RowInner::Postgres(row) => row.try_get::<T, _>(column),
            RowInner::Sqlite(row) => row.try_get::<T, _>(column),
        };
        result.map_err(|source| DbError::Decode {
            column: column.to_owned(),
            source,
        })
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        match &self.inner {
            RowInner::Postgres(row) => row.len(),
            RowInner::Sqlite(row) => row.len(),
        }
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The PostgreSQL row, for types [`Decodable`] does not cover (`uuid`, timestamps, ...).
    pub fn as_postgres(&self) -> Option<&PgRow> {
        match &self.inner {
            RowInner::Postgres(row) => Some(row),
            RowInner::Sqlite(_) => None,
        }
    }

    /// The SQLite row.
    pub fn as_sqlite(&self) -> Option<&SqliteRow> {
        match &self.inner {
            RowInner::Sqlite(row) => Some(row),
            RowInner::Postgres(_) => None,
        }
    }
}

/// The backend and the column names: values may hold personal data.
impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use sqlx::Column as _;
        let (backend, columns): (&str, Vec<&str>) = match &self.inner {
            RowInner::Postgres(row) => {
                ("postgres", row.columns().iter().map(|c| c.name()).collect())
            }
            RowInner::Sqlite(row) => ("sqlite", row.columns().iter().map(|c| c.name()).collect()),
        };
        f.debug_struct("Row")
            .field("backend", &backend)
            .field("columns", &columns)
            .finish()
    }
}
