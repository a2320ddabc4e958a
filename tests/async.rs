//! The async API on diesel-async connections and pools, on a multi-thread
//! tokio runtime: the same statements, results and errors as the sync one,
//! races through `retry_async` on a shared pool, row locks on the servers, and
//! what a future dropped part-way leaves for the next user of its connection.

#![cfg(all(feature = "async", feature = "deadpool", feature = "bb8"))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::nonblocking::AsyncTestDb;
use common::{counters, Counter};
use common::{AppError, TestDb};
use occ::async_prelude::*;
use tokio::sync::Barrier;

diesel::table! {
    jobs (id) {
        id -> Integer,
        taken -> Integer,
    }
}

fn setup<D: TestDb>(db: &D) {
    db.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
    db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0), (2, 0, 0), (3, 0, 0)");
}

type FindCounter<DB> = diesel::dsl::Limit<
    diesel::dsl::Select<
        diesel::dsl::Find<counters::table, i32>,
        diesel::dsl::AsSelect<Counter, DB>,
    >,
>;

async fn counter<C>(conn: &mut C, id: i32) -> Counter
where
    C: AsyncConnection<Backend: Send + 'static>,
    FindCounter<C::Backend>: diesel_async::methods::LoadQuery<'static, C, Counter>,
{
    counters::table
        .find(id)
        .select(Counter::as_select())
        .first(conn)
        .await
        .expect("read a counter")
}

diesel::table! {
    docs (id) {
        id -> Integer,
        body -> Text,
        version -> Integer,
    }
}

/// A changeset a handler writes from its input, passed as `&input`.
#[derive(AsChangeset)]
#[diesel(table_name = counters)]
struct CounterInput {
    value: i32,
}

#[derive(AsChangeset)]
#[diesel(table_name = docs)]
struct DocEdit {
    body: String,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Optimistic)]
struct Doc {
    id: i32,
    body: String,
    #[occ(version, generated)]
    version: i32,
}

