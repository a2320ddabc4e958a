use diesel::r2d2::{ConnectionManager, PooledConnection};
use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic)]
struct Product {
    id: i32,
    qty: i32,
    #[occ(version)]
    version: i32,
}

type Pooled = PooledConnection<ConnectionManager<PgConnection>>;

// A PostgreSQL connection from diesel's r2d2 pool, with occ's `r2d2` feature
// off: both messages name the feature.
fn quantities(conn: &mut Pooled) -> Result<Vec<i32>, OccError> {
    conn.transaction(|conn| products::table.select(products::qty).exclusive().load(conn))
}

fn restock(conn: &mut Pooled, product: &mut Product) -> Result<(), OccError> {
    product.qty += 10;
    product.update_versioned(conn)
}

fn main() {
    let _ = (quantities, restock);
}
