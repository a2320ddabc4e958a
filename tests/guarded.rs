//! Guarded updates (`update_where`): one statement that writes where its
//! guard holds, with no read and no version check, on every backend. Racing
//! decrements sell exactly the stock, never more; a guard that fails is told
//! from a missing row; the version still moves forward, so a model read
//! before the update conflicts; PostgreSQL at REPEATABLE READ reports a
//! serialization failure, which `retry` takes.

mod common;

use std::sync::{Arc, Barrier};

use common::TestDb;
use diesel::dsl::{Eq, Sub};
use diesel::query_builder::AsChangeset;
use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
struct Product {
    id: i32,
    qty: i32,
    #[occ(version)]
    version: i32,
}

diesel::table! {
    tickets (id) {
        id -> Integer,
        left_over -> Integer,
        version -> SmallInt,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
struct Ticket {
    id: i32,
    left_over: i32,
    #[occ(version)]
    version: i16,
}

fn setup<D: TestDb>(db: &D, qty: i32) -> D::Conn {
    db.exec(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, \
         version INTEGER NOT NULL)",
    );
    db.exec(&format!(
        "INSERT INTO products (id, qty, version) VALUES (1, {qty}, 0)"
    ));
    db.conn()
}

fn product<C: occ::Reload<Product>>(conn: &mut C) -> Product {
    let mut row = Product {
        id: 1,
        qty: -1,
        version: -1,
    };
    row.reload(conn).unwrap();
    row
}

/// Takes `n` from the stock of product 1 if there are at least `n`.
fn sell<C>(conn: &mut C, n: i32) -> Result<(), OccError>
where
    C: occ::GuardedStore<
        Product,
        diesel::dsl::GtEq<products::qty, i32>,
        <Eq<products::qty, Sub<products::qty, i32>> as AsChangeset>::Changeset,
    >,
{
    use products::qty;
    Product::update_where(conn, 1, qty.ge(n), qty.eq(qty - n))
}

per_backend! {
    fn a_guarded_decrement_writes_where_its_guard_holds_and_says_why_not(db) {
        let mut conn = setup(&db, 10);
        let read_before = product(&mut conn);
        sell(&mut conn, 3).unwrap();
        // One statement wrote the change and the next version.
        assert_eq!(product(&mut conn), Product { id: 1, qty: 7, version: 1 });
        // A model read before the guarded update conflicts: the version moved.
        let mut stale = read_before;
        stale.qty = 100;
        let error = stale.update_versioned(&mut conn).unwrap_err();
        assert!(error.is_conflict(), "{error:?}");
        // The guard does not hold: nothing written, and the error says which row.
        let error = sell(&mut conn, 8).unwrap_err();
        assert!(
            matches!(&error, OccError::GuardFailed { table: "products", key } if key == "id = 1"),
            "{error:?}"
        );
        assert_eq!(error.kind(), "guard_failed");
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "the guard of the update on products (id = 1) does not hold on the row as it is now; \
             nothing was written"
        );
        assert_eq!(product(&mut conn), Product { id: 1, qty: 7, version: 1 });
        // No such row: NotFound, not a failed guard.
        use products::qty;
        let error = Product::update_where(&mut conn, 2, qty.ge(1), qty.eq(qty - 1)).unwrap_err();
        assert!(
            matches!(&error, OccError::NotFound { table: "products", key } if key == "id = 2"),
            "{error:?}"
        );
        // The whole stock, exactly.
        sell(&mut conn, 7).unwrap();
        assert_eq!(product(&mut conn), Product { id: 1, qty: 0, version: 2 });
    }

    fn a_guard_on_a_null_column_does_not_hold(db) {
        db.exec(
            "CREATE TABLE shelves (id INTEGER PRIMARY KEY, qty INTEGER, version INTEGER NOT NULL)",
        );
        db.exec("INSERT INTO shelves (id, qty, version) VALUES (1, NULL, 0)");
        diesel::table! {
            shelves (id) {
                id -> Integer,
                qty -> Nullable<Integer>,
                version -> Integer,
            }
        }
        #[derive(Queryable, Selectable, Optimistic, Debug)]
        #[diesel(table_name = shelves)]
        struct Shelf {
            id: i32,
            qty: Option<i32>,
            #[occ(version)]
            version: i32,
        }
        let mut conn = db.conn();
        let qty = shelves::qty;
        // `NULL >= 1` is neither true nor false: the update's WHERE and the
        // read after it agree that the guard does not hold.
        let error = Shelf::update_where(&mut conn, 1, qty.ge(1), qty.eq(qty - 1)).unwrap_err();
        assert!(matches!(error, OccError::GuardFailed { .. }), "{error:?}");
        Shelf::update_where(&mut conn, 1, qty.is_null(), qty.eq(5)).unwrap();
        let row: Shelf = shelves::table.find(1).select(Shelf::as_select()).first(&mut conn).unwrap();
        assert_eq!((row.qty, row.version), (Some(5), 1));
    }

    fn a_small_integer_version_wraps_as_a_versioned_write_does(db) {
        db.exec(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, left_over INTEGER NOT NULL, \
             version SMALLINT NOT NULL)",
        );
        db.exec("INSERT INTO tickets (id, left_over, version) VALUES (1, 2, 32767)");
        let mut conn = db.conn();
        use tickets::left_over;
        Ticket::update_where(&mut conn, 1, left_over.gt(0), left_over.eq(left_over - 1)).unwrap();
        let row: Ticket = tickets::table.find(1).select(Ticket::as_select()).first(&mut conn).unwrap();
        assert_eq!(row, Ticket { id: 1, left_over: 1, version: i16::MIN });
        Ticket::update_where(&mut conn, 1, left_over.gt(0), left_over.eq(left_over - 1)).unwrap();
        let row: Ticket = tickets::table.find(1).select(Ticket::as_select()).first(&mut conn).unwrap();
        assert_eq!(row, Ticket { id: 1, left_over: 0, version: i16::MIN + 1 });
    }

    fn racing_guarded_decrements_sell_exactly_the_stock(db) {
        const STOCK: i32 = 100;
        const THREADS: usize = 8;
        const PER_THREAD: usize = 25;
        let _ = setup(&db, STOCK);
        let barrier = Arc::new(Barrier::new(THREADS));
        // Under retry, as a service writes it: on SQLite a busy database is
        // retried, a failed guard never is.
        let policy = RetryPolicy::default().max_attempts(100);
        let outcomes: Vec<(usize, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let mut conn = db.conn();
                    let (barrier, policy) = (barrier.clone(), policy.clone());
                    s.spawn(move || {
                        barrier.wait();
                        let (mut sold, mut refused) = (0, 0);
                        for _ in 0..PER_THREAD {
                            match occ::retry(&mut conn, &policy, |conn| sell(conn, 1)) {
                                Ok(()) => sold += 1,
                                Err(OccError::GuardFailed { .. }) => refused += 1,
                                Err(error) => panic!("a guarded decrement failed: {error}"),
                            }
                        }
                        (sold, refused)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let sold: usize = outcomes.iter().map(|o| o.0).sum();
        let refused: usize = outcomes.iter().map(|o| o.1).sum();
        assert_eq!(sold, STOCK as usize, "every unit sold once, none twice: {outcomes:?}");
        assert_eq!(refused, THREADS * PER_THREAD - STOCK as usize);
        // One version step per sale: no write was lost or doubled.
        assert_eq!(product(&mut db.conn()), Product { id: 1, qty: 0, version: STOCK });
    }
}

#[cfg(feature = "postgres")]
mod postgres_repeatable_read {
    use super::*;

    /// At REPEATABLE READ, a guarded update of a row changed since the
    /// transaction's snapshot is a serialization failure, not a silent
    /// re-check: PostgreSQL cannot re-read the row inside a snapshot.
    #[test]
    fn a_row_changed_since_the_snapshot_is_a_serialization_failure_that_retry_takes() {
        let Some(db) = common::PgDb::new(concat!(module_path!(), "::snapshot")) else {
            return;
        };
        let mut conn = setup(&db, 10);
        let mut other = db.conn();
        let policy = RetryPolicy::default().isolation(Isolation::RepeatableRead);
        let mut first = true;
        let attempts = occ::retry_counted(&mut conn, &policy, |conn| {
            // The snapshot is taken by the first read of the transaction.
            let _ = product(conn);
            if std::mem::take(&mut first) {
                sell(&mut other, 1).unwrap();
                let error = sell(conn, 1).unwrap_err();
                assert!(
                    matches!(error, OccError::SerializationFailure(_)),
                    "{error:?}"
                );
                return Err(error);
            }
            sell(conn, 1)
        });
        attempts.result.unwrap();
        assert_eq!(attempts.attempts, 2);
        assert_eq!(
            product(&mut conn),
            Product {
                id: 1,
                qty: 8,
                version: 2
            }
        );
    }

    #[test]
    fn racing_guarded_decrements_at_repeatable_read_sell_exactly_the_stock() {
        let Some(db) = common::PgDb::new(concat!(module_path!(), "::racing")) else {
            return;
        };
        const STOCK: i32 = 60;
        const THREADS: usize = 6;
        const PER_THREAD: usize = 15;
        let _ = setup(&db, STOCK);
        let barrier = Arc::new(Barrier::new(THREADS));
        let policy = RetryPolicy::default()
            .max_attempts(200)
            .isolation(Isolation::RepeatableRead);
        let sold: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let mut conn = db.conn();
                    let (barrier, policy) = (barrier.clone(), policy.clone());
                    s.spawn(move || {
                        barrier.wait();
                        let mut sold = 0;
                        for _ in 0..PER_THREAD {
                            match occ::retry(&mut conn, &policy, |conn| sell(conn, 1)) {
                                Ok(()) => sold += 1,
                                Err(OccError::GuardFailed { .. }) => {}
                                Err(error) => panic!("a guarded decrement failed: {error}"),
                            }
                        }
                        sold
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(sold, STOCK as usize);
        assert_eq!(
            product(&mut db.conn()),
            Product {
                id: 1,
                qty: 0,
                version: STOCK
            }
        );
    }
}

/// A timestamp version, spelled as users write it: each guarded update
/// stores a fresh one, also two within one clock tick.
#[cfg(all(feature = "chrono", feature = "postgres"))]
mod timestamp_version {
    use chrono::{DateTime, Utc};

    use super::*;

    diesel::table! {
        stock (id) {
            id -> Integer,
            qty -> Integer,
            updated_at -> Timestamptz,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stock)]
    struct Stock {
        id: i32,
        qty: i32,
        #[occ(version)]
        updated_at: DateTime<Utc>,
    }

    #[test]
    fn every_guarded_update_stores_a_new_timestamp() {
        let Some(db) = common::PgDb::new(concat!(module_path!(), "::stamps")) else {
            return;
        };
        db.exec(
            "CREATE TABLE stock (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, \
             updated_at TIMESTAMPTZ NOT NULL)",
        );
        // A version in the future: the clock's `now` is not new for this row.
        db.exec("INSERT INTO stock VALUES (1, 50, now() + interval '1 hour')");
        let mut conn = db.conn();
        let read = |conn: &mut PgConnection| -> Stock {
            stock::table
                .find(1)
                .select(Stock::as_select())
                .first(conn)
                .unwrap()
        };
        let mut seen = vec![read(&mut conn).updated_at];
        use stock::qty;
        for _ in 0..20 {
            Stock::update_where(&mut conn, 1, qty.gt(0), qty.eq(qty - 1)).unwrap();
            let version = read(&mut conn).updated_at;
            assert!(
                !seen.contains(&version),
                "{version} was stored before: {seen:?}"
            );
            seen.push(version);
        }
        assert_eq!(read(&mut conn).qty, 30);
    }
}
