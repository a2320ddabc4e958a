use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Integer,
    }
}

// One build shows every mistake in the model, not only the first one.
#[derive(Optimistic)]
#[occ(krate = "occ")]
#[diesel(primary_key(product_id))]
struct Product {
    id: i32,
    #[occ(readonly)]
    name: String,
    #[occ(version)]
    version: Option<i32>,
}

fn main() {}
