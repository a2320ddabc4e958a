use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        qty -> Integer,
    }
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    // SQLite has no row locks: the connection's type says so.
    let _ = conn.immediate_transaction(|conn| {
        products::table
            .find(1)
            .select(products::qty)
            .exclusive()
            .get_result::<i32, SqliteConnection>(conn)
    });
}
