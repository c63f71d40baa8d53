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
        let absence = matches!(clause.op, Op::IsNull | Op::IsNotNull | Op::NeOrMissing);
        let side = match side_table(entity, &clause.target) {
            Some(side) if !absence => side,
            _ => {
                rest.push(clause);
                continue;
            }
        };
        let alias = format!("f{i}");
        sql.push(" JOIN ").push(side.table).push(" ").push(&alias).push(" ON ");
        push_side_row(sql, entity, &side, &alias);
        sql.push(" AND ");
        push_value_condition(sql, &format!("{alias}.value"), clause, side.numeric, dialect)?;
    }
    Ok(rest)
}

/// The side table a clause's target lives in, when it is one (params, tags, metrics, metadata).
struct SideTable<'a> {
    table: &'static str,
    fk: &'static str,
    key: &'a str,
    numeric: bool,
}

fn side_table<'a>(entity: &EntitySql, target: &'a Target) -> Option<SideTable<'a>> {
    let ((table, fk), key, numeric) = match target {
        Target::Tag(key) => (entity.tags?, key, false),
        Target::Param(key) => (entity.params?, key, false),
        Target::Metadata(key) => (entity.metadata?, key, false),
        Target::Metric(key) => (entity.metrics?, key, true),
        _ => return None,
    };
    Some(SideTable { table, fk, key, numeric })
}

/// `{alias}.fk = <entity id> AND {alias}.key = ?`: the side row of the key for the entity.
fn push_side_row(sql: &mut Sql, entity: &EntitySql, side: &SideTable<'_>, alias: &str) {
    sql.push(alias).push(".").push(side.fk).push(" = ").push(entity.id);
    sql.push(&entity.side_extra.replace("{a}", alias));
    sql.push(" AND ").push(alias).push(".key = ").bind(side.key);
}

/// `column <op> value`: a bound number for numeric columns, a text condition otherwise.
fn push_value_condition(
    sql: &mut Sql,
    column: &str,
    clause: &Clause,
    numeric: bool,
    dialect: Dialect,
) -> Result<(), UnsupportedClause> {
    let unsupported = || UnsupportedClause(format!("{clause:?}"));
    if numeric {
        let Value::Number(n) = clause.value else { return Err(unsupported()) };
        sql.push(column).push(" ").push(clause.op.sql()).push(" ");
        bind_number(sql, n);
    } else {
        push_string_condition(sql, column, clause.op, &clause.value, dialect).ok_or_else(unsupported)?;
    }
    Ok(())
}

fn push_clause(sql: &mut Sql, entity: &EntitySql, clause: &Clause, dialect: Dialect) -> Result<(), UnsupportedClause> {
    let unsupported = || UnsupportedClause(format!("{clause:?}"));
    match &clause.target {
        Target::Attribute(name) => {
            let (column, numeric) = entity.attribute(name).ok_or_else(unsupported)?;
            push_value_condition(sql, column, clause, numeric, dialect)?;
        }
        Target::Tag(_) | Target::Param(_) | Target::Metadata(_) | Target::Metric(_) => {
            let side = side_table(entity, &clause.target).ok_or_else(unsupported)?;
            let exists = |sql: &mut Sql, negated: bool| {
                sql.push(if negated { "NOT EXISTS (SELECT 1 FROM " } else { "EXISTS (SELECT 1 FROM " });
                sql.push(side.table).push(" s WHERE ");
                push_side_row(sql, entity, &side, "s");
            };
            match clause.op {
                Op::IsNull | Op::IsNotNull if !side.numeric => exists(sql, clause.op == Op::IsNull),
                Op::NeOrMissing if !side.numeric => {
                    let Value::Str(v) = &clause.value else { return Err(unsupported()) };
                    exists(sql, true);
                    sql.push(" AND s.value = ").bind(v);
                }
                _ => {
                    exists(sql, false);
                    sql.push(" AND ");
                    push_value_condition(sql, "s.value", clause, side.numeric, dialect)?;
                }
            }
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
