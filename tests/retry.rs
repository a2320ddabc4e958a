//! `occ::retry` (issue 3) on every backend: racing writers all land, a
//! transaction that keeps failing gives up with its last error, a retry inside
//! a transaction refuses to run, and lock failures are retried only on request.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};

use common::{counters, Counter};
use common::{AppError, TestDb};
use occ::prelude::*;

fn setup<D: TestDb>(db: &D) -> D::Conn {
    db.exec(
        "CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
         version INTEGER NOT NULL)",
    );
    db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0)");
    db.conn()
}

fn a_conflict() -> OccError {
    OccError::Conflict {
        table: "counters",
        key: "id = 1".into(),
        expected: "0".into(),
        actual: "1".into(),
    }
}

per_backend! {
    fn the_hook_and_the_count_report_each_retry(db) {
        let mut conn = setup(&db);
        let stale: Counter = counters::table.find(1).select(Counter::as_select()).first(&mut conn).unwrap();
        // Another writer moves the row on after it was read.
        Counter::update_if_version(&mut db.conn(), 1, 0, counters::value.eq(5)).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hook = Arc::clone(&seen);
        let policy = RetryPolicy::default()
            .on_retry(move |attempt, error| hook.lock().unwrap().push((attempt, error.kind())));
        let mut first = Some(stale);
        let outcome = occ::retry_counted(&mut conn, &policy, |conn| -> Result<_, OccError> {
            // The first attempt writes the stale copy, as a careless caller would.
            let mut counter = match first.take() {
                Some(stale) => stale,
                None => counters::table.find(1).select(Counter::as_select()).first(conn)?,
            };
            counter.value += 1;
            counter.update_versioned(conn)?;
            Ok(counter.value)
        });
        assert_eq!(outcome.result.unwrap(), 6);
        assert_eq!(outcome.attempts, 2);
        assert_eq!(*seen.lock().unwrap(), [(1, "conflict")]);
        // A refused call ran no attempt.
        let nested = conn.transaction(|conn| {
            Ok::<_, OccError>(occ::retry_counted(conn, &policy, |_| Ok::<_, OccError>(())).attempts)
        });
        assert_eq!(nested.unwrap(), 0);
    }

    fn racing_increments_all_land(db) {
        let _ = setup(&db);
        const THREADS: usize = 8;
        const PER_THREAD: usize = 100;
        let barrier = Arc::new(Barrier::new(THREADS));
        let attempts = Arc::new(AtomicU32::new(0));
        let conflicts = Arc::new(AtomicU32::new(0));
        let policy = RetryPolicy::default().max_attempts(100);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                let mut conn = db.conn();
                let (barrier, attempts, conflicts, policy) =
                    (barrier.clone(), attempts.clone(), conflicts.clone(), policy.clone());
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..PER_THREAD {
                        occ::retry(&mut conn, &policy, |conn| {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            let mut counter: Counter = counters::table
                                .find(1)
                                .select(Counter::as_select())
                                .first(conn)?;
                            counter.value += 1;
                            counter.update_versioned(conn).inspect_err(|e| {
                                if e.is_retryable() {
                                    conflicts.fetch_add(1, Ordering::Relaxed);
                                }
                            })
                        })
                        .expect("an increment gave up");
                    }
                });
            }
        });
        let total: Counter = counters::table
            .find(1)
            .select(Counter::as_select())
            .first(&mut db.conn())
            .unwrap();
        let attempts = attempts.load(Ordering::Relaxed);
        let conflicts = conflicts.load(Ordering::Relaxed);
        eprintln!(
            "{}: {} increments, {attempts} attempts, {conflicts} retryable errors from update_versioned",
            module_path!(),
            THREADS * PER_THREAD
        );
        assert_eq!(total.value as usize, THREADS * PER_THREAD);
        assert_eq!(total.version as usize, THREADS * PER_THREAD);
        assert!(conflicts > 0, "8 racing writers never conflicted");
        // Every extra attempt was caused by an error the closure saw (a read
        // can also be told to retry on SQLite, so >= rather than ==).
        assert!(attempts as usize >= THREADS * PER_THREAD + conflicts as usize);
    }

    fn gives_up_after_max_attempts_with_the_last_error(db) {
        let mut conn = setup(&db);
        let mut ran = 0;
        let result: Result<(), OccError> = occ::retry(
            &mut conn,
            &RetryPolicy::default().max_attempts(3),
            |_| {
                ran += 1;
                Err(OccError::Conflict {
                    table: "counters",
                    key: "id = 1".into(),
                    expected: ran.to_string(),
                    actual: "4".into(),
                })
            },
        );
        assert_eq!(ran, 3);
        match result {
            Err(OccError::Conflict { expected, .. }) => assert_eq!(expected, "3"),
            other => panic!("expected the third conflict, got {other:?}"),
        }
    }

    fn a_non_retryable_error_is_returned_at_once(db) {
        let mut conn = setup(&db);
        let mut ran = 0;
        let result: Result<(), OccError> =
            occ::retry(&mut conn, &RetryPolicy::default().max_attempts(5), |_| {
                ran += 1;
                Err(OccError::NotFound { table: "counters", key: "id = 9".into() })
            });
        assert_eq!(ran, 1);
        assert!(result.unwrap_err().is_not_found());
    }

    fn the_callers_own_error_ends_the_retry_unchanged_and_rolls_back(db) {
        let mut conn = setup(&db);
        let mut ran = 0;
        let outcome = occ::retry_counted(&mut conn, &RetryPolicy::default(), |conn| -> Result<(), _> {
            ran += 1;
            diesel::update(counters::table.find(1))
                .set(counters::value.eq(counters::value + 10))
                .execute(conn)?;
            if ran == 1 {
                // occ's own errors inside the caller's type are still retried.
                return Err(AppError::Occ(a_conflict()));
            }
            let value: i32 = counters::table.find(1).select(counters::value).first(conn)?;
            Err(AppError::InsufficientStock { left: value })
        });
        assert_eq!(outcome.attempts, 2);
        assert!(matches!(outcome.result, Err(AppError::InsufficientStock { left: 10 })), "{:?}", outcome.result);
        // Both attempts were rolled back.
        let stored: i32 = counters::table.find(1).select(counters::value).first(&mut conn).unwrap();
        assert_eq!(stored, 0);
        // Refused inside a transaction: occ's error, in the caller's type.
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let refused: Result<(), AppError> = occ::retry(conn, &RetryPolicy::default(), |_| Ok(()));
            assert!(matches!(refused, Err(AppError::Occ(OccError::RetryInsideTransaction { depth: 1 }))), "{refused:?}");
            Ok(())
        })
        .unwrap();
    }

    fn a_diesel_no_row_is_not_found_and_not_retried(db) {
        let mut conn = setup(&db);
        let outcome = occ::retry_counted(&mut conn, &RetryPolicy::default(), |conn| -> Result<_, OccError> {
            Ok(counters::table.find(99).select(counters::value).first::<i32>(conn)?)
        });
        assert_eq!(outcome.attempts, 1);
        let error = outcome.result.unwrap_err();
        assert!(error.is_not_found(), "{error:?}");
        assert_eq!(error.kind(), "not_found");
        assert!(matches!(error, OccError::NoRow { query: None }), "{error:?}");
        assert_eq!(error.to_string(), "the query found no row");
    }

    fn an_attempt_that_fails_is_rolled_back(db) {
        let mut conn = setup(&db);
        let mut ran = 0;
        let value = occ::retry(&mut conn, &RetryPolicy::default().max_attempts(3), |conn| {
            ran += 1;
            diesel::update(counters::table.find(1))
                .set(counters::value.eq(counters::value + 10))
                .execute(conn)?;
            if ran < 3 {
                return Err(a_conflict());
            }
            Ok(counters::table.find(1).select(counters::value).first::<i32>(conn)?)
        })
        .unwrap();
        assert_eq!(ran, 3);
        // Only the third attempt's +10 was committed.
        assert_eq!(value, 10);
        let stored: i32 = counters::table.find(1).select(counters::value).first(&mut conn).unwrap();
        assert_eq!(stored, 10);
    }

    fn retry_inside_a_transaction_is_refused(db) {
        let mut conn = setup(&db);
        let mut ran = false;
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let result = occ::retry(conn, &RetryPolicy::default(), |_| {
                ran = true;
                Ok(())
            });
            match result {
                Err(OccError::RetryInsideTransaction { depth }) => assert_eq!(depth, 1),
                other => panic!("expected RetryInsideTransaction, got {other:?}"),
            }
            Ok(())
        })
        .unwrap();
        assert!(!ran, "the closure ran inside an open transaction");
        // Outside, it runs.
        occ::retry(&mut conn, &RetryPolicy::default(), |_| -> Result<_, OccError> {
            ran = true;
            Ok(())
        })
        .unwrap();
        assert!(ran);
    }
}

