//! The anomalies the published isolation suites name (Hermitage, after Adya:
//! lost update P4, read skew G-single, write skew G2-item, phantom), each an
//! interleaving of two sessions written out step by step on two real
//! connections, with what occ's versions and locks do about it. And the bank
//! invariant: eight threads moving money between ten accounts lose and make
//! none, through versions and through locks.

// Without a server backend, what only the row-lock scenarios use is unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(dead_code, unused_macros)
)]

mod common;

use std::sync::Barrier;

use common::TestDb;
use occ::prelude::*;

diesel::table! {
    accounts (id) {
        id -> Integer,
        balance -> Integer,
        version -> Integer,
    }
}

diesel::table! {
    doctors (id) {
        id -> Integer,
        on_call -> Bool,
        version -> Integer,
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Optimistic)]
struct Account {
    id: i32,
    balance: i32,
    #[occ(version)]
    version: i32,
}

#[derive(Debug, Clone, Queryable, Selectable, Optimistic)]
struct Doctor {
    id: i32,
    on_call: bool,
    #[occ(version)]
    version: i32,
}

fn accounts<D: TestDb>(db: &D, balances: &[i32]) {
    db.exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, version INTEGER NOT NULL)");
    let rows: Vec<String> = balances
        .iter()
        .enumerate()
        .map(|(i, b)| format!("({}, {b}, 0)", i + 1))
        .collect();
    db.exec(&format!(
        "INSERT INTO accounts (id, balance, version) VALUES {}",
        rows.join(", ")
    ));
}

macro_rules! account {
    ($conn:expr, $id:expr) => {
        accounts::table
            .find($id)
            .select(Account::as_select())
            .first::<Account>($conn)
            .expect("read an account")
    };
}

macro_rules! doctor {
    ($conn:expr, $id:expr) => {
        doctors::table
            .find($id)
            .select(Doctor::as_select())
            .first::<Doctor>($conn)
            .expect("read a doctor")
    };
}

/// The sum of the balances, after checking that none is below zero.
macro_rules! total {
    ($conn:expr) => {{
        let balances: Vec<i32> = accounts::table
            .select(accounts::balance)
            .load($conn)
            .expect("balances");
        assert!(
            balances.iter().all(|b| *b >= 0),
            "no balance below zero: {balances:?}"
        );
        balances.into_iter().map(i64::from).sum::<i64>()
    }};
}

macro_rules! on_call {
    ($conn:expr) => {
        doctors::table
            .filter(doctors::on_call.eq(true))
            .count()
            .get_result::<i64>($conn)
            .expect("count")
    };
}

per_backend! {
    // P4, lost update: both sessions read balance 100, both write back what
    // they computed. With versions the second write conflicts instead of
    // overwriting the first.
    fn lost_update_is_prevented_by_versions(db) {
        accounts(&db, &[100]);
        let (mut s1, mut s2) = (db.conn(), db.conn());
        let mut a1 = account!(&mut s1, 1); // s1 reads 100
        let mut a2 = account!(&mut s2, 1); // s2 reads 100
        a1.balance += 10;
        a1.update_versioned(&mut s1).unwrap(); // s1 writes 110
        a2.balance += 20;
        let error = a2.update_versioned(&mut s2).unwrap_err(); // s2 would write 120
        assert!(matches!(&error, OccError::Conflict { actual, .. } if actual == "1"), "{error:?}");
        assert_eq!(account!(&mut s2, 1).balance, 110, "the first write stands");
    }

    // The bank invariant through versions: eight threads, ten accounts,
    // transfers of random amounts (never more than the balance) through
    // `occ::retry`. The total never changes and no balance goes negative.
    fn bank_invariant_with_versions(db) {
        accounts(&db, &[1000; 10]);
        race(&db, |conn, from, to, amount| {
            let mut a = account!(conn, from);
            let mut b = account!(conn, to);
            if a.balance < amount {
                return Ok(false);
            }
            a.balance -= amount;
            b.balance += amount;
            a.update_versioned(conn)?;
            b.update_versioned(conn)?;
            Ok(true)
        });
        assert_eq!(total!(&mut db.conn()), 10_000);
    }
}

