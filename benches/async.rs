//! The async API on PostgreSQL (`OCC_PG_URL`), against what it replaces, in
//! one process:
//!
//! - one versioned update: occ's `update_versioned` against the hand-written
//!   diesel-async statement a careful user would write (the same `UPDATE ..
//!   WHERE id = .. AND version = ..` and its row-count check);
//! - a hot row: 16 tasks on a pool of 4 incrementing it through `retry_async`,
//!   against 8 threads doing the same through the sync `occ::retry`; the time
//!   per committed increment.
//!
//! ```text
//! OCC_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench --features async-postgres,postgres,deadpool --bench async
//! ```

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use diesel::connection::SimpleConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::AsyncPgConnection;
use occ::async_prelude::*;

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

const SCHEMA: &str = "occ_bench_async";
const HOT_INCREMENTS: usize = 320;

fn url() -> Option<String> {
    let url = std::env::var("OCC_PG_URL").ok().filter(|u| !u.is_empty())?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-csearch_path%3D{SCHEMA}"))
}

fn setup() {
    let base = std::env::var("OCC_PG_URL").expect("OCC_PG_URL");
    let mut conn = PgConnection::establish(&base).expect("connect to OCC_PG_URL");
    conn.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; \
         CREATE TABLE {SCHEMA}.products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         qty INTEGER NOT NULL, version INTEGER NOT NULL); \
         INSERT INTO {SCHEMA}.products VALUES (1, 'anvil', 0, 0), (2, 'hammer', 0, 0);"
    ))
    .expect("set up the bench schema");
}

fn read(rt: &tokio::runtime::Runtime, conn: &mut AsyncPgConnection, id: i32) -> Product {
    rt.block_on(
        products::table
            .find(id)
            .select(Product::as_select())
            .first(conn),
    )
    .expect("read the row")
}

fn one_write(c: &mut Criterion) {
    let Some(url) = url() else {
        eprintln!("OCC_PG_URL is not set: the async benchmarks need PostgreSQL");
        return;
    };
    setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut conn = rt
        .block_on(AsyncPgConnection::establish(&url))
        .expect("an async connection");
    let mut group = c.benchmark_group("async versioned update (PostgreSQL)");

    let mut row = read(&rt, &mut conn, 1);
    group.bench_function("diesel-async versioned UPDATE (baseline)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
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
                    .execute(&mut conn)
                    .await
                    .expect("update");
                    assert_eq!(n, 1, "the version matched");
                    row.qty += 1;
                    row.version = next;
                }
                start.elapsed()
            })
        })
    });

    let mut row = read(&rt, &mut conn, 1);
    group.bench_function("occ update_versioned", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    row.qty += 1;
                    row.update_versioned(&mut conn).await.expect("update");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn hot_row(c: &mut Criterion) {
    let Some(url) = url() else { return };
    setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let pool: Pool<AsyncPgConnection> =
        Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(&url))
            .max_size(4)
            .build()
            .expect("a pool");
    let policy = RetryPolicy::default()
        .max_attempts(1000)
        .initial_backoff(Duration::from_micros(500))
        .max_backoff(Duration::from_millis(10));
    let mut group = c.benchmark_group(format!("hot row, {HOT_INCREMENTS} increments (PostgreSQL)"));
    group.sample_size(10);

    group.bench_function("8 threads, occ::retry (sync)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let barrier = std::sync::Barrier::new(8);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..8 {
                        let (url, barrier, policy) = (&url, &barrier, &policy);
                        s.spawn(move || {
                            let mut conn = PgConnection::establish(url).expect("connect");
                            barrier.wait();
                            for _ in 0..HOT_INCREMENTS / 8 {
                                occ::retry(&mut conn, policy, |conn| {
                                    let mut p: Product = diesel::RunQueryDsl::first(
                                        products::table.find(2).select(Product::as_select()),
                                        conn,
                                    )?;
                                    p.qty += 1;
                                    occ::OptimisticDsl::update_versioned(&mut p, conn)
                                })
                                .expect("an increment");
                            }
                        });
                    }
                });
                total += start.elapsed();
            }
            total
        })
    });

    group.bench_function("16 tasks on a pool of 4, retry_async", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let mut tasks = Vec::new();
                    for _ in 0..16 {
                        let (pool, policy) = (pool.clone(), policy.clone());
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..HOT_INCREMENTS / 16 {
                                let mut conn = pool.get().await.expect("a connection");
                                occ::retry_async(&mut conn, &policy, async |conn| {
                                    let mut p: Product = products::table
                                        .find(2)
                                        .select(Product::as_select())
                                        .first(conn)
                                        .await?;
                                    p.qty += 1;
                                    p.update_versioned(conn).await
                                })
                                .await
                                .expect("an increment");
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.expect("a task");
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, one_write, hot_row);
criterion_main!(benches);
