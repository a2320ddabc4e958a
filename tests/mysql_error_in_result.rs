//! An error that arrives inside a result set, after rows were sent: the
//! prepared statement that read it must run again without hanging. Found on
//! Galera (a transaction aborted in the middle of a locking read); reproduced
//! here on one server with a deadlock whose victim is a locking read that has
//! already streamed thousands of rows.
//!
//! Without occ's workaround (dropping the connection's cached statements
//! after a failed transaction, `after_failed_transaction` in
//! occ-runtime/src/backend/mysql.rs) the second execution of the cached
//! statement waits forever inside the client library (seen with the
//! workaround removed: the test then times out). What is left without it is
//! diesel's transaction and its cached prepared statement, so the defect lies
//! between diesel's MySQL statement cache and libmariadb: a statement whose
//! result set ended in an error is executed again without being reset.

#![cfg(feature = "mysql")]

mod common;

use std::sync::mpsc::channel;
use std::time::Duration;

use common::TestDb;
use diesel::connection::SimpleConnection;
use occ::prelude::*;

diesel::table! {
    wide (id) {
        id -> Integer,
        v -> Integer,
        pad -> Text,
    }
}

#[test]
fn a_locking_read_runs_again_after_a_deadlock_in_its_result() {
    let Some(db) = <common::MysqlDb>::new("mysql_error_in_result::deadlock") else {
        return;
    };
    db.exec("CREATE TABLE wide (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad TEXT NOT NULL)");
    let rows: Vec<String> = (1..=3000)
        .map(|id| format!("({id}, 0, REPEAT('x', 200))"))
        .collect();
    db.exec(&format!("INSERT INTO wide VALUES {}", rows.join(", ")));
    // The other transaction: heavier (it wrote rows), so InnoDB picks the
    // reader as the deadlock victim. It holds the rows the reader reaches last.
    let mut other = db.conn();
    other.batch_execute("SET SESSION innodb_lock_wait_timeout = 20; BEGIN; UPDATE wide SET v = 1 WHERE id > 2500").unwrap();
    let mut reader = db.conn();
    reader
        .batch_execute("SET SESSION innodb_lock_wait_timeout = 20")
        .unwrap();
    let (done_tx, done_rx) = channel();
    let (attempt_tx, attempt_rx) = channel();
    let thread = std::thread::spawn(move || {
        let outcome = occ::retry_counted(
            &mut reader,
            &RetryPolicy::default(),
            |conn| -> Result<_, OccError> {
                attempt_tx.send(()).ok();
                let rows: Vec<i32> = wide::table.select(wide::id).exclusive().load(conn)?;
                Ok(rows.len())
            },
        );
        done_tx
            .send((outcome.result.map_err(|e| e.to_string()), outcome.attempts))
            .unwrap();
    });
    // The reader is waiting for row 2501; close the cycle.
    attempt_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let closing = other.batch_execute("UPDATE wide SET v = 2 WHERE id = 1");
    other.batch_execute("COMMIT").unwrap();
    let (result, attempts) = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the locking read hung when it ran again");
    thread.join().unwrap();
    eprintln!("closing update: {closing:?}; reader: {result:?} after {attempts} attempts");
    assert_eq!(result, Ok(3000));
    assert_eq!(attempts, 2, "the reader was the deadlock victim once");
}
