use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Integer,
    }
}

#[derive(Optimistic)]
#[occ(table = "products")]
struct Product {
    id: i32,
    #[occ(readonly)]
    name: String,
    #[occ(version)]
    version: i32,
}

fn main() {}
