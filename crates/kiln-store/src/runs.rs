use std::collections::HashMap;

use sqlx::{Any, Transaction};

use crate::compile::{EntitySql, order_terms, push_clauses, push_filter_joins};
use crate::experiments::lifecycle_condition;
use crate::model::*;
use crate::query::Search;
use crate::sql::{RowReader, Rows, Sql, json_row, json_rows_agg};
use crate::{Dialect, Result, Store, StoreError, now_ms, unique_as_exists_direct};

pub(crate) const RUN_SQL: EntitySql = EntitySql {
    id: "e.run_key",
    attributes: &[
        ("run_id", "e.run_id", false),
        ("run_name", "e.run_name", false),
        ("status", "e.status", false),
        ("user_id", "e.user_id", false),
        ("artifact_uri", "e.artifact_uri", false),
        ("lifecycle_stage", "e.lifecycle_stage", false),
        ("start_time", "e.start_time", true),
        ("end_time", "e.end_time", true),
    ],
    tags: Some(("tags", "run_key")),
    params: Some(("params", "run_key")),
    metrics: Some(("latest_metrics", "run_key")),
    metadata: None,
    datasets: true,
    side_extra: "",
};

const RUN_COLUMNS: &str = "e.run_id, e.experiment_id, e.run_name, e.user_id, e.status, e.start_time, \
                           e.end_time, e.artifact_uri, e.lifecycle_stage";

/// The run columns of a page (`c0…c8`) for `read_runs`.
const RUN_PAGE_COLUMNS: &str = "e.run_id AS c0, e.experiment_id AS c1, e.run_name AS c2, e.user_id AS c3, \
     e.status AS c4, e.start_time AS c5, e.end_time AS c6, e.artifact_uri AS c7, e.lifecycle_stage AS c8";

/// The tag that mirrors a run's name; MLflow keeps the two in step.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// Rows per multi-row INSERT: well under SQLite's and PostgreSQL's bind limits.
const INSERT_CHUNK: usize = 500;

type RunInfoRow = (String, i64, String, String, String, Option<i64>, Option<i64>, String, String);

fn run_info_from_row(row: RunInfoRow) -> RunInfo {
    let (run_id, experiment_id, run_name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) = row;
    RunInfo { run_id, experiment_id, run_name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage }
}

type MetricRow = (String, String, Option<f64>, i64, i64, i64, Option<String>, Option<String>, Option<String>);

fn metric_from_row(row: MetricRow) -> (String, Metric) {
    let (run_id, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest) = row;
    let value = if is_nan != 0 { f64::NAN } else { value.unwrap_or(f64::NAN) };
    (run_id, Metric { key, value, timestamp, step, model_id, dataset_name, dataset_digest })
}

/// The value as stored: NaN is NULL plus a flag, infinities are clamped as MLflow's SQL store
/// does (JSON cannot carry them).
fn stored_value(v: f64) -> (Option<f64>, i64) {
    if v.is_nan() {
        (None, 1)
    } else if v.is_infinite() {
        (Some(if v > 0.0 { f64::MAX } else { f64::MIN }), 0)
    } else {
        (Some(v), 0)
    }
}

/// The bits stored for a value (`stored_value`'s output; NaN as the canonical NaN).
fn value_bits(stored: Option<f64>) -> i64 {
    stored.unwrap_or(f64::NAN).to_bits() as i64
}

/// MLflow's "latest" order: larger step, then larger timestamp, then larger value (NaN lowest).
fn metric_rank(m: &Metric) -> (i64, i64, f64) {
    (m.step, m.timestamp, if m.value.is_nan() { f64::NEG_INFINITY } else { m.value })
}

fn newer(a: &Metric, b: &Metric) -> bool {
    let (ra, rb) = (metric_rank(a), metric_rank(b));
    (ra.0, ra.1) > (rb.0, rb.1) || ((ra.0, ra.1) == (rb.0, rb.1) && ra.2 > rb.2)
}

