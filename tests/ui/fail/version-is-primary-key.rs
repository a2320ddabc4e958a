use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
    }
}

#[derive(Optimistic)]
struct Product {
    #[occ(version)]
    id: i32,
    name: String,
}

fn main() {}
