//! Versioned writes (issue 2) on every backend: what a stale, missing or
//! successful write does to the database, the model and the error, and how
//! many statements it costs.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::TestDb;
use common::{counters, Counter};
use diesel::connection::InstrumentationEvent;
use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Insertable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = products)]
struct Product {
    id: i32,
    name: String,
    #[diesel(column_name = qty)]
    quantity: i32,
    #[occ(version)]
    version: i32,
}

const PRODUCTS: &str = "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
     qty INTEGER NOT NULL, version INTEGER NOT NULL)";

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Integer,
        line_no -> Integer,
        item -> Text,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Insertable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = order_lines, primary_key(order_id, line_no))]
struct OrderLine {
    order_id: i32,
    line_no: i32,
    item: String,
    #[occ(version)]
    version: i32,
}

diesel::table! {
    documents (id) {
        id -> Integer,
        body -> Text,
        created_by -> Text,
        origin -> Text,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Insertable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = documents)]
struct Document {
    id: i32,
    body: String,
    #[occ(skip_update)]
    created_by: String,
    #[diesel(skip_update)]
    origin: String,
    #[occ(version)]
    version: i32,
}

diesel::table! {
    profiles (id) {
        id -> Integer,
        nickname -> Nullable<Text>,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Insertable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = profiles)]
struct Profile {
    id: i32,
    nickname: Option<String>,
    #[occ(version)]
    version: i32,
}

diesel::table! {
    small_tallies (id) {
        id -> Integer,
        value -> Integer,
        version -> SmallInt,
    }
}

#[derive(Queryable, Selectable, Insertable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = small_tallies)]
struct SmallTally {
    id: i32,
    value: i32,
    #[occ(version)]
    version: i16,
}

diesel::table! {
    big_tallies (id) {
        id -> Integer,
        value -> Integer,
        version -> BigInt,
    }
}

#[derive(Queryable, Selectable, Insertable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = big_tallies)]
struct BigTally {
    id: i32,
    value: i32,
    #[occ(version)]
    version: i64,
}

#[cfg(feature = "chrono")]
diesel::table! {
    events (id) {
        id -> Integer,
        note -> Text,
        version -> Timestamp,
    }
}

#[cfg(feature = "chrono")]
#[derive(Queryable, Selectable, Insertable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = events)]
struct Event {
    id: i32,
    note: String,
    #[occ(version)]
    version: chrono::NaiveDateTime,
}

/// Reads one row of `$table` as `$model` straight from the database.
macro_rules! row {
    ($conn:expr, $table:ident, $model:ty, $key:expr) => {
        $table::table
            .find($key)
            .select(<$model>::as_select())
            .first::<$model>($conn)
            .expect(concat!("read ", stringify!($table)))
    };
}

macro_rules! insert {
    ($conn:expr, $table:ident, $values:expr) => {
        diesel::insert_into($table::table)
            .values($values)
            .execute($conn)
            .expect(concat!("insert into ", stringify!($table)))
    };
}

macro_rules! count {
    ($conn:expr, $table:ident) => {
        $table::table
            .count()
            .get_result::<i64>($conn)
            .expect("count rows")
    };
}

fn product(id: i32, name: &str, quantity: i32) -> Product {
    Product {
        id,
        name: name.to_owned(),
        quantity,
        version: 0,
    }
}

impl Product {
    fn with_version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }
}

