//! A small SQL text builder that writes each dialect's placeholders and keeps the bound values
//! beside the text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Executor, FromRow};

use crate::Dialect;

#[derive(Debug, Clone)]
pub(crate) enum Bind {
    I64(i64),
    F64(f64),
    Str(String),
    OptStr(Option<String>),
    OptI64(Option<i64>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::I64(v)
    }
}
impl From<f64> for Bind {
    fn from(v: f64) -> Self {
        Bind::F64(v)
    }
}
impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Str(v)
    }
}
impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Str(v.to_string())
    }
}
impl From<&String> for Bind {
    fn from(v: &String) -> Self {
        Bind::Str(v.clone())
    }
}
impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::OptStr(v)
    }
}
impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::OptI64(v)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub text: String,
    binds: Vec<Bind>,
    dialect: Dialect,
}

impl Sql {
    pub fn new(dialect: Dialect, text: &str) -> Sql {
        Sql { text: text.to_string(), binds: Vec::new(), dialect }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`: `$N` on PostgreSQL, `?` on SQLite. (SQLite finds a
    /// named or numbered parameter by a linear scan, and sqlx looks up every one, so `$N` makes
    /// a statement with thousands of parameters quadratic; plain `?` never enters that list.
    /// Placeholders are always appended in bind order, so positional binding is exact.)
    pub fn bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.binds.push(value.into());
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.binds.len().to_string());
            }
        }
        self
    }

    /// Appends ` LIMIT n`. The value is bound inside an expression, not as a bare parameter:
    /// SQLite re-prepares a statement whose LIMIT or OFFSET is a bare parameter every time it
    /// is bound again (the planner may use the value), which cost a tenth of a run search.
    pub fn limit(&mut self, limit: i64) -> &mut Self {
        self.push(" LIMIT (").bind(limit).push(" + 0)")
    }

    /// Appends ` LIMIT n OFFSET m` (see [`Sql::limit`]).
    pub fn limit_offset(&mut self, limit: i64, offset: i64) -> &mut Self {
        self.limit(limit).push(" OFFSET (").bind(offset).push(" + 0)")
    }

    /// Appends `(p1, p2, …)` for a list of values.
    pub fn bind_list<T: Into<Bind> + Clone>(&mut self, values: &[T]) -> &mut Self {
        self.text.push('(');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v.clone());
        }
        self.text.push(')');
        self
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments> {
        // Audited: the text is built only from fixed fragments and numbered placeholders;
        // every user-supplied value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.text.as_str()));
        for b in &self.binds {
            q = match b {
                Bind::I64(v) => q.bind(*v),
                Bind::F64(v) => q.bind(*v),
                Bind::Str(v) => q.bind(v.as_str()),
                Bind::OptStr(v) => q.bind(v.as_deref()),
                Bind::OptI64(v) => q.bind(*v),
            };
        }
        q
    }

    pub async fn fetch_all<'e, T, E>(&self, executor: E) -> sqlx::Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        let rows = self.query().fetch_all(executor).await?;
        rows.iter().map(T::from_row).collect()
    }

    pub async fn fetch_one<'e, T, E>(&self, executor: E) -> sqlx::Result<T>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        T::from_row(&self.query().fetch_one(executor).await?)
    }

    pub async fn fetch_optional<'e, T, E>(&self, executor: E) -> sqlx::Result<Option<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        let row = self.query().fetch_optional(executor).await?;
        row.as_ref().map(T::from_row).transpose()
    }

    pub async fn execute<'e, E>(&self, executor: E) -> sqlx::Result<u64>
    where
        E: Executor<'e, Database = Any>,
    {
        Ok(self.query().execute(executor).await?.rows_affected())
    }
}

impl Sql {
    /// Runs this query with the database packing every selected row into one JSON text,
    /// `[[…],[…]]`, each row built by `row` (see [`json_row`]), and returns that text (read it
    /// with [`Rows`]). The rows come in no particular order.
    ///
    /// Why: sqlx's SQLite driver hands each row from its worker thread to the async side, a
    /// context switch per row, and builds a dynamically typed row for each; for reads of
    /// thousands of rows that dominates. Packed, one value crosses. JSON because both databases
    /// write it in C (SQLite's `json_array` is about twice as fast as concatenating
    /// length-prefixed text) and it needs no escaping rules of our own. Reals are not offered:
    /// SQLite renders them with 15 digits, so callers read exact IEEE bits stored as integers.
    pub async fn fetch_json_rows<'e, E>(&self, executor: E, row: &str) -> sqlx::Result<String>
    where
        E: Executor<'e, Database = Any>,
    {
        let text = format!("SELECT {} FROM ({}) t", json_rows_agg(self.dialect, row), self.text);
        let wrapped = Sql { text, binds: self.binds.clone(), dialect: self.dialect };
        wrapped.fetch_text(executor).await
    }

    /// The single text value this query selects (empty when it selects NULL or nothing).
    pub async fn fetch_text<'e, E>(&self, executor: E) -> sqlx::Result<String>
    where
        E: Executor<'e, Database = Any>,
    {
        let packed: Option<(Option<String>,)> = self.fetch_optional(executor).await?;
        Ok(packed.and_then(|(p,)| p).unwrap_or_default())
    }
}

/// The same statements run directly on a SQLite connection (see [`crate::direct`]).
impl Sql {
    /// The cached prepared statement with this query's values bound.
    fn prepared<'c>(&self, conn: &'c rusqlite::Connection) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        debug_assert_eq!(self.dialect, Dialect::Sqlite);
        let mut stmt = conn.prepare_cached(&self.text)?;
        // `?` placeholders are numbered in order of appearance, which is bind order.
        for (i, b) in self.binds.iter().enumerate() {
            let at = i + 1;
            match b {
                Bind::I64(v) => stmt.raw_bind_parameter(at, v)?,
                Bind::F64(v) => stmt.raw_bind_parameter(at, v)?,
                Bind::Str(v) => stmt.raw_bind_parameter(at, v.as_str())?,
                Bind::OptStr(v) => stmt.raw_bind_parameter(at, v.as_deref())?,
                Bind::OptI64(v) => stmt.raw_bind_parameter(at, v)?,
            }
        }
        Ok(stmt)
    }

    /// Runs a statement that returns no rows; the number of rows changed.
    pub fn execute_direct(&self, conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
        self.prepared(conn)?.raw_execute()
    }

    /// Every row, each made by `row`.
    pub fn map_direct<T>(
        &self,
        conn: &rusqlite::Connection,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let mut stmt = self.prepared(conn)?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(row(r)?);
        }
        Ok(out)
    }

    /// Hands every row to `row`, in order.
    pub fn each_direct(
        &self,
        conn: &rusqlite::Connection,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let mut stmt = self.prepared(conn)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            row(r)?;
        }
        Ok(())
    }

    /// The first row made by `row`, if any.
    pub fn first_direct<T>(
        &self,
        conn: &rusqlite::Connection,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        let mut stmt = self.prepared(conn)?;
        let mut rows = stmt.raw_query();
        rows.next()?.map(row).transpose()
    }
}

/// The SQL expression for one row as a JSON array text: integers as numbers, text as strings,
/// NULL as null.
pub(crate) fn json_row(dialect: Dialect, exprs: &[&str]) -> String {
    match dialect {
        Dialect::Sqlite => format!("json_array({})", exprs.join(", ")),
        Dialect::Postgres => format!("json_build_array({})::text", exprs.join(", ")),
    }
}

/// The aggregate that joins row texts (from [`json_row`]) into one JSON array text; NULL when
/// there are no rows.
pub(crate) fn json_rows_agg(dialect: Dialect, row: &str) -> String {
    let agg = match dialect {
        Dialect::Sqlite => "group_concat",
        Dialect::Postgres => "string_agg",
    };
    format!("'[' || {agg}({row}, ',') || ']'")
}

/// One field of a JSON-packed row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field<'a> {
    Null,
    Int(i64),
    /// Borrowed from the packed text unless it had escapes.
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer, a string or null")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v).map(Field::Int).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

/// The rows of a JSON-packed read; each row is read field by field with a [`RowReader`].
pub(crate) struct Rows<'a> {
    rows: Vec<Vec<Field<'a>>>,
}

impl<'a> Rows<'a> {
    pub fn parse(text: &'a str) -> sqlx::Result<Self> {
        if text.is_empty() {
            return Ok(Rows { rows: Vec::new() });
        }
        let rows = serde_json::from_str(text).map_err(|e| malformed(&e.to_string()))?;
        Ok(Rows { rows })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
}

impl<'a> IntoIterator for Rows<'a> {
    type Item = RowReader<'a>;
    type IntoIter = std::iter::Map<std::vec::IntoIter<Vec<Field<'a>>>, fn(Vec<Field<'a>>) -> RowReader<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter().map(|r| RowReader { fields: r.into_iter() })
    }
}

/// Takes the fields of one row in order, each as the type the caller expects.
pub(crate) struct RowReader<'a> {
    fields: std::vec::IntoIter<Field<'a>>,
}

impl<'a> RowReader<'a> {
    fn next(&mut self) -> sqlx::Result<Field<'a>> {
        self.fields.next().ok_or_else(|| malformed("row too short"))
    }

    pub fn int(&mut self) -> sqlx::Result<i64> {
        match self.next()? {
            Field::Int(v) => Ok(v),
            other => Err(malformed(&format!("expected an integer, found {other:?}"))),
        }
    }

    pub fn opt_int(&mut self) -> sqlx::Result<Option<i64>> {
        match self.next()? {
            Field::Int(v) => Ok(Some(v)),
            Field::Null => Ok(None),
            other => Err(malformed(&format!("expected an integer or null, found {other:?}"))),
        }
    }

    pub fn text(&mut self) -> sqlx::Result<String> {
        match self.next()? {
            Field::Text(v) => Ok(v.into_owned()),
            other => Err(malformed(&format!("expected text, found {other:?}"))),
        }
    }

    pub fn opt_text(&mut self) -> sqlx::Result<Option<String>> {
        match self.next()? {
            Field::Text(v) => Ok(Some(v.into_owned())),
            Field::Null => Ok(None),
            other => Err(malformed(&format!("expected text or null, found {other:?}"))),
        }
    }

    /// Text compared in place, without copying it.
    pub fn text_ref(&mut self) -> sqlx::Result<Cow<'a, str>> {
        match self.next()? {
            Field::Text(v) => Ok(v),
            other => Err(malformed(&format!("expected text, found {other:?}"))),
        }
    }
}

fn malformed(why: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("malformed JSON rows from the database: {why}"))
}

#[cfg(test)]
mod tests {
    use super::Rows;

    #[test]
    fn json_rows_read_typed_fields_and_borrow_plain_text() {
        let text = r#"[["a:b",-12,null,"h\u00e9llo"],["x",9223372036854775807,"~",""]]"#;
        let rows: Vec<_> = Rows::parse(text).unwrap().into_iter().collect();
        assert_eq!(rows.len(), 2);
        let mut it = rows.into_iter();
        let mut r = it.next().unwrap();
        assert_eq!(r.text().unwrap(), "a:b");
        assert_eq!(r.int().unwrap(), -12);
        assert_eq!(r.opt_text().unwrap(), None);
        assert_eq!(r.text().unwrap(), "héllo");
        assert!(r.int().is_err(), "past the end of the row");
        let mut r = it.next().unwrap();
        assert!(matches!(r.text_ref().unwrap(), std::borrow::Cow::Borrowed("x")));
        assert_eq!(r.opt_int().unwrap(), Some(i64::MAX));
        assert!(r.int().is_err(), "text where an integer is expected");
        assert!(Rows::parse("").unwrap().len() == 0);
        assert!(Rows::parse("[[1.5]]").is_err(), "reals are never packed");
        assert!(Rows::parse("[[1]").is_err());
    }
}
