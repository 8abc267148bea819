//! The practice store: one API over a SQLite file (the default) and PostgreSQL.
//!
//! Both backends run the same SQL text: `$1`-style placeholders work in both, and
//! every value is an `i64`, `f64`, `bool` or text (JSON is stored as text), so one
//! query body serves both pools. Native pools are used rather than `sqlx::Any`,
//! whose type mapping has gaps; the [`on_pool!`] and [`write_tx!`] macros expand one
//! body once per backend.

mod budgets;
mod classes;
mod export;
mod index;
mod knowledge;
mod leases;
mod library;
mod review;
mod sessions;
mod tokens;
mod usage;
mod users;
mod votes;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use budgets::{BudgetStatus, CallUsage, LimitStatus, Reservation, RunUsage};
pub use classes::{Class, ClassRole, Membership};
pub use export::{CSV_COLUMNS, ExportFormat, ExportKind, ExportStats};
pub use knowledge::{
    Document, KnowledgeBase, KnowledgeInput, MAX_DOCUMENT_BYTES, PASSAGE_TOKENS, Passage, SearchHit,
};
pub use library::{Agent, AgentInput, FewShotExample, FewShotInput, Project, ProjectInput};
pub use review::{ClassSession, ClassSessionFilter, SessionRead, StudentActivity, StudentSession};
pub use sessions::{
    NewResult, NewSession, NewTurn, SessionDetail, SessionFilter, SessionModel, SessionPatch,
    SessionSummary, StoredResult, StoredTurn,
};
pub use tokens::AccessTokenRecord;
pub use usage::{
    DailyUsage, ModelUsage, StudentUsage, UsageEvent, UsageFilter, UsageStats, UsageSummary,
};
pub use users::{ApiKeyInfo, KEY_PREFIX, NewKey, User};
pub use votes::{
    ClassLeaderboard, LABELS, LabelledModel, MAX_COMMENT_CHARS, Rating, RatingInput, VERDICTS,
    Verdict, VoteFacets, VoteFilter, VoteReveal, blind_labels, conceal_turn,
};

use crate::error::{PracticeError, Result};

/// Expands `$body` once per backend with `$pool` bound to the native pool.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &*$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// [`on_pool!`] for one statement that writes outside a transaction: on
/// SQLite it waits its turn in the same queue as [`write_tx!`]. Left to
/// SQLite's busy handler instead, it sleeps in growing steps (up to 100 ms
/// each) while queued transactions keep taking the lock ahead of it: other
/// users' agent writes waited up to 1.6 s behind an upload (issue 23).
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &*$store.backend {
            $crate::store::Backend::Sqlite($pool) => {
                let _writer = $store.sqlite_writer.lock().await;
                $body
            }
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` in a write transaction (`$tx`) and commits it. SQLite starts
/// it with `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes
/// fails with `SQLITE_BUSY` at once instead of waiting on the busy timeout.
macro_rules! write_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &*$store.backend {
            $crate::store::Backend::Sqlite(pool) => {
                // One writer at a time, queued here: SQLite's busy handler
                // would have waiting writers sleep in steps of up to 100 ms,
                // each holding a pool connection that readers need.
                let _writer = $store.sqlite_writer.lock().await;
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let value = $body;
                $tx.commit().await?;
                value
            }
            $crate::store::Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let value = $body;
                $tx.commit().await?;
                value
            }
        }
    };
}

pub(crate) use {on_pool, on_writer, write_tx};

/// The migrations, in order; each runs once, in its own transaction, and is
/// recorded in `sluice_migrations`. Hand-rolled rather than `sqlx::migrate!`,
/// which needs the proc-macro stack at build time for four lines of logic.
const MIGRATIONS: [Migration; 7] = [
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "document_indexing",
        sqlite: include_str!("../../migrations/sqlite/0002_document_indexing.sql"),
        postgres: include_str!("../../migrations/postgres/0002_document_indexing.sql"),
    },
    Migration {
        version: 3,
        name: "access_tokens",
        sqlite: include_str!("../../migrations/sqlite/0003_access_tokens.sql"),
        postgres: include_str!("../../migrations/postgres/0003_access_tokens.sql"),
    },
    Migration {
        version: 4,
        name: "instructors",
        sqlite: include_str!("../../migrations/sqlite/0004_instructors.sql"),
        postgres: include_str!("../../migrations/postgres/0004_instructors.sql"),
    },
    Migration {
        version: 5,
        name: "votes",
        sqlite: include_str!("../../migrations/sqlite/0005_votes.sql"),
        postgres: include_str!("../../migrations/postgres/0005_votes.sql"),
    },
    Migration {
        version: 6,
        name: "model_leases",
        sqlite: include_str!("../../migrations/sqlite/0006_model_leases.sql"),
        postgres: include_str!("../../migrations/postgres/0006_model_leases.sql"),
    },
    Migration {
        version: 7,
        name: "index_from_text",
        sqlite: include_str!("../../migrations/sqlite/0007_index_from_text.sql"),
        postgres: include_str!("../../migrations/postgres/0007_index_from_text.sql"),
    },
];

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The practice store. Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub struct Store {
    backend: std::sync::Arc<Backend>,
    url: String,
    indexes: std::sync::Arc<index::IndexCache>,
    sqlite_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

/// A database URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// One page of a list: `{items, total, page, size}` as the original API answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items there are in all.
    pub total: i64,
    /// The page number, from 1.
    pub page: i64,
    /// The page size.
    pub size: i64,
}