per_async_backend! {
    async fn a_version_the_database_sets_is_read_back(db) {
        use diesel::connection::SimpleConnection;
        let mut sync = db.conn();
        sync.batch_execute(common::docs_with_version_trigger(&sync)).unwrap();
        let pool = db.deadpool(2);
        let mut conn = pool.get().await.expect("a pooled connection");
        let mut doc: Doc = docs::table.find(1).select(Doc::as_select()).first(&mut conn).await.unwrap();
        let stale = doc.clone();
        doc.body = "a2".into();
        doc.update_versioned(&mut conn).await.unwrap();
        assert_eq!(doc.version, 11, "the trigger's version, read back");
        let stored: Doc = docs::table.find(1).select(Doc::as_select()).first(&mut conn).await.unwrap();
        assert_eq!(stored, doc);
        let mut stale = stale;
        let current = stale.update_versioned_or_current(&mut conn).await.unwrap();
        assert_eq!(current, Some(doc.clone()));
        let mut batch = vec![doc];
        assert!(Doc::update_versioned_all(&mut conn, &mut batch).await.unwrap().is_complete());
        assert_eq!(batch[0].version, 21);
    }

    async fn modify_and_update_where_race_on_a_pool_and_lose_nothing(db) {
        setup(&db);
        // One connection per task: each holds its own through the race.
        let pool = db.deadpool(8);
        let table = Arc::new(occ::Temperature::new());
        let policy = occ::ModifyPolicy::default()
            .retry(RetryPolicy::default().max_attempts(200))
            .temperature(Arc::clone(&table));
        let barrier = Arc::new(Barrier::new(8));
        let mut tasks = Vec::new();
        for task in 0..8 {
            let (pool, policy, barrier) = (pool.clone(), policy.clone(), Arc::clone(&barrier));
            // Spawned: the futures of `modify` and `update_where` are `Send`.
            tasks.push(tokio::spawn(async move {
                let mut conn = pool.get().await.expect("a pooled connection");
                barrier.wait().await;
                let mut refused = 0;
                for _ in 0..20 {
                    // Half the tasks read-modify-write, half decrement guarded,
                    // on the same row; every one of them bumps its version.
                    if task % 2 == 0 {
                        Counter::modify_with(&mut conn, 1, &policy, |c| {
                            c.value += 10;
                            Ok::<_, OccError>(())
                        })
                        .await
                        .unwrap();
                    } else {
                        let value = counters::value;
                        match Counter::update_where(&mut conn, 1, value.ge(1), value.eq(value - 1)).await {
                            Ok(()) => {}
                            Err(OccError::GuardFailed { .. }) => refused += 1,
                            Err(error) => panic!("a guarded update failed: {error}"),
                        }
                    }
                }
                refused
            }));
        }
        let mut refused = 0;
        for task in tasks {
            refused += task.await.expect("a task");
        }
        let mut conn = pool.get().await.unwrap();
        let row = counter(&mut conn, 1).await;
        // 80 modifies of +10 and 80 guarded -1 (those refused wrote nothing).
        assert_eq!(row.value, 800 - (80 - refused));
        assert_eq!(row.version, 80 + (80 - refused));
        let refusal = Counter::modify(&mut conn, 1, |c| {
            Err(AppError::InsufficientStock { left: c.value })
        })
        .await;
        assert!(matches!(refusal, Err(AppError::InsufficientStock { .. })), "{refusal:?}");
    }

    async fn update_if_version_takes_a_borrowed_changeset_as_the_sync_one_does(db) {
        use diesel::connection::SimpleConnection;
        setup(&db);
        let mut sync = db.conn();
        sync.batch_execute(common::docs_with_version_trigger(&sync)).unwrap();
        let pool = db.deadpool(2);
        // Spawned: the future of a write that borrows its changeset is `Send`.
        let written = tokio::spawn(async move {
            let mut conn = pool.get().await.expect("a pooled connection");
            let input = CounterInput { value: 7 };
            let v = Counter::update_if_version(&mut conn, 1, 0, &input).await.unwrap();
            let stale = Counter::update_if_version(&mut conn, 1, 0, &input).await.unwrap_err();
            assert!(stale.is_conflict(), "{stale:?}");
            let edit = DocEdit { body: "edited".into() };
            let body = String::from("by column");
            // A version the database sets comes back from the write.
            let d = Doc::update_if_version(&mut conn, 1, 1, &edit).await.unwrap();
            let d = Doc::update_if_version(&mut conn, 1, d, docs::body.eq(&body)).await.unwrap();
            let missing = Doc::update_if_version(&mut conn, 9, 1, &edit).await.unwrap_err();
            assert!(missing.is_not_found(), "{missing:?}");
            let doc: Doc = docs::table.find(1).select(Doc::as_select()).first(&mut conn).await.unwrap();
            (v, counter(&mut conn, 1).await, d, doc)
        });
        let (v, counter, d, doc) = written.await.expect("the write task");
        assert_eq!((v, counter.value, counter.version), (1, 7, 1));
        assert_eq!((d, doc.body.as_str(), doc.version), (21, "by column", 21));
    }

    async fn a_batch_reports_each_row_as_on_a_sync_connection(db) {
        setup(&db);
        let pool = db.deadpool(2);
        let mut conn = pool.get().await.expect("a pooled connection");
        let mut batch: Vec<Counter> = counters::table
            .select(Counter::as_select())
            .order(counters::id)
            .load(&mut conn)
            .await
            .unwrap();
        Counter::update_if_version(&mut conn, 2, 0, counters::value.eq(20)).await.unwrap();
        diesel::delete(counters::table.find(3)).execute(&mut conn).await.unwrap();
        for c in &mut batch {
            c.value += 1;
        }
        let before = batch.clone();
        let error = Counter::update_versioned_all_or_nothing(&mut conn, &mut batch).await.unwrap_err();
        assert!(error.is_conflict(), "{error:?}");
        assert_eq!(batch, before);
        let report = Counter::update_versioned_all(&mut conn, &mut batch).await.unwrap();
        assert_eq!(report.written(), &[1]);
        assert_eq!(report.conflicts(), &[(2, 1)]);
        assert_eq!(report.missing(), &[3]);
        assert_eq!(batch[0].version, 1);
        assert_eq!(counter(&mut conn, 1).await, batch[0]);
        // A stale copy gets the row as it is now, in place of a conflict.
        let mut stale = before[0].clone();
        let current = stale.update_versioned_or_current(&mut conn).await.unwrap();
        assert_eq!(current.as_ref(), Some(&batch[0]));
        assert_eq!(stale.changed_fields(&batch[0]), ["version"]);
        let report = Counter::delete_versioned_all(&mut conn, &batch).await.unwrap();
        assert_eq!((report.written(), report.conflicts().len(), report.missing()), (&[1][..], 1, &[3][..]));
    }

    async fn sixteen_tasks_on_a_pool_of_four_lose_nothing(db) {
        setup(&db);
        let pool = db.deadpool(4);
        let barrier = Arc::new(Barrier::new(16));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let policy = RetryPolicy::default().max_attempts(1000);
                let mut attempts = 0;
                for _ in 0..100 {
                    let mut conn = pool.get().await.expect("a pooled connection");
                    let retried = occ::retry_counted_async(&mut conn, &policy, async |conn| {
                        let mut c: Counter =
                            counters::table.find(1).select(Counter::as_select()).first(conn).await?;
                        c.value += 1;
                        c.update_versioned(conn).await
                    })
                    .await;
                    retried.result.expect("an increment");
                    attempts += retried.attempts;
                }
                attempts
            }));
        }
        let mut attempts = 0;
        for task in tasks {
            attempts += task.await.expect("a racing task");
        }
        let mut conn = pool.get().await.unwrap();
        let c = counter(&mut conn, 1).await;
        assert_eq!((c.value, c.version), (1600, 1600));
        eprintln!("1600 increments took {attempts} attempts");
    }

    async fn the_same_results_and_errors_as_sync(db) {
        setup(&db);
        let mut conn = db.connect().await;
        let mut fresh = counter(&mut conn, 1).await;
        let mut stale = fresh.clone();
        fresh.value = 5;
        fresh.update_versioned(&mut conn).await.unwrap();
        assert_eq!(fresh.version, 1);

        stale.value = 7;
        match stale.update_versioned(&mut conn).await.unwrap_err() {
            OccError::Conflict { table, key, expected, actual } => {
                assert_eq!((table, key.as_str(), expected.as_str(), actual.as_str()), ("counters", "id = 1", "0", "1"));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!((stale.value, stale.version), (7, 0), "a failed write leaves the model as it was");
        stale.reload(&mut conn).await.unwrap();
        assert_eq!(stale, fresh);

        stale.bump_version(&mut conn).await.unwrap();
        assert_eq!(stale.version, 2);
        let next = Counter::update_if_version(&mut conn, 1, 2, counters::value.eq(9)).await.unwrap();
        assert_eq!(next, 3);
        assert!(Counter::update_if_version(&mut conn, 1, 2, counters::value.eq(10)).await.unwrap_err().is_conflict());

        // Deleted under a stale model: not found, for every write and reload.
        let mut gone = counter(&mut conn, 2).await;
        let deleter = gone.clone();
        deleter.delete_versioned(&mut conn).await.unwrap();
        let error = gone.update_versioned(&mut conn).await.unwrap_err();
        assert!(matches!(error, OccError::NotFound { table: "counters", ref key } if key == "id = 2"), "{error:?}");
        assert!(gone.delete_versioned(&mut conn).await.unwrap_err().is_not_found());
        assert!(gone.reload(&mut conn).await.unwrap_err().is_not_found());

        // A stale delete conflicts and deletes nothing.
        let mut third = counter(&mut conn, 3).await;
        let stale_third = third.clone();
        third.bump_version(&mut conn).await.unwrap();
        assert!(stale_third.delete_versioned(&mut conn).await.unwrap_err().is_conflict());
        assert_eq!(counter(&mut conn, 3).await.version, 1);
    }

    async fn retry_async_is_refused_inside_a_transaction(db) {
        setup(&db);
        let mut conn = db.connect().await;
        let policy = RetryPolicy::default();
        static RAN: AtomicBool = AtomicBool::new(false);
        let error = conn
            .transaction::<_, OccError, _>(async |conn| {
                occ::retry_async(conn, &policy, async |_| {
                    RAN.store(true, Ordering::Relaxed);
                    Ok(())
                })
                .await
            })
            .await
            .unwrap_err();
        assert!(matches!(error, OccError::RetryInsideTransaction { depth: 1 }), "{error:?}");
        assert!(!AtomicBool::load(&RAN, Ordering::Relaxed));
        // A failed attempt rolls back: nothing of it stays.
        let error = occ::retry_async(&mut conn, &policy.max_attempts(1), async |conn| {
            let mut c = counter(conn, 1).await;
            c.value = 42;
            c.update_versioned(conn).await?;
            Err::<(), _>(OccError::NotFound { table: "counters", key: "id = 1".into() })
        })
        .await
        .unwrap_err();
        assert!(error.is_not_found());
        assert_eq!(counter(&mut conn, 1).await.value, 0);
    }

    async fn the_callers_own_error_passes_through_retry_async(db) {
        setup(&db);
        let pool = db.deadpool(1);
        let mut conn = pool.get().await.expect("a pooled connection");
        let ran = std::sync::atomic::AtomicU32::new(0);
        let ran = &ran;
        let outcome = occ::retry_counted_async(&mut conn, &RetryPolicy::default(), async |conn| -> Result<(), AppError> {
            let attempt = ran.fetch_add(1, Ordering::Relaxed) + 1;
            let mut c = counter(conn, 1).await;
            c.value += 10;
            c.update_versioned(conn).await?;
            if attempt == 1 {
                return Err(AppError::Occ(OccError::Conflict {
                    table: "counters",
                    key: "id = 1".into(),
                    expected: "0".into(),
                    actual: "1".into(),
                }));
            }
            Err(AppError::InsufficientStock { left: c.value })
        })
        .await;
        assert_eq!(outcome.attempts, 2);
        assert!(matches!(outcome.result, Err(AppError::InsufficientStock { left: 10 })), "{:?}", outcome.result);
        assert_eq!(counter(&mut conn, 1).await.value, 0, "both attempts were rolled back");
        // diesel's own "no row", through `?`, is not found and not retried.
        let missing = occ::retry_counted_async(&mut conn, &RetryPolicy::default(), async |conn| -> Result<i32, AppError> {
            Ok(counters::table.find(99).select(counters::value).first(conn).await?)
        })
        .await;
        assert_eq!(missing.attempts, 1);
        assert!(matches!(missing.result, Err(AppError::Occ(ref e)) if e.is_not_found()), "{:?}", missing.result);
    }

    async fn bb8_pooled_connections_work_as_mut_pooled(db) {
        setup(&db);
        let pool = db.bb8(2).await;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let policy = RetryPolicy::default().max_attempts(1000);
                for _ in 0..25 {
                    let mut conn = pool.get().await.expect("a pooled connection");
                    occ::retry_async(&mut conn, &policy, async |conn| {
                        let mut c: Counter =
                            counters::table.find(2).select(Counter::as_select()).first(conn).await?;
                        c.value += 1;
                        c.update_versioned(conn).await
                    })
                    .await
                    .expect("an increment");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let mut conn = pool.get().await.unwrap();
        let mut c = counter(&mut conn, 2).await;
        assert_eq!(c.value, 100);
        c.value = 0;
        c.update_versioned(&mut conn).await.unwrap();
        c.reload(&mut conn).await.unwrap();
        assert_eq!(c.version, 101);
    }
}

/// Row locks: PostgreSQL and MySQL/MariaDB.
#[cfg(any(
    all(feature = "async-postgres", feature = "postgres"),
    all(feature = "async-mysql", feature = "mysql")
))]
mod server {
    use std::time::Duration;