impl Store {
    pub async fn create_run(&self, info: &RunInfo, tags: &[Tag]) -> Result<()> {
        let d = self.dialect;
        let next_key = Sql::new(d, "UPDATE kiln_counters SET value = value + 1 WHERE name = 'run' RETURNING value");
        // The name is in the row already; the tags need not set it again.
        if let Some(direct) = &self.direct {
            return direct
                .write(&self.writer, |tx| {
                    let run_key: i64 =
                        next_key.first_direct(tx, |r| r.get(0))?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                    insert_run(d, info, run_key)
                        .execute_direct(tx)
                        .map_err(unique_as_exists_direct(|| info.run_id.clone()))?;
                    for sql in tag_writes(d, run_key, tags, false) {
                        sql.execute_direct(tx)?;
                    }
                    Ok(())
                })
                .await;
        }
        let mut tx = self.writer.begin().await?;
        let (run_key,): (i64,) = next_key.fetch_one(&mut *tx).await?;
        insert_run(d, info, run_key)
            .execute(&mut *tx)
            .await
            .map_err(crate::unique_as_exists(|| info.run_id.clone()))?;
        upsert_tags(&mut tx, d, run_key, tags, false).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_run_info(&self, run_id: &str) -> Result<Option<RunInfo>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {RUN_COLUMNS} FROM runs e WHERE e.run_id = "));
        sql.bind(run_id);
        Ok(sql.fetch_optional::<RunInfoRow, _>(&self.reader).await?.map(run_info_from_row))
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Option<Run>> {
        let mut selection = Sql::new(self.dialect, " FROM runs e WHERE e.run_id = ");
        selection.bind(run_id);
        Ok(self.read_runs(selection, "e.run_id", false).await?.pop())
    }

    /// Changes the fields given; a new name also updates the `mlflow.runName` tag.
    pub async fn update_run(
        &self,
        run_id: &str,
        status: Option<&str>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let mut sql = Sql::new(self.dialect, "UPDATE runs SET run_id = run_id");
        if let Some(s) = status {
            sql.push(", status = ").bind(s);
        }
        if let Some(t) = end_time {
            sql.push(", end_time = ").bind(t);
        }
        if let Some(n) = run_name {
            sql.push(", run_name = ").bind(n);
        }
        sql.push(" WHERE run_id = ").bind(run_id);
        if sql.execute(&mut *tx).await? == 0 {
            return Err(StoreError::NotFound(run_id.to_string()));
        }
        if let Some(n) = run_name {
            let run_key = run_key(&mut tx, run_id).await?;
            upsert_tags(&mut tx, self.dialect, run_key, &[Tag::new(RUN_NAME_TAG, n)], false).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_run_lifecycle(&self, run_id: &str, deleted: bool) -> Result<()> {
        let (stage, time) = if deleted { (DELETED, Some(now_ms())) } else { (ACTIVE, None) };
        let n = sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_id = $3")
            .bind(stage)
            .bind(time)
            .bind(run_id)
            .execute(&self.writer)
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(run_id.to_string()));
        }
        Ok(())
    }

    /// Writes a validated batch atomically: params must be new or identical (otherwise nothing
    /// is written and the first conflict comes back), tags upsert, metrics append.
    /// Writes a batch to an active run, all or nothing. The run's state is checked inside the
    /// write transaction, so a run deleted meanwhile takes nothing.
    pub async fn log_batch(&self, run_id: &str, batch: &RunBatch) -> Result<Option<BatchRefused>> {
        let d = self.dialect;
        let mut state = Sql::new(d, "SELECT run_key, lifecycle_stage FROM runs WHERE run_id = ");
        state.bind(run_id);
        let not_found = || StoreError::NotFound(run_id.to_string());
        if let Some(direct) = &self.direct {
            return direct
                .write(&self.writer, |tx| {
                    let row: Option<(i64, String)> = state.first_direct(tx, |r| Ok((r.get(0)?, r.get(1)?)))?;
                    let (run_key, stage) = row.ok_or_else(not_found)?;
                    if stage != ACTIVE {
                        return Ok(Some(BatchRefused::RunNotActive(stage)));
                    }
                    if !batch.params.is_empty() {
                        let existing = existing_params(d, run_key, &batch.params)
                            .map_direct(tx, |r| Ok((r.get(0)?, r.get(1)?)))?
                            .into_iter()
                            .collect();
                        if let Some(conflict) = param_conflict(&existing, &batch.params) {
                            return Ok(Some(conflict));
                        }
                    }
                    for sql in batch_writes(d, run_key, batch) {
                        sql.execute_direct(tx)?;
                    }
                    Ok(None)
                })
                .await;
        }
        let mut tx = self.writer.begin().await?;
        let row: Option<(i64, String)> = state.fetch_optional(&mut *tx).await?;
        let (run_key, stage) = row.ok_or_else(not_found)?;
        if stage != ACTIVE {
            return Ok(Some(BatchRefused::RunNotActive(stage)));
        }
        if !batch.params.is_empty() {
            let existing = existing_params(d, run_key, &batch.params)
                .fetch_all::<(String, String), _>(&mut *tx)
                .await?
                .into_iter()
                .collect();
            if let Some(conflict) = param_conflict(&existing, &batch.params) {
                return Ok(Some(conflict));
            }
        }
        for sql in batch_writes(d, run_key, batch) {
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Returns whether the tag existed.
    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<bool> {
        let n =
            sqlx::query("DELETE FROM tags WHERE run_key = (SELECT run_key FROM runs WHERE run_id = $1) AND key = $2")
                .bind(run_id)
                .bind(key)
                .execute(&self.writer)
                .await?;
        Ok(n.rows_affected() > 0)
    }

    pub async fn log_inputs(&self, run_id: &str, datasets: &[DatasetInput], models: &[String]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let run_key = run_key(&mut tx, run_id).await?;
        for input in datasets {
            let context = input.tags.iter().find(|t| t.key == "mlflow.data.context").map(|t| t.value.clone());
            let tags_json = serde_json::to_string(&input.tags).unwrap_or_else(|_| "[]".into());
            let d = &input.dataset;
            sqlx::query(
                "INSERT INTO run_dataset_inputs (run_key, name, digest, source_type, source, schema, profile, \
                 context, tags_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(run_key)
            .bind(&d.name)
            .bind(&d.digest)
            .bind(&d.source_type)
            .bind(&d.source)
            .bind(d.schema.as_deref())
            .bind(d.profile.as_deref())
            .bind(context)
            .bind(tags_json)
            .execute(&mut *tx)
            .await?;
        }
        for model_id in models {
            sqlx::query(
                "INSERT INTO run_model_io (run_key, direction, model_id, step) VALUES ($1, 'input', $2, 0) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(run_key)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn log_outputs(&self, run_id: &str, models: &[ModelOutput]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let run_key = run_key(&mut tx, run_id).await?;
        for m in models {
            sqlx::query(
                "INSERT INTO run_model_io (run_key, direction, model_id, step) VALUES ($1, 'output', $2, $3) \
                 ON CONFLICT (run_key, direction, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_key)
            .bind(&m.model_id)
            .bind(m.step)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs of the given experiments matching the search, fully hydrated.
    pub async fn search_runs(&self, experiment_ids: &[i64], search: &Search) -> Result<Page<Run>> {
        if experiment_ids.is_empty() {
            return Ok(Page { items: Vec::new(), next_offset: None });
        }
        // Built from FROM onwards first: the select list repeats the final ORDER BY terms.
        let mut sql = Sql::new(self.dialect, " FROM runs e");
        let rest = push_filter_joins(&mut sql, &RUN_SQL, &search.clauses, self.dialect)?;
        let mut order = order_terms(&RUN_SQL, &search.order_by, &mut sql)?;
        sql.push(" WHERE e.experiment_id IN ").bind_list(experiment_ids);
        sql.push(&lifecycle_condition("e.lifecycle_stage", search.view));
        push_clauses(&mut sql, &RUN_SQL, rest, self.dialect)?;
        order.push("(e.start_time IS NULL) ASC, e.start_time DESC".into());
        order.push("e.run_id ASC".into());
        let order = order.join(", ");
        sql.push(" ORDER BY ").push(&order);
        sql.limit_offset(search.limit.saturating_add(1), search.offset);
        // More than a page or so of runs is worth moving the worker's other tasks aside for.
        let mut runs = self.read_runs(sql, &order, search.limit > 1000).await?;
        let next_offset = if runs.len() as i64 > search.limit {
            runs.truncate(search.limit as usize);
            Some(search.offset.saturating_add(search.limit))
        } else {
            None
        };
        Ok(Page { items: runs, next_offset })
    }

    /// The runs a selection (`FROM runs e …`, ordered by `order`) picks, with all their side
    /// rows: directly, see [`read_runs_direct`]; through sqlx, in one statement where the
    /// selection becomes a materialized CTE and the runs and their params, tags, latest
    /// metrics, inputs and outputs come back as one packed text, each row tagged with its kind.
    async fn read_runs(&self, mut sql: Sql, order: &str, large: bool) -> Result<Vec<Run>> {
        if let Some(direct) = &self.direct {
            // Statements are cheap here: the page itself, then each side table's rows for the
            // page's runs whose cached side rows are not current.
            sql.text.insert_str(0, &format!("SELECT {RUN_PAGE_COLUMNS}, e.run_key, e.data_version"));
            let read = |conn: &rusqlite::Connection| read_runs_direct(conn, &sql, &direct.run_sides);
            return if large { direct.read_large(read) } else { direct.read(read) };
        }
        let d = self.dialect;
        let kv = "run_key, key, value";
        // Each side table: its kind tag, its name and its columns.
        let sides = [
            ("'p'", "params", kv),
            ("'t'", "tags", kv),
            (
                "'m'",
                "latest_metrics",
                "run_key, key, step, timestamp, value_bits, model_id, dataset_name, dataset_digest",
            ),
            ("'d'", "run_dataset_inputs", "run_key, name, digest, source_type, source, schema, profile, tags_json"),
            ("'o'", "run_model_io", "run_key, direction, model_id, step"),
        ];
        // The row number carries the order through the packing.
        sql.text.insert_str(
            0,
            &format!(
                "WITH page AS MATERIALIZED (SELECT {RUN_PAGE_COLUMNS}, ROW_NUMBER() OVER (ORDER BY {order}) AS c9, \
                 e.run_key AS c10"
            ),
        );
        let page = ["'r'", "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10"];
        let mut union = format!("SELECT {} AS x FROM page", json_row(d, &page));
        for (kind, table, columns) in sides {
            let row = json_row(d, &[kind, columns]);
            union.push_str(&format!(" UNION ALL SELECT {row} FROM {table} WHERE run_key IN (SELECT c10 FROM page)"));
        }
        sql.push(&format!(") SELECT {} FROM ({union}) u", json_rows_agg(d, "x")));
        let packed = sql.fetch_text(&self.reader).await?;
        unpack_runs(Rows::parse(&packed)?)
    }

    /// One page of a metric's history in (step, timestamp, value) order, starting after
    /// `after`. Pages by position, not offset, so every page costs the same.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        after: Option<MetricPosition>,
        limit: Option<i64>,
    ) -> Result<HistoryPage> {
        let mut sql = Sql::new(
            self.dialect,
            "SELECT step, timestamp, value_bits, model_id, dataset_name, dataset_digest FROM metrics \
             WHERE run_key = (SELECT run_key FROM runs WHERE run_id = ",
        );
        sql.bind(run_id).push(") AND key = ").bind(key);
        if let Some(p) = after {
            sql.push(" AND (step, timestamp, value_bits) > (").bind(p.step).push(", ").bind(p.timestamp);
            sql.push(", ").bind(p.value_bits).push(")");
        }
        // The order of the primary key, so the database walks the index and stops at the limit.
        sql.push(" ORDER BY step, timestamp, value_bits");
        if let Some(limit) = limit {
            sql.limit(limit.saturating_add(1));
        }
        let point = |position: MetricPosition, model_id, dataset_name, dataset_digest| {
            let metric = Metric {
                key: key.to_string(),
                step: position.step,
                timestamp: position.timestamp,
                value: f64::from_bits(position.value_bits as u64),
                model_id,
                dataset_name,
                dataset_digest,
            };
            (position, metric)
        };
        let mut points = match &self.direct {
            // The largest reads there are: rows straight into points.
            Some(direct) => {
                let read = |conn: &rusqlite::Connection| {
                    Ok(sql.map_direct(conn, |r| {
                        let position = MetricPosition { step: r.get(0)?, timestamp: r.get(1)?, value_bits: r.get(2)? };
                        Ok(point(position, r.get(3)?, r.get(4)?, r.get(5)?))
                    })?)
                };
                // A history page can be tens of thousands of points.
                if limit.is_none_or(|l| l > 1000) { direct.read_large(read)? } else { direct.read(read)? }
            }
            None => {
                let fields =
                    ["t.step", "t.timestamp", "t.value_bits", "t.model_id", "t.dataset_name", "t.dataset_digest"];
                let packed = sql.fetch_json_rows(&self.reader, &json_row(self.dialect, &fields)).await?;
                let rows = Rows::parse(&packed)?;
                let mut points = Vec::with_capacity(rows.len());
                for mut r in rows {
                    let position = MetricPosition { step: r.int()?, timestamp: r.int()?, value_bits: r.int()? };
                    points.push(point(position, r.opt_text()?, r.opt_text()?, r.opt_text()?));
                }
                points
            }
        };
        // The aggregate keeps no order; the rows are nearly always in order already, which
        // this sort detects in one pass.
        points.sort_by_key(|(p, _)| *p);
        let next = match limit {
            Some(limit) if points.len() as i64 > limit => {
                points.truncate(limit as usize);
                points.last().map(|(p, _)| *p)
            }
            _ => None,
        };
        Ok(HistoryPage { items: points.into_iter().map(|(_, m)| m).collect(), next })
    }

    /// Points of `key` for several runs at a sample of at most `max_results` steps within
    /// `[start_step, end_step]`, always keeping the first and last step.
    pub async fn metric_history_sampled(
        &self,
        run_ids: &[String],
        key: &str,
        steps: Option<(i64, i64)>,
        max_results: usize,
    ) -> Result<Vec<RunMetric>> {
        if max_results == 0 {
            return Ok(Vec::new());
        }
        // The steps are sampled inside the database: a million-point history sends back
        // `max_results` steps, not a million. Step number `rn` (0-based, of `total` distinct
        // steps) is kept when it is `floor(i * (total - 1) / (max - 1))` for some i < max,
        // which is what `sample_steps` picks: the smallest candidate i is
        // `ceil(rn * (max - 1) / (total - 1))`, and rn is kept if that i lands on it.
        let m = max_results as i64;
        let mut sql = Sql::new(
            self.dialect,
            "WITH s AS (SELECT DISTINCT m.step AS step FROM metrics m JOIN runs r ON r.run_key = m.run_key \
             WHERE r.run_id IN ",
        );
        sql.bind_list(run_ids).push(" AND m.key = ").bind(key);
        if let Some((start, end)) = steps {
            sql.push(" AND m.step >= ").bind(start).push(" AND m.step <= ").bind(end);
        }
        sql.push(
            "), n AS (SELECT step, ROW_NUMBER() OVER (ORDER BY step) - 1 AS rn, COUNT(*) OVER () AS total FROM s) \
             SELECT step FROM n WHERE total <= ",
        );
        sql.bind(m);
        if m == 1 {
            sql.push(" OR rn = total - 1");
        } else {
            sql.push(" OR ((rn * ").bind(m - 1).push(" + total - 2) / (total - 1)) * (total - 1) / ").bind(m - 1);
            sql.push(" = rn");
        }
        sql.push(" ORDER BY step");
        let sampled: Vec<i64> = sql.fetch_all::<(i64,), _>(&self.reader).await?.into_iter().map(|s| s.0).collect();
        let mut out = Vec::new();
        for chunk in sampled.chunks(2000) {
            let mut sql = Sql::new(
                self.dialect,
                "SELECT r.run_id, m.key, m.value, m.is_nan, m.timestamp, m.step, m.model_id, m.dataset_name, \
                 m.dataset_digest FROM metrics m JOIN runs r ON r.run_key = m.run_key WHERE r.run_id IN ",
            );
            sql.bind_list(run_ids).push(" AND m.key = ").bind(key).push(" AND m.step IN ").bind_list(chunk);
            sql.push(" ORDER BY r.run_id, m.step, m.timestamp");
            for row in sql.fetch_all::<MetricRow, _>(&self.reader).await? {
                let (run_id, metric) = metric_from_row(row);
                out.push(RunMetric { run_id, metric });
            }
        }
        out.sort_by(|a, b| {
            (&a.run_id, a.metric.step, a.metric.timestamp).cmp(&(&b.run_id, b.metric.step, b.metric.timestamp))
        });
        Ok(out)
    }
}

/// A run's side rows: everything of a run but its info.
#[derive(Default)]
pub(crate) struct RunSides {
    metrics: Vec<Metric>,
    params: Vec<Tag>,
    tags: Vec<Tag>,
    dataset_inputs: Vec<DatasetInput>,
    model_inputs: Vec<String>,
    model_outputs: Vec<ModelOutput>,
}

impl RunSides {
    fn into_run(self, info: RunInfo) -> Run {
        let RunSides { metrics, params, tags, dataset_inputs, model_inputs, model_outputs } = self;
        Run { info, metrics, params, tags, dataset_inputs, model_inputs, model_outputs }
    }

    fn to_run(&self, info: RunInfo) -> Run {
        Run {
            info,
            metrics: self.metrics.clone(),
            params: self.params.clone(),
            tags: self.tags.clone(),
            dataset_inputs: self.dataset_inputs.clone(),
            model_inputs: self.model_inputs.clone(),
            model_outputs: self.model_outputs.clone(),
        }
    }
}

/// Runs' side rows as last read, by run key, each with the run's `data_version` at the time.
///
/// The version is bumped by triggers in the same transaction as any change to a run's side
/// rows (migration 6), and a read compares it with the version in its own snapshot: a cached
/// copy is used only when it is exactly what that snapshot holds, however the write was made.
/// Run keys are never reused. Why: a search page of 100 runs with a few dozen values each
/// spent half its time reading and building side rows that rarely change between searches.
#[derive(Default)]
pub(crate) struct RunSidesCache(std::sync::Mutex<HashMap<i64, (i64, std::sync::Arc<RunSides>)>>);

/// Runs whose side rows are kept (a few KB each, so tens of MB at most); past that the cache
/// starts over, and a read of more runs than that keeps only as many.
const RUN_SIDES_CACHED: usize = 10_000;

impl RunSidesCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, std::sync::Arc<RunSides>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The runs a page statement (`SELECT {RUN_PAGE_COLUMNS}, e.run_key, e.data_version FROM runs
/// e …`) selects, in its order, with their side rows: from `cache` where its copy is current,
/// otherwise read (each side table once for all the missing runs) and cached.
fn read_runs_direct(conn: &rusqlite::Connection, page: &Sql, cache: &RunSidesCache) -> Result<Vec<Run>> {
    let mut heads = page.map_direct(conn, |r| {
        let info = RunInfo {
            run_id: r.get(0)?,
            experiment_id: r.get(1)?,
            run_name: r.get(2)?,
            user_id: r.get(3)?,
            status: r.get(4)?,
            start_time: r.get(5)?,
            end_time: r.get(6)?,
            artifact_uri: r.get(7)?,
            lifecycle_stage: r.get(8)?,
        };
        Ok((info, r.get::<_, i64>(9)?, r.get::<_, i64>(10)?, None))
    })?;
    let mut missing: Vec<i64> = Vec::new();
    {
        let cached = cache.lock();
        for (_, key, version, sides) in &mut heads {
            match cached.get(key) {
                Some((v, s)) if v == version => *sides = Some(s.clone()),
                _ => missing.push(*key),
            }
        }
    }
    if !missing.is_empty() {
        let mut read = read_run_sides(conn, &missing)?;
        let mut cached = cache.lock();
        if cached.len() + missing.len() > RUN_SIDES_CACHED {
            cached.clear();
        }
        for (_, key, version, sides) in &mut heads {
            if sides.is_none() {
                let s = std::sync::Arc::new(read.remove(key).unwrap_or_default());
                if cached.len() < RUN_SIDES_CACHED {
                    cached.insert(*key, (*version, s.clone()));
                }
                *sides = Some(s);
            }
        }
    }
    Ok(heads.into_iter().map(|(info, _, _, sides)| sides.unwrap_or_default().to_run(info)).collect())
}

/// The side rows of the runs with these keys, each side table read once for all of them.
fn read_run_sides(conn: &rusqlite::Connection, keys: &[i64]) -> Result<HashMap<i64, RunSides>> {
    let mut out: HashMap<i64, RunSides> = keys.iter().map(|k| (*k, RunSides::default())).collect();
    // A row of a run not asked for cannot come back (the keys select them); it is skipped
    // rather than trusted.
    let mut side = |columns: &str,
                    table: &str,
                    add: &mut dyn FnMut(&mut RunSides, &rusqlite::Row<'_>) -> rusqlite::Result<()>| {
        let mut sql = Sql::new(Dialect::Sqlite, &format!("SELECT run_key, {columns} FROM {table} WHERE run_key IN "));
        sql.bind_list(keys);
        sql.each_direct(conn, |r| match out.get_mut(&r.get::<_, i64>(0)?) {
            Some(sides) => add(sides, r),
            None => Ok(()),
        })
    };
    side("key, value", "params", &mut |s, r| {
        s.params.push(Tag { key: r.get(1)?, value: r.get(2)? });
        Ok(())
    })?;
    side("key, value", "tags", &mut |s, r| {
        s.tags.push(Tag { key: r.get(1)?, value: r.get(2)? });
        Ok(())
    })?;
    side("key, step, timestamp, value_bits, model_id, dataset_name, dataset_digest", "latest_metrics", &mut |s, r| {
        s.metrics.push(Metric {
            key: r.get(1)?,
            step: r.get(2)?,
            timestamp: r.get(3)?,
            value: f64::from_bits(r.get::<_, i64>(4)? as u64),
            model_id: r.get(5)?,
            dataset_name: r.get(6)?,
            dataset_digest: r.get(7)?,
        });
        Ok(())
    })?;
    side("name, digest, source_type, source, schema, profile, tags_json", "run_dataset_inputs", &mut |s, r| {
        let tags_json: Option<String> = r.get(7)?;
        s.dataset_inputs.push(DatasetInput {
            dataset: Dataset {
                name: r.get(1)?,
                digest: r.get(2)?,
                source_type: r.get(3)?,
                source: r.get(4)?,
                schema: r.get(5)?,
                profile: r.get(6)?,
            },
            tags: tags_json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
        });
        Ok(())
    })?;
    side("direction, model_id, step", "run_model_io", &mut |s, r| {
        let model_id: String = r.get(2)?;
        if r.get_ref(1)?.as_str()? == "input" {
            s.model_inputs.push(model_id);
        } else {
            s.model_outputs.push(ModelOutput { model_id, step: r.get(3)? });
        }
        Ok(())
    })?;
    for sides in out.values_mut() {
        sort_side_lists(sides);
    }
    Ok(out)
}

/// Each list of a run in the order reads give it (key order), whatever order its rows came in.
fn sort_side_lists(sides: &mut RunSides) {
    sides.params.sort_by(|a, b| a.key.cmp(&b.key));
    sides.tags.sort_by(|a, b| a.key.cmp(&b.key));
    sides.metrics.sort_by(|a, b| a.key.cmp(&b.key));
    sides
        .dataset_inputs
        .sort_by(|a, b| (&a.dataset.name, &a.dataset.digest).cmp(&(&b.dataset.name, &b.dataset.digest)));
    sides.model_inputs.sort();
    sides.model_outputs.sort_by(|a, b| a.model_id.cmp(&b.model_id));
}

/// Splits the packed answer of `read_runs` into runs in their order.
fn unpack_runs(rows: Rows<'_>) -> Result<Vec<Run>> {
    let mut runs: Vec<(i64, i64, RunInfo)> = Vec::new();
    let mut params: HashMap<i64, Vec<Tag>> = HashMap::new();
    let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
    let mut metrics: HashMap<i64, Vec<Metric>> = HashMap::new();
    let mut datasets: HashMap<i64, Vec<DatasetInput>> = HashMap::new();
    let mut model_inputs: HashMap<i64, Vec<String>> = HashMap::new();
    let mut model_outputs: HashMap<i64, Vec<ModelOutput>> = HashMap::new();
    for mut r in rows {
        let kind = r.text_ref()?;
        match kind.as_ref() {
            "r" => {
                let (ord, key, info) = run_info_from_page_row(&mut r)?;
                runs.push((ord, key, info));
            }
            kind @ ("p" | "t") => {
                let run_key = r.int()?;
                let tag = Tag { key: r.text()?, value: r.text()? };
                let target = if kind == "p" { &mut params } else { &mut tags };
                target.entry(run_key).or_default().push(tag);
            }
            "m" => {
                let run_key = r.int()?;
                let key = r.text()?;
                let (step, timestamp) = (r.int()?, r.int()?);
                let value = f64::from_bits(r.int()? as u64);
                let (model_id, dataset_name, dataset_digest) = (r.opt_text()?, r.opt_text()?, r.opt_text()?);
                let m = Metric { key, value, timestamp, step, model_id, dataset_name, dataset_digest };
                metrics.entry(run_key).or_default().push(m);
            }
            "d" => {
                let run_key = r.int()?;
                let (name, digest, source_type, source) = (r.text()?, r.text()?, r.text()?, r.text()?);
                let (schema, profile, tags_json) = (r.opt_text()?, r.opt_text()?, r.opt_text()?);
                datasets.entry(run_key).or_default().push(DatasetInput {
                    dataset: Dataset { name, digest, source_type, source, schema, profile },
                    tags: tags_json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
                });
            }
            "o" => {
                let run_key = r.int()?;
                let direction = r.text_ref()?;
                let model_id = r.text()?;
                let step = r.int()?;
                if direction == "input" {
                    model_inputs.entry(run_key).or_default().push(model_id);
                } else {
                    model_outputs.entry(run_key).or_default().push(ModelOutput { model_id, step });
                }
            }
            other => {
                return Err(StoreError::Database(sqlx::Error::Protocol(format!("unknown packed row kind {other:?}"))));
            }
        }
    }
    runs.sort_by_key(|(ord, _, _)| *ord);
    Ok(runs
        .into_iter()
        .map(|(_, key, info)| {
            // The union has no order: each list gets the order the per-table reads had.
            let mut sides = RunSides {
                params: params.remove(&key).unwrap_or_default(),
                tags: tags.remove(&key).unwrap_or_default(),
                metrics: metrics.remove(&key).unwrap_or_default(),
                dataset_inputs: datasets.remove(&key).unwrap_or_default(),
                model_inputs: model_inputs.remove(&key).unwrap_or_default(),
                model_outputs: model_outputs.remove(&key).unwrap_or_default(),
            };
            sort_side_lists(&mut sides);
            sides.into_run(info)
        })
        .collect())
}

/// A run's order, key and info from a page row (`c0…c10` after the kind).
fn run_info_from_page_row(r: &mut RowReader<'_>) -> Result<(i64, i64, RunInfo)> {
    let info = RunInfo {
        run_id: r.text()?,
        experiment_id: r.int()?,
        run_name: r.text()?,
        user_id: r.text()?,
        status: r.text()?,
        start_time: r.opt_int()?,
        end_time: r.opt_int()?,
        artifact_uri: r.text()?,
        lifecycle_stage: r.text()?,
    };
    Ok((r.int()?, r.int()?, info))
}

/// Evenly spaced steps, including the first and the last.
/// The integer key of a run, inside a write transaction.
async fn run_key(tx: &mut Transaction<'_, Any>, run_id: &str) -> Result<i64> {
    let key: Option<(i64,)> =
        sqlx::query_as("SELECT run_key FROM runs WHERE run_id = $1").bind(run_id).fetch_optional(&mut **tx).await?;
    key.map(|(k,)| k).ok_or_else(|| StoreError::NotFound(run_id.to_string()))
}

/// `INSERT INTO runs …` for a new run with its key.
fn insert_run(dialect: Dialect, info: &RunInfo, run_key: i64) -> Sql {
    let mut sql = Sql::new(
        dialect,
        "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time, end_time, artifact_uri, \
         lifecycle_stage, run_key) VALUES (",
    );
    sql.bind(&info.run_id).push(", ").bind(info.experiment_id).push(", ").bind(&info.run_name).push(", ");
    sql.bind(&info.user_id).push(", ").bind(&info.status).push(", ").bind(info.start_time).push(", ");
    sql.bind(info.end_time).push(", ").bind(&info.artifact_uri).push(", ").bind(&info.lifecycle_stage).push(", ");
    sql.bind(run_key).push(")");
    sql
}

/// The stored values of the batch's param keys.
fn existing_params(dialect: Dialect, run_key: i64, params: &[Tag]) -> Sql {
    let keys: Vec<&str> = params.iter().map(|p| p.key.as_str()).collect();
    let mut sql = Sql::new(dialect, "SELECT key, value FROM params WHERE run_key = ");
    sql.bind(run_key).push(" AND key IN ").bind_list(&keys);
    sql
}

/// The first param whose logged value differs from the stored one: params are write-once.
fn param_conflict(existing: &HashMap<String, String>, params: &[Tag]) -> Option<BatchRefused> {
    params.iter().find_map(|p| {
        existing.get(&p.key).filter(|old| **old != p.value).map(|old| {
            BatchRefused::ParamChanged(ParamConflict {
                key: p.key.clone(),
                old_value: old.clone(),
                new_value: p.value.clone(),
            })
        })
    })
}

/// Every statement that writes a checked batch: new params (identical ones are no-ops), tags
/// (an `mlflow.runName` tag renames the run), metric points and the latest values.
fn batch_writes(dialect: Dialect, run_key: i64, batch: &RunBatch) -> Vec<Sql> {
    let mut out = Vec::new();
    for chunk in batch.params.chunks(INSERT_CHUNK) {
        let mut sql = key_value_rows(dialect, "params", run_key, chunk.iter());
        sql.push(" ON CONFLICT DO NOTHING");
        out.push(sql);
    }
    out.extend(tag_writes(dialect, run_key, &batch.tags, true));
    out.extend(metric_writes(dialect, run_key, &batch.metrics));
    out
}

/// Sets tags; with `sync_name`, an `mlflow.runName` tag also renames the run.
async fn upsert_tags(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    run_key: i64,
    tags: &[Tag],
    sync_name: bool,
) -> Result<()> {
    for sql in tag_writes(dialect, run_key, tags, sync_name) {
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `INSERT INTO <table> (run_key, key, value) VALUES …` for one run's params or tags.
fn key_value_rows<'t>(dialect: Dialect, table: &str, run_key: i64, rows: impl Iterator<Item = &'t Tag>) -> Sql {
    let mut sql = Sql::new(dialect, &format!("INSERT INTO {table} (run_key, key, value) VALUES "));
    for (i, t) in rows.enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(run_key).push(", ").bind(&t.key).push(", ").bind(&t.value).push(")");
    }
    sql
}

/// The statements of [`upsert_tags`].
fn tag_writes(dialect: Dialect, run_key: i64, tags: &[Tag], sync_name: bool) -> Vec<Sql> {
    let mut out = Vec::new();
    for chunk in tags.chunks(INSERT_CHUNK) {
        // The last value for a key wins, and PostgreSQL refuses a key twice in one upsert.
        let mut dedup: Vec<&Tag> = Vec::with_capacity(chunk.len());
        for t in chunk {
            if let Some(existing) = dedup.iter_mut().find(|e| e.key == t.key) {
                *existing = t;
            } else {
                dedup.push(t);
            }
        }
        let mut sql = key_value_rows(dialect, "tags", run_key, dedup.iter().copied());
        sql.push(" ON CONFLICT (run_key, key) DO UPDATE SET value = excluded.value");
        out.push(sql);
        if let Some(name) = dedup.iter().rev().find(|t| sync_name && t.key == RUN_NAME_TAG) {
            let mut sql = Sql::new(dialect, "UPDATE runs SET run_name = ");
            sql.bind(&name.value).push(" WHERE run_key = ").bind(run_key);
            out.push(sql);
        }
    }
    out
}

/// `INSERT INTO <table> (…metric columns…) VALUES (…), (…)` for the points; the caller adds
/// the conflict clause.
fn metric_rows<'m>(dialect: Dialect, table: &str, run_key: i64, points: impl Iterator<Item = &'m Metric>) -> Sql {
    let mut sql = Sql::new(
        dialect,
        &format!(
            "INSERT INTO {table} (run_key, key, step, timestamp, value, value_bits, is_nan, model_id, dataset_name, \
             dataset_digest) VALUES "
        ),
    );
    for (i, m) in points.enumerate() {
        let (value, is_nan) = stored_value(m.value);
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(run_key).push(", ").bind(&m.key).push(", ").bind(m.step).push(", ").bind(m.timestamp);
        sql.push(", ");
        match value {
            Some(v) => sql.bind(v),
            None => sql.push("NULL"),
        };
        sql.push(", ").bind(value_bits(value)).push(", ").bind(is_nan).push(", ").bind(m.model_id.clone());
        sql.push(", ").bind(m.dataset_name.clone()).push(", ").bind(m.dataset_digest.clone()).push(")");
    }
    sql
}

/// Appends metric points (an identical point again is a no-op) and moves each key's latest
/// value forward where a point is newer.
fn metric_writes(dialect: Dialect, run_key: i64, metrics: &[Metric]) -> Vec<Sql> {
    let mut out = Vec::new();
    for chunk in metrics.chunks(INSERT_CHUNK) {
        let mut sql = metric_rows(dialect, "metrics", run_key, chunk.iter());
        sql.push(" ON CONFLICT DO NOTHING");
        out.push(sql);
    }
    // The newest point per key in this batch, then one conditional upsert per key.
    let mut latest: HashMap<&str, &Metric> = HashMap::new();
    for m in metrics {
        latest
            .entry(&m.key)
            .and_modify(|l| {
                if newer(m, l) {
                    *l = m
                }
            })
            .or_insert(m);
    }
    let latest: Vec<&Metric> = latest.into_values().collect();
    for chunk in latest.chunks(INSERT_CHUNK) {
        let mut sql = metric_rows(dialect, "latest_metrics", run_key, chunk.iter().copied());
        sql.push(
            " ON CONFLICT (run_key, key) DO UPDATE SET step = excluded.step, timestamp = excluded.timestamp, \
             value = excluded.value, value_bits = excluded.value_bits, is_nan = excluded.is_nan, model_id = excluded.model_id, \
             dataset_name = excluded.dataset_name, dataset_digest = excluded.dataset_digest \
             WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step AND \
             (excluded.timestamp > latest_metrics.timestamp OR (excluded.timestamp = latest_metrics.timestamp \
             AND COALESCE(excluded.value, -1.0e308) > COALESCE(latest_metrics.value, -1.0e308))))",
        );
        out.push(sql);
    }
    out
}
