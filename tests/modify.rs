//! `modify`, the read-modify-write occ runs: the row read, changed by the
//! caller's closure and written versioned, again on a conflict; a refusal
//! of the caller's own ends it; racing writers lose nothing under each
//! strategy; the adaptive strategy locks a row after its conflicts and
//! reads it plainly again once it cools.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};

use common::{AppError, Counter, TestDb};
use occ::prelude::*;
use occ::{ModifyPolicy, Strategy, Temperature};

fn setup<D: TestDb>(db: &D, rows: i32) -> D::Conn {
    db.exec(
        "CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
         version INTEGER NOT NULL)",
    );
    let values: Vec<String> = (1..=rows).map(|id| format!("({id}, 0, 0)")).collect();
    db.exec(&format!(
        "INSERT INTO counters (id, value, version) VALUES {}",
        values.join(", ")
    ));
    db.conn()
}

fn counter<C: occ::Reload<Counter>>(conn: &mut C, id: i32) -> Counter {
    let mut row = Counter {
        id,
        value: -1,
        version: -1,
    };
    row.reload(conn).unwrap();
    row
}

/// A policy of its own table, so that parallel tests do not read each
/// other's decisions.
fn policy(strategy: Strategy) -> (ModifyPolicy, Arc<Temperature>) {
    let table = Arc::new(Temperature::new());
    let policy = ModifyPolicy::default()
        .strategy(strategy)
        .retry(RetryPolicy::default().max_attempts(200))
        .temperature(Arc::clone(&table));
    (policy, table)
}

