use std::collections::HashMap;

use crate::compile::{EntitySql, order_terms, push_clauses};
use crate::experiments::{lifecycle_condition, page_rest};
use crate::model::*;
use crate::query::Search;
use crate::sql::Sql;
use crate::{Result, Store, StoreError, now_ms};

pub(crate) const LOGGED_MODEL_SQL: EntitySql = EntitySql {
    id: "e.model_id",
    attributes: &[
        ("model_id", "e.model_id", false),
        ("name", "e.name", false),
        ("model_type", "e.model_type", false),
        ("status", "e.status", false),
        ("source_run_id", "e.source_run_id", false),
        ("creation_timestamp", "e.creation_timestamp", true),
        ("last_updated_timestamp", "e.last_updated_timestamp", true),
    ],
    tags: Some(("logged_model_tags", "model_id")),
    params: Some(("logged_model_params", "model_id")),
    metrics: Some(("metrics", "model_id")),
    metadata: None,
    datasets: false,
    side_extra: "",
};

const COLUMNS: &str = "e.model_id, e.experiment_id, e.name, e.artifact_uri, e.status, e.status_message, \
                       e.model_type, e.source_run_id, e.creation_timestamp, e.last_updated_timestamp, e.lifecycle_stage";

type Row = (String, i64, String, String, String, Option<String>, Option<String>, Option<String>, i64, i64, String);

/// What a new logged model starts with.
#[derive(Debug, Clone)]
pub struct NewLoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_uri: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<Tag>,
    pub tags: Vec<Tag>,
}

