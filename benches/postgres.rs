//! What occ costs over the diesel code a careful user would write by hand,
//! on PostgreSQL (`OCC_PG_URL`), in one process:
//!
//! - a versioned update: `diesel::update(t.filter(id).filter(version))
//!   .set((.., version + 1))` and its row-count check, against
//!   `update_versioned`;
//! - a versioned delete, the same way, against `delete_versioned`; the three
//!   deletes of a round run back to back on three fresh rows, in rotating
//!   order, each timing only its own, so that all see the same server;
//! - the same update and delete through `diesel_versioning`, the other
//!   optimistic-locking crate for diesel, as a peer row;
//! - a batch of 1000 versioned updates, 1% of them stale:
//!   `update_versioned_all` against a loop of `update_versioned` and against
//!   the hand-written diesel loop, each in one transaction;
//! - the conflict path: `update_versioned_or_current` on a stale model (one
//!   statement) against `update_versioned` then `reload` (three);
//! - a locked read in its own transaction: diesel's `.for_update()` against
//!   `find_exclusive`;
//! - an uncontended read-modify-write: a read and `update_versioned` by
//!   hand, against `modify`.
//!
//! ```text
//! OCC_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench --features postgres --bench postgres
//! ```

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use diesel::connection::SimpleConnection;
use diesel_versioning::Versioned;
use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Clone)]
struct Product {
    id: i32,
    name: String,
    qty: i32,
    #[occ(version)]
    version: i32,
}

/// The same row for `diesel_versioning`'s derive.
#[derive(Queryable, Selectable, AsChangeset, Identifiable, Versioned, Clone)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
struct PeerProduct {
    id: i32,
    name: String,
    qty: i32,
    #[version]
    version: i32,
}

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Clone)]
struct Item {
    id: i32,
    name: String,
    qty: i32,
    #[occ(version)]
    version: i32,
}

const BATCH: i32 = 1000;

const SCHEMA: &str = "occ_bench_postgres";

fn connection() -> Option<PgConnection> {
    let url = std::env::var("OCC_PG_URL").ok().filter(|u| !u.is_empty())?;
    let mut conn = PgConnection::establish(&url).expect("connect to OCC_PG_URL");
    conn.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; SET search_path TO {SCHEMA}; \
         CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         qty INTEGER NOT NULL, version INTEGER NOT NULL); \
         INSERT INTO products VALUES (1, 'anvil', 0, 0); \
         CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         qty INTEGER NOT NULL, version INTEGER NOT NULL); \
         INSERT INTO items SELECT i, 'item ' || i, 0, 0 FROM generate_series(1, {BATCH}) AS i;"
    ))
    .expect("set up the bench schema");
    Some(conn)
}

fn read(conn: &mut PgConnection, id: i32) -> Product {
    products::table
        .find(id)
        .select(Product::as_select())
        .first(conn)
        .expect("read the row")
}

