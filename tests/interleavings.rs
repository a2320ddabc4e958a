//! Random schedules of three sessions doing reads, versioned writes and
//! versioned deletes on a few rows, run step by step on real connections
//! and checked against a model of what each step must do: no committed write
//! is lost, every failed write says truthfully why (`Conflict` with the
//! version the row has, or `NotFound`), and a row's version only grows.
//!
//! On PostgreSQL and MariaDB the sessions also take row locks (`NOWAIT`,
//! shared and exclusive), which open a transaction that a later step
//! commits; writes in it stay invisible to the others until then. The model
//! knows who holds which lock: a lock that conflicts must fail with
//! `LockNotAvailable` (and the harness rolls that transaction back), one that
//! does not must succeed and see the row as its session sees it. A write to
//! a row another session holds would wait, so the schedule skips it.
//!
//! CI runs 48 schedules per backend; `OCC_PROPTEST_CASES` runs more.

mod common;

use common::TestDb;
use diesel::connection::TransactionManager;
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
    /// Lock the row `NOWAIT` (exclusive or shared) into the copy, opening a
    /// transaction if the session has none.
    Lock { exclusive: bool },
    /// Commit the session's transaction, if it has one.
    Commit,
}

/// With locks, rows are not deleted: InnoDB keeps a deleted row's record,
/// and the locks taken on it, until its purge runs, which no schedule can
/// predict.
fn step(locks: bool) -> impl Strategy<Value = (usize, i32, Op)> {
    let (lock, delete) = if locks { (2, 0) } else { (0, 1) };
    (
        0..SESSIONS,
        1..=ROWS,
        prop_oneof![
            3 => Just(Op::Read),
            4 => Just(Op::Write),
            delete => Just(Op::Delete),
            lock => Just(Op::Lock { exclusive: true }),
            lock => Just(Op::Lock { exclusive: false }),
            lock => Just(Op::Commit),
        ],
    )
}

/// A row's state: `(value, version)`, `None` once deleted.
type State = Option<(i32, i32)>;

/// Who holds what, and what the open transactions wrote.
struct Model {
    /// The committed state of each row.
    rows: Vec<State>,
    /// Per session: in a transaction, and its uncommitted writes per row.
    open: Vec<bool>,
    pending: Vec<Vec<Option<State>>>,
    /// Per session and row: `Some(true)` exclusive (locked or written),
    /// `Some(false)` shared.
    locks: Vec<Vec<Option<bool>>>,
    /// InnoDB at REPEATABLE READ: an `UPDATE` in a transaction locks the row
    /// it read even when its version did not match. PostgreSQL does not.
    failed_writes_lock: bool,
}

impl Model {
    fn new(failed_writes_lock: bool) -> Self {
        Self {
            failed_writes_lock,
            rows: vec![Some((0, 0)); ROWS as usize],
            open: vec![false; SESSIONS],
            pending: vec![vec![None; ROWS as usize]; SESSIONS],
            locks: vec![vec![None; ROWS as usize]; SESSIONS],
        }
    }

    /// The row as `session` sees it: its own pending write, or the committed state.
    fn view(&self, session: usize, row: usize) -> State {
        self.pending[session][row].unwrap_or(self.rows[row])
    }

    /// Whether another session holds a lock on `row` that `exclusive` (or
    /// any write, `exclusive = true`) would have to wait for.
    fn blocked(&self, session: usize, row: usize, exclusive: bool) -> bool {
        (0..SESSIONS)
            .filter(|&other| other != session)
            .any(|other| match self.locks[other][row] {
                Some(true) => true,
                Some(false) => exclusive,
                None => false,
            })
    }

    /// A write by `session` to `row`: committed at once outside a
    /// transaction, pending (and holding the row) inside one.
    fn write(&mut self, session: usize, row: usize, state: State) {
        if self.open[session] {
            self.pending[session][row] = Some(state);
            self.locks[session][row] = Some(true);
        } else {
            self.rows[row] = state;
        }
    }

