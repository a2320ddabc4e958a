//! Versions the database sets (`#[occ(version, generated)]`): a trigger
//! moves the version on every update, from occ or from any other program.
//! occ checks the version it holds, leaves the column to the trigger, and
//! reads back what the database stored: `RETURNING` on PostgreSQL; the write
//! and a read in one transaction on MySQL/MariaDB and SQLite.

mod common;

use std::sync::Barrier;

use common::TestDb;
use diesel::connection::SimpleConnection;
use occ::prelude::*;

diesel::table! {
    docs (id) {
        id -> Integer,
        body -> Text,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
struct Doc {
    id: i32,
    body: String,
    #[occ(version, generated)]
    version: i32,
}

/// The table, its trigger and three rows.
fn setup<D: TestDb>(db: &D) -> D::Conn
where
    D::Conn: SimpleConnection,
{
    let mut conn = db.conn();
    conn.batch_execute(common::docs_with_version_trigger(&conn))
        .expect("create the table and its trigger");
    conn
}

macro_rules! doc {
    ($conn:expr, $id:expr) => {
        docs::table
            .find($id)
            .select(Doc::as_select())
            .first::<Doc>($conn)
            .unwrap()
    };
}

per_backend! {
    fn the_database_sets_the_version_and_occ_reads_it_back(db) {
        let mut conn = setup(&db);
        let mut doc = doc!(&mut conn, 1);
        assert_eq!(doc.version, 1, "the column's default");
        let stale = doc.clone();

        doc.body = "a2".into();
        doc.update_versioned(&mut conn).unwrap();
        assert_eq!(doc.version, 11, "the trigger's version, read back");
        assert_eq!(doc!(&mut conn, 1), doc);

        doc.bump_version(&mut conn).unwrap();
        assert_eq!(doc!(&mut conn, 1), doc);
        assert_eq!(doc.version, 21);

        let stored = Doc::update_if_version(&mut conn, 1, 21, docs::body.eq("a4")).unwrap();
        assert_eq!(stored, 31);

        // The stale copy conflicts with the version found.
        let mut stale = stale;
        stale.body = "lost?".into();
        match stale.update_versioned(&mut conn) {
            Err(OccError::Conflict { expected, actual, .. }) => assert_eq!((expected.as_str(), actual.as_str()), ("1", "31")),
            other => panic!("expected a conflict, got {other:?}"),
        }
        // ... and gets the current row when it asks for it.
        let current = stale.update_versioned_or_current(&mut conn).unwrap().expect("the current row");
        assert_eq!((current.body.as_str(), current.version), ("a4", 31));
        let mut merged = Doc { body: "merged".into(), ..current };
        assert_eq!(merged.update_versioned_or_current(&mut conn).unwrap(), None);
        assert_eq!(merged.version, 41);
        assert_eq!(doc!(&mut conn, 1), merged);
    }

    fn a_program_that_does_not_know_occ_still_moves_the_version(db) {
        let mut conn = setup(&db);
        let mut doc = doc!(&mut conn, 2);
        db.conn().batch_execute("UPDATE docs SET body = 'elsewhere' WHERE id = 2").unwrap();
        doc.body = "mine".into();
        let error = doc.update_versioned(&mut conn).unwrap_err();
        assert!(error.is_conflict(), "{error:?}");
        assert_eq!(doc!(&mut conn, 2).body, "elsewhere");
    }

    fn a_batch_reads_back_each_version(db) {
        let mut conn = setup(&db);
        let mut docs: Vec<Doc> = docs::table.select(Doc::as_select()).order(docs::id).load(&mut conn).unwrap();
        assert_eq!(Doc::update_if_version(&mut conn, 2, 1, docs::body.eq("theirs")).unwrap(), 11);
        for doc in &mut docs {
            doc.body.push('!');
        }
        let report = Doc::update_versioned_all(&mut conn, &mut docs).unwrap();
        assert_eq!(report.written(), &[1, 3]);
        assert_eq!(report.conflicts(), &[(2, 11)]);
        assert_eq!((docs[0].version, docs[1].version, docs[2].version), (11, 1, 11));
        assert_eq!(doc!(&mut conn, 3), docs[2]);
    }

    fn racing_writers_lose_nothing(db) {
        setup(&db);
        const WRITERS: usize = 4;
        const EACH: usize = 25;
        let barrier = Barrier::new(WRITERS);
        std::thread::scope(|s| {
            for _ in 0..WRITERS {
                let (db, barrier) = (&db, &barrier);
                s.spawn(move || {
                    let mut conn = db.conn();
                    barrier.wait();
                    let policy = RetryPolicy::default().max_attempts(1000);
                    for _ in 0..EACH {
                        occ::retry(&mut conn, &policy, |conn| {
                            let mut doc = doc!(conn, 3);
                            doc.body.push('x');
                            doc.update_versioned(conn)
                        })
                        .unwrap();
                    }
                });
            }
        });
        let doc = doc!(&mut db.conn(), 3);
        assert_eq!(doc.body.len(), 1 + WRITERS * EACH, "no write was lost");
        assert_eq!(doc.version, 1 + 10 * (WRITERS * EACH) as i32);
    }
}
