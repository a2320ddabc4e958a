//! Random schedules of three sessions doing reads, versioned writes and
//! versioned deletes on a few rows, run step by step on real connections
//! and checked against a model of what each step must do: no committed write
//! is lost, every failed write says truthfully why (`Conflict` with the
//! version the row has, or `NotFound`), and a row's version only grows.
//!
//! CI runs 48 schedules per backend; `OCC_PROPTEST_CASES` runs more.

mod common;

use common::TestDb;
use occ::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

diesel::table! {
    cells (id) {
        id -> Integer,
        value -> Integer,
        version -> Integer,
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Optimistic)]
struct Cell {
    id: i32,
    value: i32,
    #[occ(version)]
    version: i32,
}

const SESSIONS: usize = 3;
const ROWS: i32 = 2;

/// One step of one session.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Read the row into the session's copy (or learn it is gone).
    Read,
    /// Add one to the copy's value and write it with its version.
    Write,
    /// Delete the row with the copy's version.
    Delete,
}

fn step() -> impl Strategy<Value = (usize, i32, Op)> {
    (
        0..SESSIONS,
        1..=ROWS,
        prop_oneof![3 => Just(Op::Read), 4 => Just(Op::Write), 1 => Just(Op::Delete)],
    )
}

fn cases() -> u32 {
    std::env::var("OCC_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48)
}

macro_rules! read_cell {
    ($conn:expr, $id:expr) => {
        cells::table
            .find($id)
            .select(Cell::as_select())
            .first::<Cell>($conn)
            .optional()
            .expect("read a cell")
    };
}

/// Runs random schedules on test database `$db`, on three connections
/// reused across schedules, each schedule on fresh rows.
macro_rules! schedules {
    ($db:expr) => {{
        let db = &$db;
        db.exec("CREATE TABLE cells (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
        let sessions = std::cell::RefCell::new((0..SESSIONS).map(|_| db.conn()).collect::<Vec<_>>());
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&proptest::collection::vec(step(), 1..40), |schedule| {
            let mut sessions = sessions.borrow_mut();
            // Fresh rows: every cell holds value 0 at version 0.
            diesel::delete(cells::table).execute(&mut sessions[0]).unwrap();
            for id in 1..=ROWS {
                diesel::insert_into(cells::table)
                    .values((cells::id.eq(id), cells::value.eq(0), cells::version.eq(0)))
                    .execute(&mut sessions[0])
                    .unwrap();
            }
            // The model: each row's (value, version), `None` once deleted;
            // what each session last read of each row.
            let mut rows: Vec<Option<(i32, i32)>> = vec![Some((0, 0)); ROWS as usize];
            let mut copies: Vec<Vec<Option<Cell>>> = vec![vec![None; ROWS as usize]; SESSIONS];
            for &(session, id, op) in &schedule {
                let conn = &mut sessions[session];
                let row = &mut rows[(id - 1) as usize];
                let copy = &mut copies[session][(id - 1) as usize];
                match op {
                    Op::Read => {
                        let read = read_cell!(conn, id);
                        let expected = row.map(|(value, version)| Cell { id, value, version });
                        prop_assert_eq!(&read, &expected, "a read sees the last committed write");
                        *copy = read;
                    }
                    Op::Write => {
                        let Some(mut cell) = copy.clone() else { continue };
                        cell.value += 1;
                        let outcome = cell.update_versioned(conn);
                        match *row {
                            Some((_, version)) if version == copy.as_ref().unwrap().version => {
                                prop_assert!(outcome.is_ok(), "{:?}", outcome);
                                prop_assert!(cell.version > version, "versions only grow");
                                *row = Some((cell.value, cell.version));
                                *copy = Some(cell);
                            }
                            Some((_, version)) => match outcome {
                                Err(OccError::Conflict { actual, .. }) => {
                                    prop_assert_eq!(actual, version.to_string(), "a conflict names the version the row has")
                                }
                                other => prop_assert!(false, "expected a conflict, got {:?}", other),
                            },
                            None => prop_assert!(
                                matches!(outcome, Err(OccError::NotFound { .. })),
                                "expected not found, got {:?}",
                                outcome
                            ),
                        }
                    }
                    Op::Delete => {
                        let Some(cell) = copy.clone() else { continue };
                        let outcome = cell.delete_versioned(conn);
                        match *row {
                            Some((_, version)) if version == cell.version => {
                                prop_assert!(outcome.is_ok(), "{:?}", outcome);
                                *row = None;
                                *copy = None;
                            }
                            Some((_, version)) => match outcome {
                                Err(OccError::Conflict { actual, .. }) => prop_assert_eq!(actual, version.to_string()),
                                other => prop_assert!(false, "expected a conflict, got {:?}", other),
                            },
                            None => prop_assert!(
                                matches!(outcome, Err(OccError::NotFound { .. })),
                                "expected not found, got {:?}",
                                outcome
                            ),
                        }
                    }
                }
            }
            // No committed write is lost: the rows are what the model says.
            for id in 1..=ROWS {
                let read = read_cell!(&mut sessions[0], id);
                let expected = rows[(id - 1) as usize].map(|(value, version)| Cell { id, value, version });
                prop_assert_eq!(read, expected);
            }
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }};
}

per_backend! {
    fn random_schedules_match_the_model(db) {
        schedules!(db);
    }
}
