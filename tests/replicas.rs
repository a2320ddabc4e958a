//! Reads from a replica that lags for real, versioned writes through the
//! primary: a stale read never overwrites, the row a conflict brings back is
//! the primary's, racing writers that read from the replica lose nothing,
//! and a write sent to the replica is `OccError::ReadOnly`.
//!
//! PostgreSQL: a primary and a streaming standby (`scripts/pg-ha up`),
//! `OCC_PG_REPLICA_URLS` = "primary standby"; the standby lags because its
//! replay is paused (`pg_wal_replay_pause()`). MariaDB: a primary and a
//! GTID replica started `--read-only` (`scripts/mariadb-replica up`),
//! `OCC_MYSQL_REPLICA_URLS` = "primary replica replica-admin"; the replica
//! lags because its SQL thread is stopped. With `OCC_REQUIRE_SERVERS=1` an
//! unset variable fails instead of skipping.

#![cfg(all(feature = "r2d2", any(feature = "postgres", feature = "mysql")))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection, R2D2Connection};
use occ::prelude::*;
use occ::{ModifyPolicy, OccConnection, Reload};

diesel::table! {
    counters (id) {
        id -> Integer,
        value -> Integer,
        version -> Integer,
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Optimistic)]
struct Counter {
    id: i32,
    value: i32,
    #[occ(version)]
    version: i32,
}

/// The tests of one server share its replica, whose replay they pause:
/// one at a time.
static REPLAY: Mutex<()> = Mutex::new(());

/// How long a replica may take to catch up once it replays again.
const CATCH_UP: Duration = Duration::from_secs(20);

