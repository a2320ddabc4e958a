//! Row locks (issue 3) against real PostgreSQL and MariaDB, with two or more
//! connections: NOWAIT, SKIP LOCKED, lock timeouts and their restored
//! settings, deadlocks, the PostgreSQL strength conflict table, and the
//! anomalies (write skew, read skew) that locks prevent and plain reads do not.
//!
//! Every wait is bounded: the waiting connections get a session lock timeout
//! of a few seconds, so a broken lock fails a test instead of hanging it.

#![cfg(any(feature = "postgres", feature = "mysql"))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::TestDb;
use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::sql_types::Text;
use occ::prelude::*;

diesel::table! {
    items (id) {
        id -> Integer,
        value -> Integer,
    }
}

diesel::table! {
    jobs (id) {
        id -> Integer,
        state -> Text,
        worker -> Nullable<Integer>,
    }
}

diesel::table! {
    processed (job_id, worker) {
        job_id -> Integer,
        worker -> Integer,
    }
}

diesel::table! {
    accounts (id) {
        id -> Integer,
        balance -> Integer,
        version -> Integer,
    }
}

#[derive(Debug, Queryable, Selectable, Optimistic)]
struct Account {
    id: i32,
    balance: i32,
    #[occ(version)]
    version: i32,
}

diesel::table! {
    doctors (id) {
        id -> Integer,
        on_call -> Integer,
    }
}

/// Which server a test runs on: some facts differ (MariaDB's whole-second
/// timeouts, its REPEATABLE READ default).
trait Server: TestDb {
    const PG: bool;
    /// A session lock timeout of a few seconds: the bound on every wait.
    const BOUNDED: &'static str;
    /// The session's lock timeout, as text.
    const READ_TIMEOUT: &'static str;
    /// Sets the session's lock timeout to 7 seconds.
    const SET_TIMEOUT_7S: &'static str;
    const TIMEOUT_7S: &'static str;
}

#[cfg(feature = "postgres")]
impl Server for common::PgDb {
    const PG: bool = true;
    const BOUNDED: &'static str = "SET lock_timeout = '5s'";
    const READ_TIMEOUT: &'static str = "SELECT current_setting('lock_timeout') AS setting";
    const SET_TIMEOUT_7S: &'static str = "SET lock_timeout = '7s'";
    const TIMEOUT_7S: &'static str = "7s";
}

#[cfg(feature = "mysql")]
impl<C: common::MysqlFamily> Server for common::MysqlDb<C> {
    const PG: bool = false;
    const BOUNDED: &'static str = "SET SESSION innodb_lock_wait_timeout = 5";
    const READ_TIMEOUT: &'static str =
        "SELECT CAST(@@SESSION.innodb_lock_wait_timeout AS CHAR) AS setting";
    const SET_TIMEOUT_7S: &'static str = "SET SESSION innodb_lock_wait_timeout = 7";
    const TIMEOUT_7S: &'static str = "7";
}

fn is_pg<D: Server>(_: &D) -> bool {
    D::PG
}

fn set_timeout_7s<D: Server>(_: &D) -> &'static str {
    D::SET_TIMEOUT_7S
}

fn timeout_7s<D: Server>(_: &D) -> &'static str {
    D::TIMEOUT_7S
}

/// A connection whose every lock wait ends after a few seconds.
fn bounded<D: Server>(db: &D) -> D::Conn {
    let mut conn = db.conn();
    conn.batch_execute(D::BOUNDED).expect("bound the lock wait");
    conn
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    setting: String,
}

fn read_timeout<D: Server>(_: &D) -> &'static str {
    D::READ_TIMEOUT
}

/// The session's lock timeout (a macro: the query's bounds are per backend).
macro_rules! lock_timeout_of {
    ($db:expr, $conn:expr) => {
        diesel::sql_query(read_timeout($db))
            .get_result::<Setting>($conn)
            .expect("read the lock timeout")
            .setting
    };
}

fn items<D: TestDb>(db: &D, rows: i32) {
    db.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)");
    let values: Vec<String> = (1..=rows).map(|id| format!("({id}, 100)")).collect();
    db.exec(&format!(
        "INSERT INTO items (id, value) VALUES {}",
        values.join(", ")
    ));
}

