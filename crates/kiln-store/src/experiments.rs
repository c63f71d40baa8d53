use std::collections::HashMap;

use crate::compile::{EntitySql, order_terms, push_clauses};
use crate::model::{ACTIVE, DELETED, Experiment, Tag};
use crate::query::{Search, ViewType};
use crate::sql::Sql;
use crate::{Page, Result, Store, StoreError, now_ms, unique_as_exists};

pub(crate) const EXPERIMENT_SQL: EntitySql = EntitySql {
    id: "e.experiment_id",
    attributes: &[
        ("name", "e.name", false),
        ("experiment_id", "CAST(e.experiment_id AS TEXT)", false),
        ("creation_time", "e.creation_time", true),
        ("last_update_time", "e.last_update_time", true),
    ],
    tags: Some(("experiment_tags", "experiment_id")),
    params: None,
    metrics: None,
    metadata: None,
    datasets: false,
    side_extra: "",
};

const COLUMNS: &str =
    "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";

type ExperimentRow = (i64, String, String, String, i64, i64);

pub(crate) fn lifecycle_condition(column: &str, view: ViewType) -> String {
    match view {
        ViewType::ActiveOnly => format!(" AND {column} = '{ACTIVE}'"),
        ViewType::DeletedOnly => format!(" AND {column} = '{DELETED}'"),
        ViewType::All => String::new(),
    }
}

/// The tags of the given experiments, `(experiment_id, key, value)` in key order.
fn experiment_tags(dialect: crate::Dialect, ids: &[i64]) -> Sql {
    let mut sql = Sql::new(dialect, "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ");
    sql.bind_list(ids).push(" ORDER BY key");
    sql
}

fn assemble(rows: Vec<ExperimentRow>, tag_rows: Vec<(i64, String, String)>) -> Vec<Experiment> {
    let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
    for (id, key, value) in tag_rows {
        tags.entry(id).or_default().push(Tag { key, value });
    }
    rows.into_iter()
        .map(|(experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)| Experiment {
            experiment_id,
            name,
            artifact_location,
            lifecycle_stage,
            creation_time,
            last_update_time,
            tags: tags.remove(&experiment_id).unwrap_or_default(),
        })
        .collect()
}

impl Store {
    /// Makes sure experiment `0` exists; it is where runs go when no experiment is named.
    pub async fn ensure_default_experiment(&self, name: &str, artifact_location: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time) VALUES (0, $1, $2, 'active', $3, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(artifact_location)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Creates an experiment; `artifact_location` gets the new id appended when it ends in `/`
    /// (the service passes the root that way so the location names the experiment).
    pub async fn create_experiment(&self, name: &str, artifact_location: &str, tags: &[Tag]) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let (id,): (i64,) =
            sqlx::query_as("UPDATE kiln_counters SET value = value + 1 WHERE name = 'experiment' RETURNING value")
                .fetch_one(&mut *tx)
                .await?;
        let location = if artifact_location.ends_with('/') {
            format!("{artifact_location}{id}")
        } else {
            artifact_location.to_string()
        };
        sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time) VALUES ($1, $2, $3, 'active', $4, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(&location)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unique_as_exists(|| name.to_string()))?;
        for tag in tags {
            upsert_experiment_tag(&mut tx, id, tag).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn get_experiment(&self, id: i64) -> Result<Option<Experiment>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM experiments e WHERE e.experiment_id = "));
        sql.bind(id);
        if let Some(direct) = &self.direct {
            // Every run creation reads its experiment first.
            return direct.read(|conn| {
                let row =
                    sql.first_direct(conn, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
                let Some(row) = row else { return Ok(None) };
                let tags = experiment_tags(self.dialect, &[row.0])
                    .map_direct(conn, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(assemble(vec![row], tags).pop())
            });
        }
        let row: Option<ExperimentRow> = sql.fetch_optional(&self.reader).await?;
        match row {
            Some(row) => Ok(self.hydrate_experiments(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM experiments e WHERE e.name = "));
        sql.bind(name);
        let row: Option<ExperimentRow> = sql.fetch_optional(&self.reader).await?;
        match row {
            Some(row) => Ok(self.hydrate_experiments(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    pub async fn search_experiments(&self, search: &Search) -> Result<Page<Experiment>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM experiments e"));
        let terms = order_terms(&EXPERIMENT_SQL, &search.order_by, &mut sql)?;
        sql.push(" WHERE 1 = 1");
        sql.push(&lifecycle_condition("e.lifecycle_stage", search.view));
        push_clauses(&mut sql, &EXPERIMENT_SQL, &search.clauses, self.dialect)?;
        let mut order = terms;
        if search.order_by.is_empty() {
            order.push("e.creation_time DESC".into());
        }
        order.push("e.experiment_id ASC".into());
        sql.push(" ORDER BY ").push(&order.join(", "));
        sql.limit_offset(search.limit.saturating_add(1), search.offset);
        let mut rows: Vec<ExperimentRow> = sql.fetch_all(&self.reader).await?;
        let next_offset = page_rest(&mut rows, search);
        Ok(Page { items: self.hydrate_experiments(rows).await?, next_offset })
    }

    async fn hydrate_experiments(&self, rows: Vec<ExperimentRow>) -> Result<Vec<Experiment>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let tag_rows = experiment_tags(self.dialect, &ids).fetch_all(&self.reader).await?;
        Ok(assemble(rows, tag_rows))
    }

    pub async fn rename_experiment(&self, id: i64, new_name: &str) -> Result<()> {
        let n = sqlx::query("UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(new_name)
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(unique_as_exists(|| new_name.to_string()))?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Soft-deletes (or restores) an experiment and, with it, its runs.
    pub async fn set_experiment_lifecycle(&self, id: i64, deleted: bool) -> Result<()> {
        let now = now_ms();
        let (stage, from) = if deleted { (DELETED, ACTIVE) } else { (ACTIVE, DELETED) };
        let mut tx = self.writer.begin().await?;
        let n =
            sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
                .bind(stage)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let deleted_time = deleted.then_some(now);
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3 AND lifecycle_stage = $4",
        )
        .bind(stage)
        .bind(deleted_time)
        .bind(id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_experiment_tag(&self, id: i64, tag: &Tag) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        upsert_experiment_tag(&mut tx, id, tag).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns whether the tag existed.
    pub async fn delete_experiment_tag(&self, id: i64, key: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(n.rows_affected() > 0)
    }
}

async fn upsert_experiment_tag(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64, tag: &Tag) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Drops the look-ahead row fetched to detect a next page and returns the next offset.
pub(crate) fn page_rest<T>(rows: &mut Vec<T>, search: &Search) -> Option<i64> {
    if rows.len() as i64 > search.limit {
        rows.truncate(search.limit as usize);
        Some(search.offset.saturating_add(search.limit))
    } else {
        None
    }
}
