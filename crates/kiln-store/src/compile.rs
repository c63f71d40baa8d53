//! Turns [`Clause`]s and [`OrderKey`]s into SQL for one kind of entity.
//!
//! Every column name comes from the entity's fixed [`EntitySql`] description; user values are
//! always bound, never spliced.

use crate::Dialect;
use crate::query::{Clause, Op, OrderKey, Target, Value};
use crate::sql::Sql;

/// How one searchable entity is laid out, for the clause compiler.
pub(crate) struct EntitySql {
    /// The entity's id column, qualified with the main table's alias `e`.
    pub id: &'static str,
    /// Canonical attribute name → column expression, and whether it is numeric.
    pub attributes: &'static [(&'static str, &'static str, bool)],
    /// `(table, foreign-key column)` of key/value side tables.
    pub tags: Option<(&'static str, &'static str)>,
    pub params: Option<(&'static str, &'static str)>,
    /// Metrics: `(table, foreign-key column)`; runs use their latest values.
    pub metrics: Option<(&'static str, &'static str)>,
    pub metadata: Option<(&'static str, &'static str)>,
    pub datasets: bool,
    /// More join conditions for side tables whose key has several columns; `{a}` stands for
    /// the side table's alias.
    pub side_extra: &'static str,
}

impl EntitySql {
    fn attribute(&self, name: &str) -> Option<(&'static str, bool)> {
        self.attributes.iter().find(|(n, _, _)| *n == name).map(|(_, c, num)| (*c, *num))
    }
}

/// An error in a clause that the parser above should have caught; reported, not panicked.
#[derive(Debug, thiserror::Error)]
#[error("unsupported search clause: {0}")]
pub struct UnsupportedClause(pub String);

/// Appends ` AND <condition>` for each clause.
pub(crate) fn push_clauses<'c>(
    sql: &mut Sql,
    entity: &EntitySql,
    clauses: impl IntoIterator<Item = &'c Clause>,
    dialect: Dialect,
) -> Result<(), UnsupportedClause> {
    for clause in clauses {
        sql.push(" AND ");
        push_clause(sql, entity, clause, dialect)?;
    }
    Ok(())
}

/// Appends an inner join (` JOIN params f0 ON …`) for each clause that compares a value of a
/// side table, and returns the clauses left for the WHERE part.
///
/// Only for an entity whose side tables hold one row per (entity, key), as a run's params,
/// tags and latest metrics do: then a join cannot repeat a row and means what the correlated
/// `EXISTS` of [`push_clauses`] means, and SQLite runs it faster (no subquery program per
/// row; a tenth of a run search). Absence tests (`IS NULL`, `!=` that matches a missing key)
/// stay in WHERE.
pub(crate) fn push_filter_joins<'c>(
    sql: &mut Sql,
    entity: &EntitySql,
    clauses: &'c [Clause],
    dialect: Dialect,
) -> Result<Vec<&'c Clause>, UnsupportedClause> {
    let mut rest = Vec::new();
    for (i, clause) in clauses.iter().enumerate() {
        let unsupported = || UnsupportedClause(format!("{clause:?}"));
        let absence = matches!(clause.op, Op::IsNull | Op::IsNotNull | Op::NeOrMissing);
        let side = match &clause.target {
            Target::Tag(key) if !absence => entity.tags.map(|t| (t, key)),
            Target::Param(key) if !absence => entity.params.map(|t| (t, key)),
            Target::Metadata(key) if !absence => entity.metadata.map(|t| (t, key)),
            Target::Metric(key) => entity.metrics.map(|t| (t, key)),
            _ => None,
        };
        let Some(((table, fk), key)) = side else {
            rest.push(clause);
            continue;
        };
        let alias = format!("f{i}");
        sql.push(" JOIN ").push(table).push(" ").push(&alias).push(" ON ");
        sql.push(&alias).push(".").push(fk).push(" = ").push(entity.id);
        sql.push(&entity.side_extra.replace("{a}", &alias));
        sql.push(" AND ").push(&alias).push(".key = ").bind(key).push(" AND ");
        let column = format!("{alias}.value");
        if let Target::Metric(_) = clause.target {
            let Value::Number(n) = clause.value else { return Err(unsupported()) };
            sql.push(&column).push(" ").push(clause.op.sql()).push(" ");
            bind_number(sql, n);
        } else {
            push_string_condition(sql, &column, clause.op, &clause.value, dialect).ok_or_else(unsupported)?;
        }
    }
    Ok(rest)
}