impl Store {
    pub async fn create_logged_model(&self, m: &NewLoggedModel) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_uri, status, model_type, \
             source_run_id, creation_timestamp, last_updated_timestamp, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, 'LOGGED_MODEL_PENDING', $5, $6, $7, $7, 'active')",
        )
        .bind(&m.model_id)
        .bind(m.experiment_id)
        .bind(&m.name)
        .bind(&m.artifact_uri)
        .bind(m.model_type.as_deref())
        .bind(m.source_run_id.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        upsert_entries(&mut tx, self.dialect, "logged_model_params", &m.model_id, &m.params).await?;
        upsert_entries(&mut tx, self.dialect, "logged_model_tags", &m.model_id, &m.tags).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<Option<LoggedModel>> {
        let mut sql = Sql::new(
            self.dialect,
            &format!("SELECT {COLUMNS} FROM logged_models e WHERE e.lifecycle_stage = 'active' AND e.model_id = "),
        );
        sql.bind(model_id);
        let row: Option<Row> = sql.fetch_optional(&self.reader).await?;
        match row {
            Some(row) => Ok(self.hydrate_logged_models(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    pub async fn set_logged_model_status(&self, model_id: &str, status: &str, message: Option<&str>) -> Result<()> {
        let n = sqlx::query(
            "UPDATE logged_models SET status = $1, status_message = $2, last_updated_timestamp = $3 \
             WHERE model_id = $4 AND lifecycle_stage = 'active'",
        )
        .bind(status)
        .bind(message)
        .bind(now_ms())
        .bind(model_id)
        .execute(&self.writer)
        .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(model_id.to_string()));
        }
        Ok(())
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp = $1 \
             WHERE model_id = $2 AND lifecycle_stage = 'active'",
        )
        .bind(now_ms())
        .bind(model_id)
        .execute(&self.writer)
        .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(model_id.to_string()));
        }
        Ok(())
    }

    /// Upserts tags (`params == false`) or params (`params == true`) of a logged model.
    pub async fn set_logged_model_entries(&self, model_id: &str, entries: &[Tag], params: bool) -> Result<()> {
        let table = if params { "logged_model_params" } else { "logged_model_tags" };
        let mut tx = self.writer.begin().await?;
        upsert_entries(&mut tx, self.dialect, table, model_id, entries).await?;
        sqlx::query("UPDATE logged_models SET last_updated_timestamp = $1 WHERE model_id = $2")
            .bind(now_ms())
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns whether the tag existed.
    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    pub async fn search_logged_models(&self, experiment_ids: &[i64], search: &Search) -> Result<Page<LoggedModel>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM logged_models e"));
        let mut order = order_terms(&LOGGED_MODEL_SQL, &search.order_by, &mut sql)?;
        sql.push(" WHERE 1 = 1");
        if !experiment_ids.is_empty() {
            sql.push(" AND e.experiment_id IN ").bind_list(experiment_ids);
        }
        sql.push(&lifecycle_condition("e.lifecycle_stage", search.view));
        push_clauses(&mut sql, &LOGGED_MODEL_SQL, &search.clauses, self.dialect)?;
        order.push("e.creation_timestamp DESC".into());
        order.push("e.model_id ASC".into());
        sql.push(" ORDER BY ").push(&order.join(", "));
        sql.limit_offset(search.limit.saturating_add(1), search.offset);
        let mut rows: Vec<Row> = sql.fetch_all(&self.reader).await?;
        let next_offset = page_rest(&mut rows, search);
        Ok(Page { items: self.hydrate_logged_models(rows).await?, next_offset })
    }

    async fn hydrate_logged_models(&self, rows: Vec<Row>) -> Result<Vec<LoggedModel>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        let mut params: HashMap<String, Vec<Tag>> = HashMap::new();
        for (table, target) in [("logged_model_tags", &mut tags), ("logged_model_params", &mut params)] {
            let mut sql =
                Sql::new(self.dialect, &format!("SELECT model_id, key, value FROM {table} WHERE model_id IN "));
            sql.bind_list(&ids).push(" ORDER BY key");
            for (id, key, value) in sql.fetch_all::<(String, String, String), _>(&self.reader).await? {
                target.entry(id).or_default().push(Tag { key, value });
            }
        }
        let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
        let mut sql = Sql::new(
            self.dialect,
            "SELECT model_id, key, value, is_nan, timestamp, step, dataset_name, dataset_digest \
             FROM metrics WHERE model_id IN ",
        );
        sql.bind_list(&ids).push(" ORDER BY key, step, timestamp");
        type MRow = (String, String, Option<f64>, i64, i64, i64, Option<String>, Option<String>);
        for (id, key, value, is_nan, timestamp, step, dataset_name, dataset_digest) in
            sql.fetch_all::<MRow, _>(&self.reader).await?
        {
            let value = if is_nan != 0 { f64::NAN } else { value.unwrap_or(f64::NAN) };
            metrics.entry(id.clone()).or_default().push(Metric {
                key,
                value,
                timestamp,
                step,
                model_id: Some(id),
                dataset_name,
                dataset_digest,
            });
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let id = r.0.clone();
                LoggedModel {
                    model_id: r.0,
                    experiment_id: r.1,
                    name: r.2,
                    artifact_uri: r.3,
                    status: r.4,
                    status_message: r.5,
                    model_type: r.6,
                    source_run_id: r.7,
                    creation_timestamp: r.8,
                    last_updated_timestamp: r.9,
                    lifecycle_stage: r.10,
                    tags: tags.remove(&id).unwrap_or_default(),
                    params: params.remove(&id).unwrap_or_default(),
                    metrics: metrics.remove(&id).unwrap_or_default(),
                }
            })
            .collect())
    }
}

/// Upserts key/value entries (tags or params) of a logged model.
async fn upsert_entries(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: crate::Dialect,
    table: &str,
    model_id: &str,
    entries: &[Tag],
) -> Result<()> {
    for t in entries {
        let mut sql = Sql::new(dialect, &format!("INSERT INTO {table} (model_id, key, value) VALUES ("));
        sql.bind(model_id).push(", ").bind(&t.key).push(", ").bind(&t.value);
        sql.push(") ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value");
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}
