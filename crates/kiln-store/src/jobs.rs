//! Jobs, their status transitions, and compute targets.
//!
//! The store knows nothing of the job state machine: statuses are strings, and every status
//! change is a compare-and-set (`set_job_status` names the statuses it may leave), so a
//! cancel racing a completion cannot both win.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row as _};

use crate::model::{ComputeTarget, JobFilter, JobRecord};
use crate::sql::Sql;
use crate::{Result, Store, StoreError, now_ms, unique_as_exists};

const COLUMNS: &str = "name, kind, display_name, description, experiment_id, compute, status, failure, spec, tags, \
                       properties, created_at, updated_at, archived, runner, parent, reuse_key, lineage";

/// A `jobs` row, read by position in `COLUMNS` order.
struct Row(JobRecord);

impl<'r> FromRow<'r, AnyRow> for Row {
    fn from_row(r: &'r AnyRow) -> sqlx::Result<Row> {
        Ok(Row(JobRecord {
            name: r.try_get(0)?,
            kind: r.try_get(1)?,
            display_name: r.try_get(2)?,
            description: r.try_get(3)?,
            experiment_id: r.try_get(4)?,
            compute: r.try_get(5)?,
            status: r.try_get(6)?,
            failure: r.try_get(7)?,
            spec: r.try_get(8)?,
            tags: r.try_get(9)?,
            properties: r.try_get(10)?,
            created_at: r.try_get(11)?,
            updated_at: r.try_get(12)?,
            archived: r.try_get::<i64, _>(13)? != 0,
            runner: r.try_get(14)?,
            parent: r.try_get(15)?,
            reuse_key: r.try_get(16)?,
            lineage: r.try_get(17)?,
            transitions: Vec::new(),
        }))
    }
}

fn record(r: Row) -> JobRecord {
    r.0
}

