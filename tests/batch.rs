//! Versioned writes of many rows at once, on every backend: the report says
//! per row what happened, the models written hold their new versions and
//! the others are unchanged, `all_or_nothing` undoes the batch on the first
//! failure, and racing batches over the same rows write each row once.

mod common;

use std::sync::Barrier;

use common::TestDb;
use diesel::connection::SimpleConnection;
use occ::prelude::*;

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
struct Item {
    id: i32,
    name: String,
    qty: i32,
    #[occ(version)]
    version: i32,
}

/// `count` rows, ids 1..=count, qty 0 at version 0.
fn create<D: TestDb>(db: &D, count: i32) {
    db.exec(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL, \
         qty INTEGER NOT NULL, version INTEGER NOT NULL)",
    );
    let mut conn = db.conn();
    for start in (1..=count).step_by(500) {
        let rows: Vec<String> = (start..=count.min(start + 499))
            .map(|id| format!("({id}, 'item {id}', 0, 0)"))
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO items (id, name, qty, version) VALUES {}",
            rows.join(", ")
        ))
        .unwrap();
    }
}

/// Every row, by id.
macro_rules! all {
    ($conn:expr) => {
        items::table
            .select(Item::as_select())
            .order(items::id)
            .load::<Item>($conn)
            .unwrap()
    };
}

/// Creates `count` rows; returns them as read.
macro_rules! setup {
    ($db:expr, $count:expr) => {{
        create(&$db, $count);
        all!(&mut $db.conn())
    }};
}

/// Another session writes row 2 and deletes row 3 after `items` were read.
macro_rules! interfere {
    ($db:expr) => {{
        let mut other = $db.conn();
        Item::update_if_version(&mut other, 2, 0, items::qty.eq(50)).unwrap();
        diesel::delete(items::table.find(3))
            .execute(&mut other)
            .unwrap();
    }};
}

diesel::table! {
    shelves (code) {
        code -> Text,
        qty -> Integer,
        version -> Integer,
    }
}

/// A model whose declared key is not unique in its table: `shelves` has no
/// constraint on `code`, and two rows share one.
#[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = shelves, primary_key(code))]
struct Shelf {
    code: String,
    qty: i32,
    #[occ(version)]
    version: i32,
}

