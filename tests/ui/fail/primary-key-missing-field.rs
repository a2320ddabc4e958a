use occ::prelude::*;

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Integer,
        line_no -> Integer,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Optimistic)]
#[diesel(table_name = order_lines, primary_key(order_id, line_number))]
struct OrderLine {
    order_id: i32,
    line_no: i32,
    qty: i32,
    #[occ(version)]
    version: i32,
}

fn main() {}