fn urls(var: &str) -> Option<Vec<String>> {
    match std::env::var(var) {
        Ok(urls) if !urls.trim().is_empty() => {
            Some(urls.split_whitespace().map(str::to_owned).collect())
        }
        _ if std::env::var("OCC_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("{var} is not set, and OCC_REQUIRE_SERVERS=1 forbids skipping the replica tests")
        }
        _ => {
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

type Pooled<C> = PooledConnection<ConnectionManager<C>>;

/// A primary and a replica of it, a pool on each, and the statements that
/// stop and restart the replica's replay.
struct Replicas<C: R2D2Connection + 'static> {
    primary: Pool<ConnectionManager<C>>,
    replica: Pool<ConnectionManager<C>>,
    /// Where the replay is paused and resumed (the replica, as a user
    /// allowed to).
    admin: String,
    pause: &'static str,
    resume: &'static str,
}

impl<C> Replicas<C>
where
    C: R2D2Connection + OccConnection + SimpleConnection + 'static,
    Pooled<C>: Reload<Counter> + OccConnection,
{
    fn new(
        primary: &str,
        replica: &str,
        admin: &str,
        pause: &'static str,
        resume: &'static str,
    ) -> Self {
        let pool = |url: &str| {
            Pool::builder()
                .max_size(6)
                .connection_timeout(Duration::from_secs(10))
                .build(ConnectionManager::<C>::new(url))
                .expect("build a pool")
        };
        Self {
            primary: pool(primary),
            replica: pool(replica),
            admin: admin.to_owned(),
            pause,
            resume,
        }
    }

    fn replay(&self, sql: &str) {
        let mut admin = C::establish(&self.admin).expect("connect to the replica as its admin");
        admin.batch_execute(sql).expect(sql);
    }

    /// Pauses the replica's replay until the guard drops.
    fn lagging(&self) -> Paused<'_, C> {
        self.replay(self.pause);
        Paused(self)
    }

    /// Waits until the replica holds the row at `version` or later.
    fn caught_up(&self, version: i32) -> Duration {
        let started = Instant::now();
        let mut replica = self.replica.get().unwrap();
        loop {
            match read(&mut replica) {
                Ok(row) if row.version >= version => return started.elapsed(),
                _ if started.elapsed() > CATCH_UP => {
                    panic!("the replica did not reach version {version} in {CATCH_UP:?}")
                }
                _ => thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

struct Paused<'a, C: R2D2Connection + 'static>(&'a Replicas<C>);

impl<C: R2D2Connection + 'static> Drop for Paused<'_, C> {
    fn drop(&mut self) {
        if let Ok(mut admin) = C::establish(&self.0.admin) {
            let _ = admin.batch_execute(self.0.resume);
        }
    }
}

/// The counter as `conn` has it.
fn read<C: Reload<Counter>>(conn: &mut C) -> Result<Counter, OccError> {
    let mut row = Counter {
        id: 1,
        value: 0,
        version: 0,
    };
    row.reload(conn)?;
    Ok(row)
}

/// A row read from a lagging replica: its versioned write through the
/// primary conflicts, the row `update_versioned_or_current` returns is the
/// primary's (newer than anything the replica has), and `modify_from` ends
/// on top of the primary's row.
fn a_stale_read_never_overwrites<C>(r: &Replicas<C>)
where
    C: R2D2Connection + OccConnection + SimpleConnection + 'static,
    Pooled<C>: Reload<Counter> + OccConnection,
{
    r.caught_up(0);
    let paused = r.lagging();
    let mut primary = r.primary.get().unwrap();
    let mut replica = r.replica.get().unwrap();
    let mut other = read(&mut primary).unwrap();
    other.value = 10;
    other.update_versioned(&mut primary).unwrap();

    let stale = read(&mut replica).unwrap();
    assert_eq!((stale.value, stale.version), (0, 0), "the replica lags");

    let mut write = stale.clone();
    write.value += 1;
    match write.update_versioned(&mut primary).unwrap_err() {
        OccError::Conflict {
            table,
            expected,
            actual,
            ..
        } => assert_eq!((table, &*expected, &*actual), ("counters", "0", "1")),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(read(&mut primary).unwrap().value, 10, "nothing overwritten");

    let mut write = stale.clone();
    write.value += 1;
    let current = write
        .update_versioned_or_current(&mut primary)
        .unwrap()
        .expect("a conflict, with the current row");
    assert_eq!(
        (current.value, current.version),
        (10, 1),
        "the primary's row"
    );
    assert_eq!(read(&mut replica).unwrap().version, 0, "still lagging");

    let written = Counter::modify_from(&mut primary, stale, |c| {
        c.value += 1;
        Ok::<_, OccError>(())
    })
    .unwrap();
    assert_eq!((written.value, written.version), (11, 2));
    drop(paused);
    r.caught_up(2);
    assert_eq!(read(&mut replica).unwrap(), written);
}

/// Writers that read the row from the replica and write it through the
/// primary with `modify_from`: while the replica is paused every first
/// attempt is stale and conflicts, and no increment is lost; with the
/// replica streaming, what its lag costs is counted.
fn racing_writers_lose_nothing<C>(r: &Replicas<C>, backend: &str)
where
    C: R2D2Connection + OccConnection + SimpleConnection + 'static,
    Pooled<C>: Reload<Counter> + OccConnection,
{
    const WRITERS: usize = 4;
    const EACH: i32 = 25;
    r.caught_up(0);
    let race = |phase: &str, writers: usize| {
        let each = WRITERS as i32 * EACH / writers as i32;
        let conflicts = Arc::new(AtomicU32::new(0));
        let barrier = Barrier::new(writers);
        let hook = Arc::clone(&conflicts);
        let policy =
            ModifyPolicy::default().retry(RetryPolicy::default().max_attempts(1000).on_retry(
                move |_, e| {
                    if e.is_conflict() {
                        hook.fetch_add(1, Ordering::Relaxed);
                    }
                },
            ));
        let started = Instant::now();
        thread::scope(|s| {
            for _ in 0..writers {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..each {
                        let row = read(&mut r.replica.get().unwrap()).unwrap();
                        Counter::modify_from_with(
                            &mut r.primary.get().unwrap(),
                            row,
                            &policy,
                            |c| {
                                c.value += 1;
                                Ok::<_, OccError>(())
                            },
                        )
                        .unwrap();
                    }
                });
            }
        });
        let took = started.elapsed();
        let conflicts = conflicts.load(Ordering::Relaxed);
        eprintln!(
            "{backend}, replica {phase}: {} increments by {writers} writers in {took:?}, \
             {conflicts} conflicts from stale or raced reads",
            writers as i32 * each
        );
        conflicts
    };
    let paused = r.lagging();
    let conflicts = race("paused", WRITERS);
    // The replica has version 0 only: every first attempt but those that
    // wrote version 1 read a stale row.
    assert!(
        conflicts >= (WRITERS as i32 * EACH - 1) as u32,
        "every first attempt after the first write read a stale row: {conflicts} conflicts"
    );
    let row = read(&mut r.primary.get().unwrap()).unwrap();
    assert_eq!((row.value, row.version), (100, 100), "nothing lost");
    drop(paused);
    let lag = r.caught_up(100);
    eprintln!("{backend}: the replica replayed 100 versions {lag:?} after it was resumed");

    race("streaming", WRITERS);
    let row = read(&mut r.primary.get().unwrap()).unwrap();
    assert_eq!((row.value, row.version), (200, 200), "nothing lost");
    let lag = r.caught_up(200);
    eprintln!("{backend}: streaming, the replica had the last write {lag:?} after it");
    // One writer alone: each conflict is a read of the replica that did
    // not have the writer's own previous write yet.
    race("streaming, one writer reading its own writes", 1);
    let row = read(&mut r.primary.get().unwrap()).unwrap();
    assert_eq!((row.value, row.version), (300, 300), "nothing lost");
}

/// A write sent to the replica: `ReadOnly`, not retried, and the error
/// says to write through the primary.
fn writes_are_read_only<C>(r: &Replicas<C>)
where
    C: R2D2Connection + OccConnection + SimpleConnection + 'static,
    Pooled<C>: Reload<Counter> + OccConnection,
{
    r.caught_up(0);
    let mut replica = r.replica.get().unwrap();
    let mut row = read(&mut replica).unwrap();
    row.value = 5;
    let error = row.clone().update_versioned(&mut replica).unwrap_err();
    assert!(matches!(error, OccError::ReadOnly(_)), "{error:?}");
    assert_eq!(error.kind(), "read_only");
    assert!(error.needs_new_connection() && !error.is_retryable());
    assert!(
        error.to_string().contains("write through the primary"),
        "{error}"
    );

    let retried = occ::retry_counted(&mut replica, &RetryPolicy::default(), |conn| {
        let mut row = read(conn)?;
        row.value += 1;
        row.update_versioned(conn)
    });
    assert_eq!(retried.attempts, 1, "not retried on the same connection");
    assert_eq!(retried.result.unwrap_err().kind(), "read_only");

    let error = Counter::modify(&mut replica, 1, |c| {
        c.value += 1;
        Ok::<_, OccError>(())
    })
    .unwrap_err();
    assert_eq!(error.kind(), "read_only", "{error:?}");
    assert_eq!(read(&mut r.primary.get().unwrap()).unwrap().version, 0);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    /// A schema of its own on the primary, with the counter, and the pools
    /// of the primary and the standby in it.
    pub(super) fn replicas(
        name: &str,
    ) -> Option<(std::sync::MutexGuard<'static, ()>, Replicas<PgConnection>)> {
        let urls = urls("OCC_PG_REPLICA_URLS")?;
        let guard = REPLAY.lock().unwrap_or_else(|e| e.into_inner());
        let mut conn = PgConnection::establish(&urls[0]).expect("connect to the primary");
        conn.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}; \
             CREATE TABLE {name}.counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
             version INTEGER NOT NULL); INSERT INTO {name}.counters VALUES (1, 0, 0);"
        ))
        .expect("create the table");
        let path = |url: &str| format!("{url}?options=-csearch_path%3D{name}");
        let r = Replicas::new(
            &path(&urls[0]),
            &path(&urls[1]),
            &urls[1],
            "SELECT pg_wal_replay_pause()",
            "SELECT pg_wal_replay_resume()",
        );
        Some((guard, r))
    }

    #[test]
    fn a_stale_read_from_the_standby_never_overwrites() {
        let Some((_g, r)) = replicas("occ_repl_stale") else {
            return;
        };
        a_stale_read_never_overwrites(&r);
    }

    #[test]
    fn racing_writers_reading_from_the_standby_lose_nothing() {
        let Some((_g, r)) = replicas("occ_repl_race") else {
            return;
        };
        racing_writers_lose_nothing(&r, "PostgreSQL");
    }

    #[test]
    fn a_write_to_the_standby_is_read_only() {
        let Some((_g, r)) = replicas("occ_repl_read_only") else {
            return;
        };
        writes_are_read_only(&r);
        // A locked read on a standby is refused the same way.
        let mut replica = r.replica.get().unwrap();
        let error = replica
            .transaction(|conn| Counter::find_exclusive(conn, 1))
            .unwrap_err();
        assert_eq!(error.kind(), "read_only", "{error:?}");
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;

    pub(super) fn replicas(
        name: &str,
    ) -> Option<(
        std::sync::MutexGuard<'static, ()>,
        Replicas<MysqlConnection>,
    )> {
        let urls = urls("OCC_MYSQL_REPLICA_URLS")?;
        let guard = REPLAY.lock().unwrap_or_else(|e| e.into_inner());
        let mut conn = MysqlConnection::establish(&urls[0]).expect("connect to the primary");
        conn.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; \
             CREATE TABLE {name}.counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
             version INTEGER NOT NULL); INSERT INTO {name}.counters VALUES (1, 0, 0);"
        ))
        .expect("create the table");
        let db = |url: &str| format!("{}/{name}", url.rsplit_once('/').unwrap().0);
        // The database must reach the replica before a pool connects to it.
        let admin = urls.get(2).unwrap_or(&urls[1]).clone();
        let started = Instant::now();
        while MysqlConnection::establish(&db(&urls[1])).is_err() {
            assert!(
                started.elapsed() < CATCH_UP,
                "database {name} did not reach the replica"
            );
            thread::sleep(Duration::from_millis(10));
        }
        let r = Replicas::new(
            &db(&urls[0]),
            &db(&urls[1]),
            &admin,
            "STOP SLAVE SQL_THREAD",
            "START SLAVE SQL_THREAD",
        );
        Some((guard, r))
    }

    #[test]
    fn a_stale_read_from_the_replica_never_overwrites() {
        let Some((_g, r)) = replicas("occ_repl_stale") else {
            return;
        };
        a_stale_read_never_overwrites(&r);
    }

    #[test]
    fn racing_writers_reading_from_the_replica_lose_nothing() {
        let Some((_g, r)) = replicas("occ_repl_race") else {
            return;
        };
        racing_writers_lose_nothing(&r, "MariaDB");
    }

    #[test]
    fn a_write_to_the_replica_is_read_only() {
        let Some((_g, r)) = replicas("occ_repl_read_only") else {
            return;
        };
        writes_are_read_only(&r);
    }
}

