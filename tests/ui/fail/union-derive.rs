use occ::prelude::*;

#[derive(Optimistic)]
union Product {
    id: i32,
    version: i64,
}

fn main() {}