per_backend! {
    fn a_key_that_is_not_unique_fails_a_batch_whole_and_one_write_after_it_ran(db) {
        db.exec("CREATE TABLE shelves (code VARCHAR(8) NOT NULL, qty INTEGER NOT NULL, version INTEGER NOT NULL)");
        db.exec("INSERT INTO shelves (code, qty, version) VALUES ('A', 1, 0), ('A', 2, 0), ('B', 3, 0)");
        let mut conn = db.conn();
        let mut batch = vec![
            Shelf { code: "B".into(), qty: 30, version: 0 },
            Shelf { code: "A".into(), qty: 10, version: 0 },
        ];
        let error = Shelf::update_versioned_all_or_nothing(&mut conn, &mut batch).unwrap_err();
        if module_path!().ends_with("postgres") {
            // One statement for the batch: its RETURNING names row 1 twice.
            assert_eq!(error.kind(), "internal", "{error:?}");
            assert_eq!(
                error.to_string(),
                "a batch write on shelves returned row 1 twice: \
                 is the key declared in #[diesel(primary_key(...))] unique?"
            );
        } else {
            // Row by row: the write of "A" matched two rows.
            assert!(matches!(&error, OccError::KeyNotUnique { table: "shelves", key, rows: 2 } if key == "code = \"A\""), "{error:?}");
        }
        assert!(!error.is_retryable());
        let stored: Vec<(String, i32, i32)> = shelves::table
            .select((shelves::code, shelves::qty, shelves::version))
            .order((shelves::code, shelves::qty))
            .load(&mut conn)
            .unwrap();
        assert_eq!(stored, [("A".into(), 1, 0), ("A".into(), 2, 0), ("B".into(), 3, 0)], "nothing written");
        assert_eq!(batch.iter().map(|s| s.version).collect::<Vec<_>>(), [0, 0], "no model changed");
        // One write outside a transaction is one statement, committed when
        // occ reads its row count: the error says how many rows it wrote.
        let mut one = Shelf { code: "A".into(), qty: 7, version: 0 };
        let error = one.update_versioned(&mut conn).unwrap_err();
        assert!(matches!(&error, OccError::KeyNotUnique { rows: 2, .. }), "{error:?}");
        assert_eq!(one.version, 0, "the model is unchanged");
        let a: Vec<(i32, i32)> = shelves::table
            .filter(shelves::code.eq("A"))
            .select((shelves::qty, shelves::version))
            .load(&mut conn)
            .unwrap();
        assert_eq!(a, [(7, 1), (7, 1)]);
    }

    fn a_batch_reports_what_happened_to_each_row(db) {
        let mut items = setup!(db, 5);
        interfere!(db);
        for item in &mut items {
            item.qty += 1;
        }
        let before = items.clone();
        let mut conn = db.conn();
        let report = Item::update_versioned_all(&mut conn, &mut items).unwrap();
        assert_eq!(report.written(), &[1, 4, 5]);
        assert_eq!(report.conflicts(), &[(2, 1)]);
        assert_eq!(report.missing(), &[3]);
        assert!(!report.is_complete());
        // The models written hold the new version; the others are unchanged.
        assert_eq!(items.iter().map(|i| i.version).collect::<Vec<_>>(), [1, 0, 0, 1, 1]);
        assert_eq!(items[1], before[1]);
        assert_eq!(items[2], before[2]);
        // The database holds the written models, and the other's write.
        let stored = all!(&mut conn);
        assert_eq!(stored, vec![items[0].clone(), Item { qty: 50, version: 1, ..before[1].clone() }, items[3].clone(), items[4].clone()]);
        // The models are current: a second batch writes them all.
        let mut written: Vec<Item> = vec![items[0].clone(), items[3].clone(), items[4].clone()];
        assert!(Item::update_versioned_all(&mut conn, &mut written).unwrap().is_complete());
    }

    fn all_or_nothing_undoes_the_batch_at_the_first_failure(db) {
        let mut items = setup!(db, 5);
        interfere!(db);
        for item in &mut items {
            item.qty += 1;
        }
        let before = items.clone();
        let mut conn = db.conn();
        let error = Item::update_versioned_all_or_nothing(&mut conn, &mut items).unwrap_err();
        match &error {
            OccError::Conflict { key, expected, actual, .. } => {
                assert_eq!((key.as_str(), expected.as_str(), actual.as_str()), ("id = 2", "0", "1"));
            }
            other => panic!("expected the conflict on row 2, got {other:?}"),
        }
        assert_eq!(items, before, "no model changed");
        let stored = all!(&mut conn);
        assert_eq!(stored.iter().map(|i| (i.id, i.qty, i.version)).collect::<Vec<_>>(), [(1, 0, 0), (2, 50, 1), (4, 0, 0), (5, 0, 0)]);
        // Without the failed rows, the batch goes through.
        let mut rest = vec![items[0].clone(), items[3].clone()];
        Item::update_versioned_all_or_nothing(&mut conn, &mut rest).unwrap();
        assert_eq!((rest[0].version, rest[1].version), (1, 1));
    }

    fn a_batch_delete_reports_each_row(db) {
        let items = setup!(db, 5);
        interfere!(db);
        let mut conn = db.conn();
        let error = Item::delete_versioned_all_or_nothing(&mut conn, &items).unwrap_err();
        assert!(error.is_conflict(), "{error:?}");
        assert_eq!(all!(&mut conn).len(), 4, "nothing deleted");
        let report = Item::delete_versioned_all(&mut conn, &items).unwrap();
        assert_eq!(report.written(), &[1, 4, 5]);
        assert_eq!(report.conflicts(), &[(2, 1)]);
        assert_eq!(report.missing(), &[3]);
        assert_eq!(all!(&mut conn).iter().map(|i| i.id).collect::<Vec<_>>(), [2]);
    }

    fn a_batch_naming_a_row_twice_is_refused_before_anything_is_sent(db) {
        let items = setup!(db, 3);
        let mut twice = vec![items[0].clone(), items[1].clone(), items[0].clone()];
        twice[0].qty = 7;
        let mut conn = db.conn();
        let error = Item::update_versioned_all(&mut conn, &mut twice).unwrap_err();
        assert_eq!(error.kind(), "duplicate_in_batch");
        assert_eq!(error.to_string(), "the batch for items holds the row with id = 1 more than once; write each row once");
        assert_eq!(all!(&mut conn), items);
    }

    fn an_empty_batch_writes_nothing(db) {
        let items = setup!(db, 2);
        let mut conn = db.conn();
        let report = Item::update_versioned_all(&mut conn, &mut []).unwrap();
        assert!(report.is_complete() && report.written().is_empty());
        assert_eq!(all!(&mut conn), items);
    }

    fn a_batch_inside_a_transaction_is_a_savepoint(db) {
        let mut items = setup!(db, 3);
        let mut conn = db.conn();
        let result = conn.transaction::<(), OccError, _>(|conn| {
            items[0].qty = 9;
            Item::update_versioned_all(conn, &mut items[..1])?;
            // The caller's transaction fails after the batch: all undone.
            Err(OccError::NotFound { table: "items", key: "id = 0".into() })
        });
        assert!(result.is_err());
        assert_eq!(all!(&mut conn)[0].qty, 0);
    }

    fn racing_batches_write_each_row_once(db) {
        const ROWS: i32 = 40;
        setup!(db, ROWS);
        let barrier = Barrier::new(2);
        // Two writers batch every row at once, from the same read: each row
        // is written by exactly one of them, and the other reports it.
        let reports: Vec<(Vec<i32>, Vec<i32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|writer| {
                    let (db, barrier) = (&db, &barrier);
                    s.spawn(move || {
                        let mut conn = db.conn();
                        let mut items = all!(&mut conn);
                        for item in &mut items {
                            item.qty = 100 + writer;
                        }
                        barrier.wait();
                        // Overlapping batches may deadlock on PostgreSQL and
                        // MariaDB; a retry runs the batch again, unchanged.
                        let report = occ::retry(&mut conn, &RetryPolicy::default(), |conn| {
                            Item::update_versioned_all(conn, &mut items)
                        })
                        .unwrap();
                        let conflicts = report.conflicts().iter().map(|(id, _)| *id).collect();
                        (report.written().to_vec(), conflicts)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut stored = all!(&mut db.conn());
        stored.sort_by_key(|i| i.id);
        for item in stored {
            assert_eq!(item.version, 1, "{item:?}");
            let winner = usize::try_from(item.qty - 100).unwrap();
            assert!(reports[winner].0.contains(&item.id), "the winner reports row {}", item.id);
            assert!(reports[1 - winner].1.contains(&item.id), "the loser reports row {}", item.id);
        }
    }
}

/// PostgreSQL sends a batch in chunks below its 65535 bind parameters.
#[cfg(feature = "postgres")]
#[test]
fn a_batch_larger_than_one_statement_is_sent_in_chunks() {
    let Some(db) = common::PgDb::new("batch::chunks") else {
        return;
    };
    // 5 parameters per row: 13107 rows per statement.
    let mut items = setup!(db, 30_000);
    let mut conn = db.conn();
    // Every hundredth row is written by someone else first.
    conn.batch_execute("UPDATE items SET version = 1 WHERE id % 100 = 0")
        .unwrap();
    for item in &mut items {
        item.qty = item.id;
    }
    let report = Item::update_versioned_all(&mut conn, &mut items).unwrap();
    assert_eq!(report.written().len(), 29_700);
    assert_eq!(report.conflicts().len(), 300);
    assert!(report
        .conflicts()
        .iter()
        .all(|(id, found)| id % 100 == 0 && *found == 1));
    let stored = all!(&mut conn);
    assert!(stored.iter().all(|i| (i.qty == i.id) == (i.id % 100 != 0)));
}
