use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use occ::async_prelude::*;

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

async fn lock(conn: &mut SyncConnectionWrapper<SqliteConnection>) {
    // SQLite has no row locks, on diesel-async's connection as on diesel's.
    let _ = Product::find_exclusive(conn, 1).await;
    let _ = products::table.select(products::qty).exclusive().load::<i32, _>(conn).await;
}

fn main() {
    let _ = lock;
}