/// Checks every field of a conflict and its message.
#[track_caller]
fn assert_conflict(err: OccError, table: &str, key: &str, expected: &str, actual: &str) {
    assert!(err.is_conflict() && err.is_retryable() && !err.is_not_found());
    let message = err.to_string();
    match err {
        OccError::Conflict {
            table: t,
            key: k,
            expected: e,
            actual: a,
        } => assert_eq!(
            (t, k.as_str(), e.as_str(), a.as_str()),
            (table, key, expected, actual)
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        message,
        format!(
            "version conflict on {table} ({key}): expected version {expected}, found {actual}; \
             reload the row and apply the change again"
        )
    );
}

/// Checks every field of a not-found error and its message.
#[track_caller]
fn assert_not_found(err: OccError, table: &str, key: &str) {
    assert!(err.is_not_found() && !err.is_conflict() && !err.is_retryable());
    let message = err.to_string();
    match err {
        OccError::NotFound { table: t, key: k } => assert_eq!((t, k.as_str()), (table, key)),
        other => panic!("expected not found, got {other:?}"),
    }
    assert_eq!(
        message,
        format!("no row in {table} with {key}: it was deleted or never existed")
    );
}

type QueryLog = Arc<Mutex<Vec<String>>>;

/// Records the SQL of every statement `conn` sends from now on.
fn log_queries<C: Connection>(conn: &mut C) -> QueryLog {
    let log = QueryLog::default();
    let sink = Arc::clone(&log);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            sink.lock().unwrap().push(query.to_string());
        }
    });
    log
}

/// The statements recorded since the last call, as their first words.
fn drain(log: &QueryLog) -> Vec<&'static str> {
    std::mem::take(&mut *log.lock().unwrap())
        .iter()
        .map(|sql| match sql.split_whitespace().next() {
            Some(w) if w.eq_ignore_ascii_case("update") => "UPDATE",
            Some(w) if w.eq_ignore_ascii_case("delete") => "DELETE",
            Some(w) if w.eq_ignore_ascii_case("select") => "SELECT",
            _ => panic!("unexpected statement: {sql}"),
        })
        .collect()
}

