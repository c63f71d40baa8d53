//! Schedules and the record of their fires.
//!
//! Firing is claimed with a compare-and-set on `next_fire_at` (`claim_schedule_fire`): of
//! two servers sharing a database, only the one that moves it fires.

use crate::model::{ScheduleFire, ScheduleRecord};
use crate::sql::Sql;
use crate::{Result, Store, now_ms, unique_as_exists};

const COLUMNS: &str = "name, spec, source, enabled, created_at, updated_at, anchor_at, next_fire_at";
type Row = (String, String, String, i64, i64, i64, i64, Option<i64>);

fn record(r: Row) -> ScheduleRecord {
    ScheduleRecord {
        name: r.0,
        spec: r.1,
        source: r.2,
        enabled: r.3 != 0,
        created_at: r.4,
        updated_at: r.5,
        anchor_at: r.6,
        next_fire_at: r.7,
    }
}

const FIRE_COLUMNS: &str = "schedule, fire_at, status, job_name, message, recorded_at";
type FireRow = (String, i64, String, Option<String>, Option<String>, i64);

impl Store {
    /// Writes a schedule: a new row, or every field of the existing one but its creation
    /// time. Returns whether it was new.
    pub async fn put_schedule(&self, s: &ScheduleRecord) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let mut update = Sql::new(self.dialect, "UPDATE schedules SET spec = ");
        update.bind(&s.spec).push(", source = ").bind(&s.source).push(", enabled = ").bind(s.enabled as i64);
        update.push(", updated_at = ").bind(s.updated_at).push(", anchor_at = ").bind(s.anchor_at);
        update.push(", next_fire_at = ").bind(s.next_fire_at).push(" WHERE name = ").bind(&s.name);
        if update.execute(&mut *tx).await? > 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let mut insert = Sql::new(self.dialect, &format!("INSERT INTO schedules ({COLUMNS}) VALUES ("));
        insert.bind(&s.name).push(", ").bind(&s.spec).push(", ").bind(&s.source).push(", ").bind(s.enabled as i64);
        insert.push(", ").bind(s.created_at).push(", ").bind(s.updated_at).push(", ").bind(s.anchor_at);
        insert.push(", ").bind(s.next_fire_at).push(")");
        insert.execute(&mut *tx).await.map_err(unique_as_exists(|| format!("schedule '{}'", s.name)))?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM schedules WHERE name = "));
        sql.bind(name);
        Ok(sql.fetch_optional::<Row, _>(&self.reader).await?.map(record))
    }

    /// Schedules by name; `enabled` filters on their state.
    pub async fn list_schedules(&self, enabled: Option<bool>) -> Result<Vec<ScheduleRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM schedules"));
        if let Some(e) = enabled {
            sql.push(" WHERE enabled = ").bind(e as i64);
        }
        sql.push(" ORDER BY name");
        Ok(sql.fetch_all::<Row, _>(&self.reader).await?.into_iter().map(record).collect())
    }

    /// Deletes a schedule and the record of its fires (the jobs it created stay). Returns
    /// whether it existed.
    pub async fn delete_schedule(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let mut fires = Sql::new(self.dialect, "DELETE FROM schedule_fires WHERE schedule = ");
        fires.bind(name);
        fires.execute(&mut *tx).await?;
        let mut sql = Sql::new(self.dialect, "DELETE FROM schedules WHERE name = ");
        sql.bind(name);
        let n = sql.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Turns a schedule on or off, with its next fire time. Returns whether it exists.
    pub async fn set_schedule_enabled(&self, name: &str, enabled: bool, next_fire_at: Option<i64>) -> Result<bool> {
        let mut sql = Sql::new(self.dialect, "UPDATE schedules SET enabled = ");
        sql.bind(enabled as i64).push(", next_fire_at = ").bind(next_fire_at);
        sql.push(", updated_at = ").bind(now_ms()).push(" WHERE name = ").bind(name);
        Ok(sql.execute(&self.writer).await? > 0)
    }

    /// Enabled schedules due at `now`.
    pub async fn due_schedules(&self, now: i64) -> Result<Vec<ScheduleRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {COLUMNS} FROM schedules WHERE enabled = 1"));
        sql.push(" AND next_fire_at IS NOT NULL AND next_fire_at <= ").bind(now).push(" ORDER BY next_fire_at");
        Ok(sql.fetch_all::<Row, _>(&self.reader).await?.into_iter().map(record).collect())
    }

    /// When the next enabled schedule is due, if any is.
    pub async fn next_schedule_fire(&self) -> Result<Option<i64>> {
        let sql = Sql::new(
            self.dialect,
            "SELECT MIN(next_fire_at) FROM schedules WHERE enabled = 1 AND next_fire_at IS NOT NULL",
        );
        Ok(sql.fetch_optional::<(Option<i64>,), _>(&self.reader).await?.and_then(|(t,)| t))
    }

    /// Moves a schedule's next fire from `due` to `next`: false when another server (or an
    /// update) moved it first, and this fire is not ours.
    pub async fn claim_schedule_fire(&self, name: &str, due: i64, next: Option<i64>) -> Result<bool> {
        let mut sql = Sql::new(self.dialect, "UPDATE schedules SET next_fire_at = ");
        sql.bind(next).push(" WHERE name = ").bind(name).push(" AND enabled = 1 AND next_fire_at = ").bind(due);
        Ok(sql.execute(&self.writer).await? > 0)
    }

    /// Records fires; a time already recorded keeps its first record.
    pub async fn record_schedule_fires(&self, fires: &[ScheduleFire]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for f in fires {
            let mut sql = Sql::new(self.dialect, &format!("INSERT INTO schedule_fires ({FIRE_COLUMNS}) VALUES ("));
            sql.bind(&f.schedule).push(", ").bind(f.fire_at).push(", ").bind(&f.status);
            sql.push(", ").bind(f.job_name.clone()).push(", ").bind(f.message.clone());
            sql.push(", ").bind(f.recorded_at).push(") ON CONFLICT DO NOTHING");
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A schedule's most recent fires, newest first.
    pub async fn schedule_fires(&self, name: &str, limit: i64) -> Result<Vec<ScheduleFire>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE schedule = "));
        sql.bind(name).push(" ORDER BY fire_at DESC").limit(limit);
        let rows: Vec<FireRow> = sql.fetch_all(&self.reader).await?;
        Ok(rows
            .into_iter()
            .map(|r| ScheduleFire {
                schedule: r.0,
                fire_at: r.1,
                status: r.2,
                job_name: r.3,
                message: r.4,
                recorded_at: r.5,
            })
            .collect())
    }
}
