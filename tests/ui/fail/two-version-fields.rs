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
    version: i32,
    #[occ(version)]
    revision: i32,
}

fn main() {}
