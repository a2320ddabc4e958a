//! `modify`, the read-modify-write occ runs: the row read, changed by the
//! caller's closure and written versioned, again on a conflict; a refusal
//! of the caller's own ends it; racing writers lose nothing under each
//! strategy; the adaptive strategy locks a row after its conflicts and
//! reads it plainly again once it cools.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{counters, AppError, Counter, TestDb};
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

    fn racing_modifies_lose_nothing_under_each_strategy(db) {
        for strategy in [Strategy::Adaptive, Strategy::Optimistic, Strategy::Pessimistic] {
            let mut conn = setup(&db, 1);
            let (policy, table) = policy(strategy);
            let done = race(&db, &policy, 6, 40);
            assert_eq!(done, 240);
            // Every increment is in the row, each one a version step.
            assert_eq!(counter(&mut conn, 1), Counter { id: 1, value: 240, version: 240 }, "{strategy:?}");
            let stats = table.stats();
            assert!(stats.optimistic + stats.locked >= 240, "{strategy:?}: {stats:?}");
            match strategy {
                Strategy::Optimistic => assert_eq!(stats.locked, 0, "{stats:?}"),
                Strategy::Pessimistic => assert_eq!(stats.optimistic, 0, "{stats:?}"),
                _ => assert!(stats.locked > 0, "one hot row is locked: {stats:?}"),
            }
            drop(conn);
            db.exec("DROP TABLE counters");
        }
    }
}

/// What only the servers have: row locks, and a writer that can get in
/// between an attempt's read and its write.
mod servers {
    use super::*;

    per_server! {
        fn the_adaptive_strategy_locks_a_row_after_a_conflict_and_not_once_it_cools(db) {
            let mut conn = setup(&db, 2);
            let mut other = db.conn();
            let table = Arc::new(Temperature::new().with_half_life(Duration::from_millis(50)));
            let policy = ModifyPolicy::default().temperature(Arc::clone(&table));
            let mut first = true;
            let written = Counter::modify_with(&mut conn, 1, &policy, |c| {
                if std::mem::take(&mut first) {
                    // Another writer gets there between the read and the write.
                    Counter::update_if_version(&mut other, 1, c.version, counters::value.eq(100)).unwrap();
                }
                c.value += 1;
                Ok::<_, OccError>(())
            })
            .unwrap();
            assert_eq!(written, Counter { id: 1, value: 101, version: 2 });
            let stats = table.stats();
            // The first attempt read plainly and conflicted; the second locked.
            assert_eq!((stats.optimistic, stats.locked, stats.heated), (1, 1, 1), "{stats:?}");
            let hot = table.hot_rows();
            assert_eq!((hot.len(), hot[0].table, hot[0].key.as_str()), (1, "counters", "id = 1"));
            // Another row is not hot.
            Counter::modify_with(&mut conn, 2, &policy, |c| { c.value += 1; Ok::<_, OccError>(()) }).unwrap();
            assert_eq!(table.stats().optimistic, 2);
            // While hot, the row is locked: a writer holding it makes modify wait.
            Counter::modify_with(&mut conn, 1, &policy, |c| { c.value += 1; Ok::<_, OccError>(()) }).unwrap();
            assert_eq!(table.stats().locked, 2);
            // Two half-lives without a conflict: cold, read plainly again.
            std::thread::sleep(Duration::from_millis(150));
            Counter::modify_with(&mut conn, 1, &policy, |c| { c.value += 1; Ok::<_, OccError>(()) }).unwrap();
            let stats = table.stats();
            assert_eq!((stats.optimistic, stats.locked), (3, 2), "{stats:?}");
            assert!(table.hot_rows().is_empty());
            assert_eq!(counter(&mut conn, 1).value, 103);
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