/// `threads` writers each add 1 to counter 1 `each` times through
/// `modify_with`; returns how many calls succeeded.
fn race<D: TestDb>(db: &D, policy: &ModifyPolicy, threads: usize, each: usize) -> usize
where
    D::Conn: occ::Reload<Counter> + Send,
{
    let barrier = Arc::new(Barrier::new(threads));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut conn = db.conn();
                let barrier = Arc::clone(&barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut done = 0;
                    for _ in 0..each {
                        Counter::modify_with(&mut conn, 1, policy, |c| {
                            c.value += 1;
                            Ok::<_, OccError>(())
                        })
                        .unwrap_or_else(|e| panic!("a modify failed: {e}"));
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

per_backend! {
    fn modify_reads_the_row_changes_it_and_writes_it_versioned(db) {
        let mut conn = setup(&db, 1);
        let written = Counter::modify(&mut conn, 1, |c| {
            c.value += 5;
            Ok::<_, OccError>(())
        })
        .unwrap();
        assert_eq!(written, Counter { id: 1, value: 5, version: 1 });
        assert_eq!(counter(&mut conn, 1), written);
        // A missing row.
        let error = Counter::modify(&mut conn, 9, |_| Ok::<_, OccError>(())).unwrap_err();
        assert!(
            matches!(&error, OccError::NotFound { table: "counters", key } if key == "id = 9"),
            "{error:?}"
        );
    }

    fn a_refusal_of_the_callers_own_ends_modify_and_writes_nothing(db) {
        let mut conn = setup(&db, 1);
        let calls = AtomicU32::new(0);
        let refused = Counter::modify(&mut conn, 1, |c| {
            calls.fetch_add(1, Ordering::Relaxed);
            c.value = 99;
            if c.value > 10 {
                return Err(AppError::InsufficientStock { left: c.value });
            }
            Ok(())
        });
        assert!(matches!(refused, Err(AppError::InsufficientStock { left: 99 })), "{refused:?}");
        assert_eq!(calls.load(Ordering::Relaxed), 1, "a refusal is not retried");
        assert_eq!(counter(&mut conn, 1), Counter { id: 1, value: 0, version: 0 });
        // Inside a transaction it refuses to run, as retry does.
        let nested = conn.transaction(|conn| {
            Ok::<_, OccError>(Counter::modify(conn, 1, |_| Ok::<_, OccError>(())).unwrap_err())
        });
        assert!(matches!(nested.unwrap(), OccError::RetryInsideTransaction { depth: 1 }));
    }

    fn a_phase_change_loses_nothing_and_the_hot_row_cools(db) {
        // 64 cold rows, then every writer on row 1, then cold again.
        const ROWS: i32 = 64;
        const THREADS: usize = 6;
        let _ = setup(&db, ROWS);
        let table = Arc::new(Temperature::new().with_half_life(std::time::Duration::from_millis(50)));
        let policy = ModifyPolicy::default()
            .retry(RetryPolicy::default().max_attempts(200))
            .temperature(Arc::clone(&table));
        let phase = std::sync::atomic::AtomicU8::new(0);
        let barrier = Barrier::new(THREADS + 1);
        let done: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let mut conn = db.conn();
                    let (policy, phase, barrier) = (&policy, &phase, &barrier);
                    s.spawn(move || {
                        let mut pick = t as u64 * 7919 + 1;
                        let mut done = 0;
                        barrier.wait();
                        loop {
                            let id = match phase.load(Ordering::Relaxed) {
                                1 => 1,
                                3 => break,
                                _ => {
                                    pick = pick.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                                    (pick >> 33) as i32 % ROWS + 1
                                }
                            };
                            Counter::modify_with(&mut conn, id, policy, |c| {
                                c.value += 1;
                                Ok::<_, OccError>(())
                            })
                            .unwrap_or_else(|e| panic!("a modify failed: {e}"));
                            done += 1;
                        }
                        done
                    })
                })
                .collect();
            barrier.wait();
            // What the table says at the end of each phase; asserted after the
            // writers stopped, so that a failure cannot leave them running.
            let mut seen = Vec::new();
            for next in 1..=3u8 {
                std::thread::sleep(std::time::Duration::from_millis(300));
                seen.push((table.stats(), table.hot_rows().iter().any(|h| h.key == "id = 1")));
                phase.store(next, Ordering::Relaxed);
            }
            let done: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            let hot_phase = (seen[1].0.queued + seen[1].0.locked) - (seen[0].0.queued + seen[0].0.locked);
            assert!(hot_phase > 0, "the hot phase's writers queued or locked: {seen:?}");
            if seen[1].0.queued > seen[0].0.queued {
                // A server: the row was hot at the end of its phase, and is
                // cold four half-lives after its last writer (heat is at most
                // 4). In the cold phase it is one row of 64, and may heat again.
                assert!(seen[1].1, "{seen:?}");
                std::thread::sleep(std::time::Duration::from_millis(250));
                assert!(!table.hot_rows().iter().any(|h| h.key == "id = 1"), "{:?}", table.hot_rows());
            }
            done
        });
        let mut conn = db.conn();
        let rows: Vec<Counter> = common::counters::table.select(Counter::as_select()).load(&mut conn).unwrap();
        let total: i64 = rows.iter().map(|r| i64::from(r.value)).sum();
        assert_eq!(total as u64, done, "every modify is in the rows, none twice");
        assert!(rows.iter().all(|r| r.value == r.version), "one version step per increment");
    }

    fn racing_modifies_lose_nothing_under_each_strategy(db) {
        for strategy in [Strategy::Adaptive, Strategy::Optimistic, Strategy::Pessimistic] {
            let mut conn = setup(&db, 1);
            let (policy, table) = policy(strategy);
            let done = race(&db, &policy, 6, 40);
            assert_eq!(done, 240);
            // Every increment is in the row, each one a version step.
            assert_eq!(counter(&mut conn, 1), Counter { id: 1, value: 240, version: 240 }, "{strategy:?}");
            let stats = table.stats();
            assert!(stats.optimistic + stats.queued + stats.locked >= 240, "{strategy:?}: {stats:?}");
            match strategy {
                Strategy::Optimistic => assert_eq!(stats.locked, 0, "{stats:?}"),
                Strategy::Pessimistic => assert_eq!(stats.optimistic, 0, "{stats:?}"),
                // On SQLite every attempt takes the write lock; on a server the
                // one hot row's writers queue in the process.
                _ => assert!(stats.locked + stats.queued > 0, "{stats:?}"),
            }
            drop(conn);
            db.exec("DROP TABLE counters");
        }
    }
}

/// What only the servers have: row locks, and a writer that can get in
/// between an attempt's read and its write.
mod servers {
    #[allow(unused_imports)]
    use std::time::Duration;

    #[allow(unused_imports)]
    use super::common::counters;
    #[allow(unused_imports)]
    use super::*;

