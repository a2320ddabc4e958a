//! How many statements each operation sends, counted with diesel's
//! instrumentation: a fact, not a timing. A successful versioned write is one
//! round trip; only a write that matched nothing pays for the read that tells
//! a conflict from a missing row.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::TestDb;
use diesel::connection::InstrumentationEvent;
use occ::prelude::*;

diesel::table! {
    counters (id) {
        id -> Integer,
        value -> Integer,
        version -> Integer,
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Optimistic)]
struct Counter {
    id: i32,
    value: i32,
    #[occ(version)]
    version: i32,
}

/// Counts the statements a connection starts, and keeps their SQL.
#[derive(Clone, Default)]
struct Statements {
    count: Arc<AtomicUsize>,
    sql: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Statements {
    fn attach<C: Connection>(&self, conn: &mut C) {
        let seen = self.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                seen.count.fetch_add(1, Ordering::Relaxed);
                seen.sql.lock().unwrap().push(query.to_string());
            }
        });
    }

    /// The statements started while `f` ran.
    fn during<T>(&self, f: impl FnOnce() -> T) -> (T, usize, Vec<String>) {
        self.sql.lock().unwrap().clear();
        let before = self.count.load(Ordering::Relaxed);
        let out = f();
        let sql = self.sql.lock().unwrap().clone();
        (out, self.count.load(Ordering::Relaxed) - before, sql)
    }
}

per_backend! {
    fn a_versioned_write_is_one_round_trip(db) {
        db.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
        db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0), (2, 0, 0)");
        let mut conn = db.conn();
        let statements = Statements::default();
        statements.attach(&mut conn);
        let mut c: Counter = counters::table.find(1).select(Counter::as_select()).first(&mut conn).unwrap();
        let stale = c.clone();

        c.value = 1;
        let (done, sent, sql) = statements.during(|| c.update_versioned(&mut conn));
        done.unwrap();
        assert_eq!(sent, 1, "a successful versioned update: {sql:?}");

        let (done, sent, sql) = statements.during(|| c.bump_version(&mut conn));
        done.unwrap();
        assert_eq!(sent, 1, "bump_version: {sql:?}");

        let (done, sent, sql) = statements.during(|| Counter::update_if_version(&mut conn, 1, 2, counters::value.eq(5)));
        done.unwrap();
        assert_eq!(sent, 1, "update_if_version: {sql:?}");

        let mut stale = stale;
        stale.value = 9;
        let (done, sent, sql) = statements.during(|| stale.update_versioned(&mut conn));
        assert!(done.unwrap_err().is_conflict());
        assert_eq!(sent, 2, "a conflict: the update and the read of the current version: {sql:?}");

        let other: Counter = counters::table.find(2).select(Counter::as_select()).first(&mut conn).unwrap();
        let (done, sent, sql) = statements.during(|| other.delete_versioned(&mut conn));
        done.unwrap();
        assert_eq!(sent, 1, "a successful versioned delete: {sql:?}");
    }
}
