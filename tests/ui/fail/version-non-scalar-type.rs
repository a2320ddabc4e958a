use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Integer,
        revision -> Integer,
    }
}

#[derive(Optimistic)]
struct Product {
    id: i32,
    name: String,
    #[occ(version)]
    version: Vec<i32>,
}

#[derive(Optimistic)]
#[diesel(table_name = products)]
struct ProductPair {
    id: i32,
    name: String,
    #[occ(version)]
    version: (i32, i32),
}

fn main() {}
