//! A small SQL text builder that writes each dialect's placeholders and keeps the bound values
//! beside the text.

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

/// The type of one column of a packed read, which decides how it is rendered as text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Col {
    /// An integer column that is never NULL, written as `digits,`.
    Int,
    /// A text column, possibly NULL, written as `len:text` or `~`.
    Text,
}

impl Sql {
    /// Runs this query (whose select list names its columns `c0, c1, …`) with the database
    /// packing every row into one text value, and returns that text (read it with
    /// [`for_each_packed_row`] or [`PackedCursor`]).
    ///
    /// Why: sqlx's SQLite driver hands each row from its worker thread to the async side, a
    /// context switch per row; for reads of thousands of rows that dominates. Packed, one row
    /// crosses. Fields are length-prefixed (`len:text`, `~` for NULL). Reals are not offered:
    /// SQLite renders them with 15 digits, so callers read exact IEEE bits stored as integers.
    /// `order` orders the aggregation.
    pub async fn fetch_packed_text<'e, E>(&self, executor: E, cols: &[Col], order: &str) -> sqlx::Result<String>
    where
        E: Executor<'e, Database = Any>,
    {
        let names: Vec<String> = (0..cols.len()).map(|i| format!("t.c{i}")).collect();
        let fields: Vec<(&str, Col)> = names.iter().map(String::as_str).zip(cols.iter().copied()).collect();
        let agg = match self.dialect {
            Dialect::Sqlite => "group_concat",
            Dialect::Postgres => "string_agg",
        };
        let order = if order.is_empty() { String::new() } else { format!(" ORDER BY {order}") };
        let text = format!("SELECT {agg}({}, ''{order}) FROM ({}) t", pack_expr(self.dialect, &fields), self.text);
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

/// The SQL expression that packs one row's `(expression, kind)` fields into text.
pub(crate) fn pack_expr(dialect: Dialect, fields: &[(&str, Col)]) -> String {
    let len = match dialect {
        Dialect::Sqlite => "length",
        Dialect::Postgres => "char_length",
    };
    let parts: Vec<String> = fields
        .iter()
        .map(|(c, col)| match col {
            Col::Int => format!("CAST({c} AS TEXT) || ','"),
            Col::Text => format!("(CASE WHEN {c} IS NULL THEN '~' ELSE {len}({c}) || ':' || {c} END)"),
        })
        .collect();
    parts.join(" || ")
}

/// Reads fields one by one from packed text.
pub(crate) struct PackedCursor<'a> {
    rest: &'a str,
}

impl<'a> PackedCursor<'a> {
    pub fn new(packed: &'a str) -> Self {
        PackedCursor { rest: packed }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn int(&mut self) -> sqlx::Result<i64> {
        let comma = self.rest.find(',').ok_or_else(malformed)?;
        let v = self.rest[..comma].parse().map_err(|_| malformed())?;
        self.rest = &self.rest[comma + 1..];
        Ok(v)
    }

    pub fn field(&mut self, col: Col) -> sqlx::Result<Option<&'a str>> {
        if let Col::Int = col {
            let comma = self.rest.find(',').ok_or_else(malformed)?;
            let v = &self.rest[..comma];
            self.rest = &self.rest[comma + 1..];
            return Ok(Some(v));
        }
        if let Some(r) = self.rest.strip_prefix('~') {
            self.rest = r;
            return Ok(None);
        }
        let colon = self.rest.find(':').ok_or_else(malformed)?;
        let chars: usize = self.rest[..colon].parse().map_err(|_| malformed())?;
        let body = &self.rest[colon + 1..];
        // The length counts characters; find where the last one ends.
        let end = match body.char_indices().nth(chars) {
            Some((i, _)) => i,
            None if body.chars().count() == chars => body.len(),
            None => return Err(malformed()),
        };
        self.rest = &body[end..];
        Ok(Some(&body[..end]))
    }

    pub fn text(&mut self) -> sqlx::Result<Option<&'a str>> {
        self.field(Col::Text)
    }

    /// A one-character row kind, for packed texts that mix rows of several shapes.
    pub fn kind(&mut self) -> sqlx::Result<char> {
        let c = self.rest.chars().next().ok_or_else(malformed)?;
        self.rest = &self.rest[c.len_utf8()..];
        Ok(c)
    }
}

fn malformed() -> sqlx::Error {
    sqlx::Error::Protocol("malformed packed rows".into())
}

/// Calls `f` with each row of a packed text, its fields borrowed from the text.
pub(crate) fn for_each_packed_row(
    packed: &str,
    cols: &[Col],
    mut f: impl FnMut(&[Option<&str>]) -> sqlx::Result<()>,
) -> sqlx::Result<()> {
    let mut row: Vec<Option<&str>> = Vec::with_capacity(cols.len());
    let mut cursor = PackedCursor::new(packed);
    while !cursor.is_empty() {
        row.clear();
        for col in cols {
            row.push(cursor.field(*col)?);
        }
        f(&row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Col, for_each_packed_row};

    fn unpack(packed: &str, cols: &[Col]) -> Option<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        for_each_packed_row(packed, cols, |row| {
            rows.push(row.iter().map(|f| f.map(str::to_string)).collect());
            Ok(())
        })
        .ok()?;
        Some(rows)
    }

    #[test]
    fn packed_rows_split_on_lengths_not_delimiters() {
        let cols = [Col::Text, Col::Int, Col::Text, Col::Text];
        let rows = unpack("3:a:b-12,~5:héllo1:x7,~2:~:", &cols).unwrap();
        assert_eq!(rows[0], vec![Some("a:b".into()), Some("-12".into()), None, Some("héllo".into())]);
        assert_eq!(rows[1], vec![Some("x".into()), Some("7".into()), None, Some("~:".into())]);
        assert!(unpack("9:ab", &[Col::Text]).is_none());
        assert!(unpack("x", &[Col::Text]).is_none());
        assert!(unpack("12", &[Col::Int]).is_none());
    }
}
