use std::collections::HashMap;

use crate::compile::{EntitySql, order_terms, push_clauses};
use crate::experiments::page_rest;
use crate::model::*;
use crate::query::Search;
use crate::sql::Sql;
use crate::{Result, Store, StoreError, now_ms, unique_as_exists};

pub(crate) const REGISTERED_MODEL_SQL: EntitySql = EntitySql {
    id: "e.name",
    attributes: &[
        ("name", "e.name", false),
        ("creation_timestamp", "e.creation_timestamp", true),
        ("last_updated_timestamp", "e.last_updated_timestamp", true),
    ],
    tags: Some(("registered_model_tags", "name")),
    params: None,
    metrics: None,
    metadata: None,
    datasets: false,
    side_extra: "",
};

pub(crate) const MODEL_VERSION_SQL: EntitySql = EntitySql {
    id: "e.name",
    attributes: &[
        ("name", "e.name", false),
        ("run_id", "e.run_id", false),
        ("source_path", "e.source", false),
        ("current_stage", "e.current_stage", false),
        ("model_id", "e.model_id", false),
        ("version_number", "e.version", true),
        ("creation_timestamp", "e.creation_timestamp", true),
        ("last_updated_timestamp", "e.last_updated_timestamp", true),
    ],
    tags: Some(("model_version_tags", "name")),
    params: None,
    metrics: None,
    metadata: None,
    datasets: false,
    side_extra: " AND {a}.version = e.version",
};

/// Canonical stage names; MLflow accepts them in any case.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

const RM_COLUMNS: &str = "e.name, e.creation_timestamp, e.last_updated_timestamp, e.description, e.user_id";
type RmRow = (String, i64, i64, Option<String>, Option<String>);

const MV_COLUMNS: &str = "e.name, e.version, e.creation_timestamp, e.last_updated_timestamp, e.user_id, \
                          e.current_stage, e.description, e.source, e.run_id, e.run_link, e.model_id, e.status, \
                          e.status_message";
type MvRow = (
    String,
    i64,
    i64,
    i64,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// What a new model version is made from.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub model_id: Option<String>,
    pub user_id: Option<String>,
    pub tags: Vec<Tag>,
}

