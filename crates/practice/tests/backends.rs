//! The store under test: SQLite always, and PostgreSQL when
//! `SLUICE_TEST_POSTGRES_URL` names a server (`.ci/postgres.sh` starts one).
//! Under CI (`CI=true`) PostgreSQL is required: a missing server fails the run
//! rather than skipping half the suite.

use std::sync::atomic::{AtomicU32, Ordering};

use sluice_practice::Store;
use sqlx::Connection as _;

/// A fresh, empty database on each backend, named for the test.
pub async fn stores() -> Vec<Store> {
    let mut stores = vec![Store::in_memory().await.expect("in-memory SQLite")];
    if let Some(url) = fresh_postgres_url().await {
        stores.push(Store::connect(&url).await.expect("PostgreSQL store"));
    }
    stores
}

/// The URL of a new, empty PostgreSQL database, or `None` when no server is
/// configured (outside CI).
pub async fn fresh_postgres_url() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Ok(admin) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the store tests on PostgreSQL: set SLUICE_TEST_POSTGRES_URL (.ci/postgres.sh)"
        );
        return None;
    };
    let name = format!(
        "sluice_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the PostgreSQL test server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await
        .expect("drop an old test database");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

/// Two stores on one fresh database per backend, as two replicas of the
/// server would open it: a SQLite file (removed with the returned guard), and
/// PostgreSQL when configured.
pub async fn replica_pairs() -> (Vec<(Store, Store)>, TempDir) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = TempDir(std::env::temp_dir().join(format!(
        "sluice-replicas-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )));
    std::fs::create_dir_all(&dir.0).expect("a temporary directory");
    let path = dir.0.join("practice.db");
    let mut pairs = vec![(
        Store::open_file(&path).await.expect("a SQLite file store"),
        Store::open_file(&path)
            .await
            .expect("a second store on the file"),
    )];
    if let Some(url) = fresh_postgres_url().await {
        pairs.push((
            Store::connect(&url).await.expect("PostgreSQL store"),
            Store::connect(&url)
                .await
                .expect("a second PostgreSQL store"),
        ));
    }
    (pairs, dir)
}

/// A temporary directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
