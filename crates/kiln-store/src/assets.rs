//! Versioned assets (data, environments): create with auto-increment, exact and `@latest`
//! lookups, archive.

use crate::model::AssetRecord;
use crate::sql::Sql;
use crate::{Result, Store, now_ms};

const COLUMNS: &str = "kind, name, version, content_hash, spec, created_at, archived";
type Row = (String, String, String, String, String, i64, i64);

fn record(r: Row) -> AssetRecord {
    AssetRecord {
        kind: r.0,
        name: r.1,
        version: r.2,
        content_hash: r.3,
        spec: r.4,
        created_at: r.5,
        archived: r.6 != 0,
    }
}

/// What registering an asset version did.
#[derive(Debug, Clone, PartialEq)]
pub enum AssetCreated {
    /// A new version was written.
    New(AssetRecord),
    /// The version already existed with the same content; nothing changed.
    Same(AssetRecord),
    /// The version exists with other content; nothing changed.
    Conflict(AssetRecord),
}

impl Store {
    /// Registers `name` at `version` (or at the next integer version when `None`).
    pub async fn create_asset(
        &self,
        kind: &str,
        name: &str,
        version: Option<&str>,
        content_hash: &str,
        spec: &str,
    ) -> Result<AssetCreated> {
        let mut tx = self.writer.begin().await?;
        let version = match version {
            Some(v) => {
                let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM assets WHERE kind = "));
                sql.bind(kind).push(" AND name = ").bind(name).push(" AND version = ").bind(v);
                if let Some(row) = sql.fetch_optional::<Row, _>(&mut *tx).await? {
                    let existing = record(row);
                    return Ok(if existing.content_hash == content_hash {
                        AssetCreated::Same(existing)
                    } else {
                        AssetCreated::Conflict(existing)
                    });
                }
                v.to_string()
            }
            None => {
                let mut sql = Sql::new(self.dialect, "SELECT version FROM assets WHERE kind = ");
                sql.bind(kind).push(" AND name = ").bind(name);
                let versions: Vec<(String,)> = sql.fetch_all(&mut *tx).await?;
                let top = versions.iter().filter_map(|(v,)| v.parse::<u64>().ok()).max().unwrap_or(0);
                (top + 1).to_string()
            }
        };
        let (seq,): (i64,) =
            sqlx::query_as("UPDATE kiln_counters SET value = value + 1 WHERE name = 'asset' RETURNING value")
                .fetch_one(&mut *tx)
                .await?;
        let now = now_ms();
        let mut sql = Sql::new(
            self.dialect,
            "INSERT INTO assets (kind, name, version, seq, content_hash, spec, created_at, archived) VALUES (",
        );
        sql.bind(kind).push(", ").bind(name).push(", ").bind(&version).push(", ").bind(seq);
        sql.push(", ").bind(content_hash).push(", ").bind(spec).push(", ").bind(now).push(", 0)");
        sql.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(AssetCreated::New(AssetRecord {
            kind: kind.into(),
            name: name.into(),
            version,
            content_hash: content_hash.into(),
            spec: spec.into(),
            created_at: now,
            archived: false,
        }))
    }

    pub async fn get_asset(&self, kind: &str, name: &str, version: &str) -> Result<Option<AssetRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM assets WHERE kind = "));
        sql.bind(kind).push(" AND name = ").bind(name).push(" AND version = ").bind(version);
        Ok(sql.fetch_optional::<Row, _>(&self.reader).await?.map(record))
    }

    /// The most recently created version that is not archived.
    pub async fn latest_asset(&self, kind: &str, name: &str) -> Result<Option<AssetRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM assets WHERE kind = "));
        sql.bind(kind).push(" AND name = ").bind(name);
        sql.push(" AND archived = 0 ORDER BY seq DESC LIMIT 1");
        Ok(sql.fetch_optional::<Row, _>(&self.reader).await?.map(record))
    }

    /// Versions of one name (or of every name), newest first within a name.
    pub async fn list_assets(
        &self,
        kind: &str,
        name: Option<&str>,
        archived: Option<bool>,
    ) -> Result<Vec<AssetRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM assets WHERE kind = "));
        sql.bind(kind);
        if let Some(name) = name {
            sql.push(" AND name = ").bind(name);
        }
        if let Some(archived) = archived {
            sql.push(" AND archived = ").bind(archived as i64);
        }
        sql.push(" ORDER BY name, seq DESC");
        Ok(sql.fetch_all::<Row, _>(&self.reader).await?.into_iter().map(record).collect())
    }

    /// Archives or restores one version, or every version of the name. Returns how many rows
    /// it touched.
    pub async fn set_asset_archived(
        &self,
        kind: &str,
        name: &str,
        version: Option<&str>,
        archived: bool,
    ) -> Result<u64> {
        let mut sql = Sql::new(self.dialect, "UPDATE assets SET archived = ");
        sql.bind(archived as i64).push(" WHERE kind = ").bind(kind).push(" AND name = ").bind(name);
        if let Some(v) = version {
            sql.push(" AND version = ").bind(v);
        }
        Ok(sql.execute(&self.writer).await?)
    }
}