impl Store {
    pub async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        user_id: Option<&str>,
        tags: &[Tag],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp, description, \
             user_id, last_version) VALUES ($1, $2, $2, $3, $4, 0)",
        )
        .bind(name)
        .bind(now)
        .bind(description)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(unique_as_exists(|| name.to_string()))?;
        for t in tags {
            sqlx::query(
                "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<Option<RegisteredModel>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {RM_COLUMNS} FROM registered_models e WHERE e.name = "));
        sql.bind(name);
        let row: Option<RmRow> = sql.fetch_optional(&self.reader).await?;
        match row {
            Some(row) => Ok(self.hydrate_registered_models(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    pub async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("UPDATE registered_models SET name = $1, last_updated_timestamp = $2 WHERE name = $3")
            .bind(new_name)
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unique_as_exists(|| new_name.to_string()))?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(name.to_string()));
        }
        for table in ["registered_model_tags", "model_versions", "model_version_tags", "registered_model_aliases"] {
            let mut sql = Sql::new(self.dialect, &format!("UPDATE {table} SET name = "));
            sql.bind(new_name).push(" WHERE name = ").bind(name);
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_registered_model(&self, name: &str, description: Option<&str>) -> Result<()> {
        let n =
            sqlx::query("UPDATE registered_models SET description = $1, last_updated_timestamp = $2 WHERE name = $3")
                .bind(description)
                .bind(now_ms())
                .bind(name)
                .execute(&self.writer)
                .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(name.to_string()));
        }
        Ok(())
    }

    /// Deletes a registered model with its versions, tags and aliases.
    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM registered_models WHERE name = $1").bind(name).execute(&mut *tx).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(name.to_string()));
        }
        for table in ["registered_model_tags", "model_versions", "model_version_tags", "registered_model_aliases"] {
            let mut sql = Sql::new(self.dialect, &format!("DELETE FROM {table} WHERE name = "));
            sql.bind(name);
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn search_registered_models(&self, search: &Search) -> Result<Page<RegisteredModel>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {RM_COLUMNS} FROM registered_models e"));
        let mut order = order_terms(&REGISTERED_MODEL_SQL, &search.order_by, &mut sql)?;
        sql.push(" WHERE 1 = 1");
        push_clauses(&mut sql, &REGISTERED_MODEL_SQL, &search.clauses, self.dialect)?;
        order.push("e.name ASC".into());
        sql.push(" ORDER BY ").push(&order.join(", "));
        sql.limit_offset(search.limit.saturating_add(1), search.offset);
        let mut rows: Vec<RmRow> = sql.fetch_all(&self.reader).await?;
        let next_offset = page_rest(&mut rows, search);
        Ok(Page { items: self.hydrate_registered_models(rows).await?, next_offset })
    }

    async fn hydrate_registered_models(&self, rows: Vec<RmRow>) -> Result<Vec<RegisteredModel>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        let mut sql = Sql::new(self.dialect, "SELECT name, key, value FROM registered_model_tags WHERE name IN ");
        sql.bind_list(&names).push(" ORDER BY key");
        for (name, key, value) in sql.fetch_all::<(String, String, String), _>(&self.reader).await? {
            tags.entry(name).or_default().push(Tag { key, value });
        }
        let mut aliases: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        let mut sql =
            Sql::new(self.dialect, "SELECT name, alias, version FROM registered_model_aliases WHERE name IN ");
        sql.bind_list(&names).push(" ORDER BY alias");
        for (name, alias, version) in sql.fetch_all::<(String, String, i64), _>(&self.reader).await? {
            aliases.entry(name).or_default().push((alias, version));
        }
        // The latest version in each stage.
        let mut sql = Sql::new(self.dialect, &format!("SELECT {MV_COLUMNS} FROM model_versions e WHERE e.name IN "));
        sql.bind_list(&names).push(
            " AND e.version = (SELECT MAX(v.version) FROM model_versions v WHERE v.name = e.name \
             AND v.current_stage = e.current_stage) ORDER BY e.version",
        );
        let latest_rows: Vec<MvRow> = sql.fetch_all(&self.reader).await?;
        let mut latest: HashMap<String, Vec<ModelVersion>> = HashMap::new();
        for mv in self.hydrate_model_versions(latest_rows).await? {
            latest.entry(mv.name.clone()).or_default().push(mv);
        }
        Ok(rows
            .into_iter()
            .map(|(name, creation_timestamp, last_updated_timestamp, description, user_id)| RegisteredModel {
                tags: tags.remove(&name).unwrap_or_default(),
                aliases: aliases.remove(&name).unwrap_or_default(),
                latest_versions: latest.remove(&name).unwrap_or_default(),
                name,
                creation_timestamp,
                last_updated_timestamp,
                description,
                user_id,
            })
            .collect())
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: &Tag) -> Result<()> {
        sqlx::query(
            "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(&tag.key)
        .bind(&tag.value)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Creates the next version of a registered model, `READY` at once.
    pub async fn create_model_version(&self, new: &NewModelVersion) -> Result<ModelVersion> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let version: Option<(i64,)> = sqlx::query_as(
            "UPDATE registered_models SET last_version = last_version + 1, last_updated_timestamp = $1 \
             WHERE name = $2 RETURNING last_version",
        )
        .bind(now)
        .bind(&new.name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((version,)) = version else {
            return Err(StoreError::NotFound(new.name.clone()));
        };
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_timestamp, last_updated_timestamp, user_id, \
             current_stage, description, source, run_id, run_link, model_id, status) \
             VALUES ($1, $2, $3, $3, $4, 'None', $5, $6, $7, $8, $9, 'READY')",
        )
        .bind(&new.name)
        .bind(version)
        .bind(now)
        .bind(new.user_id.as_deref())
        .bind(new.description.as_deref())
        .bind(&new.source)
        .bind(new.run_id.as_deref())
        .bind(new.run_link.as_deref())
        .bind(new.model_id.as_deref())
        .execute(&mut *tx)
        .await?;
        for t in &new.tags {
            upsert_version_tag(&mut *tx, &new.name, version, t).await?;
        }
        tx.commit().await?;
        self.get_model_version(&new.name, version)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{}/{version}", new.name)))
    }

    pub async fn get_model_version(&self, name: &str, version: i64) -> Result<Option<ModelVersion>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {MV_COLUMNS} FROM model_versions e WHERE e.name = "));
        sql.bind(name).push(" AND e.version = ").bind(version);
        let row: Option<MvRow> = sql.fetch_optional(&self.reader).await?;
        match row {
            Some(row) => Ok(self.hydrate_model_versions(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    pub async fn update_model_version(&self, name: &str, version: i64, description: Option<&str>) -> Result<()> {
        let n = sqlx::query(
            "UPDATE model_versions SET description = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4",
        )
        .bind(description)
        .bind(now_ms())
        .bind(name)
        .bind(version)
        .execute(&self.writer)
        .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("{name}/{version}")));
        }
        Ok(())
    }

    /// Moves a version to `stage` (canonical spelling); with `archive_existing`, the other
    /// versions in that stage move to `Archived`.
    pub async fn transition_model_version_stage(
        &self,
        name: &str,
        version: i64,
        stage: &str,
        archive_existing: bool,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        if archive_existing && (stage == "Staging" || stage == "Production") {
            sqlx::query(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = $1 \
                 WHERE name = $2 AND current_stage = $3 AND version <> $4",
            )
            .bind(now)
            .bind(name)
            .bind(stage)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        let n = sqlx::query(
            "UPDATE model_versions SET current_stage = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4",
        )
        .bind(stage)
        .bind(now)
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("{name}/{version}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a version with its tags and the aliases that point at it.
    pub async fn delete_model_version(&self, name: &str, version: i64) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM model_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("{name}/{version}")));
        }
        for table in ["model_version_tags", "registered_model_aliases"] {
            let mut sql = Sql::new(self.dialect, &format!("DELETE FROM {table} WHERE name = "));
            sql.bind(name).push(" AND version = ").bind(version);
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn search_model_versions(&self, search: &Search) -> Result<Page<ModelVersion>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {MV_COLUMNS} FROM model_versions e"));
        let mut order = order_terms(&MODEL_VERSION_SQL, &search.order_by, &mut sql)?;
        sql.push(" WHERE 1 = 1");
        push_clauses(&mut sql, &MODEL_VERSION_SQL, &search.clauses, self.dialect)?;
        if search.order_by.is_empty() {
            order.push("e.last_updated_timestamp DESC".into());
        }
        order.push("e.name ASC".into());
        order.push("e.version DESC".into());
        sql.push(" ORDER BY ").push(&order.join(", "));
        sql.limit_offset(search.limit.saturating_add(1), search.offset);
        let mut rows: Vec<MvRow> = sql.fetch_all(&self.reader).await?;
        let next_offset = page_rest(&mut rows, search);
        Ok(Page { items: self.hydrate_model_versions(rows).await?, next_offset })
    }

    async fn hydrate_model_versions(&self, rows: Vec<MvRow>) -> Result<Vec<ModelVersion>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        names.sort();
        names.dedup();
        let mut tags: HashMap<(String, i64), Vec<Tag>> = HashMap::new();
        let mut sql = Sql::new(self.dialect, "SELECT name, version, key, value FROM model_version_tags WHERE name IN ");
        sql.bind_list(&names).push(" ORDER BY key");
        for (name, version, key, value) in sql.fetch_all::<(String, i64, String, String), _>(&self.reader).await? {
            tags.entry((name, version)).or_default().push(Tag { key, value });
        }
        let mut aliases: HashMap<(String, i64), Vec<String>> = HashMap::new();
        let mut sql =
            Sql::new(self.dialect, "SELECT name, version, alias FROM registered_model_aliases WHERE name IN ");
        sql.bind_list(&names).push(" ORDER BY alias");
        for (name, version, alias) in sql.fetch_all::<(String, i64, String), _>(&self.reader).await? {
            aliases.entry((name, version)).or_default().push(alias);
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let key = (r.0.clone(), r.1);
                ModelVersion {
                    name: r.0,
                    version: r.1,
                    creation_timestamp: r.2,
                    last_updated_timestamp: r.3,
                    user_id: r.4,
                    current_stage: r.5,
                    description: r.6,
                    source: r.7,
                    run_id: r.8,
                    run_link: r.9,
                    model_id: r.10,
                    status: r.11,
                    status_message: r.12,
                    tags: tags.remove(&key).unwrap_or_default(),
                    aliases: aliases.remove(&key).unwrap_or_default(),
                }
            })
            .collect())
    }

    pub async fn set_model_version_tag(&self, name: &str, version: i64, tag: &Tag) -> Result<()> {
        upsert_version_tag(&self.writer, name, version, tag).await
    }

    pub async fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(version)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    pub async fn set_registered_model_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) \
             ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        )
        .bind(name)
        .bind(alias)
        .bind(version)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&self.writer)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    pub async fn alias_version(&self, name: &str, alias: &str) -> Result<Option<i64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2")
                .bind(name)
                .bind(alias)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// The latest version of each stage in `stages` (all stages when empty).
    pub async fn latest_model_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {MV_COLUMNS} FROM model_versions e WHERE e.name = "));
        sql.bind(name);
        if !stages.is_empty() {
            sql.push(" AND e.current_stage IN ").bind_list(stages);
        }
        sql.push(
            " AND e.version = (SELECT MAX(v.version) FROM model_versions v WHERE v.name = e.name \
             AND v.current_stage = e.current_stage) ORDER BY e.version",
        );
        let rows: Vec<MvRow> = sql.fetch_all(&self.reader).await?;
        self.hydrate_model_versions(rows).await
    }
}

async fn upsert_version_tag<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    name: &str,
    version: i64,
    tag: &Tag,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(version)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(executor)
    .await?;
    Ok(())
}