per_backend! {
    fn stale_update_conflicts_and_keeps_the_first_write(db) {
        db.exec(PRODUCTS);
        let (mut a, mut b) = (db.conn(), db.conn());
        insert!(&mut a, products, &vec![product(1, "widget", 5), product(2, "bystander", 1)]);

        let mut first = row!(&mut a, products, Product, 1);
        let mut second = row!(&mut b, products, Product, 1);
        first.name = "first".into();
        first.quantity = 4;
        first.update_versioned(&mut a).unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(row!(&mut b, products, Product, 1), first);

        second.name = "second".into();
        second.quantity = 3;
        let err = second.update_versioned(&mut b).unwrap_err();
        assert_conflict(err, "products", "id = 1", "0", "1");

        assert_eq!(row!(&mut a, products, Product, 1), product(1, "first", 4).with_version(1));
        assert_eq!(second, product(1, "second", 3), "a failed write leaves the model as it was");
        assert_eq!(row!(&mut a, products, Product, 2), product(2, "bystander", 1));
    }

    fn stale_delete_conflicts_and_the_row_survives(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &product(1, "widget", 5));

        let mut fresh = row!(&mut c, products, Product, 1);
        let stale = fresh.clone();
        fresh.quantity = 6;
        fresh.update_versioned(&mut c).unwrap();

        let err = stale.delete_versioned(&mut c).unwrap_err();
        assert_conflict(err, "products", "id = 1", "0", "1");
        assert_eq!(count!(&mut c, products), 1);
        assert_eq!(row!(&mut c, products, Product, 1), product(1, "widget", 6).with_version(1));

        fresh.delete_versioned(&mut c).unwrap();
        assert_eq!(count!(&mut c, products), 0);
    }

    fn writes_to_a_deleted_row_are_not_found(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &vec![product(1, "widget", 5), product(2, "bystander", 1)]);

        let deleter = row!(&mut c, products, Product, 1);
        let mut other = deleter.clone();
        deleter.delete_versioned(&mut c).unwrap();
        assert_eq!(count!(&mut c, products), 1);

        other.quantity = 9;
        assert_not_found(other.update_versioned(&mut c).unwrap_err(), "products", "id = 1");
        assert_not_found(other.delete_versioned(&mut c).unwrap_err(), "products", "id = 1");
        assert_not_found(other.bump_version(&mut c).unwrap_err(), "products", "id = 1");
        assert_not_found(other.reload(&mut c).unwrap_err(), "products", "id = 1");
        assert_eq!(other, product(1, "widget", 9), "failed writes leave the model as it was");

        // Nothing was written back, and the other row was not touched.
        assert_eq!(count!(&mut c, products), 1);
        assert_eq!(row!(&mut c, products, Product, 2), product(2, "bystander", 1));
    }

    fn a_stale_model_conflicts_again_on_a_second_try(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &product(1, "widget", 5));

        let mut fresh = row!(&mut c, products, Product, 1);
        let mut stale = fresh.clone();
        fresh.name = "fresh".into();
        fresh.update_versioned(&mut c).unwrap();

        stale.quantity = 1;
        let first = stale.update_versioned(&mut c).unwrap_err();
        assert_conflict(first, "products", "id = 1", "0", "1");
        assert_eq!(row!(&mut c, products, Product, 1), fresh);
        assert_eq!(stale.version, 0);

        let second = stale.update_versioned(&mut c).unwrap_err();
        assert_conflict(second, "products", "id = 1", "0", "1");
        assert_eq!(row!(&mut c, products, Product, 1), fresh);
        assert_eq!(stale, product(1, "widget", 1));
    }

    fn reload_then_retry_keeps_both_changes(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &product(1, "widget", 5));

        let mut renamer = row!(&mut c, products, Product, 1);
        let mut restocker = renamer.clone();
        renamer.name = "gadget".into();
        renamer.update_versioned(&mut c).unwrap();

        restocker.quantity += 10;
        assert!(restocker.update_versioned(&mut c).unwrap_err().is_conflict());

        restocker.reload(&mut c).unwrap();
        assert_eq!(restocker, product(1, "gadget", 5).with_version(1));
        restocker.quantity += 10;
        restocker.update_versioned(&mut c).unwrap();
        assert_eq!(restocker.version, 2);

        assert_eq!(row!(&mut c, products, Product, 1), product(1, "gadget", 15).with_version(2));
    }

    fn bump_version_moves_only_the_version(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &product(1, "widget", 5));

        let mut aggregate = row!(&mut c, products, Product, 1);
        let mut stale = aggregate.clone();
        aggregate.name = "changed in memory only".into();
        aggregate.quantity = 99;
        aggregate.bump_version(&mut c).unwrap();
        assert_eq!(aggregate.version, 1);
        assert_eq!(row!(&mut c, products, Product, 1), product(1, "widget", 5).with_version(1));

        aggregate.bump_version(&mut c).unwrap();
        assert_eq!(aggregate.version, 2);
        assert_eq!(row!(&mut c, products, Product, 1), product(1, "widget", 5).with_version(2));

        stale.quantity = 4;
        let err = stale.update_versioned(&mut c).unwrap_err();
        assert_conflict(err, "products", "id = 1", "0", "2");
        let err = stale.bump_version(&mut c).unwrap_err();
        assert_conflict(err, "products", "id = 1", "0", "2");
        assert_eq!(row!(&mut c, products, Product, 1), product(1, "widget", 5).with_version(2));
    }

    fn update_if_version_writes_only_the_given_columns(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &vec![product(1, "widget", 5), product(2, "bystander", 1)]);

        let changes = (products::name.eq("renamed"), products::qty.eq(7));
        let v = Product::update_if_version(&mut c, 1, 0, changes).unwrap();
        assert_eq!(v, 1);
        assert_eq!(row!(&mut c, products, Product, 1), product(1, "renamed", 7).with_version(1));

        let v = Product::update_if_version(&mut c, 1, v, products::qty.eq(8)).unwrap();
        assert_eq!(v, 2);
        assert_eq!(row!(&mut c, products, Product, 1), product(1, "renamed", 8).with_version(2));

        let err = Product::update_if_version(&mut c, 1, 1, products::qty.eq(0)).unwrap_err();
        assert_conflict(err, "products", "id = 1", "1", "2");
        assert_eq!(row!(&mut c, products, Product, 1), product(1, "renamed", 8).with_version(2));

        let err = Product::update_if_version(&mut c, 42, 0, products::qty.eq(0)).unwrap_err();
        assert_not_found(err, "products", "id = 42");
        assert_eq!(count!(&mut c, products), 2);
        assert_eq!(row!(&mut c, products, Product, 2), product(2, "bystander", 1));
    }

    fn composite_key_writes_only_its_row(db) {
        db.exec(
            "CREATE TABLE order_lines (order_id INTEGER NOT NULL, line_no INTEGER NOT NULL, \
             item TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (order_id, line_no))",
        );
        let mut c = db.conn();
        let line = |order_id, line_no, item: &str, version| OrderLine {
            order_id,
            line_no,
            item: item.into(),
            version,
        };
        let lines = vec![line(1, 1, "apple", 0), line(1, 2, "pear", 0), line(2, 2, "plum", 0)];
        insert!(&mut c, order_lines, &lines);

        let mut pear = row!(&mut c, order_lines, OrderLine, (1, 2));
        let mut stale = pear.clone();
        pear.item = "quince".into();
        pear.update_versioned(&mut c).unwrap();
        let all = || order_lines::table
            .order((order_lines::order_id, order_lines::line_no))
            .select(OrderLine::as_select());
        assert_eq!(
            all().load(&mut c).unwrap(),
            vec![line(1, 1, "apple", 0), line(1, 2, "quince", 1), line(2, 2, "plum", 0)]
        );

        stale.item = "fig".into();
        let err = stale.update_versioned(&mut c).unwrap_err();
        assert_conflict(err, "order_lines", "order_id = 1, line_no = 2", "0", "1");

        let apricot = order_lines::item.eq("apricot");
        let v = OrderLine::update_if_version(&mut c, (1, 1), 0, apricot).unwrap();
        assert_eq!(v, 1);
        let x = order_lines::item.eq("x");
        let err = OrderLine::update_if_version(&mut c, (2, 1), 0, x).unwrap_err();
        assert_not_found(err, "order_lines", "order_id = 2, line_no = 1");

        pear.delete_versioned(&mut c).unwrap();
        assert_eq!(
            all().load(&mut c).unwrap(),
            vec![line(1, 1, "apricot", 1), line(2, 2, "plum", 0)]
        );
    }

    fn renamed_column_is_written(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &product(1, "widget", 5));

        let mut p = row!(&mut c, products, Product, 1);
        p.quantity = 12;
        p.update_versioned(&mut c).unwrap();
        let stored: (i32, i32) = products::table
            .find(1)
            .select((products::qty, products::version))
            .first(&mut c)
            .unwrap();
        assert_eq!(stored, (12, 1));

        let mut reloaded = product(1, "", 0);
        reloaded.reload(&mut c).unwrap();
        assert_eq!(reloaded.quantity, 12);
    }

    fn skip_update_fields_are_never_written(db) {
        db.exec(
            "CREATE TABLE documents (id INTEGER PRIMARY KEY, body TEXT NOT NULL, \
             created_by TEXT NOT NULL, origin TEXT NOT NULL, version INTEGER NOT NULL)",
        );
        let mut c = db.conn();
        let original = Document {
            id: 1,
            body: "draft".into(),
            created_by: "alice".into(),
            origin: "import".into(),
            version: 0,
        };
        insert!(&mut c, documents, &original);

        let log = log_queries(&mut c);
        let mut doc = row!(&mut c, documents, Document, 1);
        doc.body = "final".into();
        doc.created_by = "mallory".into();
        doc.origin = "elsewhere".into();
        doc.update_versioned(&mut c).unwrap();
        let sql = log.lock().unwrap().last().cloned().unwrap();
        assert!(
            sql.contains("body") && !sql.contains("created_by") && !sql.contains("origin"),
            "{sql}"
        );

        let stored = row!(&mut c, documents, Document, 1);
        assert_eq!(
            stored,
            Document { body: "final".into(), version: 1, ..original }
        );
        assert_eq!(doc.created_by, "mallory", "the model keeps its own value");
    }

    fn none_is_written_as_null(db) {
        // Unlike diesel's AsChangeset, which skips `None` fields, a versioned
        // update writes the whole model: `None` clears the column.
        db.exec(
            "CREATE TABLE profiles (id INTEGER PRIMARY KEY, nickname TEXT, \
             version INTEGER NOT NULL)",
        );
        let mut c = db.conn();
        insert!(&mut c, profiles, &Profile { id: 1, nickname: Some("bob".into()), version: 0 });

        let mut p = row!(&mut c, profiles, Profile, 1);
        p.nickname = None;
        p.update_versioned(&mut c).unwrap();
        let cleared = Profile { id: 1, nickname: None, version: 1 };
        assert_eq!(row!(&mut c, profiles, Profile, 1), cleared);
        p.nickname = Some("robert".into());
        p.update_versioned(&mut c).unwrap();
        assert_eq!(row!(&mut c, profiles, Profile, 1), p);
    }

    fn a_write_inside_a_transaction_sees_the_committed_row(db) {
        // A transaction's snapshot (InnoDB REPEATABLE READ) still shows version 0
        // after another connection committed version 1, or deleted the row; the
        // error must report what is committed.
        db.exec(PRODUCTS);
        let (mut a, mut b) = (db.conn(), db.conn());
        insert!(&mut a, products, &vec![product(1, "widget", 5), product(2, "gadget", 5)]);
        let sqlite = module_path!().ends_with("sqlite");

        let err = a
            .transaction::<(), OccError, _>(|a| {
                let mut mine = row!(a, products, Product, 1);
                let mut theirs = row!(&mut b, products, Product, 1);
                theirs.name = "theirs".into();
                theirs.update_versioned(&mut b)?;
                mine.quantity = 1;
                mine.update_versioned(a)
            })
            .unwrap_err();
        if sqlite {
            // SQLite cannot upgrade a stale read snapshot to a writer (BUSY_SNAPSHOT).
            assert!(matches!(err, OccError::Busy(_)), "{err:?}");
        } else {
            assert_conflict(err, "products", "id = 1", "0", "1");
        }
        assert_eq!(row!(&mut b, products, Product, 1), product(1, "theirs", 5).with_version(1));

        let err = a
            .transaction::<(), OccError, _>(|a| {
                let mut mine = row!(a, products, Product, 2);
                row!(&mut b, products, Product, 2).delete_versioned(&mut b)?;
                mine.quantity = 1;
                mine.update_versioned(a)
            })
            .unwrap_err();
        if sqlite {
            assert!(matches!(err, OccError::Busy(_)), "{err:?}");
        } else {
            assert_not_found(err, "products", "id = 2");
        }
        assert_eq!(count!(&mut b, products), 1);
    }

    fn i16_version_wraps_at_max(db) {
        db.exec(
            "CREATE TABLE small_tallies (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
             version SMALLINT NOT NULL)",
        );
        let mut c = db.conn();
        insert!(&mut c, small_tallies, &SmallTally { id: 1, value: 0, version: i16::MAX });

        let mut t = row!(&mut c, small_tallies, SmallTally, 1);
        let stale = t.clone();
        t.value = 1;
        t.update_versioned(&mut c).unwrap();
        assert_eq!(t.version, i16::MIN);
        assert_eq!(row!(&mut c, small_tallies, SmallTally, 1), t);
        t.value = 2;
        t.update_versioned(&mut c).unwrap();
        assert_eq!(t.version, i16::MIN + 1);
        assert_eq!(row!(&mut c, small_tallies, SmallTally, 1), t);

        let err = stale.delete_versioned(&mut c).unwrap_err();
        assert_conflict(err, "small_tallies", "id = 1", "32767", "-32767");
    }

    fn i64_version_wraps_at_max(db) {
        db.exec(
            "CREATE TABLE big_tallies (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
             version BIGINT NOT NULL)",
        );
        let mut c = db.conn();
        insert!(&mut c, big_tallies, &BigTally { id: 1, value: 0, version: i64::MAX - 1 });

        let mut t = row!(&mut c, big_tallies, BigTally, 1);
        let stale = t.clone();
        for (value, version) in [(1, i64::MAX), (2, i64::MIN), (3, i64::MIN + 1)] {
            t.value = value;
            t.update_versioned(&mut c).unwrap();
            assert_eq!(t.version, version);
            assert_eq!(row!(&mut c, big_tallies, BigTally, 1), t);
        }

        let err = stale.delete_versioned(&mut c).unwrap_err();
        assert_conflict(
            err,
            "big_tallies",
            "id = 1",
            &(i64::MAX - 1).to_string(),
            &(i64::MIN + 1).to_string(),
        );
    }

    fn concurrent_increments_lose_no_update(db) {
        const THREADS: usize = 8;
        const INCREMENTS: i32 = 100;
        db.exec(
            "CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
             version INTEGER NOT NULL)",
        );
        insert!(&mut db.conn(), counters, &Counter { id: 1, value: 0, version: 0 });

        let barrier = Barrier::new(THREADS);
        let started = std::time::Instant::now();
        let outcomes: Vec<(u32, u32)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = db.conn();
                        // Every worker reads version 0 before any of them writes: all
                        // but one of the first writes are stale.
                        let mut counter = row!(&mut c, counters, Counter, 1);
                        barrier.wait();
                        let (mut conflicts, mut busy) = (0, 0);
                        for _ in 0..INCREMENTS {
                            loop {
                                counter.value += 1;
                                match counter.update_versioned(&mut c) {
                                    Ok(()) => break,
                                    Err(OccError::Conflict { .. }) => conflicts += 1,
                                    Err(OccError::Busy(_)) => busy += 1,
                                    Err(e) => panic!("unexpected error: {e}"),
                                }
                                counter.reload(&mut c).unwrap();
                            }
                        }
                        (conflicts, busy)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let elapsed = started.elapsed();

        let conflicts: u32 = outcomes.iter().map(|o| o.0).sum();
        let busy: u32 = outcomes.iter().map(|o| o.1).sum();
        eprintln!(
            "{}: {THREADS} threads x {INCREMENTS} increments: \
             {conflicts} conflicts, {busy} busy, {elapsed:?}",
            module_path!()
        );
        let expected = THREADS as i32 * INCREMENTS;
        assert_eq!(
            row!(&mut db.conn(), counters, Counter, 1),
            Counter { id: 1, value: expected, version: expected }
        );
        assert!(conflicts > 0, "no conflict observed: the writers did not race");
        // All first writes but one carried the version read before the barrier.
        assert!(conflicts + busy >= THREADS as u32 - 1, "stale first writes went through");
    }

    fn a_successful_write_is_one_statement(db) {
        db.exec(PRODUCTS);
        let mut c = db.conn();
        insert!(&mut c, products, &vec![product(1, "widget", 5), product(2, "gadget", 5)]);
        let mut p = row!(&mut c, products, Product, 1);
        let mut stale = p.clone();
        let mut doomed = row!(&mut c, products, Product, 2);

        let log = log_queries(&mut c);
        p.quantity = 6;
        p.update_versioned(&mut c).unwrap();
        assert_eq!(drain(&log), ["UPDATE"]);
        p.bump_version(&mut c).unwrap();
        assert_eq!(drain(&log), ["UPDATE"]);
        Product::update_if_version(&mut c, 1, 2, products::qty.eq(7)).unwrap();
        assert_eq!(drain(&log), ["UPDATE"]);

        // A failed write pays one read to tell a conflict from a missing row.
        assert!(stale.update_versioned(&mut c).unwrap_err().is_conflict());
        assert_eq!(drain(&log), ["UPDATE", "SELECT"]);
        assert!(stale.delete_versioned(&mut c).unwrap_err().is_conflict());
        assert_eq!(drain(&log), ["DELETE", "SELECT"]);

        doomed.delete_versioned(&mut c).unwrap();
        assert_eq!(drain(&log), ["DELETE"]);
        assert!(doomed.update_versioned(&mut c).unwrap_err().is_not_found());
        assert_eq!(drain(&log), ["UPDATE", "SELECT"]);

        assert_eq!(row!(&mut c, products, Product, 1), product(1, "widget", 7).with_version(3));
        assert_eq!(count!(&mut c, products), 1);
    }
}

