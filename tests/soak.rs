//! Soak: 100,000 raced versioned increments per backend, none lost. Eight
//! threads, each on its own connection, increment eight rows picked at
//! random through `occ::retry`; at the end the rows hold exactly the
//! increments that returned `Ok`, and the retries per increment are printed.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use common::TestDb;
use occ::prelude::*;

diesel::table! {
    counters (id) {
        id -> Integer,
        value -> BigInt,
        version -> BigInt,
    }
}

#[derive(Debug, Queryable, Selectable, Optimistic)]
struct Counter {
    id: i32,
    value: i64,
    #[occ(version)]
    version: i64,
}

const THREADS: u64 = 8;
const ROWS: u64 = 8;
const INCREMENTS: u64 = 100_000;

per_backend! {
    fn a_hundred_thousand_raced_increments_lose_nothing(db) {
        db.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, value BIGINT NOT NULL, version BIGINT NOT NULL)");
        let rows: Vec<String> = (1..=ROWS).map(|id| format!("({id}, 0, 0)")).collect();
        db.exec(&format!("INSERT INTO counters (id, value, version) VALUES {}", rows.join(", ")));
        let barrier = Barrier::new(THREADS as usize);
        let attempts = AtomicU64::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for thread in 0..THREADS {
                let (db, barrier, attempts) = (&db, &barrier, &attempts);
                s.spawn(move || {
                    let mut conn = db.conn();
                    let policy = RetryPolicy::default().max_attempts(10_000);
                    let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (thread + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    barrier.wait();
                    for _ in 0..INCREMENTS / THREADS {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let id = 1 + (seed % ROWS) as i32;
                        let retried = occ::retry_counted(&mut conn, &policy, |conn| {
                            let mut c: Counter = counters::table.find(id).select(Counter::as_select()).first(conn)?;
                            c.value += 1;
                            c.update_versioned(conn)
                        });
                        retried.result.expect("an increment commits");
                        attempts.fetch_add(u64::from(retried.attempts), Ordering::Relaxed);
                    }
                });
            }
        });
        let elapsed = started.elapsed();
        let mut conn = db.conn();
        let counters: Vec<Counter> = counters::table.select(Counter::as_select()).load(&mut conn).unwrap();
        let total: i64 = counters.iter().map(|c| c.value).sum();
        assert_eq!(total as u64, INCREMENTS, "every committed increment is in the rows");
        for c in &counters {
            assert_eq!(c.value, c.version, "each write moved its row's version once: {c:?}");
        }
        let attempts = attempts.load(Ordering::Relaxed);
        eprintln!(
            "{}: {INCREMENTS} increments, 0 lost, {:.3} retries per increment, {:.1} s",
            module_path!(),
            (attempts - INCREMENTS) as f64 / INCREMENTS as f64,
            elapsed.as_secs_f64()
        );
    }
}
