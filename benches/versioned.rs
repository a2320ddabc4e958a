//! What a versioned write costs over the plain diesel `UPDATE` it replaces, on
//! an in-memory SQLite database (no network: the statement itself is measured).
//! Both run in one process; compare the two lines of the group.

use criterion::{criterion_group, criterion_main, Criterion};
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

fn connection() -> SqliteConnection {
    let mut conn = SqliteConnection::establish(":memory:").expect("in-memory sqlite");
    diesel::sql_query(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         qty INTEGER NOT NULL, version INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .expect("create table");
    diesel::sql_query("INSERT INTO products VALUES (1, 'anvil', 10, 0)")
        .execute(&mut conn)
        .expect("insert row");
    conn
}

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("update one row");

    let mut conn = connection();
    let mut version = 0;
    group.bench_function("diesel update (baseline)", |b| {
        b.iter(|| {
            version += 1;
            let n = diesel::update(products::table.find(1))
                .set((
                    products::name.eq("anvil"),
                    products::qty.eq(version),
                    products::version.eq(version),
                ))
                .execute(&mut conn)
                .expect("update");
            assert_eq!(n, 1);
        })
    });

    let mut conn = connection();
    let mut product: Product = products::table
        .find(1)
        .select(Product::as_select())
        .first(&mut conn)
        .expect("load");
    group.bench_function("occ update_versioned", |b| {
        b.iter(|| {
            product.qty += 1;
            product
                .update_versioned(&mut conn)
                .expect("versioned update");
        })
    });

    let mut conn = connection();
    let mut stale: Product = products::table
        .find(1)
        .select(Product::as_select())
        .first(&mut conn)
        .expect("load");
    Product::update_if_version(&mut conn, 1, 0, products::qty.eq(0)).expect("move the row on");
    group.bench_function("occ update_versioned, conflict", |b| {
        b.iter(|| {
            let err = stale.update_versioned(&mut conn).unwrap_err();
            assert!(err.is_conflict());
        })
    });
    group.finish();
}

criterion_group!(benches, update);
criterion_main!(benches);