    per_server! {
        fn the_adaptive_strategy_queues_a_hot_row_locks_it_against_other_writers_and_cools(db) {
        let mut conn = setup(&db, 2);
        let mut other = db.conn();
        let table = Arc::new(Temperature::new().with_half_life(Duration::from_millis(100)));
        let policy = ModifyPolicy::default().temperature(Arc::clone(&table));
        let mut calls = 0;
        let written = Counter::modify_with(&mut conn, 1, &policy, |c| {
            calls += 1;
            match calls {
                // Another connection (another process, as far as this one's
                // queue knows) writes between the read and the write, twice.
                1 | 2 => {
                    Counter::update_if_version(&mut other, 1, c.version, counters::value.eq(c.value + 100)).unwrap();
                }
                // The third attempt holds the row: the other one cannot lock it.
                _ => {
                    let error = other
                        .transaction(|other| Counter::lock(1).exclusive().nowait().get_result(other).map(drop))
                        .unwrap_err();
                    assert!(matches!(error, OccError::LockNotAvailable(_)), "{error:?}");
                }
            }
            c.value += 1;
            Ok::<_, OccError>(())
        })
        .unwrap();
        assert_eq!(written, Counter { id: 1, value: 201, version: 3 });
        let stats = table.stats();
        // Cold and plain; hot, queued and plain; conflicted in the queue, so locked.
        assert_eq!(
            (stats.optimistic, stats.queued, stats.locked, stats.heated),
            (1, 1, 1, 2),
            "{stats:?}"
        );
        let hot = table.hot_rows();
        assert_eq!((hot.len(), hot[0].table, hot[0].key.as_str()), (1, "counters", "id = 1"));
        // Another row is not hot.
        Counter::modify_with(&mut conn, 2, &policy, |c| { c.value += 1; Ok::<_, OccError>(()) }).unwrap();
        assert_eq!(table.stats().optimistic, 2);
        // While hot, the row's writers queue.
        Counter::modify_with(&mut conn, 1, &policy, |c| { c.value += 1; Ok::<_, OccError>(()) }).unwrap();
        assert_eq!(table.stats().queued, 2);
        // Two half-lives without a conflict: cold, read plainly again.
        std::thread::sleep(Duration::from_millis(450));
        Counter::modify_with(&mut conn, 1, &policy, |c| { c.value += 1; Ok::<_, OccError>(()) }).unwrap();
        let stats = table.stats();
        assert_eq!((stats.optimistic, stats.queued, stats.locked), (3, 2, 1), "{stats:?}");
        assert!(table.hot_rows().is_empty());
        assert_eq!(counter(&mut conn, 1).value, 203);
    }

    fn the_writers_of_a_hot_row_in_one_process_queue_and_lose_nothing(db) {
        let _ = setup(&db, 1);
        let (policy, table) = policy(Strategy::Adaptive);
        let done = race(&db, &policy, 8, 40);
        assert_eq!(done, 320);
        assert_eq!(counter(&mut db.conn(), 1), Counter { id: 1, value: 320, version: 320 });
        let stats = table.stats();
        // After the first conflicts the writers queue, and conflict no more
        // among themselves.
        assert!(stats.queued > 200, "{stats:?}");
        assert!(stats.optimistic + stats.queued + stats.locked >= 320, "{stats:?}");
    }

    fn a_hot_row_is_read_for_update(db) {
            let mut conn = setup(&db, 1);
            let (policy, _) = policy(Strategy::Pessimistic);
            let mut other = db.conn();
            // While the row is locked by modify, another writer's versioned write
            // waits; its NOWAIT lock fails.
            Counter::modify_with(&mut conn, 1, &policy, |c| {
                let error = other
                    .transaction(|other| Counter::lock(1).exclusive().nowait().get_result(other).map(drop))
                    .unwrap_err();
                assert!(matches!(error, OccError::LockNotAvailable(_)), "{error:?}");
                c.value += 1;
                Ok::<_, OccError>(())
            })
            .unwrap();
            assert_eq!(counter(&mut conn, 1).value, 1);
        }

        fn cold_rows_stay_optimistic(db) {
            let mut conn = setup(&db, 50);
            let (policy, table) = policy(Strategy::Adaptive);
            for id in 1..=50 {
                Counter::modify_with(&mut conn, id, &policy, |c| { c.value += 1; Ok::<_, OccError>(()) }).unwrap();
            }
            let stats = table.stats();
            assert_eq!((stats.optimistic, stats.locked, stats.tracked), (50, 0, 0), "{stats:?}");
        }
    }
}