/// diesel 2.4's own MariaDB backend on the same replica.
#[cfg(all(feature = "mysql", feature = "mariadb"))]
mod mariadb {
    use super::*;

    #[test]
    fn a_write_to_the_replica_is_read_only_through_the_mariadb_backend() {
        // The database, created through the MySQL backend.
        let Some((_g, _)) = mysql::replicas("occ_repl_read_only_mariadb") else {
            return;
        };
        let urls = urls("OCC_MYSQL_REPLICA_URLS").unwrap();
        let db = |url: &str| {
            let url = url.replacen("mysql://", "mariadb://", 1);
            format!(
                "{}/occ_repl_read_only_mariadb",
                url.rsplit_once('/').unwrap().0
            )
        };
        let r = Replicas::<MariadbConnection>::new(
            &db(&urls[0]),
            &db(&urls[1]),
            &urls
                .get(2)
                .unwrap_or(&urls[1])
                .replacen("mysql://", "mariadb://", 1),
            "STOP SLAVE SQL_THREAD",
            "START SLAVE SQL_THREAD",
        );
        writes_are_read_only(&r);
    }
}

/// The same with diesel-async pools: a deadpool pool on PostgreSQL's
/// primary and standby, a bb8 pool on MariaDB's primary and replica.
#[cfg(all(feature = "deadpool", feature = "bb8"))]
mod pools {
    use diesel_async::pooled_connection::AsyncDieselConnectionManager;
    use occ::{AsyncOptimisticDsl, AsyncReload};