#[cfg(feature = "postgres")]
#[test]
fn serializable_isolation_is_applied_on_postgres() {
    use diesel::sql_types::Text;

    #[derive(QueryableByName)]
    struct Level {
        #[diesel(sql_type = Text)]
        transaction_isolation: String,
    }

    let Some(db) = common::PgDb::new("retry::serializable_isolation_is_applied_on_postgres") else {
        return;
    };
    let mut conn = db.conn();
    let show = |conn: &mut PgConnection| -> Result<String, OccError> {
        Ok(diesel::sql_query("SHOW transaction_isolation")
            .get_result::<Level>(conn)?
            .transaction_isolation)
    };
    let level = occ::retry(
        &mut conn,
        &RetryPolicy::default().isolation(Isolation::Serializable),
        |conn| show(conn),
    )
    .unwrap();
    assert_eq!(level, "serializable");
    let level = occ::retry(
        &mut conn,
        &RetryPolicy::default().isolation(Isolation::RepeatableRead),
        |conn| show(conn),
    )
    .unwrap();
    assert_eq!(level, "repeatable read");
    // Without a level, the server's default; the level did not stick.
    let level = occ::retry(&mut conn, &RetryPolicy::default(), |conn| show(conn)).unwrap();
    assert_eq!(level, "read committed");
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server {
    use diesel::connection::SimpleConnection;

    use super::*;

    /// B's closure tries a NOWAIT lock on the row A holds; after its first
    /// failure it lets A commit, so a second attempt would succeed. Returns how
    /// many times the closure ran and what `retry` returned. (A macro: the
    /// lock builders' bounds are per connection type.)
    macro_rules! lock_failure_then_release {
        ($db:expr, $policy:expr) => {{
            let db = $db;
            let _ = setup(db);
            let mut a = db.conn();
            let mut b = db.conn();
            let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let (released_tx, released_rx) = std::sync::mpsc::channel::<()>();
            std::thread::scope(|s| {
                s.spawn(move || {
                    a.transaction::<_, OccError, _>(|a| {
                        counters::table
                            .find(1)
                            .select(counters::value)
                            .exclusive()
                            .load::<i32, _>(a)?;
                        locked_tx.send(()).unwrap();
                        // Bounded: the test fails rather than hangs if B never asks.
                        let _ = release_rx.recv_timeout(std::time::Duration::from_secs(5));
                        Ok(())
                    })
                    .unwrap();
                    released_tx.send(()).unwrap();
                });
                locked_rx.recv().unwrap();
                let mut ran = 0;
                let result = occ::retry(&mut b, &$policy, |b| {
                    ran += 1;
                    let got = counters::table
                        .find(1)
                        .select(counters::value)
                        .exclusive()
                        .nowait()
                        .get_result::<i32, _>(b);
                    if ran == 1 {
                        release_tx.send(()).unwrap();
                        released_rx
                            .recv_timeout(std::time::Duration::from_secs(5))
                            .unwrap();
                    }
                    got
                });
                (ran, result)
            })
        }};
    }

    /// This connection's id on the server, and the SQL another connection
    /// runs to end it.
    fn killer<C: Connection + diesel::connection::LoadConnection>(conn: &mut C) -> String
    where
        diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Id>,
    {
        let pg = std::any::type_name::<C>().contains("Pg");
        let id = diesel::sql_query(if pg {
            "SELECT CAST(pg_backend_pid() AS BIGINT) AS id"
        } else {
            "SELECT CAST(CONNECTION_ID() AS SIGNED) AS id"
        })
        .get_result::<Id>(conn)
        .expect("read the connection id")
        .id;
        if pg {
            format!("SELECT pg_terminate_backend({id})")
        } else {
            format!("KILL CONNECTION {id}")
        }
    }

    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }

    per_server! {
        fn a_connection_lost_mid_transaction_is_broken_and_not_retried(db) {
            let _ = setup(&db);
            let mut conn = db.conn();
            let kill = killer(&mut conn);
            let outcome = occ::retry_counted(&mut conn, &RetryPolicy::default(), |conn| -> Result<_, OccError> {
                db.conn().batch_execute(&kill).expect("end the connection");
                counters::table.find(1).select(counters::value).first::<i32>(conn)?;
                Ok(())
            });
            assert_eq!(outcome.attempts, 1, "{:?}", outcome.result);
            let error = outcome.result.unwrap_err();
            assert_eq!(error.kind(), "connection_broken", "{error:?}");
            assert!(!error.is_retryable());
        }

        fn a_connection_lost_in_commit_has_an_unknown_outcome(db) {
            let _ = setup(&db);
            let mut conn = db.conn();
            let kill = killer(&mut conn);
            let outcome = occ::retry_counted(&mut conn, &RetryPolicy::default(), |conn| -> Result<_, OccError> {
                Counter::update_if_version(conn, 1, 0, counters::value.eq(9))?;
                db.conn().batch_execute(&kill).expect("end the connection");
                // Give the server a moment to close the socket.
                std::thread::sleep(std::time::Duration::from_millis(100));
                Ok(())
            });
            assert_eq!(outcome.attempts, 1, "{:?}", outcome.result);
            let error = outcome.result.unwrap_err();
            assert_eq!(error.kind(), "commit_outcome_unknown", "{error:?}");
            assert!(!error.is_retryable());
            // Here the server had not committed: the row is as it was.
            let value: i32 = counters::table.find(1).select(counters::value).first(&mut db.conn()).unwrap();
            assert_eq!(value, 0);
        }

        fn a_connection_lost_under_a_write_outside_a_transaction_has_an_unknown_outcome(db) {
            // A plain versioned write commits by itself: a connection that
            // breaks while it runs (here: while it waits for a row lock)
            // leaves that commit unknown, as a broken COMMIT does.
            let _ = setup(&db);
            let mut holder = db.conn();
            let mut writer = db.conn();
            let kill = killer(&mut writer);
            let mut row: Counter = counters::table.find(1).select(Counter::as_select()).first(&mut writer).unwrap();
            holder.transaction::<_, OccError, _>(|holder| {
                Counter::find_exclusive(holder, 1)?;
                let error = std::thread::scope(|s| {
                    let waiting = s.spawn(|| {
                        row.value = 5;
                        row.update_versioned(&mut writer)
                    });
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    db.conn().batch_execute(&kill).expect("end the connection");
                    waiting.join().unwrap()
                });
                let error = error.unwrap_err();
                assert_eq!(error.kind(), "commit_outcome_unknown", "{error:?}");
                assert!(!error.is_retryable() && !error.needs_new_connection());
                Ok(())
            }).unwrap();
            // This one had not committed: the row is as it was.
            let value: i32 = counters::table.find(1).select(counters::value).first(&mut db.conn()).unwrap();
            assert_eq!(value, 0);
        }

        fn a_statement_timeout_is_not_a_lock_timeout(db) {
            let _ = setup(&db);
            let mut holder = db.conn();
            let mut waiter = db.conn();
            let pg = std::any::type_name_of_val(&waiter).contains("Pg");
            let limit = |ms: u32| {
                if pg {
                    format!("SET statement_timeout = {ms}")
                } else {
                    format!("SET SESSION max_statement_time = {}", f64::from(ms) / 1000.0)
                }
            };
            // A statement that works too long.
            waiter.batch_execute(&limit(200)).unwrap();
            let sleep = if pg { "SELECT pg_sleep(2)" } else { "SELECT SLEEP(2)" };
            let error = OccError::from(waiter.batch_execute(sleep).unwrap_err());
            assert_eq!(error.kind(), "statement_timeout", "{error:?}");
            assert!(!error.is_lock_failure() && !error.is_retryable());
            holder
                .transaction::<_, OccError, _>(|holder| {
                    Counter::find_exclusive(holder, 1)?;
                    // A lock wait with no lock timeout of its own ends at the
                    // statement's limit, and says so; it is not retried.
                    let outcome = occ::retry_counted(&mut waiter, &RetryPolicy::default().retry_lock_failures(true), |w| {
                        counters::table.find(1).select(counters::value).exclusive().get_result::<i32, _>(w)
                    });
                    assert_eq!(outcome.attempts, 1, "{:?}", outcome.result);
                    let error = outcome.result.unwrap_err();
                    assert_eq!(error.kind(), "statement_timeout", "{error:?}");
                    // A lock timeout shorter than the statement's limit is a
                    // lock timeout.
                    waiter.batch_execute(&limit(5000)).unwrap();
                    let error = waiter
                        .transaction::<_, OccError, _>(|w| {
                            counters::table
                                .find(1)
                                .select(counters::value)
                                .exclusive()
                                .timeout(std::time::Duration::from_millis(200))
                                .get_result::<i32, _>(w)
                        })
                        .unwrap_err();
                    assert_eq!(error.kind(), "lock_timeout", "{error:?}");
                    Ok(())
                })
                .unwrap();
            // The waiter's connection goes on, and nothing changed.
            let row: Counter = counters::table.find(1).select(Counter::as_select()).first(&mut waiter).unwrap();
            assert_eq!((row.value, row.version), (0, 0));
        }

        fn lock_failures_are_not_retried_by_default(db) {
            let (ran, result) = lock_failure_then_release!(&db, RetryPolicy::default());
            assert_eq!(ran, 1);
            match result {
                Err(OccError::LockNotAvailable(_)) => {}
                other => panic!("expected LockNotAvailable, got {other:?}"),
            }
        }

        fn lock_failures_are_retried_on_request(db) {
            let (ran, result) =
                lock_failure_then_release!(&db, RetryPolicy::default().retry_lock_failures(true));
            assert_eq!(ran, 2);
            assert_eq!(result.unwrap(), 0);
        }
    }
}

