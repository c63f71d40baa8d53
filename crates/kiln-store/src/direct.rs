//! Direct SQLite access for the requests a training script sends most: run creation, batches
//! of metrics, metric history and run search.
//!
//! Why a second way in: sqlx runs every SQLite connection on a worker thread of its own, so
//! each statement (and `BEGIN` and `COMMIT`) is a round trip between threads, about as costly
//! on a small machine as the statement itself, and every value passes through the `Any`
//! driver's dynamic types. Here the same SQL text and binds ([`Sql`]) run on the request's own
//! thread through rusqlite: one transaction is one call, whatever it holds.
//!
//! Writes stay serialized with sqlx's writes: a direct write first takes the sqlx writer
//! pool's only connection and holds it, unused, until it commits, so at most one writer is
//! ever active and neither side meets "database is locked".

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use sqlx::AnyPool;

use crate::Result;
use crate::runs::RunSidesCache;

/// Idle reader connections kept open; more are opened under load and closed after.
const IDLE_READERS: usize = 4;

/// Prepared statements kept per connection (rusqlite's default is 16; the hot paths use a few
/// dozen shapes).
const STATEMENT_CACHE: usize = 128;

pub(crate) struct Direct {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Told after each commit: the checkpointer empties the log once writes pause.
    pub wrote: tokio::sync::Notify,
    /// Side rows of runs read here, by data version (see [`RunSidesCache`]).
    pub run_sides: RunSidesCache,
}

impl Direct {
    /// Opens connections to an existing database file whose schema is already migrated.
    pub fn open(path: &Path) -> Result<Direct> {
        let writer = connect(path, true)?;
        Ok(Direct {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            wrote: tokio::sync::Notify::new(),
            run_sides: RunSidesCache::default(),
        })
    }

    /// Runs `read` on a reader connection in one read transaction (one snapshot for all its
    /// statements, beside any writer), right here on the async worker: for reads of bounded,
    /// small size, where handing the worker's other tasks to another thread first (see
    /// [`Direct::read_large`]) costs more than the read.
    pub fn read<R>(&self, read: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => connect(&self.path, false)?,
        };
        // Deferred: the snapshot is taken by the first statement and ends with the
        // transaction (dropped, which rolls back: there is nothing to keep).
        let out = conn.transaction().map_err(Into::into).and_then(|tx| read(&tx));
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// [`Direct::read`] for a read that may take long (thousands of rows): the worker's other
    /// tasks move to another thread first, so they are not held up.
    pub fn read_large<R>(&self, read: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        handed_off(|| self.read(read))
    }

    /// Runs `write` in one immediate transaction, committed when it returns `Ok` and rolled
    /// back otherwise, on the async worker (writes are bounded: a batch is at most 1000
    /// metrics, and with WAL a commit is a `write`, not an `fsync`). `sqlx_writer` is the
    /// store's sqlx writer pool (one connection), held for the duration so sqlx's writes and
    /// these never overlap.
    pub async fn write<R>(
        &self,
        sqlx_writer: &AnyPool,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R>,
    ) -> Result<R> {
        let _turn = sqlx_writer.acquire().await?;
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = write(&tx)?;
        tx.commit()?;
        self.wrote.notify_one();
        Ok(out)
    }
}

impl Direct {
    /// Empties the write-ahead log once the background checkpoints have copied all of it.
    ///
    /// Why: a checkpoint copies pages into the database file but leaves the log in place until
    /// the next write starts it over; until then every read looks each page up in the log and
    /// reads it from there (by `pread`, not through the memory map). After a burst of writes
    /// followed by reads only (the usual shape: train, then search), that made reads about
    /// twice as slow. Truncating needs no reader in the log, so it waits briefly for them and
    /// gives up otherwise (the next tick tries again); writers wait for it meanwhile.
    pub async fn truncate_wal(&self, sqlx_writer: &AnyPool) -> Result<()> {
        let _turn = sqlx_writer.acquire().await?;
        handed_off(|| {
            let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            conn.busy_timeout(Duration::from_millis(20))?;
            let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
            conn.busy_timeout(Duration::from_secs(10))?;
            done?;
            Ok(())
        })
    }
}

/// A connection with the same settings as the store's sqlx connections (see `Store::connect`).
fn connect(path: &Path, writer: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=OFF; \
         PRAGMA mmap_size=1073741824; PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY;",
    )?;
    if writer {
        // Checkpoints are the store's background task's job, as for the sqlx writer.
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Runs long synchronous database work from async code. On a multi-threaded runtime the
/// worker hands its other tasks to another thread first, so they are not held up; on a
/// current-thread runtime (tests) it simply runs.
fn handed_off<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
