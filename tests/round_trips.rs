//! How many statements each operation sends, counted with diesel's
//! instrumentation: a fact, not a timing. A successful versioned write is one
//! round trip; only a write that matched nothing pays for the read that tells
//! a conflict from a missing row.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::TestDb;
use common::{counters, Counter};
use diesel::connection::InstrumentationEvent;
use occ::prelude::*;

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

    fn a_conflict_with_the_current_row_is_one_statement_on_postgres(db) {
        db.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
        db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0)");
        let mut conn = db.conn();
        let statements = Statements::default();
        statements.attach(&mut conn);
        let pg = std::any::type_name_of_val(&conn).contains("Pg");
        let mut mine: Counter = counters::table.find(1).select(Counter::as_select()).first(&mut conn).unwrap();
        let theirs = mine.clone();

        // Written: one statement everywhere, and the model moves on.
        mine.value = 1;
        let (current, sent, sql) = statements.during(|| mine.update_versioned_or_current(&mut conn));
        assert!(current.unwrap().is_none());
        assert_eq!((sent, mine.version), (1, 1), "{sql:#?}");

        // A conflict: the row as it is now, in one statement on PostgreSQL,
        // the update and one read elsewhere; the model is unchanged.
        let mut stale = theirs.clone();
        stale.value = 7;
        let (current, sent, sql) = statements.during(|| stale.update_versioned_or_current(&mut conn));
        let current = current.unwrap().expect("the current row");
        assert_eq!(current, mine);
        assert_eq!((stale.value, stale.version), (7, 0));
        assert_eq!(stale.changed_fields(&current), ["value", "version"]);
        assert_eq!(sent, if pg { 1 } else { 2 }, "{sql:#?}");

        // update_versioned and reload, as before: three statements.
        let (_, sent, _) = statements.during(|| {
            assert!(stale.update_versioned(&mut conn).unwrap_err().is_conflict());
            stale.reload(&mut conn).unwrap();
        });
        assert_eq!(sent, 3);

        // A deleted row is NotFound, and nothing is written.
        diesel::delete(counters::table.find(1)).execute(&mut conn).unwrap();
        let (current, _, _) = statements.during(|| mine.update_versioned_or_current(&mut conn));
        assert!(current.unwrap_err().is_not_found());
        assert_eq!(mine.version, 1);
    }

    fn a_batch_is_one_statement_on_postgres_and_one_per_row_elsewhere(db) {
        db.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
        let rows: Vec<String> = (1..=100).map(|id| format!("({id}, 0, 0)")).collect();
        db.exec(&format!("INSERT INTO counters (id, value, version) VALUES {}", rows.join(", ")));
        let mut conn = db.conn();
        let mut batch: Vec<Counter> = counters::table.select(Counter::as_select()).order(counters::id).load(&mut conn).unwrap();
        Counter::update_if_version(&mut conn, 7, 0, counters::value.eq(7)).unwrap();
        let statements = Statements::default();
        statements.attach(&mut conn);
        let pg = std::any::type_name_of_val(&conn).contains("Pg");

        let (report, sent, sql) = statements.during(|| Counter::update_versioned_all(&mut conn, &mut batch));
        let report = report.unwrap();
        assert_eq!((report.written().len(), report.conflicts()), (99, &[(7, 1)][..]));
        // BEGIN and COMMIT around: on PostgreSQL the batch statement and the
        // read of the one row it did not write; elsewhere a write per row and
        // that read.
        let expected = if pg { 4 } else { 2 + 100 + 1 };
        assert_eq!(sent, expected, "{sql:#?}");

        // A batch with nothing stale needs no read.
        batch.remove(6);
        let (report, sent, sql) = statements.during(|| Counter::update_versioned_all(&mut conn, &mut batch));
        assert!(report.unwrap().is_complete());
        assert_eq!(sent, if pg { 3 } else { 2 + 99 }, "{sql:#?}");
    }
}