    use common::nonblocking::{in_transaction, read};

    use super::*;

    diesel::table! {
        jobs_done (id) {
            id -> Integer,
            worker -> Integer,
        }
    }

    fn lock_timeout<D: AsyncTestDb>(_: &D) -> &'static str {
        D::LOCK_TIMEOUT
    }

    async fn is_in_transaction<D: AsyncTestDb, C>(_: &D, conn: &mut C) -> bool
    where
        C: AsyncConnection,
        diesel::query_builder::SqlQuery:
            diesel_async::methods::LoadQuery<'static, C, common::nonblocking::Text>,
    {
        in_transaction::<D, C>(conn).await
    }

    /// Holds a row lock from a connection of its own until dropped or
    /// released.
    struct Holder<C: AsyncConnection>(C);

    impl<C: AsyncConnection> Holder<C> {
        async fn lock(mut conn: C, sql: &str) -> Self {
            conn.batch_execute("BEGIN").await.unwrap();
            conn.batch_execute(sql).await.unwrap();
            Self(conn)
        }

        async fn release(mut self) {
            self.0.batch_execute("ROLLBACK").await.unwrap();
        }
    }

    const LOCK_ROW_1: &str = "SELECT id FROM counters WHERE id = 1 FOR UPDATE";

    per_async_server! {
        async fn nowait_and_timeout_fail_at_once_and_restore_the_timeout(db) {
            setup(&db);
            let mut conn = db.connect().await;
            let default = read(&mut conn, lock_timeout(&db)).await;
            let holder = Holder::lock(db.connect().await, LOCK_ROW_1).await;
            let once = RetryPolicy::default().max_attempts(1);

            let error = occ::retry_async(&mut conn, &once, async |conn| {
                Counter::lock(1).exclusive().nowait().get_result::<Counter, _>(conn).await
            })
            .await
            .unwrap_err();
            assert!(matches!(error, OccError::LockNotAvailable(_)), "{error:?}");

            // Inside a transaction of diesel-async's own, as well.
            let started = std::time::Instant::now();
            let error = conn
                .transaction::<_, OccError, _>(async |conn| {
                    Counter::lock(1).exclusive().timeout(Duration::from_millis(300)).get_result::<Counter, _>(conn).await
                })
                .await
                .unwrap_err();
            assert!(matches!(error, OccError::LockTimeout(_)), "{error:?}");
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!(read(&mut conn, lock_timeout(&db)).await, default);

            // SKIP LOCKED leaves the held row out; NOT IN TRANSACTION sends nothing.
            let free: Vec<Counter> = occ::retry_async(&mut conn, &once, async |conn| {
                counters::table
                    .select(Counter::as_select())
                    .order(counters::id)
                    .exclusive()
                    .skip_locked()
                    .load(conn)
                    .await
            })
            .await
            .unwrap();
            assert_eq!(free.iter().map(|c| c.id).collect::<Vec<_>>(), [2, 3]);
            let error = Counter::find_exclusive(&mut conn, 2).await.unwrap_err();
            assert!(matches!(error, OccError::NotInTransaction { .. }), "{error:?}");
            // The way out it names is the async one.
            assert!(error.to_string().ends_with("run it inside conn.transaction(..) or occ::retry_async(..)"), "{error}");
            holder.release().await;

            // Found and not found, through every terminal.
            let (one, shared, missing, first) = occ::retry_async(&mut conn, &once, async |conn| -> Result<_, OccError> {
                let one = Counter::find_exclusive(conn, 1).await?;
                let shared = Counter::find_shared(conn, 2).await?;
                let missing = Counter::lock(99).exclusive().optional::<Counter, _>(conn).await?;
                let first: i32 = counters::table.select(counters::id).order(counters::id.desc()).exclusive().first(conn).await?;
                let all: Vec<i32> = counters::table.select(counters::id).shared().get_results(conn).await?;
                assert_eq!(all.len(), 3);
                Ok((one, shared, missing, first))
            })
            .await
            .unwrap();
            assert_eq!((one.id, shared.id, missing, first), (1, 2, None, 3));
            let error = occ::retry_async(&mut conn, &once, async |conn| Counter::find_exclusive(conn, 99).await)
                .await
                .unwrap_err();
            assert!(matches!(error, OccError::NotFound { table: "counters", ref key } if key == "id = 99"), "{error:?}");
        }

        async fn a_skip_locked_queue_hands_out_each_job_once(db) {
            db.exec("CREATE TABLE jobs (id INTEGER PRIMARY KEY, taken INTEGER NOT NULL)");
            let values: Vec<String> = (1..=40).map(|i| format!("({i}, 0)")).collect();
            db.exec(&format!("INSERT INTO jobs (id, taken) VALUES {}", values.join(", ")));
            let pool = db.deadpool(4);
            let mut tasks = Vec::new();
            for worker in 1..=4 {
                let pool = pool.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = pool.get().await.unwrap();
                    let mut mine = Vec::new();
                    loop {
                        let job = occ::retry_async(&mut conn, &RetryPolicy::default(), async |conn| -> Result<_, OccError> {
                            let job: Option<i32> = jobs::table
                                .select(jobs::id)
                                .filter(jobs::taken.eq(0))
                                .order(jobs::id)
                                .limit(1)
                                .exclusive()
                                .skip_locked()
                                .optional(conn)
                                .await?;
                            if let Some(id) = job {
                                diesel::update(jobs::table.find(id)).set(jobs::taken.eq(worker)).execute(conn).await?;
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            Ok(job)
                        })
                        .await
                        .unwrap();
                        match job {
                            Some(id) => mine.push(id),
                            None => break mine,
                        }
                    }
                }));
            }
            let mut taken = Vec::new();
            for task in tasks {
                taken.extend(task.await.unwrap());
            }
            taken.sort_unstable();
            assert_eq!(taken, (1..=40).collect::<Vec<_>>(), "each job exactly once");
            let mut conn = pool.get().await.unwrap();
            let left: i64 = jobs::table.filter(jobs::taken.eq(0)).count().get_result(&mut conn).await.unwrap();
            assert_eq!(left, 0);
        }

        async fn a_deadlock_is_retried_and_both_commit(db) {
            setup(&db);
            let barrier = Arc::new(Barrier::new(2));
            let mut tasks = Vec::new();
            for (first, second) in [(1, 2), (2, 1)] {
                let mut conn = db.connect().await;
                let barrier = Arc::clone(&barrier);
                tasks.push(tokio::spawn(async move {
                    let met = AtomicBool::new(false);
                    occ::retry_counted_async(&mut conn, &RetryPolicy::default(), async |conn| {
                        let mut a = Counter::find_exclusive(conn, first).await?;
                        // Both hold their first row before either asks for its second.
                        if !met.swap(true, Ordering::Relaxed) {
                            barrier.wait().await;
                        }
                        let mut b = Counter::find_exclusive(conn, second).await?;
                        a.value += 1;
                        b.value += 1;
                        a.update_versioned(conn).await?;
                        b.update_versioned(conn).await
                    })
                    .await
                }));
            }
            let mut attempts = 0;
            for task in tasks {
                let retried = task.await.unwrap();
                retried.result.expect("both transfers commit");
                attempts += retried.attempts;
            }
            assert!(attempts >= 3, "one of the two must have been chosen as the deadlock victim and retried");
            let mut conn = db.connect().await;
            assert_eq!((counter(&mut conn, 1).await.value, counter(&mut conn, 2).await.value), (2, 2));
        }

        async fn a_dropped_future_leaves_the_next_checkout_clean(db) {
            setup(&db);
            let pool = db.deadpool(1);
            let default = {
                let mut conn = pool.get().await.unwrap();
                read(&mut conn, lock_timeout(&db)).await
            };
            let holder = Holder::lock(db.connect().await, LOCK_ROW_1).await;
            let long = Duration::from_secs(30);
            let cut = Duration::from_millis(300);
            let policy = RetryPolicy::default();

            // 1. retry_async, waiting for a lock with a timeout set.
            {
                let mut conn = pool.get().await.unwrap();
                let call = occ::retry_async(&mut conn, &policy, async |conn| {
                    Counter::lock(1).exclusive().timeout(long).get_result::<Counter, _>(conn).await
                });
                assert!(tokio::time::timeout(cut, call).await.is_err(), "the lock is held: the call must still wait");
            }
            assert_clean(&db, &mut pool.get().await.expect("the next checkout"), &default, "step 1").await;

            // 2. A lock wait inside the caller's own diesel-async transaction.
            {
                let mut conn = pool.get().await.unwrap();
                let call = conn.transaction::<_, OccError, _>(async |conn| {
                    Counter::lock(1).exclusive().timeout(long).get_result::<Counter, _>(conn).await
                });
                assert!(tokio::time::timeout(cut, call).await.is_err());
            }
            assert_clean(&db, &mut pool.get().await.expect("the next checkout"), &default, "step 2").await;

            // 3. update_versioned inside a transaction, blocked on the row.
            {
                let mut conn = pool.get().await.unwrap();
                let mut c = counter(&mut conn, 1).await;
                c.value = 5;
                let call = conn.transaction::<_, OccError, _>(async |conn| c.update_versioned(conn).await);
                assert!(tokio::time::timeout(cut, call).await.is_err());
            }
            assert_clean(&db, &mut pool.get().await.expect("the next checkout"), &default, "step 3").await;

            // 4. A bare connection. PostgreSQL's client drops the reply of
            //    a dropped call: occ's next call rolls back, puts the
            //    session's timeout back and goes on. MySQL's leaves it
            //    unread: occ's next call finds the replies out of step and
            //    says the connection is broken, never reading one statement's
            //    reply as another's.
            let mut bare = db.connect().await;
            let call = occ::retry_async(&mut bare, &policy, async |conn| {
                Counter::lock(1).exclusive().timeout(long).get_result::<Counter, _>(conn).await
            });
            assert!(tokio::time::timeout(cut, call).await.is_err());
            let mut writer = db.connect().await;
            let mut stale = counter(&mut writer, 1).await;
            let call = stale.update_versioned(&mut writer);
            assert!(tokio::time::timeout(cut, call).await.is_err(), "the row is locked: the write must still wait");
            holder.release().await;

            let after_lock = occ::retry_async(&mut bare, &policy, async |conn| {
                Counter::find_exclusive(conn, 1).await
            })
            .await;
            let after_write = stale.update_versioned(&mut writer).await;
            if db.async_url().starts_with("mysql") || db.async_url().starts_with("mariadb") {
                for result in [after_lock.map(|_| ()), after_write] {
                    assert!(matches!(result, Err(OccError::ConnectionBroken(_))), "{result:?}");
                }
            } else {
                assert_eq!(after_lock.expect("the interrupted connection is repaired").value, 0);
                // The dropped UPDATE was already on the server, and ran once
                // the lock was free: the stale model now conflicts with it.
                assert!(
                    matches!(&after_write, Err(OccError::Conflict { actual, .. }) if actual == "1"),
                    "{after_write:?}"
                );
                assert!(!is_in_transaction(&db, &mut bare).await);
                assert_eq!(read(&mut bare, lock_timeout(&db)).await, default);
            }
            let mut fresh = db.connect().await;
            let row = counter(&mut fresh, 1).await;
            assert!(row.version <= 1, "at most the one write that was let through: {row:?}");
        }
    }

    /// The connection the pool hands out next is outside any transaction,
    /// with the server's lock timeout.
    async fn assert_clean<D: AsyncTestDb, C>(db: &D, conn: &mut C, default: &str, step: &str)
    where
        C: AsyncConnection,
        diesel::query_builder::SqlQuery:
            diesel_async::methods::LoadQuery<'static, C, common::nonblocking::Text>,
    {
        assert!(
            !in_transaction::<D, _>(conn).await,
            "after {step}: in a transaction"
        );
        assert_eq!(
            read(conn, lock_timeout(db)).await,
            default,
            "after {step}: the lock timeout"
        );
    }
}

