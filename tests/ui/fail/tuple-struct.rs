use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        version -> Integer,
    }
}

#[derive(Optimistic)]
struct Product(i32, #[occ(version)] i32);

fn main() {}
