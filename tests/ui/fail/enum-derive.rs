use occ::prelude::*;

#[derive(Optimistic)]
enum Product {
    Book { id: i32, version: i32 },
    Pen { id: i32, version: i32 },
}

fn main() {}
