//! r2d2 pooled connections, passed as `&mut pooled` as diesel's own methods
//! take them: versioned writes and retry on every backend, row locks with
//! their timeout restored and their refusal outside a transaction on the
//! servers. A pool of one connection shows what the next checkout inherits.

#![cfg(feature = "r2d2")]

mod common;

use std::sync::{Arc, Barrier};

use common::TestDb;
use common::{counters, Counter};
use occ::prelude::*;

fn setup<D: TestDb>(db: &D) {
    db.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
    db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0), (2, 0, 0)");
}

per_backend! {
    fn versioned_writes_and_retry_on_pooled_connections(db) {
        setup(&db);
        let pool = db.pool(4);
        let mut a = pool.get().unwrap();
        let mut stale: Counter = counters::table.find(1).select(Counter::as_select()).first(&mut a).unwrap();
        let mut fresh: Counter = counters::table.find(1).select(Counter::as_select()).first(&mut a).unwrap();
        fresh.value = 5;
        fresh.update_versioned(&mut a).unwrap();
        stale.value = 7;
        assert!(stale.update_versioned(&mut pool.get().unwrap()).unwrap_err().is_conflict());
        stale.reload(&mut a).unwrap();
        assert_eq!((stale.value, stale.version), (5, 1));
        drop(a);

        // 4 threads x 25 increments through occ::retry, each on its own checkout.
        let barrier = Arc::new(Barrier::new(4));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
                s.spawn(move || {
                    let mut conn = pool.get().unwrap();
                    barrier.wait();
                    let policy = RetryPolicy::default().max_attempts(200);
                    for _ in 0..25 {
                        occ::retry(&mut conn, &policy, |conn| {
                            let mut c: Counter = counters::table.find(2).select(Counter::as_select()).first(conn)?;
                            c.value += 1;
                            c.update_versioned(conn)
                        })
                        .unwrap();
                    }
                });
            }
        });
        let total: i32 = counters::table.find(2).select(counters::value).first(&mut pool.get().unwrap()).unwrap();
        assert_eq!(total, 100);
    }
}

/// Server backends only: row locks.
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server {
    use std::time::Duration;

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::Text;

    use super::*;

    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        setting: String,
    }

    per_server! {
        fn row_locks_on_pooled_connections(db) {
            setup(&db);
            let pg = std::any::type_name_of_val(&db).contains("Pg");
            let (read, set) = if pg {
                ("SELECT current_setting('lock_timeout') AS setting", "SET lock_timeout = '7s'")
            } else {
                (
                    "SELECT CAST(@@SESSION.innodb_lock_wait_timeout AS CHAR) AS setting",
                    "SET SESSION innodb_lock_wait_timeout = 7",
                )
            };
            // One connection: every checkout is the same session.
            let pool = db.pool(1);
            pool.get().unwrap().batch_execute(set).unwrap();
            let before = diesel::sql_query(read).get_result::<Setting>(&mut pool.get().unwrap()).unwrap().setting;

            // Refused outside a transaction, nothing sent.
            let outside = Counter::find_exclusive(&mut pool.get().unwrap(), 1);
            assert!(matches!(outside, Err(OccError::NotInTransaction { .. })), "{outside:?}");

            let mut conn = pool.get().unwrap();
            conn.transaction::<_, OccError, _>(|conn| {
                let mut c = Counter::find_exclusive(conn, 1)?;
                let shared: Vec<i32> = counters::table
                    .select(counters::id)
                    .order(counters::id)
                    .shared()
                    .timeout(Duration::from_millis(300))
                    .load(conn)?;
                assert_eq!(shared, [1, 2]);
                let missing = Counter::lock(9).exclusive().timeout(Duration::from_millis(300)).optional::<Counter, _>(conn)?;
                assert!(missing.is_none());
                c.value += 1;
                c.update_versioned(conn)?;
                Ok(())
            })
            .unwrap();
            drop(conn);
            // The next checkout has the session's timeout, outside any transaction.
            let mut next = pool.get().unwrap();
            let after = diesel::sql_query(read).get_result::<Setting>(&mut next).unwrap().setting;
            assert_eq!(after, before);
            let retried = occ::retry(&mut next, &RetryPolicy::default(), |conn| -> Result<_, OccError> {
                Ok(Counter::find_shared(conn, 1)?.value)
            });
            assert_eq!(retried.unwrap(), 1);
        }
    }
}
