use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
    }
}

fn names(conn: &mut PgConnection) -> Result<Vec<(i32, i32)>, OccError> {
    // PostgreSQL has row locks: what does not fit is the row type, a name
    // loaded as an integer.
    conn.transaction(|conn| {
        products::table
            .select((products::id, products::name))
            .exclusive()
            .load(conn)
    })
}

fn main() {
    let _ = names;
}
