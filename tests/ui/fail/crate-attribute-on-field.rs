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
    #[occ(crate = "occ")]
    name: String,
    #[occ(version)]
    version: i32,
}

fn main() {}