/// Every async method's future is `Send`: spawned on tokio (as an axum
/// handler needs), on each kind of connection, bare and pooled. A compile
/// test: these functions are never called. (Without a server backend the
/// lock macros go unused.)
#[allow(dead_code, unused_imports, unused_macros)]
mod spawnable {
    use std::time::Duration;

    use super::*;

    /// Versioned writes, reload and retry, on `$conn` (an expression giving
    /// `&mut` a connection).
    macro_rules! writes {
        ($conn:expr, $c:ident) => {{
            let conn = $conn;
            $c.update_versioned(conn).await.unwrap();
            $c.update_versioned_or_current(conn).await.unwrap();
            $c.bump_version(conn).await.unwrap();
            $c.reload(conn).await.unwrap();
            $c.delete_versioned(conn).await.unwrap();
            let mut batch = vec![$c.clone()];
            Counter::update_versioned_all(conn, &mut batch)
                .await
                .unwrap();
            Counter::update_versioned_all_or_nothing(conn, &mut batch)
                .await
                .unwrap();
            Counter::delete_versioned_all(conn, &batch).await.unwrap();
            Counter::delete_versioned_all_or_nothing(conn, &batch)
                .await
                .unwrap();
            Counter::update_if_version(conn, 1, 1, counters::value.eq(2))
                .await
                .unwrap();
            let policy = RetryPolicy::default();
            occ::retry_async(conn, &policy, async |conn| {
                let mut c: Counter = counters::table
                    .find(1)
                    .select(Counter::as_select())
                    .first(conn)
                    .await?;
                c.value += 1;
                c.update_versioned(conn).await
            })
            .await
            .unwrap();
            occ::retry_counted_async(conn, &policy, async |_| Ok::<_, OccError>(()))
                .await
                .result
                .unwrap();
        }};
    }