fn push_clause(sql: &mut Sql, entity: &EntitySql, clause: &Clause, dialect: Dialect) -> Result<(), UnsupportedClause> {
    let unsupported = || UnsupportedClause(format!("{clause:?}"));
    match &clause.target {
        Target::Attribute(name) => {
            let (column, numeric) = entity.attribute(name).ok_or_else(unsupported)?;
            if numeric {
                let Value::Number(n) = clause.value else { return Err(unsupported()) };
                sql.push(column).push(" ").push(clause.op.sql()).push(" ");
                bind_number(sql, n);
            } else {
                push_string_condition(sql, column, clause.op, &clause.value, dialect).ok_or_else(unsupported)?;
            }
        }
        Target::Tag(key) | Target::Param(key) | Target::Metadata(key) => {
            let (table, fk) = match &clause.target {
                Target::Tag(_) => entity.tags,
                Target::Param(_) => entity.params,
                _ => entity.metadata,
            }
            .ok_or_else(unsupported)?;
            match clause.op {
                Op::IsNull | Op::IsNotNull => {
                    if clause.op == Op::IsNull {
                        sql.push("NOT ");
                    }
                    sql.push("EXISTS (SELECT 1 FROM ").push(table).push(" s WHERE s.").push(fk);
                    sql.push(" = ").push(entity.id).push(&entity.side_extra.replace("{a}", "s"));
                    sql.push(" AND s.key = ").bind(key).push(")");
                }
                Op::NeOrMissing => {
                    let Value::Str(v) = &clause.value else { return Err(unsupported()) };
                    sql.push("NOT EXISTS (SELECT 1 FROM ").push(table).push(" s WHERE s.").push(fk);
                    sql.push(" = ").push(entity.id).push(&entity.side_extra.replace("{a}", "s"));
                    sql.push(" AND s.key = ").bind(key).push(" AND s.value = ").bind(v).push(")");
                }
                op => {
                    sql.push("EXISTS (SELECT 1 FROM ").push(table).push(" s WHERE s.").push(fk);
                    sql.push(" = ").push(entity.id).push(&entity.side_extra.replace("{a}", "s"));
                    sql.push(" AND s.key = ").bind(key).push(" AND ");
                    push_string_condition(sql, "s.value", op, &clause.value, dialect).ok_or_else(unsupported)?;
                    sql.push(")");
                }
            }
        }
        Target::Metric(key) => {
            let (table, fk) = entity.metrics.ok_or_else(unsupported)?;
            let Value::Number(n) = clause.value else { return Err(unsupported()) };
            sql.push("EXISTS (SELECT 1 FROM ").push(table).push(" s WHERE s.").push(fk);
            sql.push(" = ").push(entity.id).push(" AND s.key = ").bind(key);
            sql.push(" AND s.value ").push(clause.op.sql()).push(" ");
            bind_number(sql, n);
            sql.push(")");
        }
        Target::Dataset(field) => {
            if !entity.datasets {
                return Err(unsupported());
            }
            let column = match field.as_str() {
                "name" => "d.name",
                "digest" => "d.digest",
                "context" => "d.context",
                _ => return Err(unsupported()),
            };
            sql.push("EXISTS (SELECT 1 FROM run_dataset_inputs d WHERE d.run_key = ");
            sql.push(entity.id).push(" AND ");
            push_string_condition(sql, column, clause.op, &clause.value, dialect).ok_or_else(unsupported)?;
            sql.push(")");
        }
    }
    Ok(())
}

fn bind_number(sql: &mut Sql, n: f64) {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        sql.bind(n as i64);
    } else {
        sql.bind(n);
    }
}

/// `column <op> value` for text, with LIKE case-sensitive and ILIKE case-insensitive on both
/// databases (SQLite's own LIKE ignores ASCII case, so it gets GLOB instead).
fn push_string_condition(sql: &mut Sql, column: &str, op: Op, value: &Value, dialect: Dialect) -> Option<()> {
    match (op, value) {
        (Op::Eq | Op::Ne, Value::Str(s)) => {
            sql.push(column).push(" ").push(op.sql()).push(" ").bind(s);
        }
        (Op::Like, Value::Str(s)) => match dialect {
            Dialect::Postgres => {
                sql.push(column).push(" LIKE ").bind(s);
            }
            Dialect::Sqlite => {
                // Not a bare parameter: SQLite re-prepares a statement whose GLOB pattern is
                // a bound parameter each time it is bound (for an index range that no indexed
                // column here could use), which cost a tenth of a run search.
                sql.push(column).push(" GLOB (").bind(like_to_glob(s)).push(" || '')");
            }
        },
        (Op::ILike, Value::Str(s)) => match dialect {
            Dialect::Postgres => {
                sql.push(column).push(" ILIKE ").bind(s);
            }
            Dialect::Sqlite => {
                sql.push("LOWER(").push(column).push(") LIKE LOWER(").bind(s).push(")");
            }
        },
        (Op::In | Op::NotIn, Value::List(items)) => {
            if items.is_empty() {
                sql.push(if op == Op::In { "1 = 0" } else { "1 = 1" });
            } else {
                sql.push(column).push(" ").push(op.sql()).push(" ").bind_list(items);
            }
        }
        _ => return None,
    }
    Some(())
}

/// Translates a SQL LIKE pattern into an equivalent (case-sensitive) GLOB pattern.
pub(crate) fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// Ordering: joins needed for side-table keys go into `joins`, terms into `terms`.
pub(crate) fn order_terms(
    entity: &EntitySql,
    order_by: &[OrderKey],
    joins: &mut Sql,
) -> Result<Vec<String>, UnsupportedClause> {
    let mut terms = Vec::new();
    for (i, key) in order_by.iter().enumerate() {
        let dir = if key.ascending { "ASC" } else { "DESC" };
        let expr = match &key.target {
            Target::Attribute(name) => entity
                .attribute(name)
                .map(|(c, _)| c.to_string())
                .ok_or_else(|| UnsupportedClause(format!("order by {name}")))?,
            Target::Metric(k) | Target::Param(k) | Target::Tag(k) => {
                let (table, fk) = match &key.target {
                    Target::Metric(_) => entity.metrics,
                    Target::Param(_) => entity.params,
                    _ => entity.tags,
                }
                .ok_or_else(|| UnsupportedClause(format!("order by {k}")))?;
                let alias = format!("o{i}");
                joins.push(" LEFT JOIN ").push(table).push(" ").push(&alias).push(" ON ");
                joins.push(&alias).push(".").push(fk).push(" = ").push(entity.id);
                joins.push(&entity.side_extra.replace("{a}", &alias));
                joins.push(" AND ").push(&alias).push(".key = ").bind(k);
                format!("{alias}.value")
            }
            other => return Err(UnsupportedClause(format!("order by {other:?}"))),
        };
        // Missing values sort last in both directions, as MLflow has it.
        terms.push(format!("({expr} IS NULL) ASC, {expr} {dir}"));
    }
    Ok(terms)
}