/// A transaction on its own thread that takes a lock and holds it until
/// dropped (or for 10 s at most, so nothing can hang).
struct Holder {
    release: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Holder {
    fn new<C, F>(mut conn: C, lock: F) -> Self
    where
        C: Connection + Send + 'static,
        F: FnOnce(&mut C) -> Result<(), OccError> + Send + 'static,
    {
        let (locked_tx, locked_rx) = channel::<()>();
        let (release, release_rx) = channel::<()>();
        let thread = std::thread::spawn(move || {
            conn.transaction::<_, OccError, _>(|conn| {
                lock(conn)?;
                locked_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
                Ok(())
            })
            .expect("the holder's lock");
        });
        locked_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the holder took its lock");
        Self {
            release,
            thread: Some(thread),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.release.send(());
        if let Some(thread) = self.thread.take() {
            let joined = thread.join();
            if !std::thread::panicking() {
                joined.expect("the holder thread");
            }
        }
    }
}

fn expect_lock_not_available<T: std::fmt::Debug>(result: Result<T, OccError>, what: &str) {
    match result {
        Err(OccError::LockNotAvailable(_)) => {}
        other => panic!("{what}: expected LockNotAvailable, got {other:?}"),
    }
}

per_server! {
    fn nowait_fails_fast_on_a_held_exclusive_lock(db) {
        items(&db, 2);
        let _holder = Holder::new(db.conn(), |c| {
            items::table.find(1).select(items::id).exclusive().load::<i32, _>(c)?;
            Ok(())
        });
        let mut b = bounded(&db);
        let started = Instant::now();
        let result = b.transaction(|b| {
            items::table.find(1).select(items::id).exclusive().nowait().get_result::<i32, _>(b)
        });
        let latency = started.elapsed();
        eprintln!("{}: NOWAIT failed after {latency:?}", module_path!());
        expect_lock_not_available(result, "exclusive NOWAIT beside exclusive");
        assert!(latency < Duration::from_secs(1), "NOWAIT waited {latency:?}");
        // Another row is free, and the connection is usable again.
        let free = b.transaction(|b| {
            items::table.find(2).select(items::id).exclusive().nowait().get_result::<i32, _>(b)
        });
        assert_eq!(free.unwrap(), 2);
        // A shared NOWAIT is refused too.
        let shared = b.transaction(|b| {
            items::table.find(1).select(items::id).shared().nowait().get_result::<i32, _>(b)
        });
        expect_lock_not_available(shared, "shared NOWAIT beside exclusive");
    }

    fn shared_beside_shared_and_exclusive_beside_shared(db) {
        items(&db, 1);
        let _holder = Holder::new(db.conn(), |c| {
            items::table.find(1).select(items::id).shared().load::<i32, _>(c)?;
            Ok(())
        });
        let mut b = bounded(&db);
        let shared = b.transaction(|b| {
            items::table.find(1).select(items::id).shared().nowait().get_result::<i32, _>(b)
        });
        assert_eq!(shared.unwrap(), 1);
        let started = Instant::now();
        let exclusive = b.transaction(|b| {
            items::table.find(1).select(items::id).exclusive().nowait().get_result::<i32, _>(b)
        });
        expect_lock_not_available(exclusive, "exclusive NOWAIT beside shared");
        assert!(started.elapsed() < Duration::from_secs(1));
        // The same through the model-free `first` terminal.
        let first = b.transaction(|b| {
            items::table.select(items::id).exclusive().nowait().first::<i32, _>(b)
        });
        expect_lock_not_available(first, "first() with NOWAIT beside shared");
    }

    fn skip_locked_workers_process_every_job_once(db) {
        const JOBS: i32 = 40;
        const WORKERS: i32 = 4;
        db.exec(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, state {key_text} NOT NULL, worker INTEGER NULL)",
        );
        db.exec("CREATE TABLE processed (job_id INTEGER NOT NULL, worker INTEGER NOT NULL, PRIMARY KEY (job_id, worker))");
        let values: Vec<String> = (1..=JOBS).map(|id| format!("({id}, 'ready')")).collect();
        db.exec(&format!("INSERT INTO jobs (id, state) VALUES {}", values.join(", ")));
        let barrier = Arc::new(Barrier::new(WORKERS as usize));
        let batches = Arc::new(AtomicU32::new(0));
        let started = Instant::now();
        std::thread::scope(|s| {
            for worker in 1..=WORKERS {
                let mut conn = bounded(&db);
                let (barrier, batches) = (barrier.clone(), batches.clone());
                s.spawn(move || {
                    barrier.wait();
                    loop {
                        let taken = conn
                            .transaction::<_, OccError, _>(|c| {
                                let ids: Vec<i32> = jobs::table
                                    .filter(jobs::state.eq("ready"))
                                    .order(jobs::id)
                                    .limit(5)
                                    .select(jobs::id)
                                    .exclusive()
                                    .skip_locked()
                                    .load(c)?;
                                // Hold the batch a moment so the workers overlap.
                                std::thread::sleep(Duration::from_millis(5));
                                for id in &ids {
                                    diesel::insert_into(processed::table)
                                        .values((processed::job_id.eq(id), processed::worker.eq(worker)))
                                        .execute(c)?;
                                }
                                diesel::update(jobs::table.filter(jobs::id.eq_any(&ids)))
                                    .set((jobs::state.eq("done"), jobs::worker.eq(worker)))
                                    .execute(c)?;
                                Ok(ids.len())
                            })
                            .expect("a worker's batch");
                        if taken == 0 {
                            break;
                        }
                        batches.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let mut conn = db.conn();
        let mut per_job: Vec<(i32, i32)> =
            processed::table.select((processed::job_id, processed::worker)).load(&mut conn).unwrap();
        per_job.sort();
        let ids: Vec<i32> = per_job.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (1..=JOBS).collect::<Vec<_>>(), "each job exactly once");
        let ready: i64 = jobs::table.filter(jobs::state.ne("done")).count().get_result(&mut conn).unwrap();
        assert_eq!(ready, 0);
        // The job row names the worker that logged it.
        let owners: Vec<(i32, Option<i32>)> =
            jobs::table.order(jobs::id).select((jobs::id, jobs::worker)).load(&mut conn).unwrap();
        for ((id, worker), (job, owner)) in per_job.iter().zip(&owners) {
            assert_eq!((id, Some(*worker)), (job, *owner));
        }
        let mut per_worker = [0; WORKERS as usize];
        for (_, worker) in &per_job {
            per_worker[(*worker - 1) as usize] += 1;
        }
        eprintln!(
            "{}: {JOBS} jobs in {} batches over {:?}, per worker {per_worker:?}",
            module_path!(),
            batches.load(Ordering::Relaxed),
            started.elapsed()
        );
        assert!(
            per_worker.iter().filter(|n| **n > 0).count() >= 2,
            "the workers did not share the queue: {per_worker:?}"
        );
    }

    fn timeout_gives_up_and_restores_the_setting(db) {
        items(&db, 2);
        let _holder = Holder::new(db.conn(), |c| {
            items::table.find(1).select(items::id).exclusive().load::<i32, _>(c)?;
            Ok(())
        });
        let mut b = db.conn();
        b.batch_execute(set_timeout_7s(&db)).unwrap();
        let seven = lock_timeout_of!(&db, &mut b);
        assert_eq!(seven, timeout_7s(&db));

        // A timed lock that succeeds: the setting is back within the transaction.
        b.transaction::<_, OccError, _>(|b| {
            let got = items::table
                .find(2)
                .select(items::id)
                .exclusive()
                .timeout(Duration::from_millis(200))
                .get_result::<i32, _>(b)?;
            assert_eq!(got, 2);
            assert_eq!(lock_timeout_of!(&db, b), seven, "after a successful timed lock");
            Ok(())
        })
        .unwrap();
        assert_eq!(lock_timeout_of!(&db, &mut b), seven);

        // A timed lock that times out.
        let started = Instant::now();
        let result = b.transaction(|b| {
            items::table
                .find(1)
                .select(items::id)
                .exclusive()
                .timeout(Duration::from_millis(200))
                .get_result::<i32, _>(b)
        });
        let waited = started.elapsed();
        eprintln!("{}: a 200 ms timeout gave up after {waited:?}", module_path!());
        match result {
            Err(OccError::LockTimeout(_)) => {}
            other => panic!("expected LockTimeout, got {other:?}"),
        }
        if is_pg(&db) {
            assert!(
                waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
                "PostgreSQL waited {waited:?} for a 200 ms timeout"
            );
        } else {
            // InnoDB counts whole seconds: 200 ms is rounded up to 1 s.
            assert!(
                waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
                "MariaDB waited {waited:?} for a 1 s timeout"
            );
        }
        assert_eq!(lock_timeout_of!(&db, &mut b), seven, "after a failed timed lock");
        b.transaction::<_, OccError, _>(|b| {
            assert_eq!(lock_timeout_of!(&db, b), seven, "in a new transaction");
            Ok(())
        })
        .unwrap();
    }

    // Found by PostgreSQL's isolation specs: a timed lock whose statement fails
    // on the client (no row) must still put the timeout back, or a later
    // statement of the transaction gives up early.
    fn a_timed_lock_that_finds_no_row_restores_the_setting(db) {
        items(&db, 1);
        let mut b = db.conn();
        b.batch_execute(set_timeout_7s(&db)).unwrap();
        let seven = lock_timeout_of!(&db, &mut b);
        b.transaction::<_, OccError, _>(|b| {
            let missing = items::table
                .find(99)
                .select(items::id)
                .exclusive()
                .timeout(Duration::from_millis(200))
                .get_result::<i32, _>(b);
            match missing {
                Err(OccError::NoRow { query: Some(ref query) }) => assert!(query.contains("FOR UPDATE"), "{query}"),
                ref other => panic!("expected NoRow, got {other:?}"),
            }
            assert!(missing.unwrap_err().is_not_found());
            assert_eq!(lock_timeout_of!(&db, b), seven, "after get_result found no row");
            let none = items::table
                .find(99)
                .select(items::id)
                .shared()
                .timeout(Duration::from_millis(200))
                .optional::<i32, _>(b)?;
            assert_eq!(none, None);
            assert_eq!(lock_timeout_of!(&db, b), seven, "after optional found no row");
            let first = items::table
                .filter(items::id.gt(50))
                .select(items::id)
                .exclusive()
                .timeout(Duration::from_millis(200))
                .first::<i32, _>(b);
            assert!(first.unwrap_err().is_not_found());
            assert_eq!(lock_timeout_of!(&db, b), seven, "after first found no row");
            Ok(())
        })
        .unwrap();
    }

    fn a_models_row_locks_with_any_builder(db) {
        db.exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, version INTEGER NOT NULL)");
        db.exec("INSERT INTO accounts (id, balance, version) VALUES (1, 10, 0), (2, 20, 0)");
        let _holder = Holder::new(db.conn(), |c| {
            Account::lock(1).exclusive().get_result::<Account, _>(c)?;
            Ok(())
        });
        let mut b = bounded(&db);
        b.transaction::<_, OccError, _>(|b| {
            let held = Account::lock(1).exclusive().nowait().get_result::<Account, _>(b);
            expect_lock_not_available(held, "a model's row held elsewhere, NOWAIT");
            Ok(())
        })
        .unwrap();
        b.transaction::<_, OccError, _>(|b| {
            let mut free = Account::lock(2).shared().nowait().get_result::<Account, _>(b)?;
            assert_eq!((free.id, free.balance), (2, 20));
            let skipped = Account::lock(1).exclusive().skip_locked().optional::<Account, _>(b)?;
            assert!(skipped.is_none(), "a held row is skipped");
            free.balance += 1;
            free.update_versioned(b)?;
            match Account::lock(9).exclusive().get_result::<Account, _>(b) {
                Err(OccError::NotFound { table: "accounts", key }) => assert_eq!(key, "id = 9"),
                other => panic!("expected NotFound, got {other:?}"),
            }
            assert!(Account::lock(9).exclusive().optional::<Account, _>(b)?.is_none());
            assert!(Account::find_shared(b, 9).unwrap_err().is_not_found());
            Ok(())
        })
        .unwrap();
        match Account::lock(2).exclusive().get_result::<Account, _>(&mut b) {
            Err(error @ OccError::NotInTransaction { .. }) => {
                let OccError::NotInTransaction { operation, run_in } = &error else { unreachable!() };
                assert_eq!(operation, "locking the row of accounts with id = 2");
                assert_eq!(*run_in, "conn.transaction(..) or occ::retry(..)");
                assert!(error.to_string().ends_with("run it inside conn.transaction(..) or occ::retry(..)"), "{error}");
            }
            other => panic!("expected NotInTransaction, got {other:?}"),
        }
    }

    fn opposite_order_deadlocks_one_and_retry_finishes_both(db) {
        items(&db, 2);
        let barrier = Arc::new(Barrier::new(2));
        let started = Instant::now();
        let results: Vec<Result<(), OccError>> = std::thread::scope(|s| {
            let handles: Vec<_> = [(1, 2), (2, 1)]
                .into_iter()
                .map(|(first, second)| {
                    let mut conn = bounded(&db);
                    let barrier = barrier.clone();
                    s.spawn(move || {
                        conn.transaction(|c| {
                            items::table.find(first).select(items::id).exclusive().load::<i32, _>(c)?;
                            barrier.wait();
                            items::table.find(second).select(items::id).exclusive().load::<i32, _>(c)?;
                            Ok(())
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        eprintln!(
            "{}: deadlock outcome after {:?}: {results:?}",
            module_path!(),
            started.elapsed()
        );
        let deadlocks: Vec<&OccError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(deadlocks.len(), 1, "exactly one victim: {results:?}");
        assert!(matches!(deadlocks[0], OccError::Deadlock(_)), "{:?}", deadlocks[0]);
        assert!(deadlocks[0].is_retryable());

        // The same race under occ::retry: the victim runs again, both land.
        let barrier = Arc::new(Barrier::new(2));
        let attempts = Arc::new(AtomicU32::new(0));
        std::thread::scope(|s| {
            for (first, second, add) in [(1, 2, 1), (2, 1, 10)] {
                let mut conn = bounded(&db);
                let (barrier, attempts) = (barrier.clone(), attempts.clone());
                s.spawn(move || {
                    let mut attempt = 0;
                    occ::retry(&mut conn, &RetryPolicy::default().max_attempts(10), |c| {
                        attempt += 1;
                        attempts.fetch_add(1, Ordering::Relaxed);
                        items::table.find(first).select(items::id).exclusive().load::<i32, _>(c)?;
                        if attempt == 1 {
                            barrier.wait();
                        }
                        items::table.find(second).select(items::id).exclusive().load::<i32, _>(c)?;
                        diesel::update(items::table)
                            .set(items::value.eq(items::value + add))
                            .execute(c)?;
                        Ok::<_, OccError>(())
                    })
                    .expect("retry finishes both transactions");
                });
            }
        });
        let attempts = attempts.load(Ordering::Relaxed);
        eprintln!("{}: under retry, {attempts} attempts for 2 transactions", module_path!());
        assert_eq!(attempts, 3, "one deadlock victim, retried once");
        let values: Vec<i32> = items::table.order(items::id).select(items::value).load(&mut db.conn()).unwrap();
        assert_eq!(values, [111, 111]);
    }

    fn a_lock_outside_a_transaction_runs_nothing(db) {
        items(&db, 1);
        // Held elsewhere: a lock that ran would wait (bounded) and fail.
        let _holder = Holder::new(db.conn(), |c| {
            items::table.find(1).select(items::id).exclusive().load::<i32, _>(c)?;
            Ok(())
        });
        let mut conn = bounded(&db);
        let queries = Arc::new(AtomicUsize::new(0));
        let sink = Arc::clone(&queries);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { .. } = event {
                sink.fetch_add(1, Ordering::Relaxed);
            }
        });
        let started = Instant::now();
        let result = items::table.find(1).select(items::id).exclusive().get_result::<i32, _>(&mut conn);
        match result {
            Err(OccError::NotInTransaction { operation, .. }) => {
                assert!(operation.contains("FOR UPDATE"), "{operation}");
            }
            other => panic!("expected NotInTransaction, got {other:?}"),
        }
        let shared = items::table.select(items::id).shared().nowait().load::<i32, _>(&mut conn);
        assert!(matches!(shared, Err(OccError::NotInTransaction { .. })), "{shared:?}");
        let timed = items::table
            .select(items::id)
            .exclusive()
            .timeout(Duration::from_millis(100))
            .first::<i32, _>(&mut conn);
        assert!(matches!(timed, Err(OccError::NotInTransaction { .. })), "{timed:?}");
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(queries.load(Ordering::Relaxed), 0, "a statement reached the server");
        // The instrumentation counts: a query in a transaction is seen.
        conn.transaction::<_, OccError, _>(|c| {
            items::table.select(items::id).load::<i32>(c)?;
            Ok(())
        })
        .unwrap();
        assert!(queries.load(Ordering::Relaxed) >= 2);
    }

    fn write_skew_with_plain_reads_and_its_fix_with_exclusive_reads(db) {
        let setup = || {
            db.exec("DROP TABLE IF EXISTS doctors");
            db.exec("CREATE TABLE doctors (id INTEGER PRIMARY KEY, on_call INTEGER NOT NULL)");
            db.exec("INSERT INTO doctors (id, on_call) VALUES (1, 1), (2, 1)");
        };
        let on_call = |conn: &mut _| -> i64 {
            doctors::table.filter(doctors::on_call.eq(1)).count().get_result(conn).unwrap()
        };

        // The anomaly: each reads both doctors on call, each goes off call.
        setup();
        let barrier = Arc::new(Barrier::new(2));
        std::thread::scope(|s| {
            for (me, other) in [(1, 2), (2, 1)] {
                let mut conn = bounded(&db);
                let barrier = barrier.clone();
                s.spawn(move || {
                    conn.transaction::<_, OccError, _>(|c| {
                        let rows: Vec<(i32, i32)> = doctors::table
                            .order(doctors::id)
                            .select((doctors::id, doctors::on_call))
                            .load(c)?;
                        barrier.wait();
                        if rows.contains(&(other, 1)) {
                            diesel::update(doctors::table.find(me)).set(doctors::on_call.eq(0)).execute(c)?;
                        }
                        Ok(())
                    })
                    .expect("plain reads do not conflict");
                });
            }
        });
        assert_eq!(on_call(&mut db.conn()), 0, "write skew: both went off call");

        // Locking what is read: one goes off call, the other sees it.
        setup();
        let barrier = Arc::new(Barrier::new(2));
        let went_off = Arc::new(AtomicU32::new(0));
        std::thread::scope(|s| {
            for (me, other) in [(1, 2), (2, 1)] {
                let mut conn = bounded(&db);
                let (barrier, went_off) = (barrier.clone(), went_off.clone());
                s.spawn(move || {
                    let mut attempt = 0;
                    occ::retry(&mut conn, &RetryPolicy::default().max_attempts(10), |c| {
                        attempt += 1;
                        if attempt == 1 {
                            barrier.wait();
                        }
                        let rows: Vec<(i32, i32)> = doctors::table
                            .order(doctors::id)
                            .select((doctors::id, doctors::on_call))
                            .exclusive()
                            .load(c)?;
                        if rows.contains(&(other, 1)) {
                            diesel::update(doctors::table.find(me)).set(doctors::on_call.eq(0)).execute(c)?;
                            went_off.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok::<_, OccError>(())
                    })
                    .expect("locked reads finish under retry");
                });
            }
        });
        assert_eq!(went_off.load(Ordering::Relaxed), 1);
        assert_eq!(on_call(&mut db.conn()), 1, "exactly one doctor stays on call");
    }

    fn a_shared_lock_on_the_first_read_prevents_read_skew(db) {
        items(&db, 2);
        // Reader: locks account 1 shared, then reads account 2 while a
        // transfer 1 -> 2 runs; the transfer must wait for the reader.
        let barrier = Arc::new(Barrier::new(2));
        let transferred = Arc::new(AtomicBool::new(false));
        let (total, committed_before_second_read) = std::thread::scope(|s| {
            let mut mover = bounded(&db);
            let (mover_barrier, done) = (barrier.clone(), transferred.clone());
            s.spawn(move || {
                mover_barrier.wait();
                mover
                    .transaction::<_, OccError, _>(|c| {
                        diesel::update(items::table.find(1)).set(items::value.eq(items::value - 50)).execute(c)?;
                        diesel::update(items::table.find(2)).set(items::value.eq(items::value + 50)).execute(c)?;
                        Ok(())
                    })
                    .expect("the transfer waits, then commits");
                done.store(true, Ordering::SeqCst);
            });
            let mut reader = bounded(&db);
            reader
                .transaction::<_, OccError, _>(|c| {
                    let first: i32 = items::table.find(1).select(items::value).shared().get_result(c)?;
                    barrier.wait();
                    // Time for the transfer to commit, had it not been blocked.
                    std::thread::sleep(Duration::from_millis(300));
                    let before = transferred.load(Ordering::SeqCst);
                    let second: i32 = items::table.find(2).select(items::value).first(c)?;
                    Ok((first + second, before))
                })
                .unwrap()
        });
        assert!(!committed_before_second_read, "the transfer did not wait for the shared lock");
        assert_eq!(total, 200, "the reader saw a consistent total");
        let values: Vec<i32> = items::table.order(items::id).select(items::value).load(&mut db.conn()).unwrap();
        assert_eq!(values, [50, 150], "the transfer ran after the reader");
    }
}

/// MariaDB spells a shared lock `LOCK IN SHARE MODE`: what reaches the server,
/// and what `to_sql` renders once this process has seen one.
#[cfg(feature = "mysql")]
#[test]
fn mariadb_gets_its_own_shared_lock_syntax() {
    use std::sync::Mutex;
    let Some(db) = <common::MysqlDb>::new("locks::mariadb_gets_its_own_shared_lock_syntax") else {
        return;
    };
    items(&db, 1);
    let mut conn = db.conn();
    let version: String = diesel::select(diesel::dsl::sql::<Text>("VERSION()"))
        .get_result(&mut conn)
        .unwrap();
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&sent);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            sink.lock().unwrap().push(query.to_string());
        }
    });
    let got = conn
        .transaction(|c| {
            items::table
                .find(1)
                .select(items::id)
                .shared()
                .get_result::<i32, _>(c)
        })
        .unwrap();
    assert_eq!(got, 1);
    let shared = items::table.find(1).select(items::id).shared();
    let sent = sent.lock().unwrap().join("\n");
    if version.contains("MariaDB") {
        assert!(sent.contains("LOCK IN SHARE MODE"), "{sent}");
        assert!(!sent.contains("FOR SHARE"), "{sent}");
        assert!(shared
            .to_sql::<diesel::mysql::Mysql>()
            .contains("LOCK IN SHARE MODE"));
    } else {
        assert!(sent.contains("FOR SHARE"), "{sent}");
        assert!(shared
            .to_sql::<diesel::mysql::Mysql>()
            .contains("FOR SHARE"));
    }
}

/// PostgreSQL only: its four strengths and the anomaly a plain read allows
/// under READ COMMITTED.
#[cfg(feature = "postgres")]
mod pg_only {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Strength {
        KeyShare,
        Share,
        NoKeyUpdate,
        Update,
    }
    use Strength::*;

    fn lock(conn: &mut PgConnection, strength: Strength, nowait: bool) -> Result<i32, OccError> {
        let q = items::table.find(1).select(items::id);
        match (strength, nowait) {
            (KeyShare, false) => q.key_shared().get_result(conn),
            (KeyShare, true) => q.key_shared().nowait().get_result(conn),
            (Share, false) => q.shared().get_result(conn),
            (Share, true) => q.shared().nowait().get_result(conn),
            (NoKeyUpdate, false) => q.no_key_exclusive().get_result(conn),
            (NoKeyUpdate, true) => q.no_key_exclusive().nowait().get_result(conn),
            (Update, false) => q.exclusive().get_result(conn),
            (Update, true) => q.exclusive().nowait().get_result(conn),
        }
    }

    /// PostgreSQL's documented row-lock conflicts ("Conflicting Row-Level Locks").
    fn conflicts(held: Strength, tried: Strength) -> bool {
        match held {
            KeyShare => tried == Update,
            Share => matches!(tried, NoKeyUpdate | Update),
            NoKeyUpdate => matches!(tried, Share | NoKeyUpdate | Update),
            Update => true,
        }
    }

    #[test]
    fn strength_pairs_match_the_conflict_table() {
        let Some(db) = common::PgDb::new("locks::pg_only::strength_pairs_match_the_conflict_table")
        else {
            return;
        };
        items(&db, 1);
        let mut a = db.conn();
        let mut b = bounded(&db);
        let mut seen = Vec::new();
        for held in [KeyShare, Share, NoKeyUpdate, Update] {
            for tried in [KeyShare, Share, NoKeyUpdate, Update] {
                a.transaction::<_, OccError, _>(|a| {
                    lock(a, held, false)?;
                    let result = b.transaction(|b| lock(b, tried, true));
                    match result {
                        Ok(1) => assert!(
                            !conflicts(held, tried),
                            "{held:?} then {tried:?} should conflict"
                        ),
                        Err(OccError::LockNotAvailable(_)) => {
                            assert!(
                                conflicts(held, tried),
                                "{held:?} then {tried:?} should not conflict"
                            )
                        }
                        other => panic!("{held:?} then {tried:?}: {other:?}"),
                    }
                    seen.push((held, tried, result.is_err()));
                    Ok(())
                })
                .unwrap();
            }
        }
        assert_eq!(seen.len(), 16);
        // 1 + 2 + 3 + 4 conflicting pairs.
        assert_eq!(seen.iter().filter(|(_, _, refused)| *refused).count(), 10);
    }

    /// Without the shared lock, under READ COMMITTED, the same reader sees
    /// the transfer half: the read skew the lock prevents.
    #[test]
    fn a_plain_first_read_allows_read_skew() {
        let Some(db) = common::PgDb::new("locks::pg_only::a_plain_first_read_allows_read_skew")
        else {
            return;
        };
        items(&db, 2);
        let mut reader = db.conn();
        let mut mover = bounded(&db);
        let total = reader
            .transaction::<_, OccError, _>(|c| {
                let first: i32 = items::table.find(1).select(items::value).first(c)?;
                mover.transaction::<_, OccError, _>(|m| {
                    diesel::update(items::table.find(1))
                        .set(items::value.eq(items::value - 50))
                        .execute(m)?;
                    diesel::update(items::table.find(2))
                        .set(items::value.eq(items::value + 50))
                        .execute(m)?;
                    Ok(())
                })?;
                let second: i32 = items::table.find(2).select(items::value).first(c)?;
                Ok(first + second)
            })
            .unwrap();
        assert_eq!(
            total, 250,
            "read skew: the old first account plus the new second"
        );
    }

    /// `NOWAIT` covers the row lock only: the table lock a `SELECT .. FOR
    /// UPDATE` takes first is waited for as usual, and PostgreSQL's
    /// `lock_timeout` ending that wait is a lock timeout, not a failed NOWAIT.
    #[test]
    fn nowait_behind_a_table_lock_is_a_lock_timeout() {
        let Some(db) =
            common::PgDb::new("locks::pg_only::nowait_behind_a_table_lock_is_a_lock_timeout")
        else {
            return;
        };
        items(&db, 1);
        let _holder = Holder::new(db.conn(), |c| {
            c.batch_execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")?;
            Ok(())
        });
        let mut b = db.conn();
        b.batch_execute("SET lock_timeout = '200ms'").unwrap();
        let started = Instant::now();
        let result = b.transaction(|b| {
            items::table
                .find(1)
                .select(items::id)
                .exclusive()
                .nowait()
                .get_result::<i32, _>(b)
        });
        let waited = started.elapsed();
        match result {
            Err(OccError::LockTimeout(_)) => {}
            other => panic!("expected LockTimeout, got {other:?}"),
        }
        assert!(waited >= Duration::from_millis(150), "waited {waited:?}");
    }

    diesel::table! {
        occ_lock_of_schema.orders (id) {
            id -> Integer,
            owner -> Integer,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(orders, items);

    /// `OF` with a table declared in a schema: PostgreSQL accepts the SQL and
    /// locks only that table's rows.
    #[test]
    fn of_a_table_in_a_schema() {
        let Some(db) = common::PgDb::new("locks::pg_only::of_a_table_in_a_schema") else {
            return;
        };
        items(&db, 1);
        let mut admin = db.conn();
        admin
            .batch_execute(
                "DROP SCHEMA IF EXISTS occ_lock_of_schema CASCADE; \
                 CREATE SCHEMA occ_lock_of_schema; \
                 CREATE TABLE occ_lock_of_schema.orders (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL); \
                 INSERT INTO occ_lock_of_schema.orders VALUES (5, 1);",
            )
            .unwrap();
        let mut a = db.conn();
        let mut b = bounded(&db);
        a.transaction::<_, OccError, _>(|a| {
            let rows: Vec<(i32, i32)> = orders::table
                .inner_join(items::table.on(items::id.eq(orders::owner)))
                .select((orders::id, items::value))
                .exclusive()
                .of(orders::table)
                .load(a)?;
            assert_eq!(rows, [(5, 100)]);
            // The order is locked, the joined item is not.
            b.transaction::<_, OccError, _>(|b| {
                let order = orders::table
                    .select(orders::id)
                    .exclusive()
                    .nowait()
                    .load::<i32, _>(b);
                expect_lock_not_available(order, "the order locked with OF");
                Ok(())
            })
            .unwrap();
            b.transaction::<_, OccError, _>(|b| {
                let item = items::table
                    .select(items::id)
                    .exclusive()
                    .nowait()
                    .load::<i32, _>(b)?;
                assert_eq!(item, [1]);
                Ok(())
            })
            .unwrap();
            Ok(())
        })
        .unwrap();
        admin
            .batch_execute("DROP SCHEMA occ_lock_of_schema CASCADE")
            .unwrap();
    }
}
