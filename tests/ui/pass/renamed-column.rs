// Fields whose columns have other names, the version and the key included:
// occ writes the columns diesel maps them to.
use occ::prelude::*;

diesel::table! {
    products (product_id) {
        product_id -> Integer,
        #[sql_name = "type"]
        kind -> Text,
        qty -> Integer,
        lock_version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug)]
#[diesel(table_name = products, primary_key(id))]
struct Product {
    #[diesel(column_name = product_id)]
    id: i32,
    #[diesel(column_name = "kind")]
    category: String,
    #[diesel(column_name = qty)]
    quantity: i32,
    #[occ(version)]
    #[diesel(column_name = lock_version)]
    version: i32,
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE products (product_id INTEGER PRIMARY KEY, type TEXT NOT NULL, \
         qty INTEGER NOT NULL, lock_version INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO products VALUES (5, 'tool', 3, 9)")
        .execute(&mut conn)
        .unwrap();

    let mut product: Product = products::table
        .find(5)
        .select(Product::as_select())
        .first(&mut conn)
        .unwrap();
    product.quantity = 2;
    product.category = "gift".to_owned();
    product.update_versioned(&mut conn).unwrap();
    assert_eq!(product.version, 10);
    let row: (i32, String, i32, i32) = products::table.find(5).first(&mut conn).unwrap();
    assert_eq!(row, (5, "gift".to_owned(), 2, 10));

    product.version = 9;
    let err = product.update_versioned(&mut conn).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(err.to_string().contains("product_id = 5"), "{err}");
    product.reload(&mut conn).unwrap();
    assert_eq!(product.version, 10);
}