    /// Row locks through every terminal, inside `retry_async`.
    macro_rules! locks {
        ($conn:expr) => {{
            occ::retry_async(
                $conn,
                &RetryPolicy::default(),
                async |conn| -> Result<_, OccError> {
                    let _: Counter = Counter::find_exclusive(conn, 1).await?;
                    let _: Counter = Counter::find_shared(conn, 1).await?;
                    let _: Counter = Counter::lock(1)
                        .exclusive()
                        .nowait()
                        .get_result(conn)
                        .await?;
                    let _: Vec<i32> = counters::table
                        .select(counters::id)
                        .exclusive()
                        .skip_locked()
                        .load(conn)
                        .await?;
                    let _: Vec<i32> = counters::table
                        .select(counters::id)
                        .shared()
                        .get_results(conn)
                        .await?;
                    let _: Option<i32> = counters::table
                        .select(counters::id)
                        .exclusive()
                        .timeout(Duration::from_secs(1))
                        .optional(conn)
                        .await?;
                    let _: i32 = counters::table
                        .select(counters::id)
                        .shared()
                        .first(conn)
                        .await?;
                    Ok(())
                },
            )
            .await
            .unwrap();
        }};
    }

    macro_rules! spawnable {
        ($name:ident, $conn:ty $(, $locks:ident)?) => {
            mod $name {
                use super::*;
                type Conn = $conn;

                fn bare(mut conn: Conn, mut c: Counter) {
                    tokio::spawn(async move {
                        writes!(&mut conn, c);
                        $( $locks!(&mut conn); )?
                    });
                }

                fn deadpool(pool: diesel_async::pooled_connection::deadpool::Pool<Conn>, mut c: Counter) {
                    tokio::spawn(async move {
                        let mut conn = pool.get().await.unwrap();
                        writes!(&mut conn, c);
                        $( $locks!(&mut conn); )?
                    });
                }

                fn bb8(pool: diesel_async::pooled_connection::bb8::Pool<Conn>, mut c: Counter) {
                    tokio::spawn(async move {
                        let mut conn = pool.get().await.unwrap();
                        writes!(&mut conn, c);
                        $( $locks!(&mut conn); )?
                    });
                }
            }
        };
    }

    #[cfg(feature = "async-sqlite")]
    spawnable!(
        sqlite,
        diesel_async::sync_connection_wrapper::SyncConnectionWrapper<SqliteConnection>
    );
    /// And PostgreSQL's own strengths.
    macro_rules! pg_locks {
        ($conn:expr) => {{
            locks!(&mut *$conn);
            occ::retry_async(
                $conn,
                &RetryPolicy::default(),
                async |conn| -> Result<_, OccError> {
                    let _: Counter = Counter::lock(1)
                        .no_key_exclusive()
                        .nowait()
                        .get_result(conn)
                        .await?;
                    let _: i32 = counters::table
                        .select(counters::id)
                        .key_shared()
                        .first(conn)
                        .await?;
                    Ok(())
                },
            )
            .await
            .unwrap();
        }};
    }

    #[cfg(feature = "async-postgres")]
    spawnable!(postgres, diesel_async::AsyncPgConnection, pg_locks);
    #[cfg(feature = "async-mysql")]
    spawnable!(mysql, diesel_async::AsyncMysqlConnection, locks);
}