/// With the `tracing` feature, a conflict and the retry after it are events
/// on target `occ`.
#[cfg(all(feature = "tracing", feature = "sqlite"))]
#[test]
fn conflicts_and_retries_are_tracing_events() {
    let db = common::SqliteDb::new("retry::conflicts_and_retries_are_tracing_events");
    let mut conn = setup(&db);
    let policy = RetryPolicy::default().max_attempts(2);
    let (result, events): (Result<(), OccError>, _) = common::traced(|| {
        occ::retry(&mut conn, &policy, |conn| {
            Counter::update_if_version(conn, 1, 7, counters::value.eq(1))?;
            Ok(())
        })
    });
    assert!(result.unwrap_err().is_conflict());
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(lines.len(), 4, "{events}");
    // Each attempt's conflict, the retry between them, and the give-up.
    assert!(
        lines[0].starts_with("DEBUG occ message=version conflict on counters (id = 1)"),
        "{events}"
    );
    assert!(lines[0].ends_with(r#"kind="conflict""#), "{events}");
    assert!(
        lines[1].starts_with("DEBUG occ message=retrying the transaction after: version conflict"),
        "{events}"
    );
    assert!(
        lines[1].contains(r#"attempt=1 kind="conflict" pause_ms="#),
        "{events}"
    );
    assert!(
        lines[2].starts_with("DEBUG occ message=version conflict on counters"),
        "{events}"
    );
    assert!(
        lines[3].starts_with("WARN occ message=gave up after 2 attempts: version conflict"),
        "{events}"
    );
    assert!(
        lines[3].ends_with(r#"attempts=2 kind="conflict""#),
        "{events}"
    );
}