impl Store {
    /// Inserts a new job in its first status. Fails with `AlreadyExists` when the name is taken.
    pub async fn insert_job(&self, job: &JobRecord) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let mut sql = Sql::new(self.dialect, &format!("INSERT INTO jobs ({COLUMNS}) VALUES ("));
        sql.bind(&job.name).push(", ").bind(&job.kind).push(", ").bind(job.display_name.clone());
        sql.push(", ").bind(job.description.clone()).push(", ").bind(job.experiment_id);
        sql.push(", ").bind(&job.compute).push(", ").bind(&job.status).push(", ").bind(job.failure.clone());
        sql.push(", ").bind(&job.spec).push(", ").bind(&job.tags).push(", ").bind(&job.properties);
        sql.push(", ").bind(job.created_at).push(", ").bind(job.updated_at);
        sql.push(", ").bind(job.archived as i64).push(", ").bind(job.runner.clone());
        sql.push(", ").bind(job.parent.clone()).push(", ").bind(job.reuse_key.clone());
        sql.push(", ").bind(job.lineage.clone()).push(")");
        sql.execute(&mut *tx).await.map_err(unique_as_exists(|| format!("job '{}'", job.name)))?;
        let mut t = Sql::new(self.dialect, "INSERT INTO job_transitions (job_name, status, at) VALUES (");
        t.bind(&job.name).push(", ").bind(&job.status).push(", ").bind(job.created_at).push(")");
        t.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A job with its transitions, oldest first.
    pub async fn get_job(&self, name: &str) -> Result<Option<JobRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM jobs WHERE name = "));
        sql.bind(name);
        let Some(row) = sql.fetch_optional::<Row, _>(&self.reader).await? else {
            return Ok(None);
        };
        let mut job = record(row);
        let mut t = Sql::new(self.dialect, "SELECT status, at FROM job_transitions WHERE job_name = ");
        t.bind(name).push(" ORDER BY at, status");
        job.transitions = t.fetch_all(&self.reader).await?;
        Ok(Some(job))
    }

    /// Jobs, newest first (without their transitions).
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        let columns = if filter.without_spec { COLUMNS.replacen(" spec,", " '' AS spec,", 1) } else { COLUMNS.into() };
        let mut sql = Sql::new(self.dialect, &format!("SELECT {columns} FROM jobs WHERE 1 = 1"));
        if let Some(archived) = filter.archived {
            sql.push(" AND archived = ").bind(archived as i64);
        }
        if !filter.statuses.is_empty() {
            sql.push(" AND status IN ").bind_list(&filter.statuses);
        }
        if let Some(compute) = &filter.compute {
            sql.push(" AND compute = ").bind(compute);
        }
        if let Some(kind) = &filter.kind {
            sql.push(" AND kind = ").bind(kind);
        }
        match &filter.parent {
            Some(p) => {
                sql.push(" AND parent = ").bind(p);
            }
            None if filter.top_level_only => {
                sql.push(" AND parent IS NULL");
            }
            None => {}
        }
        if filter.oldest_first {
            sql.push(" ORDER BY created_at ASC, name ASC");
        } else {
            sql.push(" ORDER BY created_at DESC, name DESC");
        }
        if let Some(limit) = filter.limit {
            sql.limit(limit);
        }
        Ok(sql.fetch_all::<Row, _>(&self.reader).await?.into_iter().map(record).collect())
    }

    /// Moves a job to `to` if its status is one of `from`, recording the transition; `failure`
    /// is kept when given. Returns false (and changes nothing) when the job was elsewhere.
    pub async fn set_job_status(&self, name: &str, from: &[&str], to: &str, failure: Option<&str>) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut sql = Sql::new(self.dialect, "UPDATE jobs SET status = ");
        sql.bind(to).push(", updated_at = ").bind(now);
        if let Some(f) = failure {
            sql.push(", failure = ").bind(f);
        }
        sql.push(" WHERE name = ").bind(name);
        let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
        sql.push(" AND status IN ").bind_list(&from);
        if sql.execute(&mut *tx).await? == 0 {
            return Ok(false);
        }
        let mut t = Sql::new(self.dialect, "INSERT INTO job_transitions (job_name, status, at) VALUES (");
        t.bind(name).push(", ").bind(to).push(", ").bind(now);
        t.push(") ON CONFLICT (job_name, status) DO NOTHING");
        t.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The newest completed job with this reuse key, if any.
    pub async fn find_reusable_job(&self, reuse_key: &str) -> Result<Option<JobRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM jobs WHERE reuse_key = "));
        sql.bind(reuse_key).push(" AND status = ").bind("Completed").push(" ORDER BY created_at DESC LIMIT 1");
        Ok(sql.fetch_optional::<Row, _>(&self.reader).await?.map(record))
    }

    /// The newest job of a lineage (the same step of the same pipeline in an experiment) that
    /// ran rather than being reused, other than `except`.
    pub async fn latest_run_of_lineage(&self, lineage: &str, except: &str) -> Result<Option<JobRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM jobs WHERE lineage = "));
        sql.bind(lineage).push(" AND name <> ").bind(except).push(" AND reuse_key IS NOT NULL");
        sql.push(" ORDER BY created_at DESC LIMIT 1");
        Ok(sql.fetch_optional::<Row, _>(&self.reader).await?.map(record))
    }

    /// Replaces a job's stored document (a pipeline's, as its steps end).
    pub async fn set_job_spec(&self, name: &str, spec: &str) -> Result<()> {
        let mut sql = Sql::new(self.dialect, "UPDATE jobs SET spec = ");
        sql.bind(spec).push(", updated_at = ").bind(now_ms()).push(" WHERE name = ").bind(name);
        sql.execute(&self.writer).await?;
        Ok(())
    }

    /// Records where a job runs, for finding it again after a restart.
    pub async fn set_job_runner(&self, name: &str, runner: Option<&str>) -> Result<()> {
        let mut sql = Sql::new(self.dialect, "UPDATE jobs SET runner = ");
        sql.bind(runner.map(str::to_string)).push(" WHERE name = ").bind(name);
        sql.execute(&self.writer).await?;
        Ok(())
    }

    /// Updates what a user may change on a job: cosmetics, tags, properties, archived.
    pub async fn update_job_meta(&self, job: &JobRecord) -> Result<()> {
        let mut sql = Sql::new(self.dialect, "UPDATE jobs SET display_name = ");
        sql.bind(job.display_name.clone()).push(", description = ").bind(job.description.clone());
        sql.push(", tags = ").bind(&job.tags).push(", properties = ").bind(&job.properties);
        sql.push(", archived = ").bind(job.archived as i64).push(", updated_at = ").bind(now_ms());
        sql.push(" WHERE name = ").bind(&job.name);
        if sql.execute(&self.writer).await? == 0 {
            return Err(StoreError::NotFound(format!("job '{}'", job.name)));
        }
        Ok(())
    }

    // ---- compute targets ----------------------------------------------------------------

    /// Creates or replaces a compute target.
    pub async fn put_compute_target(&self, c: &ComputeTarget) -> Result<()> {
        let mut sql = Sql::new(
            self.dialect,
            "INSERT INTO compute_targets (name, kind, max_concurrent_jobs, description, created_at) VALUES (",
        );
        sql.bind(&c.name).push(", ").bind(&c.kind).push(", ").bind(c.max_concurrent_jobs);
        sql.push(", ").bind(c.description.clone()).push(", ").bind(c.created_at);
        sql.push(
            ") ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             max_concurrent_jobs = excluded.max_concurrent_jobs, description = excluded.description",
        );
        sql.execute(&self.writer).await?;
        Ok(())
    }

    pub async fn list_compute_targets(&self) -> Result<Vec<ComputeTarget>> {
        let rows: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, kind, max_concurrent_jobs, description, created_at FROM compute_targets ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, kind, max_concurrent_jobs, description, created_at)| ComputeTarget {
                name,
                kind,
                max_concurrent_jobs,
                description,
                created_at,
            })
            .collect())
    }

    pub async fn delete_compute_target(&self, name: &str) -> Result<bool> {
        let mut sql = Sql::new(self.dialect, "DELETE FROM compute_targets WHERE name = ");
        sql.bind(name);
        Ok(sql.execute(&self.writer).await? > 0)
    }
}
