//! Slots of a model's global concurrency limit (`global_max_concurrency`),
//! shared by every replica on the database.
//!
//! A slot is a row `(model, slot)` with a holder and an expiry. Taking one
//! claims the first slot below the limit whose row is missing or expired, in
//! one upsert that both backends run atomically; the holder extends the expiry
//! while its call runs and deletes the row when it ends. A replica killed
//! while holding a slot stops extending it, and the slot is free again once
//! the lease runs out: no process has to notice the crash.
//!
//! Expiry is on the database's clock (PostgreSQL's, or the one machine's that
//! holds a SQLite file), so replicas whose clocks disagree still agree on
//! which leases are live.

use std::collections::HashSet;
use std::time::Duration;

use super::{Backend, Store, write_tx};
use crate::error::Result;

/// The database's clock in milliseconds since the Unix epoch, as SQL.
const SQLITE_NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
const POSTGRES_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

fn millis(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Store {
    fn now_ms_sql(&self) -> &'static str {
        match *self.backend {
            Backend::Sqlite(_) => SQLITE_NOW_MS,
            Backend::Postgres(_) => POSTGRES_NOW_MS,
        }
    }

    /// Takes a free slot of `model`'s global limit of `limit` calls for
    /// `holder` (a name unique to this call), leased for `lease`: the lowest
    /// slot below `limit` that nobody holds or whose lease ran out. `None`
    /// when every slot is held.
    pub async fn take_model_slot(
        &self,
        model: &str,
        limit: usize,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<i64>> {
        let now = self.now_ms_sql();
        let live = format!("SELECT slot FROM model_leases WHERE model = $1 AND expires_at > {now}");
        // Atomic in both backends: a concurrent taker of the same slot either
        // inserts first (and this one finds a live lease: no row changed) or
        // finds this one's row.
        let claim = format!(
            "INSERT INTO model_leases (model, slot, holder, expires_at) VALUES ($1, $2, $3, {now} + $4) \
             ON CONFLICT (model, slot) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at WHERE model_leases.expires_at <= {now}"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(write_tx!(self, tx => {
            let held: HashSet<i64> = sqlx::query_scalar::<_, i64>(&live)
                .bind(model)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            let mut taken = None;
            for slot in (0..limit).filter(|s| !held.contains(s)) {
                let claimed = sqlx::query(&claim)
                    .bind(model)
                    .bind(slot)
                    .bind(holder)
                    .bind(millis(lease))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if claimed == 1 {
                    taken = Some(slot);
                    break;
                }
            }
            taken
        }))
    }

    /// Extends `holder`'s lease on a slot to `lease` from now; `false` when
    /// the slot is no longer its own (the lease ran out and another took it).
    pub async fn renew_model_slot(
        &self,
        model: &str,
        slot: i64,
        holder: &str,
        lease: Duration,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE model_leases SET expires_at = {} + $4 \
             WHERE model = $1 AND slot = $2 AND holder = $3",
            self.now_ms_sql()
        );
        Ok(write_tx!(self, tx => sqlx::query(&sql)
            .bind(model)
            .bind(slot)
            .bind(holder)
            .bind(millis(lease))
            .execute(&mut *tx)
            .await?
            .rows_affected())
            == 1)
    }

    /// Frees `holder`'s slot (nothing happens when it is no longer its own).
    pub async fn release_model_slot(&self, model: &str, slot: i64, holder: &str) -> Result<()> {
        write_tx!(self, tx => sqlx::query(
            "DELETE FROM model_leases WHERE model = $1 AND slot = $2 AND holder = $3",
        )
        .bind(model)
        .bind(slot)
        .bind(holder)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// How many of `model`'s slots are held now (leases not run out).
    pub async fn model_slots_held(&self, model: &str) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) FROM model_leases WHERE model = $1 AND expires_at > {}",
            self.now_ms_sql()
        );
        Ok(super::on_pool!(self, pool => sqlx::query_scalar(&sql)
            .bind(model)
            .fetch_one(pool)
            .await?))
    }
}
