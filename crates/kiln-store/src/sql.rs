//! A small SQL text builder that numbers placeholders `$1, $2, …`, which both SQLite and
//! PostgreSQL accept, and keeps the bound values beside the text.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Executor, FromRow};

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

#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql { text: text.to_string(), binds: Vec::new() }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.binds.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
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
