use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Integer,
    }
}

#[derive(Optimistic)]
struct Product {
    id: i32,
    name: String,
    #[occ(version)]
    #[occ(version)]
    version: i32,
}

fn main() {}