    /// Ends `session`'s transaction: its writes land if `commit`.
    fn end(&mut self, session: usize, commit: bool) {
        for row in 0..ROWS as usize {
            if let Some(state) = self.pending[session][row].take() {
                if commit {
                    self.rows[row] = state;
                }
            }
            self.locks[session][row] = None;
        }
        self.open[session] = false;
    }
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

/// Stands for the lock in schedules without locks, which draw no lock steps.
fn no_lock_steps<C>(_: &mut C, _: i32, _: bool) -> OccError {
    panic!("no lock steps are drawn without row locks")
}

fn begin<C: Connection>(conn: &mut C) {
    C::TransactionManager::begin_transaction(conn).expect("begin");
}

fn end<C: Connection>(conn: &mut C, commit: bool) {
    if commit {
        C::TransactionManager::commit_transaction(conn).expect("commit");
    } else {
        C::TransactionManager::rollback_transaction(conn).expect("roll back");
    }
}

fn rollback_open<C: Connection>(conn: &mut C) {
    let open = C::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .expect("transaction depth")
        .is_some();
    if open {
        end(conn, false);
    }
}

/// Runs random schedules on test database `$db`, on three connections
/// reused across schedules, each schedule on fresh rows; with `locks` the
/// sessions also lock rows (the backend must have row locks).
macro_rules! schedules {
    (@lock locks, $conn:expr, $id:expr, $exclusive:expr) => {
        if $exclusive {
            Cell::lock($id).exclusive().nowait().get_result($conn)
        } else {
            Cell::lock($id).shared().nowait().get_result($conn)
        }
    };
    (@lock no_locks, $conn:expr, $id:expr, $exclusive:expr) => {
        Err(no_lock_steps($conn, $id, $exclusive))
    };
    ($db:expr, $locks:ident) => {{
        let db = &$db;
        let with_locks = stringify!($locks) == "locks";
        db.exec("CREATE TABLE cells (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
        let sessions = std::cell::RefCell::new((0..SESSIONS).map(|_| db.conn()).collect::<Vec<_>>());
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let steps = proptest::collection::vec(step(with_locks), 1..40);
        let result = runner.run(&steps, |schedule| {
            let mut sessions = sessions.borrow_mut();
            // A failed case (while shrinking) may have left transactions open.
            for conn in sessions.iter_mut() {
                rollback_open(conn);
            }
            // Fresh rows: every cell holds value 0 at version 0.
            diesel::delete(cells::table).execute(&mut sessions[0]).unwrap();
            for id in 1..=ROWS {
                diesel::insert_into(cells::table)
                    .values((cells::id.eq(id), cells::value.eq(0), cells::version.eq(0)))
                    .execute(&mut sessions[0])
                    .unwrap();
            }
            let mut model = Model::new(std::any::type_name_of_val(&sessions[0]).contains("Mysql"));
            // What each session last read of each row.
            let mut copies: Vec<Vec<Option<Cell>>> = vec![vec![None; ROWS as usize]; SESSIONS];
            for &(session, id, op) in &schedule {
                let conn = &mut sessions[session];
                let r = (id - 1) as usize;
                let cell_of = |state: State| state.map(|(value, version)| Cell { id, value, version });
                match op {
                    Op::Read => {
                        // Inside a transaction a plain read would see
                        // MariaDB's snapshot; the locks read there instead.
                        if model.open[session] {
                            continue;
                        }
                        let read = read_cell!(conn, id);
                        prop_assert_eq!(&read, &cell_of(model.rows[r]), "a read sees the last committed write");
                        copies[session][r] = read;
                    }
                    Op::Write => {
                        let Some(mut cell) = copies[session][r].clone() else { continue };
                        if model.blocked(session, r, true) {
                            continue;
                        }
                        let expected = cell.version;
                        cell.value += 1;
                        let outcome = cell.update_versioned(conn);
                        match model.view(session, r) {
                            Some((_, version)) if version == expected => {
                                prop_assert!(outcome.is_ok(), "{:?}", outcome);
                                prop_assert!(cell.version > version, "versions only grow");
                                model.write(session, r, Some((cell.value, cell.version)));
                                copies[session][r] = Some(cell);
                            }
                            Some((_, version)) => match outcome {
                                Err(OccError::Conflict { actual, .. }) => {
                                    prop_assert_eq!(actual, version.to_string(), "a conflict names the version the row has");
                                    if model.open[session] && model.failed_writes_lock {
                                        model.locks[session][r] = Some(true);
                                    }
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
                        let Some(cell) = copies[session][r].clone() else { continue };
                        if model.blocked(session, r, true) {
                            continue;
                        }
                        let outcome = cell.delete_versioned(conn);
                        match model.view(session, r) {
                            Some((_, version)) if version == cell.version => {
                                prop_assert!(outcome.is_ok(), "{:?}", outcome);
                                model.write(session, r, None);
                                copies[session][r] = None;
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
                    Op::Lock { exclusive } => {
                        if !model.open[session] {
                            begin(conn);
                            model.open[session] = true;
                        }
                        let outcome: Result<Cell, OccError> = schedules!(@lock $locks, conn, id, exclusive);
                        if model.blocked(session, r, exclusive) {
                            prop_assert!(
                                matches!(outcome, Err(OccError::LockNotAvailable(_))),
                                "a held row refuses a NOWAIT lock, got {:?}",
                                outcome
                            );
                            // PostgreSQL has aborted the transaction: end it everywhere.
                            end(conn, false);
                            model.end(session, false);
                            continue;
                        }
                        match model.view(session, r) {
                            Some(state) => {
                                let expected = cell_of(Some(state));
                                prop_assert_eq!(outcome.as_ref().ok(), expected.as_ref(), "a lock reads the row as its session sees it");
                                let held = &mut model.locks[session][r];
                                *held = Some(held.unwrap_or(false) || exclusive);
                                copies[session][r] = outcome.ok();
                            }
                            None => prop_assert!(
                                matches!(outcome, Err(OccError::NotFound { .. })),
                                "expected not found, got {:?}",
                                outcome
                            ),
                        }
                    }
                    Op::Commit => {
                        if model.open[session] {
                            end(conn, true);
                            model.end(session, true);
                        }
                    }
                }
            }
            for (session, conn) in sessions.iter_mut().enumerate() {
                if model.open[session] {
                    end(conn, true);
                    model.end(session, true);
                }
            }
            // No committed write is lost: the rows are what the model says.
            for id in 1..=ROWS {
                let read = read_cell!(&mut sessions[0], id);
                let expected = model.rows[(id - 1) as usize].map(|(value, version)| Cell { id, value, version });
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
        schedules!(db, no_locks);
    }
}

/// The same with row locks, on the servers.
mod locked {
    use super::*;

    per_server! {
        fn random_schedules_with_locks_match_the_model(db) {
            schedules!(db, locks);
        }
    }
}