/// Which page of a list: `page` ≥ 1, `size` 1..=200 (the caller validates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Page number, from 1.
    pub page: i64,
    /// Items per page.
    pub size: i64,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, size: 50 }
    }
}

impl PageRequest {
    fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.size)
    }
}

impl Store {
    /// Opens the database at `url` and brings its schema up to date:
    /// `sqlite:PATH` (created if missing), `sqlite::memory:` (one connection,
    /// gone when the store is dropped), or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Store> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            // WAL lets readers run beside the one writer; FULL syncs every
            // commit, so an acknowledged turn survives a crash of the machine,
            // not only of the process.
            let options = if memory {
                options
            } else {
                options
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
            };
            // An in-memory database lives as long as its one connection.
            let pool = SqlitePoolOptions::new()
                .max_connections(if memory { 1 } else { 8 })
                .min_connections(if memory { 1 } else { 0 })
                .idle_timeout(if memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if memory {
                    None
                } else {
                    Some(Duration::from_secs(3600))
                })
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Backend::Sqlite(pool)
        } else {
            return Err(PracticeError::BadRequest(format!(
                "unsupported database URL {:?}: use sqlite:PATH, sqlite::memory: or postgres://...",
                redact_url(url)
            )));
        };
        let store = Store {
            backend: std::sync::Arc::new(backend),
            url: url.to_string(),
            indexes: Default::default(),
            sqlite_writer: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating it if needed) the SQLite file at `path`.
    pub async fn open_file(path: impl AsRef<Path>) -> Result<Store> {
        Self::connect(&format!("sqlite:{}", path.as_ref().display())).await
    }

    /// An empty in-memory SQLite store.
    pub async fn in_memory() -> Result<Store> {
        Self::connect("sqlite::memory:").await
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match *self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The database URL with its password redacted.
    pub fn url(&self) -> String {
        redact_url(&self.url)
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(version), 0) FROM sluice_migrations";
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await?))
    }

    async fn migrate(&self) -> Result<()> {
        const TABLE: &str = "CREATE TABLE IF NOT EXISTS sluice_migrations \
            (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";
        const DONE: &str = "SELECT version FROM sluice_migrations WHERE version = $1";
        const RECORD: &str =
            "INSERT INTO sluice_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
        // Every pending migration in one transaction. On SQLite `BEGIN IMMEDIATE`
        // takes the write lock; on PostgreSQL an advisory lock lets one replica
        // migrate while the others wait, then find the work done.
        write_tx!(self, tx => {
            if let Backend::Postgres(_) = &*self.backend {
                sqlx::query("SELECT pg_advisory_xact_lock(7316247001)")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(TABLE).execute(&mut *tx).await?;
            for m in &MIGRATIONS {
                let done: Option<i64> = sqlx::query_scalar(DONE)
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await?;
                if done.is_none() {
                    let sql = match &*self.backend {
                        Backend::Sqlite(_) => m.sqlite,
                        Backend::Postgres(_) => m.postgres,
                    };
                    sqlx::raw_sql(sql).execute(&mut *tx).await?;
                    sqlx::query(RECORD)
                        .bind(m.version)
                        .bind(m.name)
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        });
        let version = self.schema_version().await?;
        if version > SCHEMA_VERSION {
            return Err(PracticeError::Corrupt(format!(
                "the database is at schema version {version}, newer than this sluice knows \
                 ({SCHEMA_VERSION}): upgrade sluice"
            )));
        }
        Ok(())
    }
}

/// The current time as RFC 3339 UTC with seconds (`2023-11-07T05:31:56Z`).
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// `$first, $first+1, ...` for `n` values: an `IN (...)` list.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// JSON text for a JSON column.
pub(crate) fn to_json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("values we store always serialize")
}

/// A JSON column read back.
pub(crate) fn from_json_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| PracticeError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://sluice:s3cret@db:5432/practice?sslmode=require"),
            "postgres://sluice:***@db:5432/practice?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/practice"),
            "postgres://db/practice"
        );
        assert_eq!(redact_url("sqlite:data/sluice.db"), "sqlite:data/sluice.db");
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn placeholders_count_from_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }
}
