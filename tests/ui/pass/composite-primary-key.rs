// A key of two fields, listed in primary_key(...) in an order different from
// the struct's: the predicate matches both columns, and errors name both.
use occ::prelude::*;

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Integer,
        line_no -> SmallInt,
        qty -> Integer,
        version -> SmallInt,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug, Clone)]
#[diesel(table_name = order_lines, primary_key(order_id, line_no))]
struct OrderLine {
    line_no: i16,
    qty: i32,
    #[occ(version)]
    version: i16,
    order_id: i32,
}

fn qtys(conn: &mut SqliteConnection) -> Vec<(i32, i16, i32, i16)> {
    order_lines::table
        .order((order_lines::order_id, order_lines::line_no))
        .load(conn)
        .unwrap()
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE order_lines (order_id INTEGER NOT NULL, line_no SMALLINT NOT NULL, \
         qty INTEGER NOT NULL, version SMALLINT NOT NULL, PRIMARY KEY (order_id, line_no))",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO order_lines VALUES (1, 1, 10, 0), (1, 2, 20, 0), (2, 1, 30, 0)")
        .execute(&mut conn)
        .unwrap();

    let mut line: OrderLine = order_lines::table
        .find((1, 2_i16))
        .select(OrderLine::as_select())
        .first(&mut conn)
        .unwrap();
    assert_eq!(occ::__private::Optimistic::key(&line), (1, 2));
    line.qty = 21;
    line.update_versioned(&mut conn).unwrap();
    assert_eq!(line.version, 1);
    // Only the row with both key values changed.
    assert_eq!(
        qtys(&mut conn),
        vec![(1, 1, 10, 0), (1, 2, 21, 1), (2, 1, 30, 0)]
    );

    let mut stale = line.clone();
    stale.version = 0;
    let err = stale.update_versioned(&mut conn).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("order_id = 1, line_no = 2"),
        "the key is described in primary_key order: {message}"
    );

    let v = OrderLine::update_if_version(&mut conn, (2, 1), 0, order_lines::qty.eq(31)).unwrap();
    assert_eq!(v, 1);
    line.delete_versioned(&mut conn).unwrap();
    assert_eq!(qtys(&mut conn), vec![(1, 1, 10, 0), (2, 1, 31, 1)]);
}