    use super::*;

    async fn read_async<C: AsyncReload<Counter>>(conn: &mut C) -> Counter {
        let mut row = Counter {
            id: 1,
            value: 0,
            version: 0,
        };
        AsyncOptimisticDsl::reload(&mut row, conn).await.unwrap();
        row
    }

    /// A stale read from the replica pool, written through the primary's:
    /// the conflict brings back the primary's row, `modify_from` ends on top
    /// of it, and a write through the replica pool is `ReadOnly`.
    async fn stale_read_through_pools<P, R>(primary: &mut P, replica: &mut R, pause: impl FnOnce())
    where
        P: AsyncReload<Counter> + Send,
        R: AsyncReload<Counter> + Send,
    {
        pause();
        let mut other = read_async(primary).await;
        other.value = 10;
        AsyncOptimisticDsl::update_versioned(&mut other, primary)
            .await
            .unwrap();
        let stale = read_async(replica).await;
        assert_eq!(stale.version, 0, "the replica lags");

        let mut write = stale.clone();
        write.value += 1;
        let current = AsyncOptimisticDsl::update_versioned_or_current(&mut write, primary)
            .await
            .unwrap()
            .expect("a conflict, with the current row");
        assert_eq!(
            (current.value, current.version),
            (10, 1),
            "the primary's row"
        );

        let written = <Counter as AsyncOptimisticDsl>::modify_from(primary, stale.clone(), |c| {
            c.value += 1;
            Ok::<_, OccError>(())
        })
        .await
        .unwrap();
        assert_eq!((written.value, written.version), (11, 2));

        let error = <Counter as AsyncOptimisticDsl>::modify_from(replica, stale, |c| {
            c.value += 1;
            Ok::<_, OccError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(error.kind(), "read_only", "{error:?}");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn deadpool_pools_on_the_primary_and_the_standby() {
        use diesel_async::pooled_connection::deadpool::Pool;
        use diesel_async::AsyncPgConnection;
        let name = "occ_repl_deadpool";
        let Some((_g, sync)) = postgres::replicas(name) else {
            return;
        };
        let urls = urls("OCC_PG_REPLICA_URLS").unwrap();
        let path = |url: &str| format!("{url}?options=-csearch_path%3D{name}");
        sync.caught_up(0);
        let pool = |url: String| {
            Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url))
                .max_size(2)
                .build()
                .unwrap()
        };
        let (primary, replica) = (pool(path(&urls[0])), pool(path(&urls[1])));
        let paused = std::cell::Cell::new(None);
        runtime().block_on(async {
            let mut p = primary.get().await.unwrap();
            let mut r = replica.get().await.unwrap();
            stale_read_through_pools(&mut p, &mut r, || paused.set(Some(sync.lagging()))).await;
        });
        drop(paused);
        sync.caught_up(2);
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn bb8_pools_on_the_primary_and_the_replica() {
        use diesel_async::pooled_connection::bb8::Pool;
        use diesel_async::AsyncMysqlConnection;
        let Some((_g, sync)) = mysql::replicas("occ_repl_bb8") else {
            return;
        };
        sync.caught_up(0);
        let urls = urls("OCC_MYSQL_REPLICA_URLS").unwrap();
        let db = |url: &str| format!("{}/occ_repl_bb8", url.rsplit_once('/').unwrap().0);
        let paused = std::cell::Cell::new(None);
        runtime().block_on(async {
            let pool = async |url: String| {
                Pool::builder()
                    .max_size(2)
                    .build(AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(
                        url,
                    ))
                    .await
                    .unwrap()
            };
            let (primary, replica) = (pool(db(&urls[0])).await, pool(db(&urls[1])).await);
            let mut p = primary.get().await.unwrap();
            let mut r = replica.get().await.unwrap();
            stale_read_through_pools(&mut *p, &mut *r, || paused.set(Some(sync.lagging()))).await;
        });
        drop(paused);
        sync.caught_up(2);
    }
}