fn writes(c: &mut Criterion) {
    let Some(conn) = connection() else {
        eprintln!("OCC_PG_URL is not set: the PostgreSQL benchmarks need it");
        return;
    };
    let conn = RefCell::new(conn);
    let mut group = c.benchmark_group("versioned writes (PostgreSQL)");
    group.measurement_time(Duration::from_secs(5));

    let mut row = read(&mut conn.borrow_mut(), 1);
    group.bench_function("update: hand-written diesel (baseline)", |b| {
        b.iter(|| {
            let next = row.version + 1;
            let n = diesel::update(
                products::table
                    .filter(products::id.eq(row.id))
                    .filter(products::version.eq(row.version)),
            )
            .set((
                products::name.eq(&row.name),
                products::qty.eq(row.qty + 1),
                products::version.eq(next),
            ))
            .execute(&mut *conn.borrow_mut())
            .expect("update");
            assert_eq!(n, 1, "the version matched");
            row.qty += 1;
            row.version = next;
        })
    });

    let mut row = read(&mut conn.borrow_mut(), 1);
    group.bench_function("update: occ update_versioned", |b| {
        b.iter(|| {
            row.qty += 1;
            row.update_versioned(&mut *conn.borrow_mut())
                .expect("update");
        })
    });

    let mut peer = products::table
        .find(1)
        .select(PeerProduct::as_select())
        .first(&mut *conn.borrow_mut())
        .expect("read the row");
    group.bench_function("update: diesel_versioning (peer)", |b| {
        b.iter(|| {
            peer.qty += 1;
            peer.update_versioned(&mut *conn.borrow_mut())
                .expect("update");
        })
    });

    let next_id = RefCell::new(100);
    for deleter in Deleter::ALL {
        group.bench_function(deleter.name(), |b| {
            b.iter_custom(|iters| {
                delete_rounds(
                    &mut conn.borrow_mut(),
                    &mut next_id.borrow_mut(),
                    deleter,
                    iters,
                )
            })
        });
    }
    group.finish();
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Deleter {
    Diesel,
    Occ,
    Peer,
}

impl Deleter {
    const ALL: [Self; 3] = [Self::Diesel, Self::Occ, Self::Peer];

    fn name(self) -> &'static str {
        match self {
            Self::Diesel => "delete: hand-written diesel (baseline)",
            Self::Occ => "delete: occ delete_versioned",
            Self::Peer => "delete: diesel_versioning (peer)",
        }
    }

    /// Deletes the row `id` (read untimed first); the time of the delete.
    fn delete(self, conn: &mut PgConnection, id: i32) -> Duration {
        let row = read(conn, id);
        let started = Instant::now();
        match self {
            Self::Diesel => {
                let n = diesel::delete(
                    products::table
                        .filter(products::id.eq(row.id))
                        .filter(products::version.eq(row.version)),
                )
                .execute(conn)
                .expect("delete");
                assert_eq!(n, 1, "the version matched");
            }
            Self::Occ => row.delete_versioned(conn).expect("delete"),
            Self::Peer => {
                let mut peer = PeerProduct {
                    id: row.id,
                    name: row.name,
                    qty: row.qty,
                    version: row.version,
                };
                peer.delete_versioned(conn).expect("delete");
            }
        }
        started.elapsed()
    }
}

/// `iters` rounds: three fresh rows (inserted untimed), deleted by the three
/// deleters back to back in rotating order; returns `which`'s time alone.
fn delete_rounds(
    conn: &mut PgConnection,
    next_id: &mut i32,
    which: Deleter,
    iters: u64,
) -> Duration {
    let mut mine = Duration::ZERO;
    for round in 0..iters {
        let ids = [*next_id + 1, *next_id + 2, *next_id + 3];
        *next_id += 3;
        diesel::insert_into(products::table)
            .values(
                ids.map(|id| {
                    (
                        products::id.eq(id),
                        products::name.eq("spare"),
                        products::qty.eq(0),
                        products::version.eq(3),
                    )
                })
                .to_vec(),
            )
            .execute(conn)
            .expect("insert");
        for (k, id) in ids.into_iter().enumerate() {
            let deleter = Deleter::ALL[(round as usize + k) % 3];
            let took = deleter.delete(conn, id);
            if deleter == which {
                mine += took;
            }
        }
    }
    mine
}

fn locks(c: &mut Criterion) {
    let Some(mut conn) = connection() else { return };
    let mut group = c.benchmark_group("locked read in a transaction (PostgreSQL)");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("diesel .for_update() (baseline)", |b| {
        b.iter(|| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                products::table
                    .find(1)
                    .select(Product::as_select())
                    .for_update()
                    .first::<Product>(conn)
            })
            .expect("locked read")
        })
    });
    group.bench_function("occ find_exclusive", |b| {
        b.iter(|| {
            conn.transaction::<_, OccError, _>(|conn| Product::find_exclusive(conn, 1))
                .expect("locked read")
        })
    });
    group.finish();
}

/// The batch as a caller holds it before writing: every row read at version
/// 0, and every hundredth row since written by somebody else (untimed).
fn stale_batch(conn: &mut PgConnection) -> Vec<Item> {
    conn.batch_execute(
        "UPDATE items SET qty = 0, version = 0; UPDATE items SET version = 1 WHERE id % 100 = 0",
    )
    .expect("reset the items");
    let mut items: Vec<Item> = items::table
        .select(Item::as_select())
        .order(items::id)
        .load(conn)
        .expect("read the items");
    for item in &mut items {
        item.version = 0;
        item.qty += 1;
    }
    items
}