/// Runs 8 threads x 50 transfers between random accounts through
/// `occ::retry`, with `transfer(conn, from, to, amount)`.
fn race<D, F>(db: &D, transfer: F)
where
    D: TestDb + Sync,
    D::Conn: occ::OccConnection,
    F: Fn(&mut D::Conn, i32, i32, i32) -> Result<bool, OccError> + Sync,
{
    let barrier = Barrier::new(8);
    let moved: u32 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8u64)
            .map(|worker| {
                let (barrier, transfer) = (&barrier, &transfer);
                s.spawn(move || {
                    let mut conn = db.conn();
                    let mut seed =
                        0x9E37_79B9_7F4A_7C15 ^ (worker + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    let mut next = move || {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed
                    };
                    let policy = RetryPolicy::default().max_attempts(1000);
                    barrier.wait();
                    let mut moved = 0;
                    for _ in 0..50 {
                        let from = 1 + (next() % 10) as i32;
                        let to = 1 + ((from as u64 + next() % 9) % 10) as i32;
                        let amount = 1 + (next() % 300) as i32;
                        let done =
                            occ::retry(&mut conn, &policy, |conn| transfer(conn, from, to, amount))
                                .expect("a transfer commits or is declined");
                        moved += u32::from(done);
                    }
                    moved
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert!(moved > 0, "some transfers went through");
}

/// Row locks: PostgreSQL and MySQL/MariaDB.
mod locking {
    use super::*;

    per_server! {
        // P4 under locks: s1 locks the row before reading it; s2's lock is
        // refused while s1 holds it (NOWAIT shows the wait without waiting),
        // and once s1 commits, s2 reads what s1 wrote.
        fn lost_update_is_prevented_by_an_exclusive_lock(db) {
            accounts(&db, &[100]);
            let (mut s1, mut s2) = (db.conn(), db.conn());
            s1.transaction::<_, OccError, _>(|s1| {
                let mut a = Account::find_exclusive(s1, 1)?; // s1 locks and reads 100
                let waits = s2.transaction::<_, OccError, _>(|s2| {
                    Account::lock(1).exclusive().nowait().get_result::<Account, _>(s2)
                });
                assert!(matches!(waits, Err(OccError::LockNotAvailable(_))), "{waits:?}");
                a.balance += 10;
                a.update_versioned(s1)
            })
            .unwrap();
            let seen = s2.transaction::<_, OccError, _>(|s2| Account::find_exclusive(s2, 1)).unwrap();
            assert_eq!(seen.balance, 110);
        }

        // G-single, read skew: x = y = 50, the invariant x + y = 100. s1 reads
        // x, s2 moves 10 from x to y and commits, s1 reads y. A shared lock on
        // what s1 reads keeps s2 out until s1 is done.
        fn read_skew_is_prevented_by_a_shared_lock(db) {
            accounts(&db, &[50, 50]);
            let (mut s1, mut s2) = (db.conn(), db.conn());
            let sum = s1
                .transaction::<_, OccError, _>(|s1| {
                    let x = Account::find_shared(s1, 1)?; // s1 reads x = 50
                    let transfer = s2.transaction::<_, OccError, _>(|s2| {
                        let x = Account::lock(1).exclusive().nowait().get_result::<Account, _>(s2)?;
                        let y = Account::find_exclusive(s2, 2)?;
                        diesel::update(accounts::table.find(1)).set(accounts::balance.eq(x.balance - 10)).execute(s2)?;
                        diesel::update(accounts::table.find(2)).set(accounts::balance.eq(y.balance + 10)).execute(s2)?;
                        Ok(())
                    });
                    assert!(matches!(transfer, Err(OccError::LockNotAvailable(_))), "s2 must wait for s1: {transfer:?}");
                    let y = Account::find_shared(s1, 2)?; // s1 reads y = 50
                    Ok(x.balance + y.balance)
                })
                .unwrap();
            assert_eq!(sum, 100, "s1 saw x and y of one state");
        }

        // G2-item, write skew: two doctors on call, each session checks that
        // the other is on call and takes its own doctor off. Per-row versions do
        // not see it (each writes a row the other only read): both commit and
        // nobody is on call.
        fn write_skew_is_not_prevented_by_versions_alone(db) {
            doctors(&db);
            let (mut s1, mut s2) = (db.conn(), db.conn());
            let (mut d1, d2) = (doctor!(&mut s1, 1), doctor!(&mut s1, 2)); // s1: both on call
            let (e1, mut e2) = (doctor!(&mut s2, 1), doctor!(&mut s2, 2)); // s2: both on call
            assert!(d2.on_call && e1.on_call);
            d1.on_call = false;
            d1.update_versioned(&mut s1).unwrap();
            e2.on_call = false;
            e2.update_versioned(&mut s2).unwrap();
            assert_eq!(on_call!(&mut s1), 0, "the anomaly: nobody is on call");
        }

        // The same, with the rows read locked: s2 cannot take its look while
        // s1 holds them, and after s1 commits it sees one doctor on call and
        // leaves its own alone.
        fn write_skew_is_prevented_by_locking_the_rows_read(db) {
            doctors(&db);
            let (mut s1, mut s2) = (db.conn(), db.conn());
            s1.transaction::<_, OccError, _>(|s1| {
                let all: Vec<Doctor> = doctors::table.select(Doctor::as_select()).order(doctors::id).exclusive().load(s1)?;
                assert_eq!(all.iter().filter(|d| d.on_call).count(), 2);
                let look = s2.transaction::<_, OccError, _>(|s2| {
                    doctors::table.select(Doctor::as_select()).exclusive().nowait().load::<Doctor, _>(s2)
                });
                assert!(matches!(look, Err(OccError::LockNotAvailable(_))), "{look:?}");
                let mut d1 = all[0].clone();
                d1.on_call = false;
                d1.update_versioned(s1)
            })
            .unwrap();
            let took_off = s2
                .transaction::<_, OccError, _>(|s2| {
                    let all: Vec<Doctor> = doctors::table.select(Doctor::as_select()).order(doctors::id).exclusive().load(s2)?;
                    if all.iter().filter(|d| d.on_call).count() < 2 {
                        return Ok(false);
                    }
                    let mut d2 = all[1].clone();
                    d2.on_call = false;
                    d2.update_versioned(s2).map(|()| true)
                })
                .unwrap();
            assert!(!took_off);
            assert_eq!(on_call!(&mut s1), 1);
        }

        // The same, with versions: each session also bumps the version of the
        // row it read and did not write, so the second session's bump finds
        // the version the first one's write left, and conflicts.
        fn write_skew_is_prevented_by_bumping_the_rows_read(db) {
            doctors(&db);
            let (mut s1, mut s2) = (db.conn(), db.conn());
            let (mut d1, mut d2) = (doctor!(&mut s1, 1), doctor!(&mut s1, 2));
            let (mut e1, mut e2) = (doctor!(&mut s2, 1), doctor!(&mut s2, 2));
            s1.transaction::<_, OccError, _>(|s1| {
                d2.bump_version(s1)?;
                d1.on_call = false;
                d1.update_versioned(s1)
            })
            .unwrap();
            let second = s2.transaction::<_, OccError, _>(|s2| {
                e1.bump_version(s2)?;
                e2.on_call = false;
                e2.update_versioned(s2)
            });
            assert!(second.as_ref().is_err_and(OccError::is_conflict), "{second:?}");
            assert_eq!(on_call!(&mut s1), 1);
        }

        // A phantom: s1 checks that no booking holds room 1 at 10:00 (locking
        // what it read: nothing), s2 books it meanwhile, s1 books it too. Row
        // locks cannot lock a row that does not exist yet: PostgreSQL lets s2
        // in; InnoDB's next-key locks hold s2 off under REPEATABLE READ, which is
        // not a promise of every backend. What holds everywhere is a unique key
        // on what must not be booked twice: whichever insert comes second fails.
        fn a_phantom_is_stopped_by_a_unique_key_not_by_row_locks(db) {
            use diesel::connection::SimpleConnection;
            db.exec("CREATE TABLE bookings (id INTEGER PRIMARY KEY, room INTEGER NOT NULL, slot INTEGER NOT NULL, UNIQUE (room, slot))");
            let pg = std::any::type_name_of_val(&db).contains("Pg");
            let (mut s1, mut s2) = (db.conn(), db.conn());
            // s2 waits at most a second for a lock.
            s2.batch_execute(if pg { "SET lock_timeout = '1s'" } else { "SET SESSION innodb_lock_wait_timeout = 1" }).unwrap();
            let book = |id: i32| diesel::insert_into(bookings::table).values((bookings::id.eq(id), bookings::room.eq(1), bookings::slot.eq(10)));
            let (first, second) = s1
                .transaction::<_, OccError, _>(|s1| {
                    // s1: is room 1 free at 10:00? Nothing there to lock.
                    let taken: Vec<i32> = bookings::table
                        .select(bookings::id)
                        .filter(bookings::room.eq(1).and(bookings::slot.eq(10)))
                        .exclusive()
                        .load(s1)?;
                    assert!(taken.is_empty());
                    // s2 books it meanwhile.
                    let second = book(2).execute(&mut s2).map_err(OccError::from);
                    // s1 books it.
                    let first = book(1).execute(s1).map_err(OccError::from);
                    Ok((first, second))
                })
                .unwrap();
            if pg {
                // No gap locks: the row lock did not stop s2, the unique key stopped s1.
                assert!(second.is_ok(), "{second:?}");
                assert!(
                    matches!(&first, Err(OccError::Database(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)))),
                    "{first:?}"
                );
            } else {
                // InnoDB's next-key lock on the range s1 read held s2 off.
                assert!(matches!(second, Err(OccError::LockTimeout(_))), "{second:?}");
                assert!(first.is_ok(), "{first:?}");
            }
            let bookings: i64 = bookings::table.count().get_result(&mut s1).unwrap();
            assert_eq!(bookings, 1, "room 1 at 10:00 is booked once");
        }

        // The bank invariant through row locks: each transfer locks both
        // accounts, in key order so that two transfers never wait on each
        // other in a cycle.
        fn bank_invariant_with_locks(db) {
            accounts(&db, &[1000; 10]);
            race(&db, |conn, from, to, amount| {
                let (first, second) = if from < to { (from, to) } else { (to, from) };
                let a = Account::find_exclusive(conn, first)?;
                let b = Account::find_exclusive(conn, second)?;
                let (mut from_account, mut to_account) = if a.id == from { (a, b) } else { (b, a) };
                if from_account.balance < amount {
                    return Ok(false);
                }
                from_account.balance -= amount;
                to_account.balance += amount;
                from_account.update_versioned(conn)?;
                to_account.update_versioned(conn)?;
                Ok(true)
            });
            assert_eq!(total!(&mut db.conn()), 10_000);
        }
    }
}

diesel::table! {
    bookings (id) {
        id -> Integer,
        room -> Integer,
        slot -> Integer,
    }
}

fn doctors<D: TestDb>(db: &D) {
    db.exec("CREATE TABLE doctors (id INTEGER PRIMARY KEY, on_call BOOLEAN NOT NULL, version INTEGER NOT NULL)");
    db.exec("INSERT INTO doctors (id, on_call, version) VALUES (1, TRUE, 0), (2, TRUE, 0)");
}
