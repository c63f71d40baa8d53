use std::collections::HashMap;

use crate::compile::{EntitySql, order_terms, push_clauses};
use crate::experiments::page_rest;
use crate::model::*;
use crate::query::Search;
use crate::sql::Sql;
use crate::{Result, Store};

pub(crate) const TRACE_SQL: EntitySql = EntitySql {
    id: "e.trace_id",
    attributes: &[
        ("trace_id", "e.trace_id", false),
        ("client_request_id", "e.client_request_id", false),
        ("status", "e.state", false),
        ("timestamp_ms", "e.request_time", true),
        ("execution_time_ms", "e.execution_duration", true),
    ],
    tags: Some(("trace_tags", "trace_id")),
    params: None,
    metrics: None,
    metadata: Some(("trace_metadata", "trace_id")),
    datasets: false,
    side_extra: "",
};

const COLUMNS: &str = "e.trace_id, e.experiment_id, e.client_request_id, e.request_time, e.execution_duration, \
                       e.state, e.request_preview, e.response_preview";
type Row = (String, i64, Option<String>, i64, Option<i64>, String, Option<String>, Option<String>);

impl Store {
    /// Records a trace's info (upserting, as a client may re-send a trace it is finishing).
    pub async fn put_trace(&self, t: &TraceInfo) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO traces (trace_id, experiment_id, client_request_id, request_time, execution_duration, \
             state, request_preview, response_preview) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (trace_id) DO UPDATE SET client_request_id = excluded.client_request_id, \
             request_time = excluded.request_time, execution_duration = excluded.execution_duration, \
             state = excluded.state, request_preview = excluded.request_preview, \
             response_preview = excluded.response_preview",
        )
        .bind(&t.trace_id)
        .bind(t.experiment_id)
        .bind(t.client_request_id.as_deref())
        .bind(t.request_time)
        .bind(t.execution_duration)
        .bind(&t.state)
        .bind(t.request_preview.as_deref())
        .bind(t.response_preview.as_deref())
        .execute(&mut *tx)
        .await?;
        for (table, items) in [("trace_metadata", &t.metadata), ("trace_tags", &t.tags)] {
            for kv in items {
                let mut sql = Sql::new(self.dialect, &format!("INSERT INTO {table} (trace_id, key, value) VALUES ("));
                sql.bind(&t.trace_id).push(", ").bind(&kv.key).push(", ").bind(&kv.value);
                sql.push(") ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value");
                sql.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_trace(&self, trace_id: &str) -> Result<Option<TraceInfo>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM traces e WHERE e.trace_id = "));
        sql.bind(trace_id);
        let row: Option<Row> = sql.fetch_optional(&self.reader).await?;
        match row {
            Some(row) => Ok(self.hydrate_traces(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    pub async fn get_traces(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM traces e WHERE e.trace_id IN "));
        sql.bind_list(trace_ids);
        let rows: Vec<Row> = sql.fetch_all(&self.reader).await?;
        self.hydrate_traces(rows).await
    }

    pub async fn search_traces(&self, experiment_ids: &[i64], search: &Search) -> Result<Page<TraceInfo>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM traces e"));
        let mut order = order_terms(&TRACE_SQL, &search.order_by, &mut sql)?;
        sql.push(" WHERE e.experiment_id IN ").bind_list(experiment_ids);
        push_clauses(&mut sql, &TRACE_SQL, &search.clauses, self.dialect)?;
        order.push("e.request_time DESC".into());
        order.push("e.trace_id ASC".into());
        sql.push(" ORDER BY ").push(&order.join(", "));
        sql.limit_offset(search.limit.saturating_add(1), search.offset);
        let mut rows: Vec<Row> = sql.fetch_all(&self.reader).await?;
        let next_offset = page_rest(&mut rows, search);
        Ok(Page { items: self.hydrate_traces(rows).await?, next_offset })
    }

    async fn hydrate_traces(&self, rows: Vec<Row>) -> Result<Vec<TraceInfo>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut metadata: HashMap<String, Vec<Tag>> = HashMap::new();
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        for (table, target) in [("trace_metadata", &mut metadata), ("trace_tags", &mut tags)] {
            let mut sql =
                Sql::new(self.dialect, &format!("SELECT trace_id, key, value FROM {table} WHERE trace_id IN "));
            sql.bind_list(&ids).push(" ORDER BY key");
            for (id, key, value) in sql.fetch_all::<(String, String, String), _>(&self.reader).await? {
                target.entry(id).or_default().push(Tag { key, value });
            }
        }
        Ok(rows
            .into_iter()
            .map(|r| TraceInfo {
                metadata: metadata.remove(&r.0).unwrap_or_default(),
                tags: tags.remove(&r.0).unwrap_or_default(),
                trace_id: r.0,
                experiment_id: r.1,
                client_request_id: r.2,
                request_time: r.3,
                execution_duration: r.4,
                state: r.5,
                request_preview: r.6,
                response_preview: r.7,
            })
            .collect())
    }

    pub async fn set_trace_tag(&self, trace_id: &str, tag: &Tag) -> Result<()> {
        sqlx::query(
            "INSERT INTO trace_tags (trace_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(trace_id)
        .bind(&tag.key)
        .bind(&tag.value)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM trace_tags WHERE trace_id = $1 AND key = $2")
            .bind(trace_id)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Deletes the listed traces of an experiment, or its oldest ones up to a time and count.
    /// Returns the ids deleted so the caller can remove their artifacts.
    pub async fn delete_traces(
        &self,
        experiment_id: i64,
        trace_ids: &[String],
        max_timestamp_ms: Option<i64>,
        max_traces: Option<i64>,
    ) -> Result<Vec<String>> {
        let mut sql = Sql::new(self.dialect, "SELECT trace_id FROM traces WHERE experiment_id = ");
        sql.bind(experiment_id);
        if !trace_ids.is_empty() {
            sql.push(" AND trace_id IN ").bind_list(trace_ids);
        }
        if let Some(ts) = max_timestamp_ms {
            sql.push(" AND request_time <= ").bind(ts);
        }
        sql.push(" ORDER BY request_time ASC");
        if let Some(n) = max_traces {
            sql.limit(n);
        }
        let ids: Vec<String> = sql.fetch_all::<(String,), _>(&self.reader).await?.into_iter().map(|r| r.0).collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        let mut tx = self.writer.begin().await?;
        for table in ["traces", "trace_tags", "trace_metadata"] {
            for chunk in ids.chunks(1000) {
                let mut sql = Sql::new(self.dialect, &format!("DELETE FROM {table} WHERE trace_id IN "));
                sql.bind_list(chunk);
                sql.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ids)
    }
}