fn batches(c: &mut Criterion) {
    let Some(conn) = connection() else { return };
    let conn = RefCell::new(conn);
    let mut group = c.benchmark_group("1000 versioned updates, 1% stale (PostgreSQL)");
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(20);
    let setup = || stale_batch(&mut conn.borrow_mut());
    group.bench_function(
        "hand-written diesel loop in a transaction (baseline)",
        |b| {
            b.iter_batched(
                setup,
                |items| {
                    conn.borrow_mut()
                        .transaction::<_, diesel::result::Error, _>(|conn| {
                            let mut written = 0;
                            for item in &items {
                                written += diesel::update(
                                    items::table
                                        .filter(items::id.eq(item.id))
                                        .filter(items::version.eq(item.version)),
                                )
                                .set((
                                    items::name.eq(&item.name),
                                    items::qty.eq(item.qty),
                                    items::version.eq(item.version + 1),
                                ))
                                .execute(conn)?;
                            }
                            assert_eq!(written, 990);
                            Ok(())
                        })
                        .expect("update")
                },
                BatchSize::PerIteration,
            )
        },
    );
    group.bench_function("occ update_versioned loop in a transaction", |b| {
        b.iter_batched(
            setup,
            |mut items| {
                conn.borrow_mut()
                    .transaction::<_, OccError, _>(|conn| {
                        let conflicts = items
                            .iter_mut()
                            .filter_map(|item| item.update_versioned(conn).err())
                            .filter(OccError::is_conflict)
                            .count();
                        assert_eq!(conflicts, 10);
                        Ok(())
                    })
                    .expect("update")
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("occ update_versioned_all", |b| {
        b.iter_batched(
            setup,
            |mut items| {
                let report = Item::update_versioned_all(&mut *conn.borrow_mut(), &mut items)
                    .expect("update");
                assert_eq!(report.conflicts().len(), 10);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn conflicts(c: &mut Criterion) {
    let Some(conn) = connection() else { return };
    let conn = RefCell::new(conn);
    let mut group = c.benchmark_group("a stale write and the current row (PostgreSQL)");
    group.measurement_time(Duration::from_secs(5));
    // The model as read, after which somebody else wrote the row (untimed).
    let stale = || {
        let mut conn = conn.borrow_mut();
        let mut row = read(&mut conn, 1);
        Product::update_if_version(&mut *conn, 1, row.version, products::qty.eq(row.qty + 1))
            .expect("the other write");
        row.qty += 10;
        row
    };
    group.bench_function("update_versioned, then reload (baseline)", |b| {
        b.iter_batched(
            stale,
            |mut row| {
                let conn = &mut *conn.borrow_mut();
                assert!(row.update_versioned(conn).unwrap_err().is_conflict());
                row.reload(conn).expect("reload");
                row
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("update_versioned_or_current", |b| {
        b.iter_batched(
            stale,
            |mut row| {
                row.update_versioned_or_current(&mut *conn.borrow_mut())
                    .expect("the current row")
                    .expect("a conflict")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// An uncontended read-modify-write: `modify` on a cold row against the
/// read and the `update_versioned` written by hand.
fn modify(c: &mut Criterion) {
    let Some(conn) = connection() else { return };
    let conn = RefCell::new(conn);
    let mut group = c.benchmark_group("read-modify-write of a cold row (PostgreSQL)");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("read, then update_versioned (baseline)", |b| {
        b.iter(|| {
            let conn = &mut *conn.borrow_mut();
            let mut row = read(conn, 1);
            row.qty += 1;
            row.update_versioned(conn).expect("update");
            row
        })
    });
    let policy =
        occ::ModifyPolicy::default().temperature(std::sync::Arc::new(occ::Temperature::new()));
    group.bench_function("occ modify (adaptive)", |b| {
        b.iter(|| {
            Product::modify_with(&mut *conn.borrow_mut(), 1, &policy, |row| {
                row.qty += 1;
                Ok::<_, OccError>(())
            })
            .expect("modify")
        })
    });
    group.finish();
}

criterion_group!(benches, writes, locks, batches, conflicts, modify);
criterion_main!(benches);