#[cfg(feature = "chrono")]
mod timestamps {
    use super::*;
    use chrono::{Duration, DurationRound};

    const EVENTS: &str =
        "CREATE TABLE events (id INTEGER PRIMARY KEY, note TEXT NOT NULL, version {ts} NOT NULL)";

    crate::per_backend! {
        fn timestamp_versions_increase_and_round_trip(db) {
            db.exec(EVENTS);
            let mut c = db.conn();
            // Nanoseconds, as a user's `now()` has them: the database keeps what it keeps.
            let inserted = chrono::Utc::now().naive_utc();
            insert!(&mut c, events, &Event { id: 1, note: "new".into(), version: inserted });

            let mut e = row!(&mut c, events, Event, 1);
            let stale = e.clone();
            for i in 0..20 {
                let before = e.version;
                e.note = format!("write {i}");
                e.update_versioned(&mut c).unwrap();
                assert!(e.version > before, "{} is not after {before}", e.version);
                assert_eq!(row!(&mut c, events, Event, 1), e, "write {i} lost precision");
            }

            let err = stale.delete_versioned(&mut c).unwrap_err();
            let (expected, actual) = (stale.version.to_string(), e.version.to_string());
            assert_conflict(err, "events", "id = 1", &expected, &actual);
            assert_eq!(row!(&mut c, events, Event, 1), e);
        }

        fn timestamp_versions_advance_within_one_clock_tick(db) {
            db.exec(EVENTS);
            let mut c = db.conn();
            // A version ahead of the clock (another server's clock, or ours stepped
            // back): every write lands in the "same tick" as the one before. Not too
            // far ahead: MariaDB stores a `Timestamp` bind after 2038-01-19 as NULL.
            let ahead = (chrono::Utc::now().naive_utc() + Duration::days(1))
                .duration_trunc(Duration::microseconds(1))
                .unwrap();
            insert!(&mut c, events, &Event { id: 1, note: "new".into(), version: ahead });

            let mut e = row!(&mut c, events, Event, 1);
            let stale = e.clone();
            e.note = "one".into();
            e.update_versioned(&mut c).unwrap();
            assert_eq!(e.version, ahead + Duration::microseconds(1));
            assert_eq!(row!(&mut c, events, Event, 1), e);
            e.note = "two".into();
            e.update_versioned(&mut c).unwrap();
            assert_eq!(e.version, ahead + Duration::microseconds(2));
            assert_eq!(row!(&mut c, events, Event, 1), e);

            let mut stale_writer = stale.clone();
            stale_writer.note = "stale".into();
            let err = stale_writer.update_versioned(&mut c).unwrap_err();
            assert_conflict(
                err,
                "events",
                "id = 1",
                &ahead.to_string(),
                &(ahead + Duration::microseconds(2)).to_string(),
            );
            assert_eq!(row!(&mut c, events, Event, 1), e);
        }
    }
}
