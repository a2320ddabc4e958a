use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        qty -> Integer,
    }
}

fn quantities(conn: &mut SqliteConnection) -> Result<Vec<i32>, OccError> {
    // SQLite has no row locks, with the connection's type inferred too.
    products::table.select(products::qty).exclusive().load(conn)
}

fn one(conn: &mut SqliteConnection) -> Result<i32, OccError> {
    products::table.find(1).select(products::qty).exclusive().get_result(conn)
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    let _ = conn.immediate_transaction(|conn| quantities(conn));
    let _ = one(&mut conn);
}
