//! Kiln's metadata store: the only code in Kiln that writes SQL.
//!
//! One [`Store`] speaks to SQLite (the embedded default) or PostgreSQL through sqlx's `Any`
//! driver, with one portable schema. Services above it see plain entity types
//! ([`model`]) and a small query language ([`query`]) for searches; they never see SQL.
//!
//! SQLite writes go through a single connection, so concurrent writers queue in the pool
//! instead of failing with "database is locked"; reads use a pool of their own. With WAL
//! journaling a committed transaction survives `kill -9` of the server. On a SQLite file the
//! busiest operations run their statements directly through rusqlite ([`direct`]).

mod assets;
pub use assets::AssetCreated;
mod compile;
mod direct;
mod experiments;
mod jobs;
mod logged_models;
pub use logged_models::NewLoggedModel;
pub mod model;
pub mod query;
mod registry;
pub use registry::{NewModelVersion, STAGES};
mod endpoints;
mod runs;
mod schedules;
mod sql;
mod traces;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use model::*;
pub use query::*;

/// Errors of the store. Lookups that find nothing return `Ok(None)`; these are real failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule of the schema was hit (a name that already exists).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The row the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The URL names no database Kiln supports.
    #[error("unsupported store URL '{0}': use sqlite://PATH or postgresql://…")]
    UnsupportedUrl(String),
    /// A search clause the store cannot express (the parser above should reject it first).
    #[error("{0}")]
    InvalidSearch(String),
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl From<compile::UnsupportedClause> for StoreError {
    fn from(e: compile::UnsupportedClause) -> Self {
        StoreError::InvalidSearch(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which SQL dialect the store speaks; only the few statements that differ look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The metadata store.
#[derive(Clone)]
pub struct Store {
    reader: AnyPool,
    writer: AnyPool,
    dialect: Dialect,
    /// The hot paths' direct connections, for a SQLite file (not for PostgreSQL, nor for an
    /// in-memory database, which other connections could not see).
    direct: Option<Arc<direct::Direct>>,
}

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    /// Applied on SQLite only (recorded as applied on PostgreSQL too).
    sqlite_only: bool,
}

const MIGRATIONS: &[Migration] = &[
    Migration::both(1, "tracking", include_str!("../migrations/0001_tracking.sql")),
    Migration::both(2, "jobs", include_str!("../migrations/0002_jobs.sql")),
    Migration::both(3, "pipelines", include_str!("../migrations/0003_pipelines.sql")),
    Migration::both(4, "schedules", include_str!("../migrations/0004_schedules.sql")),
    Migration::both(5, "endpoints", include_str!("../migrations/0005_endpoints.sql")),
    Migration::sqlite(6, "run data version", include_str!("../migrations/0006_run_data_version.sql")),
];

impl Migration {
    const fn both(version: i64, name: &'static str, sql: &'static str) -> Migration {
        Migration { version, name, sql, sqlite_only: false }
    }

    const fn sqlite(version: i64, name: &'static str, sql: &'static str) -> Migration {
        Migration { version, name, sql, sqlite_only: true }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://PATH` (or a bare path ending in `.db`) or `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let mut file = None;
        let (dialect, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_string())
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            file = Some(std::path::PathBuf::from(path));
            (Dialect::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url == "sqlite::memory:" {
            (Dialect::Sqlite, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let store = match dialect {
            Dialect::Sqlite => {
                let pool = |max: u32, writer: bool| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(Duration::from_secs(60))
                        // A connection to a local file cannot go stale, and sqlx's ping before
                        // each acquire is a round trip to the connection's worker thread.
                        .test_before_acquire(false)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                // WAL: readers never block the writer and a commit is durable
                                // against a killed process. NORMAL sync is enough for that
                                // (FULL would only add protection against power loss).
                                // mmap lets every connection read pages straight from the OS
                                // cache instead of copying them into a private cache each.
                                conn.execute(
                                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                                     PRAGMA busy_timeout=10000; PRAGMA foreign_keys=OFF; \
                                     PRAGMA mmap_size=1073741824; PRAGMA cache_size=-8192; \
                                     PRAGMA temp_store=MEMORY;",
                                )
                                .await?;
                                if writer {
                                    // Checkpoints run in the background (below), not inside
                                    // the commit of whichever request crossed the threshold.
                                    conn.execute("PRAGMA wal_autocheckpoint=0;").await?;
                                }
                                Ok(())
                            })
                        })
                };
                let writer = pool(1, true).connect_with(options.clone()).await?;
                let store = Store { reader: writer.clone(), writer, dialect, direct: None };
                store.migrate().await?;
                let reader = pool(4, false).connect_with(options).await?;
                let direct = file.map(|f| direct::Direct::open(&f)).transpose()?.map(Arc::new);
                spawn_checkpointer(reader.clone(), store.writer.clone(), direct.clone());
                Store { reader, direct, ..store }
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(60))
                    .connect_with(options)
                    .await?;
                let store = Store { reader: pool.clone(), writer: pool, dialect, direct: None };
                store.migrate().await?;
                store
            }
        };
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Applies the migrations this database has not seen, each in its own transaction.
    async fn migrate(&self) -> Result<()> {
        self.writer
            .execute(
                "CREATE TABLE IF NOT EXISTS kiln_migrations (\
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .await?;
        let applied: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM kiln_migrations").fetch_all(&self.writer).await?;
        for m in MIGRATIONS {
            if applied.iter().any(|(v,)| *v == m.version) {
                continue;
            }
            let sql = m.sql.replace(
                "{WITHOUT_ROWID}",
                match self.dialect {
                    Dialect::Sqlite => "WITHOUT ROWID",
                    Dialect::Postgres => "",
                },
            );
            let mut tx = self.writer.begin().await?;
            if !m.sqlite_only || self.dialect == Dialect::Sqlite {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration { version: m.version, source })?;
            }
            sqlx::query("INSERT INTO kiln_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Closes both pools, waiting for queued writes.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Copies the SQLite write-ahead log into the database file every second, without blocking
/// readers or the writer (PASSIVE), until the pool closes; once all of it is copied, empties
/// it (see [`direct::Direct::truncate_wal`]). Also as soon as direct writes pause for
/// [`QUIET_AFTER_WRITES`]: reads that follow a burst of writes (train, then search) should not
/// wait up to a second for an empty log.
fn spawn_checkpointer(pool: AnyPool, writer: AnyPool, direct: Option<Arc<direct::Direct>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let writes_paused = async {
                let Some(direct) = &direct else { return std::future::pending().await };
                direct.wrote.notified().await;
                while tokio::time::timeout(QUIET_AFTER_WRITES, direct.wrote.notified()).await.is_ok() {}
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = writes_paused => {}
            }
            if pool.is_closed() {
                break;
            }
            // (busy, frames in the log, frames copied)
            let copied = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await;
            match copied {
                Ok((0, log, done)) if log > 0 && done == log => {
                    if let Some(direct) = &direct
                        && let Err(e) = direct.truncate_wal(&writer).await
                        && !writer.is_closed()
                    {
                        tracing::debug!(error = %e, "WAL truncation skipped; will retry");
                    }
                }
                Ok(_) => {}
                Err(_) if pool.is_closed() => break,
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
            }
        }
    });
}

/// How long direct writes must pause before the log is checkpointed and emptied ahead of the
/// periodic checkpoint: longer than the gap between a client's back-to-back writes, so a
/// stream of them is not slowed by truncations in between.
const QUIET_AFTER_WRITES: Duration = Duration::from_millis(30);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// [`unique_as_exists`] for the direct SQLite path.
pub(crate) fn unique_as_exists_direct(what: impl FnOnce() -> String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == SQLITE_CONSTRAINT_UNIQUE || f.extended_code == SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::AlreadyExists(what())
        }
        _ => StoreError::Sqlite(e),
    }
}

/// Maps a unique-constraint violation to [`StoreError::AlreadyExists`] with `what`.
pub(crate) fn unique_as_exists(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists(what()),
        _ => StoreError::Database(e),
    }
}
